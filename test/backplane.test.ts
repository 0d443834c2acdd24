// The Backplane contract of src/seams/backplane/types.ts, run against every implementation (the presence
// contract is test/presence.test.ts).
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import pino from 'pino';
import { MemoryBackplane } from '../src/seams/backplane/memory.js';
import { RedisBackplane } from '../src/seams/backplane/redis/backplane.js';
import type { Backplane } from '../src/seams/backplane/types.js';
import { SLACK_MS, skipReason, redisPerTest, until, type TestRedis } from './cluster/redis.js';

interface Impl {
  name: string;
  /** Nodes that share state (Redis), or independent single nodes (memory). */
  shared: boolean;
  node(t: Tap, id: string): Promise<Backplane>;
  skip?: string | false;
}
type Tap = Test;

let redis: TestRedis | undefined;
const impls: Impl[] = [
  { name: 'memory', shared: false, node: async (_t, id) => new MemoryBackplane(id) },
  {
    name: 'redis',
    shared: true,
    skip: skipReason,
    async node(t, id) {
      const bp = new RedisBackplane({ url: redis!.url, prefix: redis!.prefix, nodeId: id, leaseMs: 1500, graceMs: 200, log: pino({ level: 'silent' }) });
      t.teardown(() => bp.close());
      t.ok(await bp.connect(5000), `${id} joins the cluster`);
      return bp;
    },
  },
];

/** The presence store a cluster backplane brings (Redis). */
const presenceOf = (bp: Backplane) => {
  if (bp.single) throw new Error(`${bp.kind} brings no presence store`);
  return bp.stores.presence;
};

const collect = (bp: Backplane) => {
  const got: [string, string][] = [];
  bp.onFrame((topic, frame) => got.push([topic, frame]));
  return got;
};

