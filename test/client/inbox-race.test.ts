// The inbox refill against reads on a live single node: a read sent right after `open` races the refill and
// must not be undone by it; two devices of one user end with the same store as the server's inbox.
import t from 'tap';
import { startServer } from '../helpers.js';
import { inboxDifferences } from '../../src/client/index.js';
import { client, gate, next, note, synced, tapped, until } from './util.js';

t.test('a read sent right after open, racing the refill, is not undone by it (issue 21 item 6)', async (t) => {
  const h = await startServer(t);
  const net = tapped();
  const away = gate();
  const phone = client(t, {
    url: h.url,
    WebSocket: net.WebSocket,
    reconnect: { minDelayMs: 10, maxDelayMs: 50 },
    token: async (ctx) => {
      if (ctx.reason === 'reconnect') await away.wait();
      return h.token('bob');
    },
  });
  // Awaited from the turn the client is made: the await of the laptop's token could let the phone sync unseen.
  const phoneSynced = synced(phone);
  const laptop = client(t, { url: h.url, token: await h.token('bob') });
  await Promise.all([phoneSynced, synced(laptop)]);
  for (let i = 1; i <= 3; i++) h.server.sendNotificationToUser('bob', note(`before${i}`));
  await until(() => phone.notifications.items.length === 3, 10_000, 'phone got them');

  // Away for a while: three more notifications are replayed at resume, after `connected`, that is after
  // the SDK sent its refill. The app reads each one as it arrives (a user tapping a push), and also one
  // it already held, from its `open` listener.
  away.close();
  net.cut();
  await next(phone, 'disconnected');
  const missed: string[] = [];
  for (let i = 1; i <= 3; i++) missed.push(h.server.sendNotificationToUser('bob', note(`missed${i}`)).notification.id);
  const readAtOpen = phone.notifications.items.find((n) => n.title === 'before2')!.id;
  const acks: Promise<number>[] = [];
  const offOpen = phone.on('open', () => acks.push(phone.markAsRead(readAtOpen)));
  const offNote = phone.onNotification((n) => {
    if (n.title === 'missed2') acks.push(phone.markAsRead(n.id));
  });
  // The refill answers first (it was sent before the reads): without the fix the store showed them unread again.
  const refill = synced(phone);
  away.open();
  await refill;
  await until(() => acks.length === 2, 10_000, 'both reads sent');
  const counts = await Promise.all(acks);
  offOpen();
  offNote();
  t.equal(counts[counts.length - 1], 4, "the server's count after both reads");
  const byTitle = Object.fromEntries(phone.notifications.items.map((n) => [n.title, n.read]));
  t.same(byTitle, { missed3: false, missed2: true, missed1: false, before3: false, before2: true, before1: false });
  t.equal(phone.notifications.unreadCount, 4, 'the badge agrees with the server');

  await until(() => laptop.notifications.unreadCount === 4, 10_000, 'the other device applied both reads');
  t.same(await inboxDifferences(phone), [], 'phone = the server inbox');
  t.same(await inboxDifferences(laptop), [], 'laptop = the server inbox');
  t.same(phone.notifications.items.map((n) => [n.id, n.read]), laptop.notifications.items.map((n) => [n.id, n.read]), 'the two devices agree');
});

t.test('inboxDifferences names what differs', async (t) => {
  const h = await startServer(t);
  const bob = client(t, { url: h.url, token: await h.token('bob') });
  await synced(bob);
  const { id } = h.server.sendNotificationToUser('bob', note('n1')).notification;
  await until(() => bob.notifications.items.length === 1, 10_000, 'received');
  t.same(await inboxDifferences(bob), []);
  bob.notifications.setRead(id, 'local'); // behind the server's back
  t.match(await inboxDifferences(bob), [/read/, /unreadCount/]);
});
