// Property-based fuzzing of the live protocol: 10,000+ random and mutated frames; after every batch the
// server is alive, a healthy connection gets its pong, and every reply or close is a documented code.
import fc from 'fast-check';
import t from 'tap';
import { CloseCode, ErrorCode } from '../src/wire/codes.js';
import { CLIENT_TYPES } from '../src/wire/messages.js';
import { startServer, type Frame } from './helpers.js';

const VALID: object[] = [
  { type: 'ping', id: 'p' },
  { type: 'send:notification', id: 1, data: { userId: 'bob', notification: { title: 't', message: 'm', type: 'like', data: { a: 1 } } } },
  { type: 'typing:start', data: { target: 'user:bob' } },
  { type: 'typing:stop', data: { target: 'story:1' } },
  { type: 'story:published', id: 's', data: { id: 1, title: 'T', summary: 'x' } },
  { type: 'chapter:published', data: { storyId: '1', id: 'c', title: 'C', number: 2 } },
  { type: 'profile:updated', data: { displayName: 'F' } },
  { type: 'subscribe', id: 'sub', data: { topic: 'story:1' } },
  { type: 'unsubscribe', data: { topic: 'author:bob' } },
  { type: 'presence:query', data: { userIds: ['bob', 1] } },
  { type: 'auth', data: { token: 'x.y.z' } },
];

/** Replace, drop or retype one field somewhere in a valid frame. */
const mutated = fc
  .tuple(fc.constantFrom(...VALID), fc.constantFrom('drop', 'replace', 'retype', 'truncate', 'nest'), fc.jsonValue(), fc.nat(), fc.constantFrom(...CLIENT_TYPES, 'x', ''))
  .map(([frame, op, value, n, type]) => {
    const copy = JSON.parse(JSON.stringify(frame)) as Record<string, unknown>;
    const targets: Record<string, unknown>[] = [copy];
    if (copy['data'] && typeof copy['data'] === 'object') targets.push(copy['data'] as Record<string, unknown>);
    const target = targets[n % targets.length]!;
    const keys = Object.keys(target);
    const key = keys[n % Math.max(1, keys.length)] ?? 'data';
    if (op === 'drop') delete target[key];
    else if (op === 'replace') target[key] = value;
    else if (op === 'retype') copy['type'] = type;
    else if (op === 'nest') target[key] = { [key]: target[key], deep: [value, [value]] };
    const text = JSON.stringify(copy);
    return op === 'truncate' ? text.slice(0, n % (text.length + 1)) : text;
  });

const frameArb = fc.oneof(
  { weight: 4, arbitrary: mutated },
  { weight: 2, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null') },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 100 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.constantFrom(...VALID).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.nat({ max: 4000 }).map((n) => `{"type":"ping","pad":"${'x'.repeat(n)}"}`) },
);

const SERVER_TYPES = new Set(['connected', 'heartbeat', 'pong', 'ack', 'error', 'notification:received', 'story:new', 'chapter:new', 'profile:updated', 'user:typing', 'user:stopped_typing', 'user:online', 'user:offline', 'story:updated']);
const ERROR_CODES = new Set<string>(Object.values(ErrorCode));
const CLOSE_CODES = new Set<number>(Object.values(CloseCode));

t.test('10,000 random and mutated frames against a live server', async (t) => {
  const h = await startServer(t, { maxPayloadBytes: 4096, rateLimitPerS: 5000, rateLimitBurst: 5000, notifyRatePerS: 1000, notifyBurst: 1000, publishRatePerS: 1000, publishBurst: 1000, rateLimitPerSPerIp: 10000, rateLimitBurstPerIp: 10000, notifyRatePerSPerIp: 1000, notifyBurstPerIp: 1000, publishRatePerSPerIp: 1000, publishBurstPerIp: 1000 });
  const healthy = await h.connect('bob');
  // The fuzzer owns story 1 (`stories` claim): its valid chapter frames are published, not refused.
  const publisher = { roles: ['stories:publish'], stories: ['1'] };
  let fuzzer = await h.connect('fuzzer', publisher);
  let sent = 0;
  let reconnects = 0;
  const problems: string[] = [];
  const check = (f: Frame) => {
    if (!SERVER_TYPES.has(f.type)) problems.push(`undocumented type ${f.type}`);
    if (f.type === 'error' && !ERROR_CODES.has(f.error?.code ?? '')) problems.push(`undocumented error code ${f.error?.code}`);
  };

  await fc.assert(
    fc.asyncProperty(fc.array(frameArb, { minLength: 200, maxLength: 200 }), async (batch) => {
      for (const frame of batch) {
        if (fuzzer.ws.readyState !== fuzzer.ws.OPEN) break;
        fuzzer.ws.send(frame, { binary: frame instanceof Uint8Array });
        sent++;
      }
      // A barrier: the pong proves the server has handled everything before it (frames are handled in order).
      const alive =
        fuzzer.ws.readyState === fuzzer.ws.OPEN
          ? await Promise.race([fuzzer.request('ping', undefined, 5000).catch(() => undefined), fuzzer.closed.then(() => undefined)])
          : undefined;
      if (!alive) {
        const closed = await Promise.race([fuzzer.closed, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
        if (!closed || !CLOSE_CODES.has(closed.code)) problems.push(`fuzz connection ended without a documented close code: ${JSON.stringify(closed)}`);
        fuzzer.frames.forEach(check);
        fuzzer = await h.connect('fuzzer', publisher);
        reconnects++;
      }
      fuzzer.frames.splice(0).forEach(check);
      const pong = await healthy.request('ping');
      healthy.frames.splice(0).forEach(check);
      return pong.type === 'pong' && problems.length === 0;
    }),
    { numRuns: Number(process.env['FUZZ_RUNS'] ?? 50), seed: Number(process.env['FUZZ_SEED'] ?? 20261125) },
  );
  t.ok(sent >= 200 * Number(process.env['FUZZ_RUNS'] ?? 50), `${sent} frames sent, ${reconnects} reconnects after documented closes`);
  t.same(problems, [], 'every reply and close was documented');
  const res = await fetch(`http://127.0.0.1:${h.port}/healthz`);
  t.equal(res.status, 200, 'server alive at the end');
});
