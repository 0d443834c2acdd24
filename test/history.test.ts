// The history contract of src/seams/history/types.ts, run against every implementation: the memory history
// (appended to by this node) and the Redis one (appended to by its backplane, publishRecorded).
import t, { type Test } from 'tap';
import pino from 'pino';
import { Redis } from 'ioredis';
import { RedisBackplane } from '../src/seams/backplane/redis/backplane.js';
import { MemoryHistory } from '../src/seams/history/memory.js';
import type { RedisHistory } from '../src/seams/history/redis.js';
import { NO_STREAM, type Appended, type HistoryReads } from '../src/seams/history/types.js';
import { skipReason, redisPerTest, type TestRedis } from './cluster/redis.js';
import { WAIT_MS } from './wait.js';

interface Limits {
  size: number;
  ttlMs: number;
  maxBytes?: number;
  /** User-sent entries held per topic (NOTIFY_USER_SHARE of HISTORY_SIZE). */
  userSize?: number;
  /** A topic's own limits (its namespace's history). */
  perTopic?: (topic: string) => { size: number; ttlMs: number } | undefined;
  /** The longest TTL perTopic gives (the channel registry's longestHistoryTtlMs). */
  longestTtlMs?: number;
}

interface Fixture {
  history: HistoryReads;
  append(topic: string, head: string, tail: string): Promise<Appended>;
  /** The append with `ifStreamExists`: undefined when nothing was stored. */
  appendIfExists(topic: string, head: string, tail: string): Promise<Appended | undefined>;
  /** A user-sent append (RecordOptions.user): undefined when it was not stored (a share of 0). */
  appendUser(topic: string, head: string, tail: string): Promise<Appended | undefined>;
  /** An append with an entry key (RecordOptions.key; Redis: the single-event RECORD, not the batched one). */
  appendKeyed(topic: string, head: string, tail: string, key: string): Promise<Appended | undefined>;
  /** Bytes the store counts as held over every topic (HISTORY_MAX_BYTES's books). */
  storedBytes(): Promise<number>;
  /** Topics with anything held for them in the store (memory: streams; Redis: keys of the topic). */
  held(): Promise<string[]>;
  /** What a lost history is to this implementation (a topic evicted, its Redis keys expired or gone). */
  lose(topic: string): Promise<void>;
}

interface Impl {
  name: string;
  make(t: Test, limits: Limits): Promise<Fixture>;
  skip?: string | false;
}

