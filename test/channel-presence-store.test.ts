// The ChannelPresenceStore contract of src/seams/channel-presence/types.ts, run against every implementation.
import t, { type Test } from 'tap';
import pino from 'pino';
import { Redis } from 'ioredis';
import { RedisBackplane } from '../src/seams/backplane/redis/backplane.js';
import { MemoryChannelPresence } from '../src/seams/channel-presence/memory.js';
import type { ChannelPresenceStore } from '../src/seams/channel-presence/types.js';
import { skipReason, redisPerTest, until, type TestRedis } from './cluster/redis.js';

type Tap = Test;

interface Node {
  store: ChannelPresenceStore;
  /** Stops the node without leaving the cluster (a crash): its lease runs out. */
  crash?(): Promise<void>;
  /** Leaves the cluster (a graceful close). */
  leave?(): Promise<void>;
}

interface Impl {
  name: string;
  /** Stores of several nodes that share state (Redis), or independent single nodes (memory). */
  shared: boolean;
  node(t: Tap, nodeId: string): Promise<Node>;
  skip?: string | false;
}

let redis: TestRedis | undefined;
const impls: Impl[] = [
  { name: 'memory', shared: false, node: async () => ({ store: new MemoryChannelPresence() }) },
  {
    name: 'redis',
    shared: true,
    skip: skipReason,
    async node(t, id) {
      const bp = new RedisBackplane({ url: redis!.url, prefix: redis!.prefix, nodeId: id, leaseMs: 600, graceMs: 200, log: pino({ level: 'silent' }) });
      t.teardown(() => bp.close());
      t.ok(await bp.connect(5000), `${id} joins the cluster`);
      return {
        store: bp.stores.channelPresence,
        leave: () => bp.close(),
        // What a killed process leaves: no unregister, the lease runs out.
        async crash() {
          const timers = (bp as unknown as { timers: NodeJS.Timeout[] }).timers;
          for (const timer of timers) clearInterval(timer);
          bp.closing = true;
          bp.cmd.disconnect();
          bp.sub.disconnect();
        },
      };
    },
  },
];

const sorted = (xs: readonly string[]) => [...xs].sort();