for (const impl of impls) {
  t.test(impl.name, { skip: impl.skip ?? false }, async (t) => {
    if (impl.shared) redis = await redisPerTest(t);

    t.test('publish with no other node resolves; own frames never come back', async (t) => {
      const a = await impl.node(t, 'a');
      const got = collect(a);
      a.interest('stories', true);
      await a.whenListening(['stories']);
      await a.publish('stories', '{"x":1}');
      await a.publish('nobody', '{"x":2}');
      await new Promise((r) => setTimeout(r, 100));
      t.same(got, []);
      t.equal(a.up, true);
    });

    t.test('a node alone: whenListening settles, a user with no connection elsewhere is disconnected on no node', async (t) => {
      const a = await impl.node(t, 'a');
      a.interest('story:2', true);
      await a.whenListening(['story:2']);
      t.equal(a.whenListening(['story:2']), undefined, 'nothing to wait for once listening');
      t.equal(await a.disconnectUser('nobody', 4403, 'banned'), 0);
      a.interest('story:2', false);
    });

    t.test('the kind is declared: a cluster backplane brings the stores its nodes share', async (t) => {
      const a = await impl.node(t, 'a');
      t.equal(a.single, !impl.shared);
      if (!a.single) {
        t.equal(a.stores.history.appends, 'backplane', 'its history is appended to by the backplane only');
        t.type(a.stores.presence.count, 'function');
        t.type(a.stores.readState.get, 'function');
      }
    });

    // What only a cluster backplane has: numbered frames it records, leases it sweeps.
    const clusterOnly = impl.shared ? false : 'a single-node backplane records no frame and holds no lease';

    t.test('frames reach each interested node once, only while interested', async (t) => {
      // Single nodes are deployments of their own: nothing crosses from one to another.
      const [a, b, c] = [await impl.node(t, 'a'), await impl.node(t, 'b'), await impl.node(t, 'c')];
      const [ga, gb, gc] = [collect(a), collect(b), collect(c)];
      b.interest('story:1', true);
      c.interest('story:1', true);
      await b.whenListening(['story:1']);
      await c.whenListening(['story:1']);
      await a.publish('story:1', 'f1');
      await b.publish('story:1', 'f2');
      if (impl.shared) await until(() => gb.length === 1 && gc.length === 2, 2000, 'frames');
      else await new Promise((r) => setTimeout(r, 100));
      t.same(gb, impl.shared ? [['story:1', 'f1']] : []);
      t.same(gc, impl.shared ? [['story:1', 'f1'], ['story:1', 'f2']] : []);
      t.same(ga, []);
      c.interest('story:1', false);
      b.interest('story:1', false);
      await new Promise((r) => setTimeout(r, 100));
      await a.publish('story:1', 'f3');
      await new Promise((r) => setTimeout(r, 100));
      t.equal(gb.length + gc.length, impl.shared ? 3 : 0, 'nothing after the interest ends');
    });

    t.test('a recorded frame comes back to every listening node, the publisher included, in offset order', { skip: clusterOnly }, async (t) => {
      const [a, b] = [await impl.node(t, 'a'), await impl.node(t, 'b')];
      const [ga, gb] = [collect(a), collect(b)];
      for (const n of [a, b]) n.interest('user:r', true);
      await a.whenListening(['user:r']);
      await b.whenListening(['user:r']);
      if (a.single) return;
      const head = '{"type":"notification:received","topic":"user:r"';
      const first = await a.publishRecorded('user:r', head, ',"data":{"n":1}}');
      const second = await a.publishRecorded('user:r', head, ',"data":{"n":2}}');
      t.match([first, second], [{ offset: 1 }, { offset: 2, epoch: first!.epoch }]);
      await until(() => ga.length === 2 && gb.length === 2, 2000, 'the frames on both nodes');
      t.same(ga.map(([, f]) => f), [first!.frame, second!.frame], 'the publisher gets its numbered frames back');
      t.same(gb, ga, 'the other node the same, in the same order');
    });

    t.test('disconnectUser reaches the nodes holding the user, and counts', async (t) => {
      // A single node has no other node to ask: its own connections are the caller's to close.
      const [a, b, c] = [await impl.node(t, 'a'), await impl.node(t, 'b'), await impl.node(t, 'c')];
      b.onDisconnect((userId, code, reason) => (userId === 'u1' && code === 4403 && reason === 'banned' ? 2 : 0));
      c.onDisconnect(() => t.fail('c holds no connection of u1') as unknown as number);
      if (impl.shared) {
        await presenceOf(b).add('u1', 'b-1');
        await presenceOf(b).add('u1', 'b-2');
      }
      t.equal(await a.disconnectUser('u1', 4403, 'banned'), impl.shared ? 2 : 0);
      t.equal(await a.disconnectUser('nobody', 4403, 'banned'), 0);
    });

    t.test('unsubscribeUser reaches the nodes holding the user, and counts', async (t) => {
      const [a, b, c] = [await impl.node(t, 'a'), await impl.node(t, 'b'), await impl.node(t, 'c')];
      b.onUnsubscribe((userId, topic, reason) => (userId === 'u1' && topic === 'story:42' && reason === 'unfollowed' ? 2 : 0));
      b.onDisconnect(() => t.fail('an unsubscribe is not a disconnect') as unknown as number);
      c.onUnsubscribe(() => t.fail('c holds no connection of u1') as unknown as number);
      if (impl.shared) {
        await presenceOf(b).add('u1', 'b-1');
        await presenceOf(b).add('u1', 'b-2');
      }
      t.equal(await a.unsubscribeUser('u1', 'story:42', 'unfollowed'), impl.shared ? 2 : 0);
      t.equal(await a.unsubscribeUser('nobody', 'story:42', 'unfollowed'), 0);
    });

    t.test('a dead node is swept: its users reported offline once, by one node', { skip: clusterOnly }, async (t) => {
      // The bound below holds for nodes that judge leases: a node judges none until Redis has been up for
      // the recovery time (2.5 s; a lease that expired while Redis was away proves nothing).
      const info = new Redis(redis!.url);
      t.teardown(() => info.disconnect());
      await until(async () => Number(/uptime_in_seconds:(\d+)/.exec(await info.info('server'))?.[1] ?? 0) >= 3, 5000, 'Redis to be up 3 s');
      const [a, b] = [await impl.node(t, 'a'), await impl.node(t, 'b')];
      const dead = new RedisBackplane({ url: redis!.url, prefix: redis!.prefix, nodeId: 'dead', leaseMs: 1500, graceMs: 200, log: pino({ level: 'silent' }) });
      await dead.connect(5000);
      const offline: string[] = [];
      presenceOf(a).onChange((type, u) => offline.push(`a:${type}:${u}`));
      presenceOf(b).onChange((type, u) => offline.push(`b:${type}:${u}`));
      await dead.stores.presence.add('u1', 'dead-1');
      await dead.stores.presence.add('u2', 'dead-2');
      await presenceOf(a).add('u2', 'a-1');
      dead.interest('story:9', true);
      await dead.whenListening(['story:9']);
      await a.publish('story:9', 'x');
      // What kill -9 leaves behind: no timers, no connections, nothing unregistered.
      (dead as any).closing = true;
      for (const timer of (dead as any).timers) clearInterval(timer);
      (dead as any).cmd.disconnect();
      (dead as any).sub.disconnect();
      const t0 = Date.now();
      // (once Redis has seen the connection close)
      await until(() => a.publish('story:9', 'x').then(() => false, (err) => err.code === 'UNAVAILABLE'), 1000, 'publish to fail');
      t.pass('an interested node with a live lease that does not listen: publish fails');
      await until(() => offline.length > 0, 5000, 'the sweep');
      await new Promise((r) => setTimeout(r, 400));
      t.equal(offline.length, 1, 'once');
      t.match(offline[0], /^[ab]:user:offline:u1$/, 'u1 offline, u2 still has a connection on a');
      t.ok(Date.now() - t0 < 1500 + 300 + SLACK_MS, `within lease + sweep period (${Date.now() - t0} ms)`);
      t.equal(await presenceOf(a).count('u2'), 1);
      await a.publish('story:9', 'y');
      t.pass('once its lease is gone, publishing to a topic the dead node wanted works again');
    });
  });
}
