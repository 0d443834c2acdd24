// The backend HTTP API: every endpoint's success path and failures, delivered to real ws clients.
import net from 'node:net';
import t from 'tap';
import { startServer, type Harness } from '../helpers.js';

const KEY = 'test-api-key-0123456789';

async function api(h: Harness, method: string, path: string, body?: unknown, key: string | null = KEY, raw?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== null) headers['authorization'] = `Bearer ${key}`;
  const res = await fetch(`http://127.0.0.1:${h.server.adminPort ?? h.port}${path}`, {
    method,
    headers,
    ...(raw !== undefined ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text.startsWith('{') ? JSON.parse(text) : text, headers: res.headers };
}

t.test('POST /v1/notifications: one user, a list, the from field', async (t) => {
  const h = await startServer(t, { apiKey: KEY });
  const bob = await h.connect('bob');
  const bob2 = await h.connect('bob');
  const carol = await h.connect('carol');
  const r = await api(h, 'POST', '/v1/notifications', { userId: 'bob', notification: { title: 'Nouveau follower', message: "Quelqu'un vous suit", type: 'follower', data: { followerId: 123 } } });
  t.equal(r.status, 200);
  t.match(r.body, { recipients: 1, delivered: 2 });
  for (const c of [bob, bob2]) t.match((await c.type('notification:received')).data, { id: r.body.id, from: null, type: 'follower', data: { followerId: 123 } });
  const r2 = await api(h, 'POST', '/v1/notifications', { userIds: ['bob', 'carol', 42], from: 'system-likes', notification: { title: 'x', message: 'y' } });
  t.match(r2.body, { recipients: 3, delivered: 3 });
  t.equal((await carol.type('notification:received')).data.from, 'system-likes');
  const r3 = await api(h, 'POST', '/v1/notifications', { userId: 'nobody-online', notification: { title: 'x', message: 'y' } });
  t.match(r3, { status: 200, body: { delivered: 0 } }, 'an offline user: accepted, delivered to nobody');
  const r4 = await api(h, 'POST', '/v1/notifications', { userIds: ['carol', 'carol', 'carol'], notification: { title: 'once', message: 'y' } });
  t.match(r4.body, { recipients: 1, delivered: 1 }, 'a user named three times is one recipient, notified once');
  t.equal((await carol.next((f) => f.type === 'notification:received' && f.data.title === 'once')).data.title, 'once');
  t.ok(await carol.none((f) => f.type === 'notification:received' && f.data.title === 'once'), 'and only once');
});

t.test('story, story updated, chapter endpoints', async (t) => {
  const h = await startServer(t, { apiKey: KEY });
  const reader = await h.connect('reader');
  await reader.request('subscribe', { topic: 'story:42' });
  const s = await api(h, 'POST', '/v1/stories', { id: 42, title: 'Le Petit Prince', author: 'Antoine', authorId: 'saint-ex' });
  t.match(s, { status: 200, body: { id: '42', delivered: 1 } });
  t.match((await reader.type('story:new')).data, { id: '42', title: 'Le Petit Prince', author: 'Antoine', authorId: 'saint-ex' });
  const u = await api(h, 'POST', '/v1/stories/42/updated', { title: 'Le Petit Prince (édition révisée)' });
  t.match(u, { status: 200, body: { id: '42', delivered: 2 } }, 'reader is on stories and story:42');
  t.match((await reader.type('story:updated')).data, { id: '42', title: 'Le Petit Prince (édition révisée)', authorId: null });
  const c = await api(h, 'POST', '/v1/stories/42/chapters', { id: 'c1', title: 'Chapitre I', number: 1 });
  t.match(c, { status: 200, body: { id: 'c1', storyId: '42', delivered: 1 } });
  t.match((await reader.type('chapter:new')).data, { storyId: '42', id: 'c1', number: 1 });
});

t.test('POST /v1/publish: single and batch, validated before anything is sent', async (t) => {
  const h = await startServer(t, { apiKey: KEY, maxBatch: 3 });
  const bob = await h.connect('bob');
  const one = await api(h, 'POST', '/v1/publish', { topic: 'user:bob', type: 'story:liked', data: { storyId: '7', by: 'alice' } });
  t.match(one, { status: 200, body: { delivered: 1 } });
  t.match(await bob.type('story:liked'), { topic: 'user:bob', data: { storyId: '7', by: 'alice' } });
  const batch = await api(h, 'POST', '/v1/publish', [
    { topic: 'stories', type: 'feed:refresh' },
    { topic: 'user:bob', type: 'comment:new', data: { text: 'Bravo' } },
  ]);
  t.match(batch, { status: 200, body: { published: 2, delivered: [1, 1] } });
  await bob.type('feed:refresh');
  await bob.type('comment:new');
  const badBatch = await api(h, 'POST', '/v1/publish', [{ topic: 'user:bob', type: 'ok:one' }, { topic: 'nope', type: 'x' }]);
  t.equal(badBatch.status, 400);
  t.match(badBatch.body.error, { code: 'INVALID_TOPIC' });
  t.ok(await bob.none((f) => f.type === 'ok:one'), 'nothing from a rejected batch was published');
  t.equal((await api(h, 'POST', '/v1/publish', [1, 2, 3, 4])).body.error.code, 'TOO_MANY_IDS');
  t.match((await api(h, 'POST', '/v1/publish', { topic: 'user:bob', type: 'heartbeat' })).body.error, { code: 'INVALID_PAYLOAD', message: /reserved/ });
  t.match((await api(h, 'POST', '/v1/publish', { topic: 'user:bob', type: 'Bad Type!' })).body.error, { message: /body.type/ });
  t.equal((await api(h, 'POST', '/v1/publish', [])).status, 400);
});

t.test('GET /v1/presence', async (t) => {
  const h = await startServer(t, { apiKey: KEY, maxPresenceIds: 3 });
  await h.connect('bob');
  t.match(await api(h, 'GET', '/v1/presence?userIds=alice,bob'), { status: 200, body: { online: ['bob'] } });
  t.match(await api(h, 'GET', '/v1/presence'), { status: 400, body: { error: { code: 'INVALID_PAYLOAD', message: /userIds/ } } });
  t.match(await api(h, 'GET', '/v1/presence?userIds=a,b,c,d'), { status: 400, body: { error: { code: 'TOO_MANY_IDS' } } });
});

t.test('POST /v1/users/:id/disconnect closes every device with the chosen code', async (t) => {
  const h = await startServer(t, { apiKey: KEY });
  const a = await h.connect('mallory');
  const b = await h.connect('mallory');
  const other = await h.connect('bob');
  const r = await api(h, 'POST', '/v1/users/mallory/disconnect', { code: 4403, reason: 'account banned' });
  t.match(r, { status: 200, body: { closed: 2 } });
  for (const c of [a, b]) t.same(await c.closed, { code: 4403, reason: 'account banned' });
  t.equal(other.ws.readyState, other.ws.OPEN);
  t.match(await api(h, 'POST', '/v1/users/mallory/disconnect', {}), { status: 404, body: { closed: 0, error: { code: 'NOT_FOUND' } } }, 'unknown or offline user');
  t.match(await api(h, 'POST', '/v1/users/bob/disconnect', { code: 1000 }), { status: 400, body: { error: { message: /body.code/ } } });
  t.match(await api(h, 'POST', '/v1/users/bob/disconnect'), { status: 200, body: { closed: 1 } }, 'no body: default code');
  t.equal((await other.closed).code, 4409);
});

t.test('authentication, bad bodies, limits and routing', async (t) => {
  const h = await startServer(t, { apiKey: KEY, maxBodyBytes: 1024 });
  const body = { id: 1, title: 't' };
  t.match(await api(h, 'POST', '/v1/stories', body, null), { status: 401, body: { error: { code: 'UNAUTHORIZED' } } }, 'no key');
  t.match(await api(h, 'POST', '/v1/stories', body, 'wrong-key-wrong-key'), { status: 401 }, 'wrong key');
  t.match(await api(h, 'POST', '/v1/stories', body, `${KEY}x`), { status: 401 }, 'key with a suffix');
  t.match(await api(h, 'POST', '/v1/stories', undefined, KEY, '{"id":'), { status: 400, body: { error: { code: 'BAD_JSON' } } });
  t.match(await api(h, 'POST', '/v1/stories', { title: 'no id' }), { status: 400, body: { error: { code: 'INVALID_PAYLOAD', message: 'body.id must be an id: a non-negative integer or a string of 1-128 characters [A-Za-z0-9_.@|+=-]' } } });
  t.match(await api(h, 'POST', '/v1/notifications', { userId: 'bob', notification: { message: 'no title' } }), { status: 400, body: { error: { message: /body.notification.title/ } } });
  t.match(await api(h, 'POST', '/v1/stories', { id: 1, title: 'x'.repeat(2000) }), { status: 413, body: { error: { code: 'PAYLOAD_TOO_LARGE' } } });
  t.match(await api(h, 'GET', '/v1/stories'), { status: 405, body: { error: { code: 'METHOD_NOT_ALLOWED' } } });
  t.match(await api(h, 'POST', '/v1/nope', {}), { status: 404, body: { error: { code: 'NOT_FOUND' } } });
  t.match(await api(h, 'POST', '/v1/stories/bad id!/chapters', { id: 1, title: 't' }), { status: 400 });
});

t.test('chunked bodies are read whole; oversized chunked bodies get 413; aborted requests do no harm', async (t) => {
  const h = await startServer(t, { apiKey: KEY, maxBodyBytes: 2048 });
  const reader = await h.connect('reader');
  const raw = (payload: string[], end = true) =>
    new Promise<string>((resolve) => {
      const s = net.connect(h.port, '127.0.0.1', () => {
        s.write(`POST /v1/stories HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
        for (const p of payload) s.write(`${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`);
        if (end) s.write('0\r\n\r\n');
        else setTimeout(() => s.destroy(), 50);
      });
      let out = '';
      s.on('data', (d) => {
        out += d;
        if (/\r\n\r\n[\s\S]*\}$/.test(out)) s.end();
      });
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
    });
  const ok = await raw(['{"id":"9",', '"title":"en morceaux"}']);
  t.match(ok, /^HTTP\/1\.1 200/);
  t.equal((await reader.type('story:new')).data.title, 'en morceaux');
  const big = await raw(Array.from({ length: 10 }, () => 'x'.repeat(500)));
  t.match(big, /^HTTP\/1\.1 413/);
  await raw(['{"id":"10","ti'], false);
  t.ok(await reader.none((f) => f.type === 'story:new' && f.data.id === '10'), 'aborted request published nothing');
  t.match(await api(h, 'GET', '/v1/presence?userIds=reader'), { status: 200, body: { online: ['reader'] } }, 'server fine afterwards');
});

t.test('without API_KEY the API is disabled with 503', async (t) => {
  const h = await startServer(t);
  t.match(await api(h, 'POST', '/v1/stories', { id: 1, title: 't' }), { status: 503, body: { error: { code: 'UNAVAILABLE', message: /API_KEY/ } } });
});

t.test('embedded API: the same operations from code', async (t) => {
  const h = await startServer(t);
  const bob = await h.connect('bob');
  const r = h.server.sendNotificationToUser('bob', { title: 'x', message: 'y', type: 'like', data: undefined }, 'alice');
  t.equal(await r.delivered, 1);
  t.equal((await bob.type('notification:received')).data.from, 'alice');
  t.equal(await h.server.publish('user:bob', 'custom:event', { a: 1 }), 1);
  t.same((await bob.type('custom:event')).data, { a: 1 });
  t.equal(await h.server.isOnline('bob'), true);
  t.same(await h.server.onlineUsers(['bob', 'x']), ['bob']);
  t.equal(await h.server.disconnectUser('bob', 4403, 'banned'), 1);
  t.equal((await bob.closed).code, 4403);
});