for (const impl of impls) {
  t.test(impl.name, { skip: impl.skip ?? false }, async (t) => {
    if (impl.shared) redis = await redisPerTest(t);

    t.test('distinct users: two devices count once, each leaves on its own', async (t) => {
      const { store: p } = await impl.node(t, 'a');
      t.same(await p.read('room:1', 10), { count: 0, members: [] }, 'nobody yet');
      await p.add('room:1', 'alice', 'a-1');
      await p.add('room:1', 'alice', 'a-2');
      await p.add('room:1', 'bob', 'a-3');
      const r = await p.read('room:1', 10);
      t.equal(r.count, 2, 'alice with two connections counts once');
      t.same(sorted(r.members), ['alice', 'bob']);
      t.same((await p.read('room:1', 0)).members, [], 'max 0: the count only');
      await p.remove('room:1', 'alice', 'a-1');
      t.same(sorted((await p.read('room:1', 10)).members), ['alice', 'bob'], 'alice still has a device');
      await p.remove('room:1', 'alice', 'a-2');
      t.same(await p.read('room:1', 10), { count: 1, members: ['bob'] }, 'alice left with her last device');
      await p.remove('room:1', 'bob', 'a-3');
      t.same(await p.read('room:1', 10), { count: 0, members: [] });
    });

    t.test('idempotent per connection; channels apart', async (t) => {
      const { store: p } = await impl.node(t, 'a');
      await p.add('room:1', 'alice', 'a-1');
      await p.add('room:1', 'alice', 'a-1');
      await p.add('room:2', 'bob', 'a-2');
      await p.remove('room:1', 'alice', 'a-9');
      await p.remove('room:2', 'alice', 'a-1');
      t.same(await p.read('room:1', 10), { count: 1, members: ['alice'] }, 'added twice, counted once; unknown removals change nothing');
      await p.remove('room:1', 'alice', 'a-1');
      await p.remove('room:1', 'alice', 'a-1');
      t.same(await p.read('room:1', 10), { count: 0, members: [] }, 'removed twice: still zero');
      t.same(await p.read('room:2', 10), { count: 1, members: ['bob'] }, 'room:2 untouched');
    });

    t.test('members are bounded by max, the count is not', async (t) => {
      const { store: p } = await impl.node(t, 'a');
      for (let i = 0; i < 7; i++) await p.add('room:big', `u${i}`, `a-${i}`);
      const r = await p.read('room:big', 3);
      t.equal(r.count, 7);
      t.equal(r.members.length, 3, 'three members');
      t.equal(new Set(r.members).size, 3, 'each once');
      for (const m of r.members) t.match(m, /^u[0-6]$/);
    });

    if (!impl.shared) return;

    t.test('shared: a user on two nodes counts once; each node removes its own', async (t) => {
      const [{ store: a }, { store: b }] = [await impl.node(t, 'a'), await impl.node(t, 'b')];
      await a.add('room:1', 'alice', 'a-1');
      await b.add('room:1', 'alice', 'b-1');
      await b.add('room:1', 'bob', 'b-2');
      t.same(await a.read('room:1', 10).then((r) => ({ count: r.count, members: sorted(r.members) })), { count: 2, members: ['alice', 'bob'] });
      await a.remove('room:1', 'alice', 'a-1');
      t.same(sorted((await b.read('room:1', 10)).members), ['alice', 'bob'], 'alice still on b');
      await b.remove('room:1', 'alice', 'b-1');
      t.same(await a.read('room:1', 10), { count: 1, members: ['bob'] });
    });

    t.test('shared: one channel\'s keys share a hash tag (one slot)', async (t) => {
      const { store: a } = await impl.node(t, 'a');
      await a.add('room:7', 'alice', 'a-1');
      const r = new Redis(redis!.url);
      t.teardown(() => r.disconnect());
      const keys = await r.keys(`${redis!.prefix}cp:*`);
      t.ok(keys.length >= 2, `keys ${keys.join(' ')}`);
      for (const k of keys) t.ok(k.includes('{room:7}'), `${k} carries the {room:7} hash tag`);
    });

    t.test('shared: a node that dies is swept from every channel (lease and sweep of the membership)', async (t) => {
      const [a, b] = [await impl.node(t, 'a'), await impl.node(t, 'b')];
      await a.store.add('room:1', 'alice', 'a-1');
      await a.store.add('room:2', 'alice', 'a-1');
      await b.store.add('room:1', 'bob', 'b-1');
      t.equal((await b.store.read('room:1', 10)).count, 2);
      await a.crash!();
      // The sweep goes channel by channel (sweepNode): wait for the last one, then look at both.
      await until(async () => (await b.store.read('room:1', 10)).count === 1 && (await b.store.read('room:2', 10)).count === 0, 10000, 'the dead node swept from room:1 and room:2');
      t.same(await b.store.read('room:1', 10), { count: 1, members: ['bob'] }, 'bob, on the live node, stays');
      t.same(await b.store.read('room:2', 10), { count: 0, members: [] }, 'every channel of the dead node swept');
      const r = new Redis(redis!.url);
      t.teardown(() => r.disconnect());
      await until(async () => (await r.keys(`${redis!.prefix}cpn:a`)).length === 0, 5000, 'the dead node\'s index removed');
    });

    t.test('shared: a node that leaves (close) clears its share', async (t) => {
      const [a, b] = [await impl.node(t, 'a'), await impl.node(t, 'b')];
      await a.store.add('room:1', 'alice', 'a-1');
      await b.store.add('room:1', 'bob', 'b-1');
      t.equal((await b.store.read('room:1', 10)).count, 2);
      await a.leave!();
      t.same(await b.store.read('room:1', 10), { count: 1, members: ['bob'] }, 'gone at once, no lease to wait for');
    });

    t.test('shared: after Redis lost its data, each node writes its share again', { skip: redis?.stop ? false : 'REDIS_URL: not a redis-server of this suite' }, async (t) => {
      const [a, b] = [await impl.node(t, 'a'), await impl.node(t, 'b')];
      await a.store.add('room:1', 'alice', 'a-1');
      await b.store.add('room:1', 'bob', 'b-1');
      await redis!.stop!();
      await redis!.start!();
      await until(async () => (await b.store.read('room:1', 10).catch(() => ({ count: -1 }))).count === 2, 10000, 'both shares written again');
      t.same(sorted((await a.store.read('room:1', 10)).members), ['alice', 'bob']);
    });
  });
}
