// Size limits of parsed frames: the shortcut that skips re-serializing a frame whose own size bounds its
// values gives the same answers as measuring every value.
import fc from 'fast-check';
import t from 'tap';
import { parseFrame } from '../src/wire/messages.js';
import type { Limits } from '../src/wire/protocol.js';

const limits: Limits = { maxNotificationBytes: 300, maxStoryBytes: 400, maxPresenceIds: 10 };

function outcome(text: string, bytes: number | undefined): string {
  try {
    return JSON.stringify(parseFrame(text, limits, bytes));
  } catch (err) {
    return `error ${(err as { code?: string }).code}`;
  }
}

t.test('a number written with an exponent is measured as it re-serializes, not as it was written', async (t) => {
  const data = `[${Array.from({ length: 20 }, () => '1e20').join(',')}]`;
  const text = `{"type":"send:notification","data":{"userId":"bob","notification":{"title":"t","message":"m","data":{"n":${data}}}}}`;
  t.ok(Buffer.byteLength(text) < limits.maxNotificationBytes, 'the frame itself is under the limit');
  t.equal(outcome(text, Buffer.byteLength(text)), 'error PAYLOAD_TOO_LARGE', '20 numbers of 21 digits are over it');
});

t.test('with and without the frame size, every frame gets the same answer', async (t) => {
  // Whitespace, escapes, exponents, big and small numbers, non-ASCII: what changes size on re-serialization.
  const number = fc.oneof(fc.double({ noNaN: true }), fc.integer(), fc.constantFrom('1e300', '1e20', '1E5', '0.0000001', '-0', '1.50', '123456789012345678901234567890'));
  const text = fc.oneof(fc.string(), fc.constantFrom('\\u00e9\\u00e9', '\\/\\/', 'é', '😀', '\\ud800'));
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a JSON string cannot hold U+0000-U+001F raw, so the piece strips exactly them
  const piece = fc.tuple(number, text, fc.constantFrom('', ' ', '\n  ')).map(([n, s, ws]) => `${ws}{${ws}"n":${ws}${typeof n === 'number' ? JSON.stringify(n) : n},"s":"${s.replace(/["\\\u0000-\u001f]/g, '')}"}`);
  const frame = fc.tuple(fc.array(piece, { maxLength: 12 }), fc.constantFrom('send:notification', 'story:published', 'profile:updated')).map(([pieces, type]) => {
    const list = `[${pieces.join(',')}]`;
    if (type === 'send:notification') return `{"type":"${type}","data":{"userId":"bob","notification":{"title":"t","message":"m","data":{"p":${list}}}}}`;
    if (type === 'story:published') return `{"type":"${type}","data":{"id":"1","title":"T","p":${list}}}`;
    return `{"type":"${type}","data":{"p":${list}}}`;
  });
  let checked = 0;
  const answers = new Set<string>();
  fc.assert(
    fc.property(frame, (f) => {
      checked++;
      answers.add(outcome(f, undefined).startsWith('error') ? outcome(f, undefined) : 'ok');
      return outcome(f, Buffer.byteLength(f)) === outcome(f, undefined);
    }),
    { numRuns: 3000 },
  );
  t.equal(checked, 3000, '3,000 frames, both ways');
  t.ok(answers.has('ok') && answers.has('error PAYLOAD_TOO_LARGE'), `frames on both sides of the limits: ${[...answers].join(', ')}`);
});

t.test("a notification's title, message and type: their bounds, and errors that name the field", async (t) => {
  const big: Limits = { maxNotificationBytes: 100_000, maxStoryBytes: 100_000, maxPresenceIds: 10 };
  const parse = (notification: object) => {
    const text = JSON.stringify({ type: 'send:notification', data: { userId: 'bob', notification } });
    try {
      const m = parseFrame(text, big, Buffer.byteLength(text));
      return m.type === 'send:notification' ? m.data.notification : undefined;
    } catch (err) {
      const e = err as { code?: string; message: string };
      return `${e.code} ${e.message}`;
    }
  };
  const x = (n: number) => 'x'.repeat(n);
  t.match(parse({ title: x(200), message: '', type: x(64) }), { title: x(200), message: '', type: x(64) }, 'at the bounds: accepted');
  t.match(parse({ title: 't', message: x(2000) }), { message: x(2000), type: 'info' }, 'a 2,000-character message, no type: "info"');
  const refused: [object, RegExp][] = [
    [{ message: 'm' }, /^INVALID_PAYLOAD data\.notification\.title must be a string$/],
    [{ title: '', message: 'm' }, /^INVALID_PAYLOAD data\.notification\.title must be 1-200 characters long$/],
    [{ title: x(201), message: 'm' }, /^INVALID_PAYLOAD data\.notification\.title must be 1-200 characters long$/],
    [{ title: 5, message: 'm' }, /^INVALID_PAYLOAD data\.notification\.title must be a string$/],
    [{ title: 't' }, /^INVALID_PAYLOAD data\.notification\.message must be a string$/],
    [{ title: 't', message: x(2001) }, /^INVALID_PAYLOAD data\.notification\.message must be 0-2000 characters long$/],
    [{ title: 't', message: 'm', type: '' }, /^INVALID_PAYLOAD data\.notification\.type must be 1-64 characters long$/],
    [{ title: 't', message: 'm', type: x(65) }, /^INVALID_PAYLOAD data\.notification\.type must be 1-64 characters long$/],
    [{ title: 't', message: 'm', type: null }, /^INVALID_PAYLOAD data\.notification\.type must be a string$/],
  ];
  for (const [n, expected] of refused) t.match(parse(n), expected, JSON.stringify(n).slice(0, 60));
});
