// Cluster mode on a Redis Cluster (issue #18): 3 primaries + 3 replicas on loopback. The rest of the cluster
// suite runs on it too (npm run test:cluster-backends); here what only a Redis Cluster has: keys spread over the
// shards, each script on one slot, the failover of the primary that owns a busy topic (the other shards' topics
// going on meanwhile), and the migration of that topic's slot to another primary.
import t from 'tap';
import { Redis } from 'ioredis';
import { client } from '../client/util.js';
import { Client, sign } from '../helpers.js';
import { CLUSTER_PARTITIONS, RedisKeys, slotOf } from '../../src/seams/backplane/redis/keys.js';
import { RedisPushStore } from '../../src/seams/pushes/redis.js';
import { RedisWebhookQueue, streamKey } from '../../src/seams/webhooks/redis.js';
import { API_KEY, api, notifyUnderLoad, redisClient, skipReason, startChildNode, startNodes, until } from './redis.js';
import { WAIT_MS } from '../wait.js';
import { startRedisCluster } from './redis-cluster.js';

t.test('the 48 partitions are spread evenly over the slots: 16 per shard of a cluster made by redis-cli', async (t) => {
  const keys = new RedisKeys('storywire:', CLUSTER_PARTITIONS);
  t.equal(keys.parts.length, 48);
  const slots = keys.parts.map((p) => slotOf(p.key('x')));
  t.equal(new Set(slots).size, 48, 'one slot each');
  const thirds = [0, 0, 0];
  for (const s of slots) thirds[s <= 5460 ? 0 : s <= 10922 ? 1 : 2]!++;
  t.same(thirds, [16, 16, 16]);
  // Every key of a topic and of a user is in one partition: one slot.
  const bob = keys.forUser('bob');
  t.equal(bob, keys.forTopic('user:bob'), "a user's keys are with its notification topic");
  t.equal(new Set([bob.user('bob'), bob.conns('n1'), bob.leaving, bob.key('h:user:bob'), bob.key('r:bob'), bob.channel('user:bob')].map(slotOf)).size, 1);
  t.equal(keys.topicOf(keys.channel('stories')), 'stories');
  t.equal(slotOf('{user1000}.following'), slotOf('{user1000}.followers'), 'the hash tag rule (Redis spec example)');
  t.not(slotOf('foo{}{bar}'), slotOf('bar'), 'an empty first tag: the whole key is hashed');
  t.equal(slotOf('123456789'), 12739, 'CRC16/XMODEM check value 0x31C3 mod 16384');
});

t.test('two nodes on a Redis Cluster: notifications cross nodes, presence is shared, keys land on every shard', { skip: skipReason }, async (t) => {
  const rc = await startRedisCluster(t);
  const [a, b] = await startNodes(t, rc, 2, { presenceGraceMs: 200 });
  const users = Array.from({ length: 12 }, (_, i) => `reader${i}`);
  const sockets = await Promise.all(users.map((u) => b!.connect(u)));
  for (const s of sockets) await s.type('connected');
  for (const [i, u] of users.entries()) {
    const r = await api(a!, 'POST', '/v1/notifications', { userId: u, notification: { title: `hello ${u}`, message: 'via A' } });
    t.equal(r.status, 200);
    t.match((await sockets[i]!.next((f) => f.type === 'notification:received')).data, { title: `hello ${u}` });
  }
  t.same((await api(a!, 'GET', `/v1/presence?userIds=${[...users, 'nobody'].join(',')}`)).body.online.sort(), [...users].sort(), 'node A sees every reader on B');
  // The history keys of those users are on all three primaries.
  const holders = new Set<number>();
  for (const primary of await rc.primaries()) {
    const r = new Redis(primary.port, '127.0.0.1');
    t.teardown(() => r.disconnect());
    const [, found] = await r.scan('0', 'MATCH', `${rc.prefix}*h:user:reader*`, 'COUNT', 10000);
    if (found.length > 0) holders.add(primary.port);
  }
  t.equal(holders.size, 3, 'every shard holds some of the histories');
  t.same((await a!.backplane.nodes()).map((n) => n.alive), [true, true]);
});

