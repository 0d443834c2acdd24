// The PresenceStore contract of src/seams/presence/types.ts, run against every implementation.
import t, { type Test } from 'tap';
import pino from 'pino';
import { RedisBackplane } from '../src/seams/backplane/redis/backplane.js';
import { MemoryPresence } from '../src/seams/presence/memory.js';
import type { PresenceStore } from '../src/seams/presence/types.js';
import { skipReason, redisPerTest, type TestRedis } from './cluster/redis.js';
import { until } from './wait.js';

type Tap = Test;

interface Impl {
  name: string;
  /** Stores of several nodes that share state (Redis), or independent single nodes (memory). */
  shared: boolean;
  store(t: Tap, nodeId: string): Promise<PresenceStore>;
  /** A shared store's node killed (no unregister: its lease runs out), with a short lease. */
  doomed?(t: Tap, nodeId: string): Promise<{ store: PresenceStore; crash(): void }>;
  skip?: string | false;
}

async function redisNode(t: Tap, id: string, leaseMs: number): Promise<RedisBackplane> {
  const bp = new RedisBackplane({ url: redis!.url, prefix: redis!.prefix, nodeId: id, leaseMs, graceMs: 200, log: pino({ level: 'silent' }) });
  t.teardown(() => bp.close());
  t.ok(await bp.connect(5000), `${id} joins the cluster`);
  return bp;
}

let redis: TestRedis | undefined;
const impls: Impl[] = [
  { name: 'memory', shared: false, store: async () => new MemoryPresence() },
  {
    name: 'redis',
    shared: true,
    skip: skipReason,
    async store(t, id) {
      return (await redisNode(t, id, 1500)).stores.presence;
    },
    async doomed(t, id) {
      const bp = await redisNode(t, id, 600);
      return {
        store: bp.stores.presence,
        // What a killed process leaves: no unregister, the lease runs out.
        crash() {
          for (const timer of (bp as unknown as { timers: NodeJS.Timeout[] }).timers) clearInterval(timer);
          bp.closing = true;
          bp.cmd.disconnect();
          bp.sub.disconnect();
        },
      };
    },
  },
];

for (const impl of impls) {
  t.test(impl.name, { skip: impl.skip ?? false }, async (t) => {
    if (impl.shared) redis = await redisPerTest(t);

    t.test('first and last connection, leave and settle', async (t) => {
      const p = await impl.store(t, 'a');
      t.equal(await p.add('u1', 'a-1'), true, 'first connection');
      t.equal(await p.add('u1', 'a-2'), false, 'second connection');
      t.equal(await p.count('u1'), 2);
      t.equal(await p.remove('u1', 'a-1'), false, 'not the last');
      t.equal(await p.remove('u1', 'a-1'), false, 'removing twice changes nothing');
      t.equal(await p.remove('u1', 'a-2'), true, 'the last');
      t.equal(await p.count('u1'), 0);
      t.same(await p.online(['u1', 'u2']), ['u1'], 'leaving users are still online');
      t.equal(await p.settle('u1', 'a-1'), false, 'only the leave of the last connection settles');
      t.equal(await p.settle('u1', 'a-2'), true, 'settled once');
      t.equal(await p.settle('u1', 'a-2'), false, 'and only once');
      t.same(await p.online(['u1']), []);
    });

    t.test('three devices come and go in any order', async (t) => {
      const p = await impl.store(t, 'a');
      t.equal(await p.add('u1', 'a-1'), true);
      t.equal(await p.add('u1', 'a-2'), false);
      t.equal(await p.add('u1', 'a-3'), false);
      t.equal(await p.count('u1'), 3);
      t.equal(await p.remove('u1', 'a-2'), false);
      t.equal(await p.remove('u1', 'a-9'), false, 'an unknown connection changes nothing');
      t.equal(await p.count('u1'), 2);
      t.equal(await p.remove('u1', 'a-3'), false);
      t.equal(await p.count('u1'), 1);
      t.equal(await p.remove('u1', 'a-3'), false, 'removing twice changes nothing');
      t.equal(await p.add('u1', 'a-4'), false, 'a second device again');
      t.equal(await p.remove('u1', 'a-1'), false);
      t.equal(await p.remove('u1', 'a-4'), true, 'the last');
      t.equal(await p.count('u1'), 0);
    });

    t.test('back within the grace period is neither online nor offline', async (t) => {
      const p = await impl.store(t, 'a');
      t.equal(await p.add('u1', 'a-1'), true);
      t.equal(await p.remove('u1', 'a-1'), true);
      t.equal(await p.add('u1', 'a-2'), false, 'no second online');
      t.equal(await p.settle('u1', 'a-1'), false, 'the old leave settles nothing');
      t.equal(await p.remove('u1', 'a-2'), true);
      t.equal(await p.settle('u1', 'a-2'), true);
    });

    t.test('users are counted apart; online() keeps only the users asked about', async (t) => {
      const p = await impl.store(t, 'a');
      t.equal(await p.add('u1', 'a-1'), true);
      t.equal(await p.add('u2', 'a-2'), true, 'another user is a first connection too');
      t.equal(await p.count('u2'), 1);
      t.same((await p.online(['u2', 'u3', 'u1'])).sort(), ['u1', 'u2']);
      t.same(await p.online([]), []);
      t.equal(await p.remove('u2', 'a-2'), true);
      t.equal(await p.count('u1'), 1, 'u1 untouched');
    });

    if (!impl.shared) return;

    t.test('shared: devices on two nodes', async (t) => {
      const [a, b] = [await impl.store(t, 'a'), await impl.store(t, 'b')];
      t.equal(await a.add('u1', 'a-1'), true);
      t.equal(await b.add('u1', 'b-1'), false, 'first anywhere only');
      t.equal(await b.count('u1'), 2);
      t.equal(await a.remove('u1', 'a-1'), false);
      t.equal(await b.remove('u1', 'b-1'), true, 'last anywhere');
      t.equal(await a.add('u1', 'a-2'), false, 'back on another node within the grace');
      t.equal(await b.settle('u1', 'b-1'), false);
      t.same(await b.online(['u1', 'u9']), ['u1']);
    });

    // One process has no other node to lose: memory has no such case.
    if (impl.doomed) t.test('shared: a crashed node\'s connections are reported lost once, by a survivor, with its transitions', async (t) => {
      const survivors = [await impl.store(t, 's1'), await impl.store(t, 's2')];
      const lost: [string, { userId: string; connectionId: string }[]][] = [];
      const offline: string[] = [];
      for (const s of survivors) {
        s.onConnectionsLost((node, conns) => lost.push([node, [...conns]]));
        s.onChange((type, userId) => type === 'user:offline' && offline.push(userId));
      }
      const d = await impl.doomed!(t, 'd');
      await d.store.add('u1', 'd-1');
      await d.store.add('u1', 'd-2');
      await d.store.add('u2', 'd-3');
      await survivors[0]!.add('u2', 's-1');
      d.crash();
      await until(() => offline.includes('u1'), 'u1 offline after the lease');
      t.same(offline, ['u1'], 'u2 still has a connection on a survivor');
      t.equal(lost.length, 1, 'one report, by the survivor that swept');
      t.equal(lost[0]![0], 'd');
      t.same(lost[0]![1].map((c) => `${c.userId}/${c.connectionId}`).sort(), ['u1/d-1', 'u1/d-2', 'u2/d-3']);
      t.equal(await survivors[1]!.count('u2'), 1);
    });
  });
}
