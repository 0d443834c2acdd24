// The push-tracking contract of src/seams/pushes/types.ts, run against every implementation; time is the
// `now` each call is given (no sleeps).
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import { MemoryPushStore } from '../src/seams/pushes/memory.js';
import { CLUSTER_PARTITIONS, RedisKeys } from '../src/seams/backplane/redis/keys.js';
import { RedisPushStore } from '../src/seams/pushes/redis.js';
import { RedisWebhookQueue, streamKey } from '../src/seams/webhooks/redis.js';
import { PUSH_MAX_LISTED, type PushStore, type PushTarget, type TrackedNotification } from '../src/seams/pushes/types.js';
import { skipReason, redisPerTest, type TestRedis } from './cluster/redis.js';

const OPTIONS = { coalesceMs: 100, maxPerUser: 14, receiptMemoryMs: 1000 };
const MAX_DEPTH = 3;
const T = 1_700_000_000_000;

interface Fixture {
  store: PushStore;
  /** Another store on the same data (Redis: its own connection), for concurrent flushers. */
  other(): Promise<PushStore>;
  target: PushTarget;
  /** The events the target got since the last call, as JSON text. */
  events(): Promise<string[]>;
  /** Makes the destination's queue full (or gives it room again). */
  full(on: boolean): Promise<void>;
}

interface Impl {
  name: string;
  make(t: Test): Promise<Fixture>;
  skip?: string | false;
}

function memoryFixture(): Fixture {
  const store = new MemoryPushStore({ ...OPTIONS, maxTracked: 1000 });
  let got: string[] = [];
  let full = false;
  return {
    store,
    other: async () => store,
    target: { destinations: ['push'], enqueue: (e) => !full && got.push(JSON.stringify(e)) > 0 },
    async events() {
      const out = got;
      got = [];
      return out;
    },
    async full(on) {
      full = on;
    },
  };
}

let redis: TestRedis | undefined;

/** New connections to the suite's Redis, each closed when `t` ends. */
const connector = (t: Test) => () => {
  const c = new Redis(redis!.url);
  t.teardown(() => c.disconnect());
  return c;
};

/** The events of the destination's stream (taken out as they are read), and making it full. */
function streamOf(raw: Redis, stream: string): Pick<Fixture, 'events' | 'full'> {
  return {
    async events() {
      const entries = (await raw.xrange(stream, '-', '+')).filter(([, f]) => f[0] === 'e');
      if (entries.length > 0) await raw.xdel(stream, ...entries.map(([id]) => id));
      return entries.map(([, f]) => f[1]!);
    },
    async full(on) {
      if (!on) return void (await raw.del(stream));
      for (let n = await raw.xlen(stream); n < MAX_DEPTH; n++) await raw.xadd(stream, '*', 'filler', '1');
    },
  };
}

async function redisFixture(t: Test): Promise<Fixture> {
  const prefix = redis!.prefix;
  const connect = connector(t);
  const raw = connect();
  const key = (n: string) => `${prefix}${n}`;
  const stream = key('wh:push');
  const make = () => new RedisPushStore(connect(), key, { ...OPTIONS, ttlMs: 60_000, maxDepth: MAX_DEPTH });
  return {
    store: make(),
    other: async () => make(),
    target: {
      destinations: ['push'],
      enqueue: () => {
        throw new Error('a cluster store adds to the streams itself');
      },
    },
    ...streamOf(raw, stream),
  };
}

