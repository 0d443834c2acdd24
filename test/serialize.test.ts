// The hand-built notification frame is byte for byte the frame the schema serializer writes.
import fc from 'fast-check';
import t from 'tap';
import { eventFrame, notificationFrame } from '../src/serialize.js';

t.test('notificationFrame equals eventFrame for generated notifications', async (t) => {
  const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.constantFrom('"quoted"', 'back\\slash', 'line\nbreak', '\u0000\u001f', '\u2028', '\ud800 lone', 'x'.repeat(60)));
  const notification = fc.record({
    id: fc.uuid(),
    title: text,
    message: text,
    type: text,
    data: fc.option(fc.dictionary(fc.string(), fc.jsonValue()), { nil: undefined }),
    from: fc.option(text, { nil: null }),
    ts: fc.integer({ min: 0, max: 2 ** 47 }),
  });
  let runs = 0;
  fc.assert(
    fc.property(fc.constantFrom('user:a', 'user:b.c@d'), notification, (topic, n) => {
      runs++;
      return notificationFrame(topic, n) === eventFrame('notification:received', topic, n, n.ts);
    }),
    { numRuns: 5000 },
  );
  t.equal(runs, 5000, '5,000 notifications compared');
  const one = { id: 'i', title: 't', message: 'm', type: 'like', data: { a: [1, 'x'] }, from: null, ts: 5 };
  t.same(JSON.parse(notificationFrame('user:a', one)), { type: 'notification:received', topic: 'user:a', data: one, ts: 5 }, 'and it is the envelope clients read');
});
