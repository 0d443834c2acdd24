// Presence across nodes: exactly-once online/offline with devices on different nodes, the grace period
// across nodes, cluster-wide queries, connection counts and disconnectUser.
import t from 'tap';
import { api, skipReason, startNodes, startRedis, until } from './redis.js';

t.test('presence across nodes', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const [a, b, c] = await startNodes(t, redis, 3, { presenceGraceMs: 300 });
  const watcher = await c!.connect('watcher');
  const watcherA = await a!.connect('watcher2');
  for (const w of [watcher, watcherA]) t.equal((await w.request('subscribe', { topic: 'presence:bob' })).type, 'ack');
  const isPresence = (f: { type: string; data?: any }) => (f.type === 'user:online' || f.type === 'user:offline') && f.data?.userId === 'bob';

  t.test('devices on two nodes: one online, one offline after the last one', async (t) => {
    const phone = await a!.connect('bob');
    for (const w of [watcher, watcherA]) t.equal((await w.next(isPresence)).type, 'user:online');
    const laptop = await b!.connect('bob');
    await laptop.type('connected');
    t.equal(await c!.backplane.stores.presence.count('bob'), 2, 'counted on every node');
    phone.close();
    t.ok(await watcher.none(isPresence, 600), 'still online on B: nothing');
    t.same((await watcherA.request('presence:query', { userIds: ['bob'] })).data.online, ['bob']);
    const closedAt = Date.now();
    laptop.close();
    for (const w of [watcher, watcherA]) t.equal((await w.next(isPresence)).type, 'user:offline');
    t.ok(Date.now() - closedAt >= 250, 'after the grace period');
    t.ok(await watcher.none(isPresence, 400), 'exactly once');
    t.ok(await watcherA.none(isPresence, 1), 'exactly once on A too');
    t.same((await api(b!, 'GET', '/v1/presence?userIds=bob')).body, { online: [] });
  });

  t.test('leaving on A and coming back on B within the grace: no event at all', async (t) => {
    const phone = await a!.connect('bob');
    t.equal((await watcher.next(isPresence)).type, 'user:online');
    phone.close();
    await until(async () => (await a!.backplane.stores.presence.count('bob')) === 0, 2000, 'the close to register');
    const again = await b!.connect('bob');
    t.ok(await watcher.none(isPresence, 800), 'neither offline nor online');
    again.close();
    t.equal((await watcher.next(isPresence)).type, 'user:offline', 'then offline once');
    t.ok(await watcher.none(isPresence, 400));
    watcherA.frames.length = 0;
  });

  t.test('many devices opening and closing at once on three nodes: one online, one offline', async (t) => {
    const devices = await Promise.all([a, b, c, a, b, c].map((n) => n!.connect('bob')));
    t.equal((await watcher.next(isPresence)).type, 'user:online');
    t.ok(await watcher.none(isPresence, 300), 'one online for six devices');
    for (const d of devices) d.close();
    t.equal((await watcher.next(isPresence)).type, 'user:offline');
    t.ok(await watcher.none(isPresence, 500), 'one offline');
  });

  t.test('disconnectUser closes the user everywhere and counts', async (t) => {
    const d1 = await a!.connect('mallory');
    const d2 = await b!.connect('mallory');
    const d3 = await b!.connect('mallory');
    await Promise.all([d1, d2, d3].map((d) => d.type('connected')));
    const r = await api(c!, 'POST', '/v1/users/mallory/disconnect', { code: 4403, reason: 'banned' });
    t.same(r, { status: 200, body: { closed: 3 } });
    for (const d of [d1, d2, d3]) t.same(await d.closed, { code: 4403, reason: 'banned' });
    const none = await api(c!, 'POST', '/v1/users/nobody/disconnect', {});
    t.equal(none.status, 404);
    const d4 = await b!.connect('mallory');
    await d4.type('connected');
    t.equal(await a!.server.disconnectUser('mallory', 4409), 1, 'embedded API, from a node without the user');
    t.equal((await d4.closed).code, 4409);
  });
});
