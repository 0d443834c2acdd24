// The hand-built notification frame is byte for byte the frame the schema serializer writes.
import fc from 'fast-check';
import t from 'tap';
import { eventFrame, notificationFrame, notificationHead, notificationTail } from '../src/wire/frames.js';

t.test('notificationFrame equals eventFrame for generated notifications', async (t) => {
  const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.constantFrom('"quoted"', 'back\\slash', 'line\nbreak', '\u0000\u001f', '\u2028', '\ud800 lone', 'x'.repeat(60)));
  const notification = fc.record({
    id: fc.uuid(),
    title: text,
    message: text,
    type: text,
    data: fc.option(fc.dictionary(fc.string(), fc.jsonValue()), { nil: undefined }),
    from: fc.option(text, { nil: null }),
    origin: fc.constantFrom('user' as const, 'system' as const),
    ts: fc.integer({ min: 0, max: 2 ** 47 }),
  });
  let runs = 0;
  fc.assert(
    fc.property(fc.constantFrom('user:a', 'user:b.c@d'), notification, (topic, n) => {
      runs++;
      const head = notificationHead(topic);
      // The head PubSub.emitParts is given: the frame's type and topic, nothing more.
      const headOk = head === `{"type":"notification:received","topic":${JSON.stringify(topic)}`;
      return headOk && head + notificationTail(n) === eventFrame('notification:received', topic, n, n.ts) && notificationFrame(topic, n) === head + notificationTail(n);
    }),
    { numRuns: 5000 },
  );
  t.equal(runs, 5000, '5,000 notifications compared');
  const one = { id: 'i', title: 't', message: 'm', type: 'like', data: { a: [1, 'x'] }, from: null, origin: 'system' as const, ts: 5 };
  t.same(JSON.parse(notificationFrame('user:a', one)), { type: 'notification:received', topic: 'user:a', data: one, ts: 5 }, 'and it is the envelope clients read');
});

t.test('the generated serializers are current and write what fast-json-stringify compiles from the schemas', async (t) => {
  const { readFileSync } = await import('node:fs');
  const { generate } = await import('../scripts/gen-serializers.js');
  const { FRAME_SCHEMAS } = await import('../src/wire/frame-schemas.js');
  const { serializers } = await import('../src/generated/serializers.js');
  const { default: fastJson } = await import('fast-json-stringify');
  t.equal(readFileSync(new URL('../src/generated/serializers.ts', import.meta.url), 'utf8'), generate(), 'src/generated/serializers.ts is what `npm run gen:serializers` writes now');
  t.same(Object.keys(serializers).sort(), Object.keys(FRAME_SCHEMAS).sort(), 'one serializer per schema');
  const docs = fc.record(
    {
      type: fc.string(),
      topic: fc.string(),
      id: fc.oneof(fc.string(), fc.integer()),
      data: fc.dictionary(fc.constantFrom('id', 'title', 'userId', 'storyId', 'authorId', 'unreadCount', 'ids', 'other'), fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.array(fc.string()))),
      error: fc.record({ code: fc.string(), message: fc.string() }),
      ts: fc.integer({ min: 0, max: 2 ** 47 }),
    },
    { requiredKeys: ['type', 'ts'] },
  );
  for (const [name, schema] of Object.entries(FRAME_SCHEMAS)) {
    const compiled = (fastJson as unknown as (s: object) => (d: object) => string)(schema);
    const outcome = (f: (d: object) => string, d: object) => {
      try {
        return f(d);
      } catch (err) {
        return `threw ${(err as Error).message}`;
      }
    };
    fc.assert(fc.property(docs, (d) => outcome(serializers[name]!, d) === outcome(compiled, d)), { numRuns: 300 });
  }
  t.pass(`${Object.keys(FRAME_SCHEMAS).length} serializers x 300 documents: the same output as a build at run time`);
});