t.test('one turn of notifications to users of every shard is one RECORD_MANY call per shard, each event stored on its own shard and delivered', { skip: skipReason }, async (t) => {
  const rc = await startRedisCluster(t);
  const [a, b] = await startNodes(t, rc, 2);
  const users = Array.from({ length: 60 }, (_, i) => `batch${i}`);
  const parts = new Set(users.map((u) => new RedisKeys(rc.prefix, CLUSTER_PARTITIONS).forUser(u).index));
  t.ok(parts.size > 30, `the 60 users are in ${parts.size} partitions`);
  const sockets = await Promise.all(users.map((u) => b!.connect(u)));
  for (const s of sockets) await s.type('connected');
  const cmd = (a!.backplane as unknown as { cmd: Record<string, (...args: unknown[]) => Promise<unknown>> }).cmd;
  const many = cmd['RECORD_MANY']!;
  let calls = 0;
  cmd['RECORD_MANY'] = (...args: unknown[]) => {
    calls++;
    return many.apply(cmd, args);
  };
  const r = await api(a!, 'POST', '/v1/notifications', { userIds: users, notification: { title: 'to all', message: 'one request' } });
  t.equal(r.status, 200, JSON.stringify(r.body).slice(0, 200));
  t.ok(calls >= 1 && calls <= 3, `one call per shard (${calls} calls for 60 events on 3 shards)`);
  for (const [i, s] of sockets.entries()) t.match((await s.next((f) => f.type === 'notification:received')).data, { title: 'to all' }, `${users[i]} got it`);
  // Each history is on the shard that serves its partition's slot.
  let stored = 0;
  for (const primary of await rc.primaries()) {
    const raw = new Redis(primary.port, '127.0.0.1');
    t.teardown(() => raw.disconnect());
    for (const u of users) {
      const key = new RedisKeys(rc.prefix, CLUSTER_PARTITIONS).forUser(u).key(`s:user:${u}`);
      if (await raw.exists(key).catch(() => 0)) stored++;
    }
  }
  t.equal(stored, 60, 'every event stored once, on its shard');
});

