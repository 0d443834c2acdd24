// The numbered frame's byte layout (wire/position.ts) is one: the memory history writes it, the RECORD script
// in Redis writes the same bytes, and framePosition reads back what either wrote.
import t from 'tap';
import { Redis } from 'ioredis';
import { framePosition, numberedFrame } from '../src/wire/position.js';
import { MemoryHistory } from '../src/seams/history/memory.js';
import { RECORD } from '../src/seams/history/redis.js';
import { skipReason, startRedis } from './cluster/redis.js';

const head = '{"type":"notification:received","topic":"user:bob"';
const tail = ',"data":{"id":"n1","title":"x","message":"y"},"ts":1764000000000}';

t.test('the memory history writes numberedFrame, and framePosition reads it back', async (t) => {
  const h = new MemoryHistory({ size: 10, ttlMs: 60_000, maxTopics: 10 });
  const a = h.append('user:bob', head, tail) as { epoch: string; offset: number; frame: string };
  t.equal(a.frame, numberedFrame(head, a.epoch, 1, tail));
  t.same(framePosition(a.frame), { epoch: a.epoch, offset: 1 });
  t.same(JSON.parse(a.frame), { type: 'notification:received', topic: 'user:bob', epoch: a.epoch, offset: 1, data: { id: 'n1', title: 'x', message: 'y' }, ts: 1764000000000 }, 'valid JSON');
});

t.test('the RECORD script writes the same bytes as numberedFrame', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const raw = new Redis(redis.url);
  t.teardown(() => raw.disconnect());
  raw.defineCommand('RECORD', { lua: RECORD });
  const keys = ['h', 's', 'interest', 'recovering', 'channel', 'hbytes', 'hsizes', 'hage', 'hu', 'huage', 'hk', 'ho', 'hgen'].map((k) => `${redis.prefix}${k}`);
  const run = () =>
    (raw as unknown as { RECORD(n: number, ...a: (string | number)[]): Promise<[number, string, number, string]> }).RECORD(13, ...keys, head, tail, 'EPOCH1', 50, 60_000, '*', 60_000, '', 1 << 30, redis.prefix, 'user:bob', '');
  const [status, epoch, offset, frame] = await run();
  t.same([status, epoch, offset], [1, 'EPOCH1', 1]);
  t.equal(frame, numberedFrame(head, 'EPOCH1', 1, tail));
  const second = await run();
  t.equal(second[3], numberedFrame(head, 'EPOCH1', 2, tail));
  t.same(framePosition(second[3]), { epoch: 'EPOCH1', offset: 2 });
});
