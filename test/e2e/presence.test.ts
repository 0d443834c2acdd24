// Presence: multi-device reference count, grace period, broadcast mode, queries.
import t from 'tap';
import { startServer } from '../helpers.js';

t.test('online on the first device, offline after the last one and the grace period', async (t) => {
  const h = await startServer(t, { presenceGraceMs: 200 });
  const watcher = await h.connect('watcher');
  await watcher.request('subscribe', { topic: 'presence:bob' });
  const phone = await h.connect('bob');
  t.match(await watcher.type('user:online'), { topic: 'presence:bob', data: { userId: 'bob' } });
  const laptop = await h.connect('bob');
  t.ok(await watcher.none((f) => f.type === 'user:online'), 'second device: no second online');
  phone.close();
  t.ok(await watcher.none((f) => f.type === 'user:offline', 500), 'one device left: still online');
  t.same((await watcher.request('presence:query', { userIds: ['bob'] })).data.online, ['bob']);
  const closedAt = Date.now();
  laptop.close();
  const off = await watcher.type('user:offline');
  t.equal(off.data.userId, 'bob');
  t.ok(Date.now() - closedAt >= 150, 'offline waits for the grace period');
  t.type(off.data.lastSeen, 'number');
  t.same((await watcher.request('presence:query', { userIds: ['bob'] })).data.online, []);
});

t.test('a reconnect within the grace period does not flap', async (t) => {
  const h = await startServer(t, { presenceGraceMs: 500 });
  const watcher = await h.connect('watcher');
  await watcher.request('subscribe', { topic: 'presence:bob' });
  const first = await h.connect('bob');
  await watcher.type('user:online');
  first.close();
  await new Promise((r) => setTimeout(r, 100));
  t.same((await watcher.request('presence:query', { userIds: ['bob'] })).data.online, ['bob'], 'still online during grace');
  const again = await h.connect('bob');
  t.ok(await watcher.none((f) => f.type === 'user:offline' || f.type === 'user:online', 900), 'no offline, no online');
  again.close();
  t.equal((await watcher.type('user:offline')).data.userId, 'bob');
});

t.test('presence events only reach subscribers by default', async (t) => {
  const h = await startServer(t, { presenceGraceMs: 0 });
  const bystander = await h.connect('bystander');
  const bob = await h.connect('bob');
  bob.close();
  t.ok(await bystander.none((f) => f.type.startsWith('user:o')), 'no presence noise without subscription');
});

t.test('broadcast mode sends presence to everyone on topic presence', async (t) => {
  const h = await startServer(t, { presenceGraceMs: 0, presenceBroadcast: true });
  const everyone = await h.connect('someone');
  const bob = await h.connect('bob');
  t.match(await everyone.next((f) => f.type === 'user:online' && f.data.userId === 'bob'), { topic: 'presence' });
  bob.close();
  t.match(await everyone.type('user:offline'), { topic: 'presence', data: { userId: 'bob' } });
});

t.test('presence:query answers in order, caps ids, validates them', async (t) => {
  const h = await startServer(t, { maxPresenceIds: 3 });
  const a = await h.connect('a');
  await h.connect('c');
  t.same((await a.request('presence:query', { userIds: ['c', 'b', 'a'] })).data.online, ['c', 'a']);
  t.equal((await a.request('presence:query', { userIds: ['1', '2', '3', '4'] })).error?.code, 'TOO_MANY_IDS');
  t.equal((await a.request('presence:query', { userIds: ['ok', 'bad id'] })).error?.code, 'INVALID_PAYLOAD');
  a.send({ type: 'presence:query', data: { userIds: ['c'] } });
  t.same((await a.type('ack')).data.online, ['c'], 'answered even without an id');
  t.equal(await h.server.isOnline('c'), true);
  t.equal(await h.server.isOnline('zz'), false);
});