t.test('the server started with REDIS_CLUSTER_NODES joins the cluster, with a webhook too', { skip: skipReason }, async (t) => {
  const rc = await startRedisCluster(t);
  const [a] = await startNodes(t, rc, 1);
  const env = { REDIS_CLUSTER_NODES: rc.cluster.slice(0, 2).map((n) => `${n.host}:${n.port}`).join(','), REDIS_PREFIX: rc.prefix };
  const node = await startChildNode(t, { ...env, NODE_ID: 'from-env' });
  const carol = await Client.open(`ws://127.0.0.1:${node.port}/ws?token=${await sign('carol')}`);
  t.teardown(() => carol.close());
  await carol.type('connected');
  t.equal((await api(a!, 'POST', '/v1/notifications', { userId: 'carol', notification: { title: 'Bonjour', message: 'from the in-process node' } })).status, 200);
  t.match((await carol.next((f) => f.type === 'notification:received')).data, { title: 'Bonjour' });
  t.ok((await a!.backplane.nodes()).some((n) => n.nodeId === 'from-env'), 'listed among the nodes');
  await startChildNode(t, { ...env, NODE_ID: 'with-webhook', WEBHOOK_URL: 'http://127.0.0.1:9/hook', PUSH_WEBHOOK_URL: 'http://127.0.0.1:9/push', WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 1).toString('base64')}` });
  await until(async () => (await a!.backplane.nodes()).some((n) => n.nodeId === 'with-webhook'), 0, 'the node with webhooks listed among the nodes');
});

t.test('SIGKILL of the primary owning a busy topic: the replica is promoted, nothing answered 200 is missed, clients told recovered: false', { skip: skipReason }, async (t) => {
  const rc = await startRedisCluster(t);
  const [a, b] = await startNodes(t, rc, 2, { presenceGraceMs: 200 });
  const keys = new RedisKeys(rc.prefix, CLUSTER_PARTITIONS);
  const owner = await rc.primaryOf(keys.forTopic('user:bob').key('h:user:bob'));
  // Bob's app (the SDK) on B: it resumes by itself after any cut.
  const bob = client(t, { url: b!.url, token: await b!.token('bob'), reconnect: { minDelayMs: 20, maxDelayMs: 200 } });
  const received = new Map<string, number>();
  const resyncs: number[] = [];
  bob.onNotification((n) => received.set(n.title, (received.get(n.title) ?? 0) + 1));
  bob.on('resync', (info) => {
    if (info.topic === 'user:bob') resyncs.push(Date.now());
  });
  await bob.whenOpen();
  // Carol, whose keys are on the same shard, was away: her position is from before the kill.
  let carolId = '';
  for (let i = 0; !carolId && i < 1000; i++) if ((await rc.primaryOf(keys.forUser(`carol${i}`).key('x'))) === owner) carolId = `carol${i}`;
  const carol = client(t, { url: a!.url, token: await a!.token(carolId) });
  const carolGot: string[] = [];
  carol.onNotification((n) => carolGot.push(n.title));
  await carol.whenOpen();
  t.equal((await api(a!, 'POST', '/v1/notifications', { userId: carolId, notification: { title: 'c1', message: 'm' } })).status, 200);
  await until(() => carolGot.length === 1, 0, 'carol got c1');
  const carolPositions = carol.positions;
  carol.close();

  const load = notifyUnderLoad(a!, 'bob');
  const { acked, statuses } = load;
  await until(() => acked.length >= 20, 0, 'twenty acked before the kill');
  const ackedBeforeKill = acked.length;
  await rc.kill(owner);
  const killedAt = Date.now();
  load.mark();
  const promoted = await rc.waitPromoted(owner);
  t.not(promoted, owner, `a replica was promoted (${owner} -> ${promoted})`);
  await load.done;
  t.ok(load.ackedAfter >= 20, `publishes answered 200 again after the failover (${load.ackedAfter})`);
  t.same([...statuses.keys()].filter((s) => s !== 200 && s !== 503), [], `only 200 and 503 (${JSON.stringify([...statuses])})`);
  t.same(acked.slice(0, ackedBeforeKill).filter(({ title }) => !received.has(title)), [], 'every notification acknowledged before the kill received');
  // After the kill: each acknowledged one is received, or bob is told to resync after it was acknowledged.
  await until(() => acked.slice(ackedBeforeKill).every(({ title, at }) => received.has(title) || resyncs.some((r) => r >= at)), 0, 'every one acknowledged after the kill received or covered by a resync');
  t.pass(`after the kill: ${acked.length - ackedBeforeKill} acknowledged, ${acked.slice(ackedBeforeKill).filter(({ title }) => received.has(title)).length} received live, ${resyncs.length} resync(s)`);
  t.same([...received.values()].filter((c) => c > 1), [], 'none twice');
  t.same((await api(b!, 'GET', '/v1/presence?userIds=bob')).body.online, ['bob'], 'presence after the failover');
  // Carol comes back from her position: the failover may have lost what she had not seen, so she is told.
  const back = client(t, { url: a!.url, token: await a!.token(carolId), resumeFrom: carolPositions });
  const resync = new Promise<unknown>((resolve) => back.on('resync', resolve));
  await back.whenOpen();
  t.match(await resync, { topic: `user:${carolId}`, reason: 'epoch', from: carolPositions[`user:${carolId}`] }, 'carol, on the failed shard, resumes recovered: false');
  process.stdout.write(`# cluster failover: ${JSON.stringify([...statuses])}, promoted in ${Date.now() - killedAt} ms or less\n`);
});

t.test("a busy topic's slot migrated to another primary under load: nothing answered 200 is missed, none twice, no resync", { skip: skipReason }, async (t) => {
  const rc = await startRedisCluster(t);
  const [a, b] = await startNodes(t, rc, 2, { presenceGraceMs: 200 });
  const keys = new RedisKeys(rc.prefix, CLUSTER_PARTITIONS);
  const bobKey = keys.forTopic('user:bob').key('h:user:bob');
  const owner = await rc.primaryOf(bobKey);
  const target = (await rc.primaries()).find((m) => m.port !== owner)!.port;
  // Bob's app (the SDK) on B, subscribed on the shard that owns his partition; the publishes come from A.
  const bob = client(t, { url: b!.url, token: await b!.token('bob'), reconnect: { minDelayMs: 20, maxDelayMs: 200 } });
  const received = new Map<string, number>();
  const resyncs: unknown[] = [];
  bob.onNotification((n) => received.set(n.title, (received.get(n.title) ?? 0) + 1));
  bob.on('resync', (info) => resyncs.push(info));
  await bob.whenOpen();

  const load = notifyUnderLoad(a!, 'bob');
  const { acked, statuses } = load;
  await until(() => acked.length >= 20, 0, 'twenty acked before the migration');
  await rc.migrateSlot(slotOf(bobKey), target);
  load.mark();
  t.equal(await rc.primaryOf(bobKey), target, `the slot moved (${owner} -> ${target})`);
  await load.done;
  t.ok(load.ackedAfter >= 20, `publishes answered 200 after the migration (${load.ackedAfter})`);
  t.same([...statuses.keys()].filter((s) => s !== 200 && s !== 503), [], `only 200 and 503 (${JSON.stringify([...statuses])})`);
  // The keys moved with the slot: the history goes on, so every acknowledged one arrives, in its epoch.
  await until(() => acked.every(({ title }) => received.has(title)), 0, 'every acknowledged notification received');
  t.same([...received.values()].filter((c) => c > 1), [], 'none twice');
  t.same(resyncs, [], 'no resync: a migration loses nothing');
  t.same((await api(a!, 'GET', '/v1/presence?userIds=bob')).body.online, ['bob'], 'presence after the migration');
  process.stdout.write(`# cluster slot migration: ${JSON.stringify([...statuses])}\n`);
});