/** The Redis Cluster layout (48 partitions, an outbox each, the queue's stream tagged) on the suite's Redis. */
async function partitionedFixture(t: Test, claimMs = 30_000): Promise<Fixture & { queue: RedisWebhookQueue; connect(): Redis }> {
  const prefix = redis!.prefix;
  const connect = connector(t);
  const raw = connect();
  const keys = new RedisKeys(prefix, CLUSTER_PARTITIONS);
  const key = (n: string) => `${prefix}${n}`;
  const stream = key(streamKey('push', true));
  const queue = new RedisWebhookQueue(connect(), key, 'node-a', 'push', { maxDepth: MAX_DEPTH, claimIdleMs: 60_000 }, undefined, true);
  t.teardown(() => queue.close());
  const layout = { prefixes: keys.parts.map((p) => p.prefix), forUser: (u: string) => keys.forUser(u).prefix, outbox: true };
  const make = () => new RedisPushStore(connect(), key, { ...OPTIONS, ttlMs: 60_000, maxDepth: MAX_DEPTH, claimMs }, layout);
  return {
    queue,
    connect,
    store: make(),
    other: async () => make(),
    target: {
      destinations: ['push'],
      enqueue: () => {
        throw new Error('a cluster store hands its events to the queues');
      },
      queues: [queue],
    },
    ...streamOf(raw, stream),
  };
}

const impls: Impl[] = [
  { name: 'memory', make: async () => memoryFixture() },
  { name: 'redis', skip: skipReason, make: redisFixture },
  { name: 'redis, Redis Cluster layout (partitions, outboxes)', skip: skipReason, make: (t) => partitionedFixture(t) },
];

const note = (epoch: string, offset: number, extra = ''): TrackedNotification => ({
  epoch,
  offset,
  id: `id-${epoch}-${offset}`,
  json: JSON.stringify({ id: `id-${epoch}-${offset}`, kind: 'like', text: `n${offset}${extra}` }),
});

interface Ev {
  id: string;
  type: string;
  ts: number;
  data: { userId: string; count: number; notifications: { epoch: string; offset: number; received: boolean; notification: { id: string } }[] };
}

/** Flushes at `now` and returns the events made, parsed; checks the count flushDue resolved. */
async function flush(t: Test, fx: Fixture, now: number, max = 100): Promise<Ev[]> {
  const made = await fx.store.flushDue(now, max, fx.target);
  const evs = (await fx.events()).map((s) => JSON.parse(s) as Ev);
  t.equal(made, evs.length, 'flushDue resolves the events it made');
  return evs;
}

const offsets = (e: Ev | undefined) => e?.data.notifications.map((n) => n.offset);

