import t from 'tap';
import { startServer } from '../helpers.js';
import type { ConnectionStatus, StorywireError } from '../../src/client/index.js';
import { client, next, until } from './util.js';

// A publisher's token lists the stories it owns (`stories` claim): chapters go only into those.
const PUBLISH = { roles: ['stories:publish'], stories: ['s1'] };

t.test('connects with a token provider, reports state, and receives typed events', async (t) => {
  const h = await startServer(t);
  const calls: string[] = [];
  const statuses: ConnectionStatus[] = [];
  const alice = client(t, {
    url: h.url,
    token: async (ctx) => {
      calls.push(ctx.reason);
      return h.token('alice', PUBLISH);
    },
  });
  alice.watchState((s) => statuses.push(s.status));
  const [info] = await next(alice, 'open');
  t.equal(info.userId, 'alice');
  t.ok(info.permissions.includes('stories:publish'));
  t.same(calls, ['connect']);
  t.same(statuses, ['idle', 'connecting', 'open']);
  t.equal(alice.isConnected, true);

  const bob = client(t, { url: h.url, token: await h.token('bob') });
  await bob.whenOpen();
  const story = next(bob, 'story:new');
  const seedStyle: unknown[] = [];
  bob.onNewStory((s) => seedStyle.push(s.title));
  const delivery = await alice.broadcastStoryPublished({ id: 's1', title: 'Il était une fois' });
  t.equal(delivery.id, 's1');
  const [data, meta] = await story;
  t.equal(data.title, 'Il était une fois');
  t.equal(data.authorId, 'alice');
  t.equal(meta.topic, 'stories');
  t.same(seedStyle, ['Il était une fois']);
});

t.test('ping resolves to a round-trip time; requests reject with the server error code', async (t) => {
  const h = await startServer(t);
  const bob = client(t, { url: h.url, token: await h.token('bob') });
  await bob.whenOpen();
  const rtt = await bob.ping();
  t.ok(rtt >= 0 && Number.isFinite(rtt), `rtt ${rtt}`);
  t.equal(await bob.sendPing().then((x) => typeof x), 'number');

  const forbidden = await bob.broadcastStoryPublished({ id: 's1', title: 'x' }).catch((e: StorywireError) => e);
  t.match(forbidden, { name: 'StorywireError', code: 'FORBIDDEN', fromServer: true, sent: true });
  const invalid = await bob.sendNotificationToUser('alice', { title: '', message: 'm' }).catch((e: StorywireError) => e);
  t.match(invalid, { code: 'INVALID_PAYLOAD', fromServer: true });
  const unknown = await bob.request('no:such').catch((e: StorywireError) => e);
  t.match(unknown, { code: 'UNKNOWN_TYPE' });
});

t.test('notifications land in the store, newest first; mark-as-read goes to the server and comes back with its count', async (t) => {
  const h = await startServer(t);
  const alice = client(t, { url: h.url, token: await h.token('alice') });
  const bob = client(t, { url: h.url, token: await h.token('bob'), maxNotifications: 3 });
  const changes: string[] = [];
  const loaded = new Promise<void>((resolve) => bob.notifications.onChange((c) => c.kind === 'synced' && resolve()));
  bob.notifications.onChange((c, s) => changes.push(`${c.kind}:${c.source}:${s.unreadCount}`));
  await Promise.all([alice.whenOpen(), bob.whenOpen(), loaded]);
  const seen: string[] = [];
  bob.onNotification((n) => seen.push(n.title));
  const ids: string[] = [];
  // The backend's first notification makes bob's history: a user-sent one is stored only into an existing one.
  const first = h.server.sendNotificationToUser('bob', { title: 'n1', message: 'hello', type: 'follower', data: { followerId: 1 } }, 'alice');
  await first.delivered;
  ids.push(first.notification.id);
  for (let i = 2; i <= 4; i++) {
    const d = await alice.sendNotificationToUser('bob', { title: `n${i}`, message: 'hello', type: 'follower', data: { followerId: i } });
    t.notOk('delivered' in d, 'the ack does not tell how many devices bob has');
    ids.push(d.id);
  }
  await until(() => seen.length === 4, 3000, 'four notifications');
  const items = bob.notifications.items;
  t.same(items.map((n) => n.title), ['n4', 'n3', 'n2'], 'capped at 3, newest first');
  t.match(items[0], { id: ids[3], from: 'alice', data: { followerId: 4 }, read: false, offset: 4 });
  t.equal(bob.notifications.unreadCount, 4, "the server's count: n1, beyond the store's capacity, is still unread there");
  t.equal(await bob.markAsRead(ids[2]!), 3, "the server's count: n1, beyond the store's capacity, is still unread there");
  t.equal(bob.notifications.items[1]!.read, true);
  t.equal(bob.notifications.unreadCount, 3, 'the store shows the server count');
  t.equal(bob.notifications.markAsRead(ids[2]!), false, 'already read');
  t.equal(await bob.markAllAsRead(), 0);
  t.equal(bob.notifications.unreadCount, 0);
  t.same(changes, [
    'synced:server:0',
    'added:local:1', 'added:local:2', 'added:local:3', 'added:local:4',
    'read:local:3', 'all-read:local:0',
  ]);
});