/** The node's /metrics (Prometheus text; the API key on the WebSocket port). */
async function metricsText(node: { port: number }): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${node.port}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } });
  return res.text();
}

t.test("one shard down: the other shards' topics go on (200, delivered), its own answer 503 until its replica takes over", { skip: skipReason }, async (t) => {
  // No automatic failover (the test promotes the replica itself), and the cluster serves the slots it still has.
  const rc = await startRedisCluster(t, { args: ['--cluster-replica-no-failover', 'yes', '--cluster-require-full-coverage', 'no'] });
  // A lease far longer than the test: the nodes stay up while one shard is not heard.
  const [a, b] = await startNodes(t, rc, 2, { nodeLeaseMs: 120_000 });
  const keys = new RedisKeys(rc.prefix, CLUSTER_PARTITIONS);
  const primaryOfUser = (u: string) => rc.primaryOf(keys.forUser(u).key('x'));
  const owner = await primaryOfUser('bob');
  let dave = '';
  for (let i = 0; !dave && i < 1000; i++) if ((await primaryOfUser(`dave${i}`)) !== owner) dave = `dave${i}`;
  const replica = (await rc.primaries()).find((m) => m.port === owner)!.replicas[0]!;
  const got = new Map<string, string[]>();
  for (const u of ['bob', dave]) {
    const c = client(t, { url: b!.url, token: await b!.token(u), reconnect: { minDelayMs: 20, maxDelayMs: 200 } });
    got.set(u, []);
    c.onNotification((n) => got.get(u)!.push(n.title));
    await c.whenOpen();
  }
  const notify = (u: string, title: string) => api(a!, 'POST', '/v1/notifications', { userId: u, notification: { title, message: 'm' } });

  await rc.kill(owner);
  // Until the first one answered 200 (the cluster's view settles after the kill), then one more, both delivered.
  let n = 0;
  const sent: string[] = [];
  for (const end = Date.now() + WAIT_MS; sent.length < 2 && Date.now() < end; ) {
    const title = `d${++n}`;
    if ((await notify(dave, title)).status === 200) sent.push(title);
    else await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(sent.length, 2, `notifications to ${dave} (another shard) answered 200 with bob's shard down`);
  await until(() => sent.every((s) => got.get(dave)!.includes(s)), 0, `${dave} got them`);
  t.ok(a!.backplane.up && b!.backplane.up, 'both nodes up: one shard down is not the cluster down');
  t.equal((await notify('bob', 'b-down')).status, 503, "bob's shard: 503, never 200 for what cannot be stored");
  // The partial outage is visible to operators: /readyz stays 200 (every node is deaf to the same shard) but says so.
  await until(() => b!.backplane.partial, 0, "B knows one shard's topics are not heard");
  t.same((await api(b!, 'GET', '/readyz')).body, { status: 'degraded', reason: "a Redis Cluster shard's topics are not heard by this node" }, '/readyz: degraded, with the reason');
  t.match(await metricsText(b!), /^storywire_backplane_partial 1$/m, 'storywire_backplane_partial 1');
  t.match(await metricsText(b!), /^storywire_backplane_up 1$/m, 'storywire_backplane_up still 1');

  const takeover = new Redis({ host: '127.0.0.1', port: replica, lazyConnect: true, maxRetriesPerRequest: 0 });
  t.teardown(() => takeover.disconnect());
  await takeover.connect();
  t.equal(await takeover.call('CLUSTER', 'FAILOVER', 'TAKEOVER'), 'OK');
  t.equal(await rc.waitPromoted(owner), replica, 'the replica took over');
  let back = '';
  for (let i = 1, end = Date.now() + WAIT_MS; !back && Date.now() < end; i++) {
    if ((await notify('bob', `b${i}`)).status === 200) back = `b${i}`;
    else await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(back, "bob's notifications answered 200 again once the replica took over");
  await until(() => got.get('bob')!.includes(back), 0, 'bob got it');
  t.notOk(got.get('bob')!.includes('b-down'), 'the one answered 503 was not delivered');
  await until(() => !b!.backplane.partial, 0, 'B hears every shard again');
  t.same((await api(b!, 'GET', '/readyz')).body, { status: 'ready' }, '/readyz: ready again');
  t.match(await metricsText(b!), /^storywire_backplane_partial 0$/m, 'storywire_backplane_partial 0');
});

t.test('a shard not heard for a whole lease: the node reports itself down, and up again once it is heard', { skip: skipReason }, async (t) => {
  const rc = await startRedisCluster(t, { args: ['--cluster-replica-no-failover', 'yes', '--cluster-require-full-coverage', 'no'] });
  const [a] = await startNodes(t, rc, 1, { nodeLeaseMs: 1500 });
  const keys = new RedisKeys(rc.prefix, CLUSTER_PARTITIONS);
  const owner = await rc.primaryOf(keys.forUser('bob').key('x'));
  const replica = (await rc.primaries()).find((m) => m.port === owner)!.replicas[0]!;
  // Bob on A: A listens on the shard that fails (a shard it listens to nothing on is never missed).
  const bob = client(t, { url: a!.url, token: await a!.token('bob'), reconnect: { minDelayMs: 20, maxDelayMs: 200 } });
  await bob.whenOpen();
  const states: boolean[] = [];
  a!.backplane.onStateChange((up) => states.push(up));
  await rc.kill(owner);
  await until(() => !a!.backplane.up, 0, 'the node down once the shard was not heard for NODE_LEASE_MS');
  t.notOk(a!.backplane.partial, 'down, not partial: no shard counts as heard now');
  t.same((await api(a!, 'GET', '/readyz')).body, { status: 'degraded' }, '/readyz: degraded');
  const takeover = new Redis({ host: '127.0.0.1', port: replica, lazyConnect: true, maxRetriesPerRequest: 0 });
  t.teardown(() => takeover.disconnect());
  await takeover.connect();
  t.equal(await takeover.call('CLUSTER', 'FAILOVER', 'TAKEOVER'), 'OK');
  await rc.waitPromoted(owner);
  await until(() => a!.backplane.up, 0, 'up again once the replica took over');
  t.same(states.slice(0, 2), [false, true], 'down, then up');
});

t.test("a push held in its partition's outbox while that slot moves: taken again after the move, once, same webhook-id", { skip: skipReason }, async (t) => {
  // The push store as a node runs it on a Redis Cluster (src/seams/backplane/redis/backplane.ts), time given to
  // each call. The node that made the push could not queue it (as if it died right after the script): it stays
  // in the user's partition's outbox (po, pq), whose slot is then moved to another primary, keys and all.
  const rc = await startRedisCluster(t);
  const keys = new RedisKeys(rc.prefix, CLUSTER_PARTITIONS);
  const key = (name: string) => `${rc.prefix}${name}`;
  const connect = () => {
    const c = redisClient(rc);
    t.teardown(() => c.disconnect());
    return c as unknown as Redis;
  };
  const layout = { prefixes: keys.parts.map((p) => p.prefix), forUser: (u: string) => keys.forUser(u).prefix, outbox: true };
  const claimMs = 5000;
  const options = { coalesceMs: 100, maxPerUser: 14, receiptMemoryMs: 1000, ttlMs: 60_000, maxDepth: 100, claimMs };
  const r = connect();
  const T = Date.now();
  const maker = new RedisPushStore(connect(), key, options, layout);
  await maker.track('ozzy', { epoch: 'e1', offset: 1, id: 'n-1', json: JSON.stringify({ id: 'n-1', title: 'held' }) }, T, T);
  const unreachable = {
    depth: async () => 0,
    enqueueJson: async (): Promise<boolean> => {
      throw new Error('injected: the stream is unreachable');
    },
  };
  const target = (queue: Pick<RedisWebhookQueue, 'depth' | 'enqueueJson'>) => ({
    destinations: ['push'],
    enqueue: () => {
      throw new Error('a cluster store hands its events to the queues');
    },
    queues: [queue],
  });
  t.equal(await maker.flushDue(T + 200, 100, target(unreachable)), 0, 'made into the outbox, not handed over');
  const po = keys.forUser('ozzy').key('po');
  const made = await r.hkeys(po);
  t.equal(made.length, 1, 'in the outbox');

  const owner = await rc.primaryOf(po);
  const to = (await rc.primaries()).find((m) => m.port !== owner)!.port;
  await rc.migrateSlot(slotOf(po), to);
  t.equal(await rc.primaryOf(po), to, `the outbox's slot moved (${owner} -> ${to})`);
  t.same(await r.hkeys(po), made, 'the outbox moved with its slot');
  t.equal(await r.zcard(keys.forUser('ozzy').key('pq')), 1, 'its hold too');

  // Another node's store and queue, after the hold ran out: the push, from the outbox where it is now.
  const queue = new RedisWebhookQueue(connect(), key, 'node-b', 'push', { maxDepth: 100, claimIdleMs: 60_000 }, undefined, true);
  t.teardown(() => queue.close());
  const other = new RedisPushStore(connect(), key, options, layout);
  t.equal(await other.flushDue(T + 200 + claimMs - 1, 100, target(queue)), 0, 'still held by its node before the hold runs out');
  t.equal(await other.flushDue(T + 200 + claimMs, 100, target(queue)), 1, 'taken again from the moved outbox and handed over');
  const stream = key(streamKey('push', true));
  const queued = (await r.xrange(stream, '-', '+')).filter(([, f]) => f[0] === 'e').map(([, f]) => JSON.parse(f[1]!) as { id: string; data: { userId: string; notifications: { notification: { id: string } }[] } });
  t.same(queued.map((e) => [e.id, e.data.userId]), [[made[0], 'ozzy']], 'queued once, under the id it was made with');
  t.same(queued[0]!.data.notifications.map((n) => n.notification.id), ['n-1']);
  t.same(await r.hkeys(po), [], 'the outbox empty once it was queued');
  t.equal(await other.flushDue(T + 200 + 3 * claimMs, 100, target(queue)), 0, 'and not taken again');
});

t.test('a push flush on a Redis Cluster counts what is due with one call per shard, not a pipeline per partition', { skip: skipReason }, async (t) => {
  const rc = await startRedisCluster(t);
  const keys = new RedisKeys(rc.prefix, CLUSTER_PARTITIONS);
  const key = (name: string) => `${rc.prefix}${name}`;
  const cmd = redisClient(rc) as unknown as Redis;
  t.teardown(() => cmd.disconnect());
  const layout = { prefixes: keys.parts.map((p) => p.prefix), forUser: (u: string) => keys.forUser(u).prefix, outbox: true };
  const store = new RedisPushStore(cmd, key, { coalesceMs: 100, maxPerUser: 14, receiptMemoryMs: 1000, ttlMs: 60_000, maxDepth: 100 }, layout);
  const queue = new RedisWebhookQueue(cmd, key, 'node-a', 'push', { maxDepth: 100, claimIdleMs: 60_000 }, undefined, true);
  t.teardown(() => queue.close());
  const target = { destinations: ['push'], enqueue: () => false, queues: [queue] };
  // Once to load the slot map and the scripts on every shard; then counted.
  t.equal(await store.flushDue(Date.now(), 100, target), 0);
  const primaries = await rc.primaries();
  const direct = primaries.map((m) => {
    const c = new Redis({ host: '127.0.0.1', port: m.port, lazyConnect: true, maxRetriesPerRequest: 0 });
    t.teardown(() => c.disconnect());
    return c;
  });
  for (const c of direct) {
    await c.connect();
    await c.config('RESETSTAT');
  }
  t.equal(await store.flushDue(Date.now(), 100, target), 0, 'nothing due');
  const calls = async (c: Redis, cmdName: string) => Number(new RegExp(`^cmdstat_${cmdName}:calls=(\\d+)`, 'm').exec(await c.info('commandstats'))?.[1] ?? 0);
  const scripts = await Promise.all(direct.map(async (c) => (await calls(c, 'evalsha')) + (await calls(c, 'eval'))));
  t.same(scripts, primaries.map(() => 1), 'one script call per shard');
  const zcounts = (await Promise.all(direct.map((c) => calls(c, 'zcount')))).reduce((a, b) => a + b, 0);
  t.equal(zcounts, 2 * CLUSTER_PARTITIONS, 'every partition counted (its due users and its outbox)');
});