for (const impl of impls) {
  t.test(impl.name, { skip: impl.skip ?? false }, async (t) => {
    if (impl.name.startsWith('redis')) redis = await redisPerTest(t);

    t.test('a notification nobody received is pushed once, coalesceMs after it fell due', async (t) => {
      const fx = await impl.make(t);
      await fx.store.track('u1', note('e1', 1), T + 10, T);
      t.equal(await fx.store.pending(), 1);
      t.same(await flush(t, fx, T + 109), [], 'not before due + coalesceMs');
      const [e, more] = await flush(t, fx, T + 110);
      t.notOk(more, 'one event');
      t.match(e!.id, /^msg_[0-9a-f]{32}$/);
      t.same({ type: e!.type, ts: e!.ts, userId: e!.data.userId, count: e!.data.count }, { type: 'notification.unread', ts: T + 110, userId: 'u1', count: 1 });
      t.same(e!.data.notifications, [{ epoch: 'e1', offset: 1, received: false, notification: JSON.parse(note('e1', 1).json) }]);
      t.same(await flush(t, fx, T + 10_000), [], 'pushed once');
      t.equal(await fx.store.pending(), 0);
    });

    t.test('a receipt before the push sends nothing; so does one before the track, until it is forgotten', async (t) => {
      const fx = await impl.make(t);
      await fx.store.track('u1', note('e1', 1), T + 10, T);
      await fx.store.received('u1', 'e1', [1], T + 5);
      await fx.store.received('u2', 'e1', [1, 2], T);
      await fx.store.track('u2', note('e1', 1), T + 10, T + 1);
      t.same(await flush(t, fx, T + 500), [], 'nothing pushed');
      t.equal(await fx.store.pending(), 0);
      await fx.store.track('u2', note('e1', 2), T + 1010, T + OPTIONS.receiptMemoryMs);
      t.same(offsets((await flush(t, fx, T + 2000))[0]), [2], 'a receipt is remembered receiptMemoryMs only');
    });

    t.test('read {id} takes one out, before or after its track', async (t) => {
      const fx = await impl.make(t);
      await fx.store.track('u1', note('e1', 1), T, T);
      await fx.store.track('u1', note('e1', 2), T, T);
      await fx.store.read('u1', { id: 'id-e1-1' }, T + 1);
      await fx.store.read('u1', { id: 'id-e1-3' }, T + 1);
      await fx.store.track('u1', note('e1', 3), T, T + 2);
      const evs = await flush(t, fx, T + 100);
      t.same(evs.map(offsets), [[2]], 'only the unread one');
    });

    t.test('read {epoch, allUpTo}: those at or below and every other epoch, also for a late track', async (t) => {
      const fx = await impl.make(t);
      await fx.store.track('u1', note('e0', 7), T, T);
      for (let i = 1; i <= 3; i++) await fx.store.track('u1', note('e1', i), T, T);
      await fx.store.read('u1', { epoch: 'e1', allUpTo: 2 }, T + 1);
      await fx.store.track('u1', note('e1', 1), T, T + 2);
      await fx.store.track('u1', note('e1', 4), T, T + 2);
      const evs = await flush(t, fx, T + 100);
      t.same(evs.map(offsets), [[4, 3]]);
      t.same(evs[0]!.data.notifications.map((n) => n.epoch), ['e1', 'e1']);
    });

    t.test('notifications within the window are one push, newest first; the next one a later push', async (t) => {
      const fx = await impl.make(t);
      for (let i = 1; i <= 5; i++) await fx.store.track('u1', note('e1', i), T + 10 * i, T);
      await fx.store.track('u1', note('e1', 6), T + 150, T);
      await fx.store.track('u2', note('e2', 1), T + 50, T);
      t.same(await flush(t, fx, T + 109), []);
      const evs = await flush(t, fx, T + 110);
      t.equal(evs.length, 1, 'one push for the burst');
      t.same({ count: evs[0]!.data.count, offsets: offsets(evs[0]) }, { count: 5, offsets: [5, 4, 3, 2, 1] });
      t.same(await flush(t, fx, T + 149), [], 'u2 is due at 150');
      t.same((await flush(t, fx, T + 150)).map((e) => e.data.userId), ['u2']);
      t.same(await flush(t, fx, T + 249), [], 'the one after the push waits coalesceMs after its own due time');
      t.same((await flush(t, fx, T + 250)).map(offsets), [[6]]);
    });

    t.test('received with unreadDueAt: pushed then, marked received, unless read', async (t) => {
      const fx = await impl.make(t);
      await fx.store.track('u1', note('e1', 1), T + 10, T);
      await fx.store.track('u1', note('e1', 2), T + 10, T);
      await fx.store.track('u2', note('e1', 1), T + 10, T);
      await fx.store.received('u1', 'e1', [1], T + 5, T + 500);
      await fx.store.received('u2', 'e1', [1], T + 5, T + 500);
      await fx.store.read('u2', { id: 'id-e1-1' }, T + 6);
      const first = await flush(t, fx, T + 110);
      t.same(first.map((e) => [e.data.userId, offsets(e)]), [['u1', [2]]], 'the unreceived one at its time');
      t.same(await flush(t, fx, T + 599), []);
      const [e] = await flush(t, fx, T + 600);
      t.same(e!.data.notifications.map((n) => [n.offset, n.received]), [[1, true]]);
      t.same(await flush(t, fx, T + 10_000), [], 'u2 read it: nothing');
    });

    t.test('maxPerUser keeps the newest; PUSH_MAX_LISTED are listed, count says all', async (t) => {
      const fx = await impl.make(t);
      const n = OPTIONS.maxPerUser + 2;
      for (let i = 1; i <= n; i++) await fx.store.track('u1', note('e1', i), T + i, T);
      t.equal(await fx.store.pending(), OPTIONS.maxPerUser);
      t.equal((fx.store as { dropped?: { perUser: number } }).dropped?.perUser, 2, 'the drops are counted');
      const [e] = await flush(t, fx, T + 1000);
      t.equal(e!.data.count, OPTIONS.maxPerUser);
      t.same(offsets(e), Array.from({ length: PUSH_MAX_LISTED }, (_, i) => n - i));
    });

    t.test('a full queue leaves the notifications pending; pushed once there is room', async (t) => {
      const fx = await impl.make(t);
      await fx.store.track('u1', note('e1', 1), T, T);
      await fx.full(true);
      t.same(await flush(t, fx, T + 100), []);
      t.same(await flush(t, fx, T + 101), []);
      t.equal(await fx.store.pending(), 1);
      await fx.full(false);
      t.same((await flush(t, fx, T + 102)).map(offsets), [[1]]);
      t.same(await flush(t, fx, T + 103), []);
    });

    t.test('two flushers at once never push the same notifications', async (t) => {
      const fx = await impl.make(t);
      const other = await fx.other();
      const users = 30;
      for (let u = 0; u < users; u++) for (let i = 1; i <= 2; i++) await fx.store.track(`u${u}`, note('e1', i), T + u, T);
      const evs: Ev[] = [];
      for (let round = 0; round < users; round++) {
        const made = await Promise.all([fx.store.flushDue(T + 1000, 4, fx.target), other.flushDue(T + 1000, 4, fx.target)]);
        evs.push(...(await fx.events()).map((s) => JSON.parse(s) as Ev));
        if (made[0] + made[1] === 0) break;
      }
      t.equal(evs.length, users, 'one event per user');
      t.equal(new Set(evs.map((e) => e.data.userId)).size, users, 'each user once');
      t.ok(evs.every((e) => e.data.count === 2));
    });

    t.test('bad options are refused with a clear error', async (t) => {
      t.throws(() => new MemoryPushStore({ ...OPTIONS, maxPerUser: 0, maxTracked: 1 }), /maxPerUser must be a positive integer/);
    });
  });
}

