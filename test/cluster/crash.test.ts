// kill -9 of a node (a child process): its users go offline on the surviving nodes within the lease bound.
import t from 'tap';
import { Client, sign } from '../helpers.js';
import { SLACK_MS, api, redisEnv, skipReason, startChildNode, startNodes, startRedis, until } from './redis.js';

const LEASE_MS = 1500;

t.test('a crashed node: its users offline within NODE_LEASE_MS plus a sweep', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await startNodes(t, redis, 2, { presenceGraceMs: 300, nodeLeaseMs: LEASE_MS });
  const doomed = await startChildNode(t, {
    ...redisEnv(redis),
    REDIS_PREFIX: redis.prefix,
    NODE_ID: 'doomed',
    NODE_LEASE_MS: String(LEASE_MS),
    PRESENCE_GRACE_MS: '300',
  });
  t.match(doomed.output(), /"backplane":"redis"/);
  const port = doomed.port;
  const url = `ws://127.0.0.1:${port}/ws?token=`;

  const watcher = await a!.connect('watcher');
  for (const id of ['bob', 'carol', 'dave']) t.equal((await watcher.request('subscribe', { topic: `presence:${id}` })).type, 'ack');
  const bobOnDoomed = await Client.open(url + (await sign('bob')));
  const carolOnDoomed = await Client.open(url + (await sign('carol')));
  const carolOnB = await b!.connect('carol');
  const daveOnDoomed = await Client.open(url + (await sign('dave')));
  t.teardown(() => {
    for (const c of [bobOnDoomed, carolOnDoomed, daveOnDoomed]) c.close();
  });
  for (const id of ['bob', 'carol', 'dave']) await watcher.next((f) => f.type === 'user:online' && f.data.userId === id);
  await carolOnB.type('connected');
  t.same((await api(b!, 'GET', '/v1/presence?userIds=bob,carol,dave')).body.online, ['bob', 'carol', 'dave']);
  // Dave's connection is cut; he comes back on B before the sweep: he never looks offline.
  doomed.child.kill('SIGKILL');
  const killedAt = Date.now();
  const daveBack = await b!.connect('dave');
  await daveBack.type('connected');

  const offline = new Map<string, number>();
  await until(async () => {
    for (const f of watcher.frames.splice(0)) if (f.type === 'user:offline') offline.set(f.data.userId, (offline.get(f.data.userId) ?? 0) + 1);
    return offline.has('bob');
  }, LEASE_MS * 3, 'bob offline');
  const took = Date.now() - killedAt;
  t.ok(took <= LEASE_MS + 300 + SLACK_MS, `bob offline ${took} ms after kill -9 (lease ${LEASE_MS} ms, sweep every ${LEASE_MS / 5} ms)`);
  t.ok(await watcher.none((f) => f.type.startsWith('user:o'), 600), 'nothing more');
  t.same([...offline], [['bob', 1]], 'bob once; carol (still on B) and dave (back on B) not at all');
  t.same((await api(a!, 'GET', '/v1/presence?userIds=bob,carol,dave')).body.online, ['carol', 'dave']);
  t.equal(await a!.backplane.stores.presence.count('carol'), 1, "the dead node's connection is no longer counted");
  // Story broadcasts were refused while the dead node's lease still claimed `stories`; now they go through.
  t.equal((await api(a!, 'POST', '/v1/stories', { id: '1', title: 'after the crash' })).status, 200);
  await carolOnB.next((f) => f.type === 'story:new');
  process.stdout.write(`# kill -9 -> user:offline: ${took} ms (NODE_LEASE_MS=${LEASE_MS})\n`);
});
