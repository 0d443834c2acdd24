// The inbox-backed notification store against a live server: filled on connect, read state synced across a user's devices.
import t from 'tap';
import { startServer } from '../helpers.js';
import type { NotificationChange } from '../../src/client/index.js';
import { client, fakeServer, gate, next, note, synced, tapped, until } from './util.js';

t.test('the store is filled from the inbox on connect, with read flags and the unread count; no events for old ones', async (t) => {
  const h = await startServer(t);
  const ids: string[] = [];
  for (let i = 1; i <= 4; i++) ids.push(h.server.sendNotificationToUser('bob', note(`n${i}`)).notification.id);
  const other = await h.connect('bob');
  t.same((await other.request('notifications:read', { id: ids[1] })).data, { unreadCount: 3 });

  const bob = client(t, { url: h.url, token: await h.token('bob') });
  const events: string[] = [];
  bob.onNotification((n) => events.push(n.title));
  await synced(bob);
  t.same(bob.notifications.items.map((n) => [n.title, n.read, n.offset]), [['n4', false, 4], ['n3', false, 3], ['n2', true, 2], ['n1', false, 1]]);
  t.equal(bob.notifications.unreadCount, 3);
  t.same(events, [], 'the inbox is not replayed as events');

  const small = client(t, { url: h.url, token: await h.token('bob'), maxNotifications: 2 });
  await synced(small);
  t.same(small.notifications.items.map((n) => n.title), ['n4', 'n3']);
  t.equal(small.notifications.unreadCount, 3, "the server's count includes what the store does not hold");
});

t.test('mark-as-read on one device shows on the other device of the same user', async (t) => {
  const h = await startServer(t);
  // Each store's first sync is awaited from the turn its client is made (an await between the two would let
  // the first one sync unseen).
  const phone = client(t, { url: h.url, token: await h.token('bob') });
  const phoneSynced = synced(phone);
  const laptop = client(t, { url: h.url, token: await h.token('bob') });
  await Promise.all([phoneSynced, synced(laptop)]);
  const ids: string[] = [];
  for (let i = 1; i <= 3; i++) ids.push((await h.server.sendNotificationToUser('bob', note(`n${i}`))).notification.id);
  await until(() => phone.notifications.items.length === 3 && laptop.notifications.items.length === 3, 10_000, 'both got them');

  const remote: NotificationChange[] = [];
  laptop.notifications.onChange((c) => remote.push(c));
  const reads = next(laptop, 'notifications:read');
  t.equal(await phone.markAsRead(ids[0]!), 2, "the server's unread count");
  t.match((await reads)[0], { ids: [ids[0]], unreadCount: 2 });
  t.equal(laptop.notifications.items.find((n) => n.id === ids[0])!.read, true);
  t.equal(laptop.notifications.unreadCount, 2);
  t.match(remote, [{ kind: 'read', source: 'server', notification: { id: ids[0] } }]);

  t.equal(laptop.notifications.markAsRead(ids[2]!), true, "the store's own method syncs too");
  await until(() => phone.notifications.unreadCount === 1, 10_000, 'phone sees it');
  t.equal(phone.notifications.items.find((n) => n.id === ids[2])!.read, true);

  t.equal(await laptop.markAllAsRead(), 0);
  await until(() => phone.notifications.unreadCount === 0, 10_000, 'all read on the phone');
  t.same(phone.notifications.items.map((n) => n.read), [true, true, true]);
  const later = client(t, { url: h.url, token: await h.token('bob') });
  await synced(later);
  t.same(later.notifications.items.map((n) => n.read), [true, true, true], 'a device that connects later sees the same state');
});

t.test('a read made offline is shown at once and sent on the next connection', async (t) => {
  const h = await startServer(t);
  const net = tapped();
  const away = gate();
  const bob = client(t, {
    url: h.url,
    WebSocket: net.WebSocket,
    reconnect: { minDelayMs: 10, maxDelayMs: 50 },
    token: async (ctx) => {
      if (ctx.reason === 'reconnect') await away.wait();
      return h.token('bob');
    },
  });
  await synced(bob);
  const { id } = h.server.sendNotificationToUser('bob', note('n1')).notification;
  await until(() => bob.notifications.items.length === 1, 10_000, 'received');
  away.close();
  net.cut();
  await next(bob, 'disconnected');
  t.match(await bob.refreshNotifications().catch((e: Error) => e), { code: 'NOT_CONNECTED' }, 'a refill asked for offline says so');
  t.equal(await bob.markAsRead(id), 0, 'offline: the local count');
  t.equal(bob.notifications.items[0]!.read, true);
  const refilled = synced(bob);
  away.open();
  await refilled;
  t.equal(bob.notifications.items[0]!.read, true, 'still read over the refill');
  // The read is sent right after the refill; another connection asks the server until it shows (bounded).
  const check = await h.connect('bob');
  let unread = -1;
  for (const deadline = Date.now() + 10_000; unread !== 0 && Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
    unread = (await check.request('notifications:list')).data.unreadCount;
  }
  t.equal(unread, 0, 'the server has it');
});

t.test('a server without an inbox (UNKNOWN_TYPE): the store stays local, as before', async (t) => {
  const fake = await fakeServer(t, (ws) => {
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString()) as { id: string };
      ws.send(JSON.stringify({ type: 'error', id: m.id, error: { code: 'UNKNOWN_TYPE', message: 'unknown type' }, ts: 1 }));
    });
    ws.send(JSON.stringify({ type: 'notification:received', topic: 'user:u', data: { id: 'a', title: 'a', message: '', type: 'info', from: null, ts: 1 }, ts: 1 }));
  });
  const c = client(t, { url: fake.url, token: 'x' });
  const errors: string[] = [];
  c.on('error', (e) => errors.push(e.code));
  await until(() => c.notifications.items.length === 1, 10_000, 'received');
  t.equal(await c.markAsRead('a'), 0);
  t.equal(c.notifications.items[0]!.read, true);
  t.equal(c.notifications.unreadCount, 0);
  t.same(errors, []);
});