t.test('memory: maxTracked refuses new notifications past it, and counts them', async (t) => {
  const store = new MemoryPushStore({ ...OPTIONS, maxTracked: 3 });
  for (let u = 0; u < 5; u++) await store.track(`u${u}`, note('e1', 1), T, T);
  t.equal(await store.pending(), 3);
  t.equal(store.dropped.total, 2);
  for (let u = 0; u < 5; u++) await store.received(`x${u}`, 'e1', [1], T);
  t.equal(store.dropped.early, 2, 'early receipts are bounded too');
  await store.flushDue(T + OPTIONS.receiptMemoryMs, 10, { destinations: [], enqueue: () => true });
  await store.received('y', 'e1', [1], T + OPTIONS.receiptMemoryMs);
  t.equal(store.dropped.early, 2, 'forgotten receipts make room');
});

t.test('a memory and a Redis event for the same inputs are the same JSON but for the id', { skip: skipReason }, async (t) => {
  redis = await redisPerTest(t);
  const mem = memoryFixture();
  const red = await redisFixture(t);
  const user = 'ü/1"x\n';
  const odd: TrackedNotification = { epoch: 'e-1_A', offset: 12, id: 'odd', json: JSON.stringify({ t: 'a/b "q" \\ \u0001 é 😀', n: [1, 2.5, null, true], o: {} }) };
  for (const fx of [mem, red]) {
    await fx.store.track(user, note('e-1_A', 3, '/'), T + 5, T);
    await fx.store.track(user, odd, T + 5, T);
    await fx.store.track(user, note('e-1_A', 9), T + 7, T);
    await fx.store.received(user, 'e-1_A', [9], T + 1, T + 8);
  }
  t.equal(await mem.store.flushDue(T + 200, 1, mem.target), 1);
  t.equal(await red.store.flushDue(T + 200, 1, red.target), 1);
  const [a] = await mem.events();
  const [b] = await red.events();
  const noId = (s: string | undefined) => s?.replace(/"id":"msg_[0-9a-f]{32}"/, '"id":"msg_"');
  t.ok(a && b);
  t.match(a, /a\/b \\"q\\" \\\\ \\u0001 é 😀/, 'the stored JSON as made by JSON.stringify');
  t.equal(noId(b), noId(a), 'byte for byte');
  t.same(JSON.parse(b!), { ...JSON.parse(a!), id: JSON.parse(b!).id });
});

