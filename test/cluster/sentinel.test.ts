// Cluster mode through Redis Sentinel (issue #18, its Sentinel part): a primary, its replica and a sentinel on
// loopback; the nodes find the primary through the sentinel, and the new one after a failover.
import t from 'tap';
import { client } from '../client/util.js';
import { Client, sign } from '../helpers.js';
import { api, notifyUnderLoad, skipReason, startChildNode, startNodes, startSentinel, until } from './redis.js';

t.test('two nodes through Sentinel: a notification crosses nodes, presence is shared', { skip: skipReason }, async (t) => {
  const rs = await startSentinel(t);
  const [a, b] = await startNodes(t, rs, 2, { presenceGraceMs: 200 });
  const bob = await b!.connect('bob');
  await bob.type('connected');
  const r = await api(a!, 'POST', '/v1/notifications', { userId: 'bob', notification: { title: 'Nouveau follower', message: 'via A' } });
  t.equal(r.status, 200);
  t.match((await bob.next((f) => f.type === 'notification:received')).data, { title: 'Nouveau follower' });
  t.same((await api(a!, 'GET', '/v1/presence?userIds=bob,carol')).body.online, ['bob'], "node A sees bob, who is on B");
});

t.test('a failover: the nodes follow the promoted replica; a publish is 200 only when delivered, 503 while there is no primary', { skip: skipReason }, async (t) => {
  const rs = await startSentinel(t);
  const before = await rs.primaryPort();
  const [a, b] = await startNodes(t, rs, 2, { presenceGraceMs: 200 });
  // Bob's app (the SDK) on B: it resumes by itself after any cut.
  const bob = client(t, { url: b!.url, token: await b!.token('bob'), reconnect: { minDelayMs: 20, maxDelayMs: 200 } });
  const received = new Set<string>();
  let resyncs = 0;
  bob.onNotification((n) => received.add(n.title));
  bob.on('resync', (info) => {
    if (info.topic === 'user:bob') resyncs++;
  });
  await bob.whenOpen();

  const load = notifyUnderLoad(a!, 'bob');
  const acked = load.acked;
  await until(() => acked.length >= 20, 0, 'twenty acked before the failover');
  const ackedBeforeKill = acked.length;
  const after = await rs.failover();
  load.mark();
  t.not(after, before, 'the replica was promoted');
  await load.done;
  t.ok(load.ackedAfter >= 20, `publishes answered 200 again after the failover (${load.ackedAfter})`);
  t.same([...load.statuses.keys()].filter((s) => s !== 200 && s !== 503), [], `only 200 and 503 (${JSON.stringify([...load.statuses])})`);
  // A failover retires every history (the promoted replica may lack acknowledged writes): bob, connected, is
  // told to resync; what was acknowledged before the failover he had already received.
  await until(() => resyncs > 0, 0, 'bob told to resync his inbox');
  t.same(acked.slice(0, ackedBeforeKill).filter(({ title }) => !received.has(title)), [], 'every notification acknowledged before the kill received');
  t.same((await api(b!, 'GET', '/v1/presence?userIds=bob')).body.online, ['bob'], 'presence after the failover');
  process.stdout.write(`# failover: publishes refused for ${load.refusedMs} ms (down-after-milliseconds 1000)\n`);
});

t.test('the server started with REDIS_SENTINELS, REDIS_SENTINEL_NAME and REDIS_PASSWORD joins the cluster of the primary they name', { skip: skipReason }, async (t) => {
  const rs = await startSentinel(t, { password: 'sentinel-test-password' });
  const [a] = await startNodes(t, rs, 1);
  const s = rs.sentinel.sentinels[0]!;
  const env = { REDIS_SENTINELS: `${s.host}:${s.port}`, REDIS_SENTINEL_NAME: rs.sentinel.name, REDIS_PREFIX: rs.prefix };
  // A wrong password: the node serves its own connections and says why it is not in the cluster.
  const refused = await startChildNode(t, { ...env, REDIS_PASSWORD: 'not-the-password', NODE_ID: 'wrong-password' });
  await until(() => /WRONGPASS|NOAUTH|invalid username-password/i.test(refused.output()), 0, 'the node to report the refused password');
  t.match(refused.output(), /Redis not reachable at start/);
  t.notOk((await a!.backplane.nodes()).some((n) => n.nodeId === 'wrong-password'), 'not in the cluster');
  const node = await startChildNode(t, { ...env, REDIS_PASSWORD: 'sentinel-test-password', NODE_ID: 'through-sentinel' });
  t.match(node.output(), /"backplane":"redis"/);
  const port = node.port;
  const carol = await Client.open(`ws://127.0.0.1:${port}/ws?token=${await sign('carol')}`);
  t.teardown(() => carol.close());
  await carol.type('connected');
  t.equal((await api(a!, 'POST', '/v1/notifications', { userId: 'carol', notification: { title: 'Bonjour', message: 'from the in-process node' } })).status, 200);
  t.match((await carol.next((f) => f.type === 'notification:received')).data, { title: 'Bonjour' });
  t.ok((await a!.backplane.nodes()).some((n) => n.nodeId === 'through-sentinel'), 'listed among the nodes');
});

t.test('after a failover, a client that was away resumes recovered: false: the promoted replica may lack what the old primary acknowledged', { skip: skipReason }, async (t) => {
  const rs = await startSentinel(t);
  const [a] = await startNodes(t, rs, 1);
  // Carol's app gets three notifications, keeps its positions and is closed.
  const carol = client(t, { url: a!.url, token: await a!.token('carol') });
  const got: string[] = [];
  carol.onNotification((n) => got.push(n.title));
  await carol.whenOpen();
  for (const title of ['n1', 'n2', 'n3']) t.equal((await api(a!, 'POST', '/v1/notifications', { userId: 'carol', notification: { title, message: 'm' } })).status, 200);
  await until(() => got.length === 3, 0, 'carol got three');
  const positions = carol.positions;
  carol.close();
  await rs.failover();
  // The node follows the new primary: a notification is stored again (retried while it answers 503).
  await until(async () => (await api(a!, 'POST', '/v1/notifications', { userId: 'carol', notification: { title: 'after', message: 'm' } })).status === 200, 0, 'a publish answered 200 after the failover');
  // Her app comes back from where it was: told to refetch, never resumed past what the failover may have lost.
  const back = client(t, { url: a!.url, token: await a!.token('carol'), resumeFrom: positions });
  const resync = new Promise<unknown>((resolve) => back.on('resync', resolve));
  await back.whenOpen();
  t.match(await resync, { topic: 'user:carol', reason: 'epoch', from: positions['user:carol'] });
  // And once told, the new history continues: the next one arrives live.
  const next = new Promise<string>((resolve) => back.onNotification((n) => resolve(n.title)));
  t.equal((await api(a!, 'POST', '/v1/notifications', { userId: 'carol', notification: { title: 'later', message: 'm' } })).status, 200);
  t.equal(await next, 'later');
});