let redis: TestRedis | undefined;
const impls: Impl[] = [
  {
    name: 'memory',
    async make(_t, limits) {
      const maxTopics = 10;
      const history = new MemoryHistory({ ...limits, maxTopics });
      return {
        history,
        append: async (topic, head, tail) => history.append(topic, head, tail),
        appendIfExists: async (topic, head, tail) => history.append(topic, head, tail, { ifStreamExists: true }),
        appendUser: async (topic, head, tail) => history.append(topic, head, tail, { user: true }),
        appendKeyed: async (topic, head, tail, key) => history.append(topic, head, tail, { key }),
        storedBytes: async () => history.storedBytes,
        held: async () => history.heldTopics(),
        // Every topic is used when created: making room for maxTopics new ones drops the oldest first.
        async lose(topic) {
          for (let i = 0; i < maxTopics; i++) history.append(`story:filler-${i}`, `{"type":"x","topic":"story:filler-${i}"`, '}');
          if ((await history.position(topic)).offset !== 0) throw new Error(`${topic} was not evicted`);
        },
      };
    },
  },
  {
    name: 'redis',
    skip: skipReason,
    async make(t, limits) {
      const prefix = redis!.prefix;
      const bp = new RedisBackplane({ url: redis!.url, prefix, nodeId: 'h', leaseMs: 1500, graceMs: 200, history: limits, log: pino({ level: 'silent' }) });
      t.teardown(() => bp.close());
      t.ok(await bp.connect(5000), 'the node joins the cluster');
      const raw = new Redis(redis!.url);
      t.teardown(() => raw.disconnect());
      return {
        history: bp.stores.history,
        async append(topic, head, tail) {
          const a = await bp.publishRecorded(topic, head, tail);
          if (a === undefined) throw new Error('not appended');
          return a;
        },
        async appendIfExists(topic, head, tail) {
          const a = await bp.publishRecorded(topic, head, tail, undefined, undefined, { ifStreamExists: true });
          if (a === undefined) throw new Error('taken for a duplicate');
          return a === NO_STREAM ? undefined : a;
        },
        async appendUser(topic, head, tail) {
          const a = await bp.publishRecorded(topic, head, tail, undefined, undefined, { user: true });
          if (a === undefined) throw new Error('taken for a duplicate');
          return a === NO_STREAM ? undefined : a;
        },
        async appendKeyed(topic, head, tail, key) {
          const a = await bp.publishRecorded(topic, head, tail, undefined, undefined, { key });
          if (a === undefined) throw new Error('taken for a duplicate');
          return a === NO_STREAM ? undefined : a;
        },
        storedBytes: () => (bp.stores.history as RedisHistory).storedBytes(),
        async held() {
          const keys = await raw.keys(`${prefix}*`);
          // The topic keys (h:, s:); the books and the empty-epoch base are shared by every topic.
          return [...new Set(keys.map((k) => k.slice(prefix.length)).filter((k) => /^[hs]:/.test(k)).map((k) => k.slice(2)))].sort();
        },
        async lose(topic) {
          await raw.del(`${prefix}h:${topic}`, `${prefix}s:${topic}`);
        },
      };
    },
  },
];

const DAY = 86_400_000;
const head = (topic: string) => `{"type":"x","topic":"${topic}"`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Age tests with real clocks: `run` writes an old entry, waits past `ttlMs`, writes a young one and reads, and
 * returns how long after the young write its reads ended. A loaded machine may stall longer than the age bound
 * between the write and the reads, so that the young entry aged too: such a run proves nothing and is run
 * again (at most 5 times); the first run whose reads ended within half the bound is the one asserted.
 */
async function whileYoung<T>(ttlMs: number, run: () => Promise<{ youngForMs: number; seen: T }>): Promise<T> {
  for (let i = 0; i < 5; i++) {
    const r = await run();
    if (r.youngForMs < ttlMs / 2) return r.seen;
  }
  throw new Error(`the machine stalled past ${ttlMs / 2} ms in each of 5 runs: the age bound could not be observed`);
}