t.test('Redis Cluster layout: a push its node could not queue stays in the outbox, and is sent later by any node, same id', { skip: skipReason }, async (t) => {
  redis = await redisPerTest(t);
  const claimMs = 5000;
  const fx = await partitionedFixture(t, claimMs);
  await fx.store.track('u1', note('e1', 1), T, T);
  await fx.store.track('u2', note('e1', 1), T, T);
  // The node that makes the pushes cannot reach the queue's stream (as if it died right after the script).
  const unreachable = { depth: async () => 0, enqueueJson: async (): Promise<boolean> => { throw new Error('injected: the stream is unreachable'); } };
  t.equal(await fx.store.flushDue(T + 200, 100, { ...fx.target, queues: [unreachable] }), 0, 'made into the outboxes, none handed over');
  t.equal(await fx.store.pending(), 0, 'no longer pending');
  t.same(await fx.events(), [], 'nothing queued');
  const raw = fx.connect();
  const parts = new RedisKeys(redis.prefix, CLUSTER_PARTITIONS).parts;
  const outboxIds = async () => (await Promise.all(parts.map((p) => raw.hkeys(`${p.prefix}po`)))).flat().sort();
  const made = await outboxIds();
  t.equal(made.length, 2, 'both in the outboxes');
  const other = await fx.other();
  t.equal(await other.flushDue(T + 200 + claimMs - 1, 100, fx.target), 0, 'held by its node until its hold runs out');
  t.same(await fx.events(), [], 'still nothing queued');
  t.equal(await other.flushDue(T + 200 + claimMs, 100, fx.target), 2, 'taken again from the outbox and handed over');
  const evs = (await fx.events()).map((s) => JSON.parse(s) as Ev);
  t.same(evs.map((e) => e.data.userId).sort(), ['u1', 'u2'], 'each push queued once, by another node');
  t.same(evs.map((e) => e.id).sort(), made, 'under the ids they were made with (a repeat is dropped by its webhook-id)');
  t.same(await outboxIds(), [], 'no outbox entry left once they were queued');
  t.equal(await other.flushDue(T + 200 + 3 * claimMs, 100, fx.target), 0);
  t.same(await fx.events(), [], 'and nothing queued again');
});

t.test('Redis Cluster layout: a shard whose count call fails is counted partition by partition', { skip: skipReason }, async (t) => {
  redis = await redisPerTest(t);
  const fx = await partitionedFixture(t);
  await fx.store.track('u1', note('e1', 1), T, T);
  await fx.store.track('u2', note('e1', 2), T, T);
  // The one call per shard fails (as when one of its partitions' slots has just moved away).
  const cmd = (fx.store as unknown as { cmd: Record<string, unknown> }).cmd;
  let probes = 0;
  cmd['PUSH_PROBE'] = async () => {
    probes++;
    throw new Error('injected: a key of the call is not on this node');
  };
  t.equal(await fx.store.flushDue(T + 200, 100, fx.target), 2, 'both pushes made and handed over all the same');
  t.equal(probes, 1, 'one shard, one failed call');
  t.same((await fx.events()).map((e) => (JSON.parse(e) as Ev).data.userId).sort(), ['u1', 'u2']);
});

t.test('Redis Cluster layout: a full queue makes no push at all (the notifications stay pending)', { skip: skipReason }, async (t) => {
  redis = await redisPerTest(t);
  const fx = await partitionedFixture(t);
  await fx.store.track('u1', note('e1', 1), T, T);
  await fx.full(true);
  t.equal(await fx.store.flushDue(T + 200, 100, fx.target), 0);
  t.equal(await fx.store.pending(), 1, 'still pending');
});
