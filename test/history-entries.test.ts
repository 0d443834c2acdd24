// The keyed entries of the history contract (src/seams/history/types.ts: RecordOptions.key and .replace, entry()),
// run against the memory history and the Redis one: what chat's edits and deletions stand on.
import t, { type Test } from 'tap';
import pino from 'pino';
import { Redis } from 'ioredis';
import { RedisBackplane } from '../src/seams/backplane/redis/backplane.js';
import { MemoryHistory } from '../src/seams/history/memory.js';
import { NO_STREAM, type Appended, type HistoryReads, type RecordOptions, type Replacement } from '../src/seams/history/types.js';
import { numberedFrame } from '../src/wire/position.js';
import { skipReason, redisPerTest, type TestRedis } from './cluster/redis.js';

interface Fixture {
  history: HistoryReads;
  /** undefined: nothing appended (a replacement that could not be made). */
  append(topic: string, head: string, tail: string, options?: RecordOptions): Promise<Appended | undefined>;
  lose(topic: string): Promise<void>;
}

interface Impl {
  name: string;
  make(t: Test, size: number): Promise<Fixture>;
  skip?: string | false;
}

let redis: TestRedis | undefined;
const impls: Impl[] = [
  {
    name: 'memory',
    async make(_t, size) {
      const history = new MemoryHistory({ size, ttlMs: 60_000, maxTopics: 2 });
      return {
        history,
        append: async (topic, head, tail, options) => history.append(topic, head, tail, options ?? {}),
        async lose(topic) {
          for (let i = 0; i < 2; i++) history.append(`x:filler-${i}`, `{"type":"x","topic":"x:filler-${i}"`, '}');
          if ((await history.position(topic)).offset !== 0) throw new Error(`${topic} was not evicted`);
        },
      };
    },
  },
  {
    name: 'redis',
    skip: skipReason,
    async make(t, size) {
      const prefix = redis!.prefix;
      const bp = new RedisBackplane({ url: redis!.url, prefix, nodeId: 'e', leaseMs: 1500, graceMs: 200, history: { size, ttlMs: 60_000 }, log: pino({ level: 'silent' }) });
      t.teardown(() => bp.close());
      t.ok(await bp.connect(5000), 'the node joins the cluster');
      const raw = new Redis(redis!.url);
      t.teardown(() => raw.disconnect());
      return {
        history: bp.stores.history,
        async append(topic, head, tail, options) {
          const a = await bp.publishRecorded(topic, head, tail, undefined, undefined, options ?? {});
          if (a === NO_STREAM) throw new Error('no stream');
          return a;
        },
        async lose(topic) {
          await raw.del(`${prefix}h:${topic}`, `${prefix}s:${topic}`);
        },
      };
    },
  },
];

const T = 'conversation:c1';
const head = `{"type":"chat:message","topic":"${T}"`;
const tail = (text: string) => `,"data":{"id":"m","text":"${text}"},"ts":1}`;
const eventHead = `{"type":"chat:edited","topic":"${T}"`;

for (const impl of impls) {
  t.test(impl.name, { skip: impl.skip ?? false }, async (t) => {
    if (impl.name === 'redis') redis = await redisPerTest(t);

    t.test('an entry is found by its key while it is held', async (t) => {
      const { history, append } = await impl.make(t, 10);
      const a = (await append(T, head, tail('one'), { key: 'k1' }))!;
      await append(T, head, tail('two'));
      t.same(await history.entry(T, 'k1'), a);
      t.equal(await history.entry(T, 'k2'), undefined, 'an unknown key');
      t.equal(await history.entry('conversation:none', 'k1'), undefined, 'a topic with no history (and none made)');
      t.equal((await history.position('conversation:none')).offset, 0);
    });

    t.test('a replacement: the entry\'s new frame at its offset, read by entry, since and latest; the event appended', async (t) => {
      const { history, append } = await impl.make(t, 10);
      const a = (await append(T, head, tail('one'), { key: 'k1' }))!;
      const b = (await append(T, head, tail('two'), { key: 'k2' }))!;
      const edited = numberedFrame(head, a.epoch, a.offset, tail('ONE'));
      const replace: Replacement = { key: 'k1', expect: a.frame, frame: edited };
      const ev = await append(T, eventHead, ',"data":{"id":"m"},"ts":2}', { replace });
      t.equal(replace.done, true);
      t.equal(ev?.offset, 3, 'the edit event is numbered after them');
      t.same(await history.entry(T, 'k1'), { epoch: a.epoch, offset: 1, frame: edited });
      t.same((await history.since(T, a.epoch, 0, 3)).frames, [edited, b.frame, ev!.frame], 'a replay gets the latest state');
      t.same(await history.latest(T, 3), [ev!.frame, b.frame, edited]);
      // Replaced again, from the state read now.
      const again = numberedFrame(head, a.epoch, a.offset, tail('deleted'));
      const second: Replacement = { key: 'k1', expect: edited, frame: again };
      t.ok(await append(T, eventHead, ',"data":{},"ts":3}', { replace: second }));
      t.same((await history.since(T, a.epoch, 0, 1)).frames, [again]);
    });

    t.test('a replacement of an entry that changed since it was read, or is unknown: nothing done', async (t) => {
      const { history, append } = await impl.make(t, 10);
      const a = (await append(T, head, tail('one'), { key: 'k1' }))!;
      const stale: Replacement = { key: 'k1', expect: `${a.frame} `, frame: numberedFrame(head, a.epoch, a.offset, tail('x')) };
      t.equal(await append(T, eventHead, ',"data":{},"ts":2}', { replace: stale }), undefined);
      t.equal(stale.done, false);
      const unknown: Replacement = { key: 'nope', expect: a.frame, frame: a.frame };
      t.equal(await append(T, eventHead, ',"data":{},"ts":2}', { replace: unknown }), undefined);
      t.equal(unknown.done, false);
      const none: Replacement = { key: 'k1', expect: a.frame, frame: a.frame };
      t.equal(await append('conversation:empty', eventHead, ',"data":{},"ts":2}', { replace: none }), undefined);
      t.equal(none.done, false, 'a topic with no history');
      t.same(await history.position(T), { epoch: a.epoch, offset: 1 }, 'nothing was appended');
      t.same(await history.entry(T, 'k1'), a, 'nor replaced');
      t.equal((await history.position('conversation:empty')).offset, 0);
    });

    t.test('an entry trimmed by count, or a history lost, is found no more', async (t) => {
      const { history, append, lose } = await impl.make(t, 2);
      const a = (await append(T, head, tail('one'), { key: 'k1' }))!;
      await append(T, head, tail('two'), { key: 'k2' });
      await append(T, head, tail('three'), { key: 'k3' });
      t.equal(await history.entry(T, 'k1'), undefined, 'trimmed');
      const replace: Replacement = { key: 'k1', expect: a.frame, frame: a.frame };
      t.equal(await append(T, eventHead, ',"data":{},"ts":2}', { replace }), undefined);
      t.ok(await history.entry(T, 'k3'));
      await lose(T);
      t.equal(await history.entry(T, 'k3'), undefined, 'the history lost');
      const b = (await append(T, head, tail('new'), { key: 'k3' }))!;
      t.equal(b.offset, 1, 'a new epoch');
      t.same(await history.entry(T, 'k3'), b, 'the key names the entry of the new epoch');
    });
  });
}