for (const impl of impls) {
  t.test(impl.name, { skip: impl.skip ?? false }, async (t) => {
    if (impl.name === 'redis') redis = await redisPerTest(t);

    t.test('offsets count up; since replays what is still held, in order', async (t) => {
      // A day: in Redis a resume from the empty position continues into a history begun in the same
      // HISTORY_TTL period (src/seams/history/redis.ts), and this test stays in one.
      const { history: h, append } = await impl.make(t, { size: 3, ttlMs: DAY });
      const p0 = await h.position('user:a');
      t.equal(p0.offset, 0);
      const frames: Appended[] = [];
      for (const i of [1, 2, 3, 4, 5]) frames.push(await append('user:a', head('user:a'), `,"n":${i}}`));
      t.same(frames.map((f) => f.offset), [1, 2, 3, 4, 5]);
      t.same(await h.since('user:a', p0.epoch, 0, 5), { recovered: false, frames: [], position: { epoch: frames[0]!.epoch, offset: 5 } }, 'the empty position, once offset 1 fell out');
      t.match(frames[4]!.frame, /"epoch":"[^"]+","offset":5,"n":5}$/);
      const epoch = frames[0]!.epoch;
      const r = await h.since('user:a', epoch, 2, 5);
      t.same(r, { recovered: true, frames: [frames[2]!.frame, frames[3]!.frame, frames[4]!.frame], position: { epoch, offset: 5 } });
      t.equal((await h.since('user:a', epoch, 1, 5)).recovered, false, 'offset 2 fell out of a history of 3');
      t.equal((await h.since('user:a', 'other', 4, 5)).recovered, false, 'another epoch');
      t.same(await h.latest('user:a', 2), [frames[4]!.frame, frames[3]!.frame], 'newest first');
    });

    t.test("a namespace's own limits: its count and its age, other topics the store's", async (t) => {
      const perTopic = (topic: string) => (topic.startsWith('room:') ? { size: 2, ttlMs: 2000 } : undefined);
      const { history: h, append } = await impl.make(t, { size: 10, ttlMs: DAY, perTopic });
      for (const i of [1, 2, 3, 4]) {
        await append('room:1', head('room:1'), `,"n":${i}}`);
        await append('story:1', head('story:1'), `,"n":${i}}`);
      }
      t.equal((await h.latest('room:1', 10)).length, 2, 'room:1 keeps its namespace size, 2');
      t.equal((await h.latest('story:1', 10)).length, 4, 'story:1 keeps the store size, 10');
      const room = await h.position('room:1');
      t.equal((await h.since('room:1', room.epoch, 1, 4)).recovered, false, 'offset 2 fell out of room:1');
      t.equal((await h.since('room:1', room.epoch, 2, 4)).recovered, true);
      // The age: room:1's events outlive their 2 s (long enough for the count checks above on a busy machine), story:1's a day.
      const deadline = Date.now() + WAIT_MS;
      while ((await h.latest('room:1', 10)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      t.same(await h.latest('room:1', 10), [], "room:1's events are dropped at its namespace's age");
      t.equal((await h.latest('story:1', 10)).length, 4, "story:1's are not");
    });

    t.test("a topic's events outlive another topic's shorter TTL: no record sweeps them by its own", async (t) => {
      // room: keeps its events a day, every other topic 1.5 s; a story event recorded once room:1's are older
      // than 1.5 s sweeps the books by the longest TTL, not by its own (once it swept room:1 empty).
      const perTopic = (topic: string) => (topic.startsWith('room:') ? { size: 10, ttlMs: DAY } : undefined);
      const { history: h, append, appendUser, appendKeyed } = await impl.make(t, { size: 10, ttlMs: 1500, perTopic, longestTtlMs: DAY });
      for (const i of [1, 2, 3]) await append('room:1', head('room:1'), `,"n":${i}}`);
      const written = Date.now();
      // Waits out the story TTL (the one thing this test is about): bounded, not a race.
      while (Date.now() - written < 1700) await new Promise((r) => setTimeout(r, 50));
      await append('story:1', head('story:1'), ',"n":1}');
      await appendUser('story:2', head('story:2'), ',"n":1}');
      await appendKeyed('story:3', head('story:3'), ',"n":1}', 'k1');
      t.equal((await h.latest('room:1', 10)).length, 3, "room:1 keeps its events for its namespace's day");
    });

    t.test('a position at the head replays nothing and is recovered; one past it is not', async (t) => {
      const { history: h, append } = await impl.make(t, { size: 10, ttlMs: 60_000 });
      const a = await append('story:h', head('story:h'), '}');
      await append('story:h', head('story:h'), '}');
      t.same(await h.since('story:h', a.epoch, 2, 2), { recovered: true, frames: [], position: { epoch: a.epoch, offset: 2 } });
      t.equal((await h.since('story:h', a.epoch, 3, 3)).recovered, false, 'a position the topic never reached');
      t.same((await h.since('story:h', a.epoch, 0, 1)).frames, [a.frame], 'upTo bounds the replay');
      t.same(await h.position('story:h'), { epoch: a.epoch, offset: 2 });
    });

    t.test('topics are numbered apart', async (t) => {
      const { history: h, append } = await impl.make(t, { size: 10, ttlMs: 60_000 });
      await append('story:x', head('story:x'), '}');
      const y = await append('story:y', head('story:y'), '}');
      t.equal(y.offset, 1, 'a topic of its own starts at 1');
      t.equal((await h.position('story:x')).offset, 1);
      t.same(await h.latest('story:nothing', 5), [], 'a topic with nothing holds nothing');
    });

    t.test('entries older than the age limit are never replayed', async (t) => {
      const ttlMs = 600;
      const { history: h, append } = await impl.make(t, { size: 10, ttlMs });
      let run = 0;
      const seen = await whileYoung(ttlMs, async () => {
        const topic = `story:age${run++}`;
        const a = await append(topic, head(topic), '}');
        await sleep(ttlMs + 100);
        const b = await append(topic, head(topic), '}');
        const written = Date.now();
        const r = await h.since(topic, a.epoch, 0, b.offset);
        // (A Redis topic idle past the age also starts a new epoch: b may be offset 1 of another one.)
        const r2 = await h.since(topic, b.epoch, b.offset - 1, b.offset);
        const latest = await h.latest(topic, 10);
        return { youngForMs: Date.now() - written, seen: { r, r2, latest, b } };
      });
      t.equal(seen.r.recovered, false, 'offset 1 is too old: not recoverable');
      t.same(seen.r2.frames, [seen.b.frame], 'what is young enough still is');
      t.same(seen.latest, [seen.b.frame]);
    });

    t.test('a topic whose history is lost comes back under a new epoch', async (t) => {
      const { history: h, append, lose } = await impl.make(t, { size: 10, ttlMs: DAY });
      const a = await append('user:l', head('user:l'), '}');
      await lose('user:l');
      const p = await h.position('user:l');
      t.equal(p.offset, 0, 'nothing held');
      t.not(p.epoch, a.epoch, 'a new epoch');
      t.equal((await h.since('user:l', a.epoch, 1, 1)).recovered, false, 'a position of the old epoch cannot be recovered');
      const b = await append('user:l', head('user:l'), '}');
      t.match(b, { offset: 1 }, 'the next append opens a history at 1');
      t.not(b.epoch, a.epoch, 'in an epoch of its own');
      t.same((await h.since('user:l', p.epoch, 0, 1)).frames, [b.frame], 'a resume from the empty position told after the loss gets it');
    });

    t.test('a resume from the empty position recovers the history that began after it, from its first event', async (t) => {
      const { history: h, append } = await impl.make(t, { size: 10, ttlMs: DAY });
      const p0 = await h.position('user:e');
      t.equal(p0.offset, 0);
      t.same(await h.since('user:e', p0.epoch, 0, 0), { recovered: true, frames: [], position: p0 }, 'nothing missed yet');
      const a = await append('user:e', head('user:e'), ',"n":1}');
      const b = await append('user:e', head('user:e'), ',"n":2}');
      t.same(await h.since('user:e', p0.epoch, 0, 2), { recovered: true, frames: [a.frame, b.frame], position: { epoch: a.epoch, offset: 2 } });
      // Memory: the first append adopts the empty epoch. Redis: a history has an epoch of its own (random).
      t.equal((await h.since('user:e', p0.epoch, 1, 2)).recovered, a.epoch === p0.epoch, 'only offset 0 of the empty epoch continues into another one');
    });

    t.test('reads never create a history: positions, resumes and latest of made-up topics hold nothing', async (t) => {
      const { history: h, append, held } = await impl.make(t, { size: 10, ttlMs: 60_000 });
      await append('user:real', head('user:real'), '}');
      for (let i = 0; i < 50; i++) {
        const topic = `user:made-up-${i}`;
        const p = await h.position(topic);
        await h.since(topic, p.epoch, 0, 0);
        await h.since(topic, 'someepoch', 3, 3);
        await h.latest(topic, 10);
      }
      t.same(await held(), ['user:real'], 'only the topic that was written to');
    });

    t.test('ifStreamExists: stored only into a topic that has a history; otherwise nothing is stored or created', async (t) => {
      const { history: h, append, appendIfExists, held } = await impl.make(t, { size: 10, ttlMs: 60_000 });
      t.equal(await appendIfExists('user:nobody', head('user:nobody'), '}'), undefined, 'no history: not stored');
      t.same(await held(), [], 'and none created');
      t.equal((await h.position('user:nobody')).offset, 0);
      const first = await append('user:known', head('user:known'), ',"n":1}');
      const second = await appendIfExists('user:known', head('user:known'), ',"n":2}');
      t.match(second, { epoch: first.epoch, offset: 2 }, 'a topic with a history: stored as any other');
      t.same(await h.latest('user:known', 5), [second!.frame, first.frame]);
    });

    t.test('HISTORY_MAX_BYTES: past it the oldest events, whichever their topic, are dropped first', async (t) => {
      const pad = 'x'.repeat(900);
      const { history: h, append } = await impl.make(t, { size: 100, ttlMs: 60_000, maxBytes: 10_000 });
      const old = await append('story:old', head('story:old'), `,"pad":"${pad}"}`);
      const frames: Appended[] = [];
      for (let i = 0; i < 20; i++) frames.push(await append(`story:t${i % 3}`, head(`story:t${i % 3}`), `,"pad":"${pad}"}`));
      t.same(await h.latest('story:old', 10), [], 'the oldest event is gone');
      t.equal((await h.since('story:old', old.epoch, 0, 1)).recovered, false, 'a resume from before it: recovered false');
      const kept: string[] = [];
      for (const topic of ['story:t0', 'story:t1', 'story:t2']) kept.push(...(await h.latest(topic, 100)));
      const bytes = kept.reduce((n, f) => n + Buffer.byteLength(f), 0);
      t.ok(bytes <= 10_000, `at most the bound is held (${bytes} bytes)`);
      t.ok(bytes > 10_000 - 2 * Buffer.byteLength(frames[0]!.frame), 'and only what had to go went');
      t.ok(kept.includes(frames[19]!.frame), 'the newest is kept');
      t.notOk(kept.includes(frames[0]!.frame), 'the oldest of the others went first');
      const last = frames[19]!;
      t.same((await h.since('story:t1', last.epoch, last.offset - 1, last.offset)).frames, [last.frame], 'a recent resume still recovers');
      t.equal((await h.position('story:old')).epoch, old.epoch, 'a topic that lost its events keeps its epoch and offset');
    });

    // NOTIFY_USER_SHARE (issue #15, item 4): user-sent events have a budget of their own in the same history.
    const title = (f: string) => (JSON.parse(f) as { n: string }).n;
    const sys = (n: string) => `,"n":"${n}"}`;

    t.test('user share: past it the oldest user-sent event is deleted, never another, even from a full history', async (t) => {
      const { history: h, append, appendUser } = await impl.make(t, { size: 6, ttlMs: DAY, userSize: 2 });
      await append('user:v', head('user:v'), sys('S1'));
      for (const n of ['U1', 'U2', 'U3']) await appendUser('user:v', head('user:v'), sys(n));
      t.same((await h.latest('user:v', 10)).map(title), ['U3', 'U2', 'S1'], 'U1 went for U3: 2 user-sent ones are held');
      for (const n of ['S2', 'S3', 'S4']) await append('user:v', head('user:v'), sys(n));
      t.same((await h.latest('user:v', 10)).map(title), ['S4', 'S3', 'S2', 'U3', 'U2', 'S1'], 'a full history of 6');
      // The oldest entry is the system S1: a user-sent append takes the place of the oldest user-sent one.
      for (let i = 4; i < 30; i++) await appendUser('user:v', head('user:v'), sys(`U${i}`));
      t.same((await h.latest('user:v', 10)).map(title), ['U29', 'U28', 'S4', 'S3', 'S2', 'S1'], '26 more user-sent ones pushed out no system one');
      await append('user:v', head('user:v'), sys('S5'));
      t.same((await h.latest('user:v', 10)).map(title), ['S5', 'U29', 'U28', 'S4', 'S3', 'S2'], 'a system one still pushes out the oldest of all');
      t.equal((await h.position('user:v')).offset, 34, 'every event was numbered');
    });

    t.test('user share: a resume across a deleted user-sent event is not recovered; one after it is', async (t) => {
      const { history: h, append, appendUser } = await impl.make(t, { size: 10, ttlMs: DAY, userSize: 1 });
      const s1 = await append('user:r', head('user:r'), sys('S1'));
      await appendUser('user:r', head('user:r'), sys('U1'));
      const s2 = await append('user:r', head('user:r'), sys('S2'));
      const u2 = await appendUser('user:r', head('user:r'), sys('U2'));
      t.same((await h.latest('user:r', 10)).map(title), ['U2', 'S2', 'S1'], 'U1 (offset 2) was deleted');
      const { epoch } = s1;
      t.same(await h.since('user:r', epoch, 0, 4), { recovered: false, frames: [], position: { epoch, offset: 4 } }, 'a hole at offset 2: never a silent skip');
      t.equal((await h.since('user:r', epoch, 1, 4)).recovered, false, 'from just before the hole');
      t.equal((await h.since('user:r', epoch, 0, 1)).recovered, true, 'a range that ends before the hole is whole');
      t.same(await h.since('user:r', epoch, 2, 4), { recovered: true, frames: [s2.frame, u2!.frame], position: { epoch, offset: 4 } }, 'from after the hole: whole');
    });

    t.test('user share: user-sent events trimmed by count or age no longer count against it', async (t) => {
      const { history: h, append, appendUser } = await impl.make(t, { size: 4, ttlMs: DAY, userSize: 2 });
      for (const n of ['U1', 'U2']) await appendUser('user:c', head('user:c'), sys(n));
      for (const n of ['S1', 'S2', 'S3', 'S4']) await append('user:c', head('user:c'), sys(n));
      t.same((await h.latest('user:c', 10)).map(title), ['S4', 'S3', 'S2', 'S1'], 'U1 and U2 fell out by count');
      for (const n of ['U3', 'U4']) await appendUser('user:c', head('user:c'), sys(n));
      t.same((await h.latest('user:c', 10)).map(title), ['U4', 'U3', 'S4', 'S3'], 'both new user-sent ones are held: the share counts only what is held');
      const ttlMs = 600;
      const aged = await impl.make(t, { size: 10, ttlMs, userSize: 1 });
      let run = 0;
      const held = await whileYoung(ttlMs, async () => {
        const topic = `user:a${run++}`;
        await aged.appendUser(topic, head(topic), sys('U1'));
        await sleep(ttlMs + 100);
        const written = Date.now();
        await aged.append(topic, head(topic), sys('S1'));
        await aged.appendUser(topic, head(topic), sys('U2'));
        const latest = await aged.history.latest(topic, 10);
        return { youngForMs: Date.now() - written, seen: latest.map(title) };
      });
      t.same(held, ['U2', 'S1'], 'U1 went by age: U2 is within the share');
    });

    t.test('user share 0: a user-sent event is never stored (the caller sends it live only)', async (t) => {
      const { history: h, append, appendUser } = await impl.make(t, { size: 5, ttlMs: DAY, userSize: 0 });
      const s1 = await append('user:z', head('user:z'), sys('S1'));
      t.equal(await appendUser('user:z', head('user:z'), sys('U1')), undefined, 'not stored');
      t.same(await h.position('user:z'), { epoch: s1.epoch, offset: 1 }, 'and not numbered');
    });

    t.test('user share: the bytes of a deleted user-sent event leave the HISTORY_MAX_BYTES books', async (t) => {
      const pad = 'x'.repeat(500);
      const { history: h, append, appendUser, storedBytes } = await impl.make(t, { size: 10, ttlMs: DAY, maxBytes: 1_000_000, userSize: 2 });
      await append('user:b', head('user:b'), `,"n":"S1","pad":"${pad}"}`);
      for (let i = 1; i <= 8; i++) await appendUser('user:b', head('user:b'), `,"n":"U${i}","pad":"${pad}"}`);
      const held = await h.latest('user:b', 10);
      t.same(held.map(title), ['U8', 'U7', 'S1']);
      t.equal(await storedBytes(), held.reduce((n, f) => n + Buffer.byteLength(f), 0), 'the books count exactly what is held');
    });

    t.test('HISTORY_MAX_BYTES drops the oldest user-sent events anywhere before any other', async (t) => {
      const pad = 'x'.repeat(900);
      const frame = (n: string) => `,"n":"${n}","pad":"${pad}"}`;
      const { history: h, append, appendUser, storedBytes } = await impl.make(t, { size: 20, ttlMs: DAY, maxBytes: 10_000, userSize: 10 });
      // Older system events in two topics, then user-sent ones flooding three recipients.
      for (const topic of ['user:p', 'user:q']) for (const n of ['S1', 'S2']) await append(topic, head(topic), frame(`${topic} ${n}`));
      for (let i = 0; i < 8; i++) for (const topic of ['user:p', 'user:q', 'user:w']) await appendUser(topic, head(topic), frame(`${topic} U${i}`));
      const held = (await Promise.all(['user:p', 'user:q', 'user:w'].map((topic) => h.latest(topic, 20)))).flat();
      const names = held.map(title);
      for (const n of ['user:p S1', 'user:p S2', 'user:q S1', 'user:q S2']) t.ok(names.includes(n), `${n}, older than every user-sent one, is kept`);
      t.ok(names.includes('user:w U7'), 'the newest user-sent one is kept');
      t.notOk(names.includes('user:p U0'), 'the oldest user-sent ones went');
      const bytes = held.reduce((n, f) => n + Buffer.byteLength(f), 0);
      t.ok(bytes <= 10_000, `at most the bound is held (${bytes} bytes)`);
      t.ok(bytes > 10_000 - 2 * Buffer.byteLength(held[0]!), 'and only what had to go went');
      t.equal(await storedBytes(), bytes, 'the books count exactly what is held');
      // With no user-sent event left, the oldest of any goes, as before.
      const p = await h.position('user:p');
      t.equal((await h.since('user:p', p.epoch, 0, p.offset)).recovered, false, 'a resume across the dropped user-sent ones: not recovered');
      for (let i = 0; i < 12; i++) await append('user:x', head('user:x'), frame(`user:x S${i}`));
      const after = (await Promise.all(['user:p', 'user:q', 'user:w', 'user:x'].map((topic) => h.latest(topic, 20)))).flat().map(title);
      t.notOk(after.some((n) => / U\d$/.test(n)), 'every user-sent one went first');
      t.notOk(after.includes('user:p S1'), 'then the oldest system one');
      t.ok(after.includes('user:x S11'));
    });

    t.test('HISTORY_MAX_BYTES after the user-sent events fell out by count: the oldest of any goes, the books stay exact', async (t) => {
      const pad = 'x'.repeat(900);
      const frame = (n: string) => `,"n":"${n}","pad":"${pad}"}`;
      const { history: h, append, appendUser, storedBytes } = await impl.make(t, { size: 3, ttlMs: DAY, maxBytes: 4_000, userSize: 2 });
      for (const n of ['U1', 'U2']) await appendUser('user:k', head('user:k'), frame(n));
      for (const n of ['S1', 'S2', 'S3']) await append('user:k', head('user:k'), frame(n));
      t.same((await h.latest('user:k', 5)).map(title), ['S3', 'S2', 'S1'], 'the user-sent ones fell out by count');
      for (const n of ['T1', 'T2']) await append('story:k', head('story:k'), frame(n));
      const held = [...(await h.latest('user:k', 5)), ...(await h.latest('story:k', 5))];
      t.same(held.map(title), ['S3', 'S2', 'T2', 'T1'], 'the oldest event of any (S1) went for the bytes');
      t.equal(await storedBytes(), held.reduce((n, f) => n + Buffer.byteLength(f), 0), 'the books count exactly what is held');
    });
  });
}