t.test('subscribe, queryPresence, watchPresence and user:online', async (t) => {
  const h = await startServer(t, {}, { PRESENCE_GRACE_MS: '0' });
  const alice = client(t, { url: h.url, token: await h.token('alice', PUBLISH) });
  const bob = client(t, { url: h.url, token: await h.token('bob') });
  await Promise.all([alice.whenOpen(), bob.whenOpen()]);
  t.same(await bob.queryPresence(['alice', 'carol', 'bob']), ['alice', 'bob']);

  await bob.subscribe('story:s1');
  t.same(bob.subscriptions, ['story:s1']);
  const chapter = next(bob, 'chapter:new');
  await alice.broadcastChapterPublished({ storyId: 's1', id: 'c1', title: 'Chapitre 1', number: 1 });
  const [c] = await chapter;
  t.equal(c.storyId, 's1');
  t.equal(c.number, 1);

  const refused = await bob.subscribe('user:alice').catch((e: StorywireError) => e);
  t.match(refused, { code: 'TOPIC_FORBIDDEN', fromServer: true });
  t.same(bob.subscriptions, ['story:s1'], 'a refused topic is forgotten');

  await bob.watchPresence(['carol']);
  const online = next(bob, 'user:online');
  const carol = client(t, { url: h.url, token: await h.token('carol') });
  await carol.whenOpen();
  t.equal((await online)[0].userId, 'carol');
  const offline = next(bob, 'user:offline');
  carol.close();
  const [off] = await offline;
  t.equal(off.userId, 'carol');
  t.type(off.lastSeen, 'number');

  await bob.unsubscribe('story:s1');
  t.same(bob.subscriptions, ['presence:carol']);
});

t.test('typing is throttled per target on the client and relayed to the target', async (t) => {
  const h = await startServer(t);
  const alice = client(t, { url: h.url, token: await h.token('alice'), typingThrottleMs: 60_000 });
  const bob = client(t, { url: h.url, token: await h.token('bob') });
  await Promise.all([alice.whenOpen(), bob.whenOpen()]);
  const typing = next(bob, 'user:typing');
  t.equal(await alice.startTyping('user:bob'), true);
  t.equal(await alice.startTyping('user:bob'), false, 'throttled: no second frame');
  t.same((await typing)[0], { userId: 'alice', target: 'user:bob' });
  const stopped = next(bob, 'user:stopped_typing');
  t.equal(await alice.stopTyping('user:bob'), true);
  t.equal(await alice.stopTyping('user:bob'), false, 'nothing left to stop');
  t.same((await stopped)[0], { userId: 'alice', target: 'user:bob' });
  t.equal(await alice.startTyping('user:bob'), true, 'a stop resets the throttle');
  const bad = await alice.startTyping('stories').catch((e: StorywireError) => e);
  t.match(bad, { code: 'INVALID_TOPIC' });
});

t.test('the token provider refreshes a live connection through auth before expiry', async (t) => {
  const h = await startServer(t);
  const reasons: string[] = [];
  const alice = client(t, {
    url: h.url,
    // 3 s tokens with a 2.5 s lead: the refresh runs about 1.5 s after opening (half the remaining life).
    refreshLeadMs: 2500,
    token: async (ctx) => {
      reasons.push(ctx.reason);
      return h.token('alice', {}, { expS: 3 });
    },
  });
  await alice.whenOpen();
  const [refreshed] = await next(alice, 'token:refreshed', () => true, 6000);
  t.type(refreshed.exp, 'number');
  t.same(reasons.slice(0, 2), ['connect', 'refresh']);
  t.equal(alice.status, 'open', 'refreshed without reconnecting');

  // A token for another user is not accepted by `auth`: the client reconnects with it instead.
  let user = 'alice';
  const swap = client(t, { url: h.url, token: () => h.token(user) });
  await swap.whenOpen();
  user = 'mallory';
  const reopened = next(swap, 'open', (i) => i.userId === 'mallory');
  await swap.refreshToken();
  t.equal((await reopened)[0].userId, 'mallory');
});
