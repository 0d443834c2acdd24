// The admin view's JSON (/admin/api/) and where it is served (ADMIN_UI): figures that move with traffic, the top
// topics, a user lookup and the disconnect, all behind the API key. The page itself: test/e2e/admin-browser.test.ts.
import t from 'tap';
import { startServer, type Harness } from './helpers.js';

const KEY = 'admin-test-api-key-0123456789';

async function adminCall(h: Harness, path: string, init: { method?: string; body?: unknown; key?: string | null; port?: number } = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (init.key !== null) headers['authorization'] = `Bearer ${init.key ?? KEY}`;
  const res = await fetch(`http://127.0.0.1:${init.port ?? h.server.adminPort}${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await res.text();
  return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text, headers: res.headers };
}

t.test('ADMIN_UI=admin (the default): on ADMIN_PORT only, every /admin/api/ call with the API key', async (t) => {
  const h = await startServer(t, { apiKey: KEY, adminPort: 0 });
  const page = await adminCall(h, '/admin', { key: null });
  t.equal(page.status, 200, 'the page itself holds no data: no key needed to load the login form');
  t.match(page.body, /<form id="login">/);
  t.match(page.body, /<script type="module" src="\/admin\/app.js"><\/script>/);
  t.match(page.headers.get('content-security-policy'), /script-src 'self'/, 'no inline script may run');
  t.equal((await adminCall(h, '/admin/api/stats', { key: null })).status, 401, 'no key: 401');
  t.equal((await adminCall(h, '/admin/api/stats', { key: 'wrong-key-wrong-key-0' })).status, 401, 'a wrong key: 401');
  t.equal((await adminCall(h, '/admin/api/users/alice/disconnect', { key: null, method: 'POST' })).status, 401, 'the disconnect too');
  t.equal((await adminCall(h, '/admin/api/stats')).status, 200);
  t.equal((await adminCall(h, '/admin/api/nothing')).body.error.code, 'NOT_FOUND');
  t.equal((await adminCall(h, '/admin/api/stats', { method: 'POST' })).status, 405);
  t.equal((await adminCall(h, '/admin', { key: null, port: h.port })).status, 404, 'not on the WebSocket port');
  t.equal((await adminCall(h, '/admin/api/stats', { port: h.port })).status, 404, 'nor its JSON');
});

t.test('ADMIN_UI=public serves it on the WebSocket port too; ADMIN_UI=off nowhere', async (t) => {
  const pub = await startServer(t, { apiKey: KEY, adminUi: 'public' });
  t.equal((await adminCall(pub, '/admin', { key: null, port: pub.port })).status, 200, 'public: the page on the WebSocket port');
  t.equal((await adminCall(pub, '/admin/api/stats', { key: null, port: pub.port })).status, 401, 'with the key still required');
  t.equal((await adminCall(pub, '/admin/api/stats', { port: pub.port })).status, 200);
  const off = await startServer(t, { apiKey: KEY, adminPort: 0, adminUi: 'off' });
  t.equal((await adminCall(off, '/admin', { key: null })).status, 404, 'off: not on ADMIN_PORT');
  t.equal((await adminCall(off, '/admin', { key: null, port: off.port })).status, 404, 'nor on the WebSocket port');
  const noKey = await startServer(t, { apiKey: undefined, adminPort: 0 }, { API_KEY: '' });
  t.equal((await adminCall(noKey, '/admin/api/stats')).status, 503, 'no API_KEY configured: the admin JSON is off like the HTTP API');
});

t.test('the figures move when clients connect, send and are notified', async (t) => {
  const h = await startServer(t, { apiKey: KEY, adminPort: 0, presenceGraceMs: 0 });
  const before = (await adminCall(h, '/admin/api/stats')).body;
  t.equal(before.nodeId, h.server.nodeId);
  t.same(before.backplane, { kind: 'memory', single: true, up: true });
  t.same(before.connections, { open: 0, onlineUsers: 0 });
  t.same(before.nodes, [{ nodeId: h.server.nodeId, alive: true, connections: 0, self: true }], 'one node: this one');
  t.ok(before.eventLoopLagP99S >= 0 && before.residentBytes > 0, 'process figures');

  const alice = await h.connect('alice', { roles: ['stories:publish'] });
  const bob = await h.connect('bob');
  await Promise.all([alice.type('connected'), bob.type('connected')]);
  for (let i = 0; i < 3; i++) await alice.request('ping');
  await alice.request('story:published', { id: 7, title: 'Le Petit Prince' });
  await alice.request('send:notification', { userId: 'bob', notification: { title: 'hi', message: 'x' } });
  await bob.type('notification:received');
  alice.send('not json');
  await alice.type('error');

  const after = (await adminCall(h, '/admin/api/stats')).body;
  t.ok(after.ts >= before.ts);
  t.same(after.connections, { open: 2, onlineUsers: 2 });
  t.equal(after.nodes[0].connections, 2);
  const c = after.counters;
  t.equal(c.connections.accepted, 2);
  t.equal(c.messagesIn.ping, 3, 'messages in by type');
  t.equal(c.messagesIn['story:published'], 1);
  t.equal(c.publishes['story:new'], 2, 'published by type: stories and author:alice');
  t.equal(c.notificationsDelivered, 1);
  t.equal(c.rejected.BAD_JSON, 1);
  t.ok(c.messagesOut >= before.counters.messagesOut + 7, `frames out moved (${before.counters.messagesOut} -> ${c.messagesOut})`);
  t.equal(c.backpressureCloses, 0);
});

t.test('top topics: this node\'s subscribers of each topic, most first', async (t) => {
  const h = await startServer(t, { apiKey: KEY, adminPort: 0 });
  const clients = await Promise.all(['a', 'b', 'c'].map((u) => h.connect(u)));
  for (const c of clients) await c.type('connected');
  for (const c of clients.slice(0, 2)) t.equal((await c.request('subscribe', { topic: 'story:42' })).type, 'ack');
  // The first reading of this server's counts (they are kept for a second after it).
  const top = (await adminCall(h, '/admin/api/topics?limit=2')).body;
  t.same(top.topics, [
    { topic: 'stories', subscribers: 3 },
    { topic: 'story:42', subscribers: 2 },
  ]);
  t.equal(top.distinct, 5, 'stories, story:42 and three personal topics');
  t.equal((await adminCall(h, '/admin/api/topics?limit=0')).status, 400);
  t.equal((await adminCall(h, '/admin/api/topics?limit=101')).body.error.code, 'INVALID_PAYLOAD');
});

t.test('user lookup and disconnect', async (t) => {
  const h = await startServer(t, { apiKey: KEY, adminPort: 0 });
  const phone = await h.connect('alice');
  const laptop = await h.connect('alice');
  const first = await phone.type('connected');
  await laptop.type('connected');
  t.equal((await phone.request('subscribe', { topic: 'story:9' })).type, 'ack');

  const u = (await adminCall(h, '/admin/api/users/alice')).body;
  t.equal(u.userId, 'alice');
  t.equal(u.online, true);
  t.equal(u.connections.length, 2);
  const mine = u.connections.find((c: any) => c.connectionId === first.data.connectionId);
  t.equal(mine.nodeId, h.server.nodeId);
  t.equal(mine.local.ip, '127.0.0.1');
  t.same(mine.local.topics, ['stories', 'story:9', 'user:alice'], 'its topics');
  t.ok(mine.local.openS >= 0 && mine.local.bufferedBytes >= 0);
  t.same((await adminCall(h, '/admin/api/users/nobody')).body, { userId: 'nobody', online: false, connections: [] });
  t.equal((await adminCall(h, '/admin/api/users/bad%20id')).body.error.code, 'INVALID_PAYLOAD');

  const r = await adminCall(h, '/admin/api/users/alice/disconnect', { method: 'POST', body: { code: 4403, reason: 'banned' } });
  t.same(r.body, { closed: 2 });
  t.same(await phone.closed, { code: 4403, reason: 'banned' });
  t.equal((await laptop.closed).code, 4403);
  t.equal((await adminCall(h, '/admin/api/users/alice/disconnect', { method: 'POST' })).status, 404, 'nobody left: 404, as POST /v1/users/:id/disconnect');
  t.equal((await adminCall(h, '/admin/api/users/alice/disconnect', { method: 'POST', body: { code: 1000 } })).body.error.code, 'INVALID_PAYLOAD', 'the same codes allowed');
});
