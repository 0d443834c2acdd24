// Redis stopped and started again under two live nodes: failures are reported as failures, local
// traffic goes on, and delivery resumes by itself with nothing reported delivered that was not.
import t from 'tap';
import { Client, sign, type Frame } from '../helpers.js';
import { API_KEY, api, skipReason, startNodes, startRedis, until } from './redis.js';

/** The last position a raw client was handed on its personal topic (connected, then numbered events). */
function lastPosition(c: Client): { epoch: string; offset: number } {
  return (c as Client & { position: { epoch: string; offset: number } }).position;
}

/** Keeps, on the client, the position of its personal topic as protocol.md section 9 says a client does. */
function track(c: Client, sub: string): Client {
  const tracked = c as Client & { position: { epoch: string; offset: number } };
  const seen = (f: Frame) => {
    if (f.type === 'connected') tracked.position = f.data.topics[`user:${sub}`];
    else if (f.topic === `user:${sub}` && typeof (f as Frame & { offset?: unknown }).offset === 'number') tracked.position = f as Frame & { epoch: string; offset: number };
  };
  c.ws.on('message', (raw) => seen(JSON.parse(raw.toString()) as Frame));
  return c;
}

t.test('Redis outage and restart', { skip: skipReason || (process.env['REDIS_URL'] ? 'needs a redis-server it can stop (REDIS_URL is set)' : false) }, async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await startNodes(t, redis, 2, { presenceGraceMs: 200 });
  const alice = await a!.connect('alice', { scope: 'stories:publish' });
  const bob = track(await b!.connect('bob'), 'bob');
  const watcher = await a!.connect('watcher');
  await bob.type('connected');
  t.equal((await watcher.request('subscribe', { topic: 'presence:bob' })).type, 'ack');
  t.equal((await watcher.request('subscribe', { topic: 'presence:dave' })).type, 'ack');
  const notify = (title: string) => api(a!, 'POST', '/v1/notifications', { userIds: ['bob', 'alice'], notification: { title, message: 'm' } });
  t.equal((await notify('before')).status, 200);
  await bob.next((f) => f.data?.title === 'before');

  await redis.stop!();
  await until(() => !a!.backplane.up && !b!.backplane.up, 5000, 'both nodes to see the outage');

  t.test('while Redis is down', async (t) => {
    const r = await notify('during');
    t.equal(r.status, 503, 'the API says it could not reach the other nodes');
    // A notification is numbered in Redis (so that it can be recovered): without Redis it is not
    // delivered anywhere, and the 503 says so, so the backend can retry without creating a duplicate.
    t.match(r.body, { delivered: 0, error: { code: 'UNAVAILABLE' } }, 'and what it delivered here: nothing');
    t.ok(await alice.none((f) => f.data?.title === 'during', 300), 'an unnumbered notification is not delivered');
    t.match(await alice.request('story:published', { id: '1', title: 'x' }), { type: 'error', error: { code: 'UNAVAILABLE' } });
    t.equal((await alice.next((f) => f.type === 'story:new' && f.data.id === '1')).topic, 'stories', 'live-only events still reach local connections');
    t.match(await alice.request('presence:query', { userIds: ['bob'] }), { type: 'error', error: { code: 'UNAVAILABLE' } });
    t.equal((await api(a!, 'GET', '/v1/presence?userIds=bob')).status, 503);
    const ready = await fetch(`http://127.0.0.1:${a!.port}/readyz`);
    t.same([ready.status, await ready.json()], [200, { status: 'degraded' }]);
    const metrics = await (await fetch(`http://127.0.0.1:${a!.port}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).text();
    t.match(metrics, /^storywire_backplane_up 0$/m);
    t.match(metrics, /^storywire_backplane_errors_total [1-9]/m);
    const newcomer = await a!.connect('newcomer');
    t.equal((await newcomer.type('connected')).data.userId, 'newcomer', 'new connections are still accepted (per-user limit counted on this node)');
    newcomer.close();
    const started = Date.now();
    await api(b!, 'POST', '/v1/stories', { id: '2', title: 'y' });
    t.ok(Date.now() - started < 1000, 'failing is quick: nothing waits in a queue');
  });

  t.test('after Redis comes back (empty: it had no persistence)', async (t) => {
    const bobAt = lastPosition(bob);
    await redis.start!();
    const restartedAt = Date.now();
    // Everyone's positions name histories that are gone: each connection is closed to resume, and told so.
    for (const c of [alice, bob, watcher]) t.match(await c.closed, { code: 4001, reason: /history lost/ }, 'closed with 4001 to resume');
    const bob2 = await Client.open(`${b!.url}?token=${await sign('bob')}&since=${bobAt.epoch}:${bobAt.offset}`);
    t.teardown(() => bob2.close());
    t.match((await bob2.type('connected')).data.topics['user:bob'], { recovered: false }, 'the resume says what it cannot give back');
    const alice2 = await a!.connect('alice', { scope: 'stories:publish' });
    const watcher2 = await a!.connect('watcher');
    await alice2.type('connected');
    await watcher2.type('connected');
    // Publish from the first moment on: whatever is answered 200 must reach bob, once.
    const answered: string[] = [];
    let i = 0;
    while (answered.length < 5) {
      if (i > 400) throw new Error('delivery did not resume');
      const title = `after-${i++}`;
      if ((await notify(title)).status === 200) answered.push(title);
      await new Promise((r) => setTimeout(r, 20));
    }
    t.ok(a!.backplane.up && b!.backplane.up, 'both nodes up again, by themselves');
    for (const title of answered) await bob2.next((f) => f.data?.title === title);
    t.ok(await bob2.none((f) => answered.includes(f.data?.title), 300), 'nothing answered 200 arrives twice');
    t.pass(`${answered.length} publishes answered 200 after ${i - answered.length} refused during ${Date.now() - restartedAt} ms of recovery; all delivered once`);
    t.same((await api(b!, 'GET', '/v1/presence?userIds=alice,bob,watcher')).body.online.sort(), ['alice', 'bob', 'watcher'], 'presence re-registered');
    t.equal((await watcher2.request('subscribe', { topic: 'presence:dave' })).type, 'ack');
    const dave = await b!.connect('dave');
    t.equal((await watcher2.next((f) => f.type === 'user:online' && f.data.userId === 'dave')).topic, 'presence:dave', 'A listens to its topics again');
    dave.close();
    await watcher2.next((f) => f.type === 'user:offline' && f.data.userId === 'dave');
    t.match(await alice2.request('story:published', { id: '3', title: 'z' }), { type: 'ack' });
    await bob2.next((f) => f.type === 'story:new' && f.data.id === '3');
    const ready = await fetch(`http://127.0.0.1:${b!.port}/readyz`);
    t.same(await ready.json(), { status: 'ready' });
  });
});
