// The Redis Cluster test support itself (test/cluster/redis-cluster.ts): 3 primaries owning the 16384 slots, a
// replica each, a key written through an ioredis Cluster readable after its primary was SIGKILLed and its replica
// promoted, the killed node back as a replica, and stop/start bringing the whole cluster back without its data.
import { type Cluster, Redis } from 'ioredis';
import t from 'tap';
import { skipUnlessRequired } from '../ci-require.js';
import { until } from '../wait.js';
import { clusterMissing, SLOTS, startRedisCluster } from './redis-cluster.js';
import { redisClient, redisEnv, startSentinel } from './redis.js';

const skip = skipUnlessRequired('redis', clusterMissing ? `\n\n  !!! SKIPPED: ${clusterMissing} !!!\n` : false);
if (skip) process.stderr.write(skip);

t.test('a 3 + 3 Redis Cluster: slots, a failover, a restart, stop and start', { skip }, async (t) => {
  const began = Date.now();
  const c = await startRedisCluster(t);
  t.comment(`the cluster was ready in ${Date.now() - began} ms`);
  t.equal(c.cluster.length, 6, '6 nodes');
  t.same(redisEnv(c), { REDIS_CLUSTER_NODES: c.cluster.map((n) => `${n.host}:${n.port}`).join(',') });
  t.throws(() => c.url, /no single URL/, 'no url to read by mistake');

  const primaries = await c.primaries();
  t.equal(primaries.length, 3, '3 primaries');
  const owned = primaries.flatMap((m) => m.slots).sort((a, b) => a[0] - b[0]);
  let next = 0;
  for (const [from, to] of owned) {
    t.equal(from, next, `slots from ${from} follow on`);
    next = to + 1;
  }
  t.equal(next, SLOTS, 'every one of the 16384 slots owned, once');
  for (const m of primaries) t.equal(m.replicas.length, 1, `primary ${m.port} has one replica`);
  const all = new Set([...primaries.map((m) => m.port), ...primaries.flatMap((m) => m.replicas)]);
  t.equal(all.size, 6, 'the 6 nodes are the 3 primaries and their 3 replicas');

  const client = redisClient(c, { maxRetriesPerRequest: 20 }) as Cluster;
  t.teardown(() => client.disconnect());
  const key = `${c.prefix}k`;
  await client.set(key, 'v');
  const owner = await c.primaryOf(key);
  t.ok(primaries.some((m) => m.port === owner), `the key's slot is owned by primary ${owner}`);
  const direct = new Redis(owner, { lazyConnect: true });
  try {
    await direct.connect();
    t.equal(await direct.get(key), 'v', 'and the key is on it');
  } finally {
    direct.disconnect();
  }
  // Replicated before the kill: WAIT on the connection the write went over (the Cluster's to that node).
  const conn = client.nodes('master').find((n) => n.options.port === owner)!;
  t.ok(Number(await conn.call('WAIT', 1, 5000)) >= 1, 'the write reached its replica');

  const replica = primaries.find((m) => m.port === owner)!.replicas[0]!;
  await c.kill(owner);
  const promoted = await c.waitPromoted(owner);
  t.equal(promoted, replica, `its replica ${replica} was promoted`);
  t.equal(await c.primaryOf(key), promoted, 'and owns the key now');
  await until(async () => (await client.get(key).catch(() => null)) === 'v', 'the key through the cluster client');
  t.pass('read back through the cluster client after the failover');

  await c.restart(owner);
  await c.ready();
  const after = await c.primaries();
  t.ok(after.find((m) => m.port === promoted)?.replicas.includes(owner), 'the killed primary came back as a replica of the promoted one');

  await c.stop();
  await c.start();
  t.equal((await c.primaries()).length, 3, 'after stop and start: 3 primaries');
  await until(async () => (await client.exists(key).catch(() => -1)) === 0, 'the cluster client to reach the restarted cluster');
  t.pass('and the key is gone (the data was lost)');
  await client.set(key, 'again');
  t.equal(await client.get(key), 'again', 'writable again');
});

t.test('persistent: the keys survive stop and start', { skip }, async (t) => {
  const c = await startRedisCluster(t, { persistent: true });
  const client = redisClient(c, { maxRetriesPerRequest: 20 });
  t.teardown(() => client.disconnect());
  const keys = ['a', 'b', 'c', 'd', 'e', 'f'].map((k) => `${c.prefix}${k}`);
  for (const k of keys) await client.set(k, k);
  t.ok(new Set(await Promise.all(keys.map((k) => c.primaryOf(k)))).size > 1, 'on more than one primary');
  await c.stop();
  await c.start();
  await until(async () => (await client.get(keys[0]!).catch(() => null)) === keys[0], 'the cluster client to reach the restarted cluster');
  t.same(await Promise.all(keys.map((k) => client.get(k))), keys, 'every key kept');
});

// startSentinel's stop/start, which the outage suites call with TEST_REDIS_BACKEND=sentinel.
t.test('Sentinel: stop and start lose the data, even after a failover; persistent keeps it', { skip }, async (t) => {
  const s = await startSentinel(t);
  const r = redisClient(s, { maxRetriesPerRequest: 20 });
  t.teardown(() => r.disconnect());
  await r.set(`${s.prefix}k`, 'v');
  const first = await s.primaryPort();
  const promoted = await s.failover();
  t.not(promoted, first, 'failed over');
  await s.stop();
  await s.start();
  t.equal(await s.primaryPort(), promoted, 'back with the promoted primary as the primary');
  await until(async () => (await r.exists(`${s.prefix}k`).catch(() => -1)) === 0, 'the client to reach the restarted primary');
  await r.set(`${s.prefix}k`, 'again');
  t.equal(await r.get(`${s.prefix}k`), 'again', 'writable again');

  const p = await startSentinel(t, { persistent: true });
  const rp = redisClient(p, { maxRetriesPerRequest: 20 });
  t.teardown(() => rp.disconnect());
  await rp.set(`${p.prefix}k`, 'kept');
  await p.stop();
  await p.start();
  await until(async () => (await rp.get(`${p.prefix}k`).catch(() => null)) === 'kept', 'the key after a persistent restart');
  t.pass('persistent: kept');
});
