// Every seed event end to end: notifications, stories, chapters, profiles, subscriptions.
import t from 'tap';
import { startServer } from '../helpers.js';

t.test('a notification reaches every connection of the user, stamped by the server', async (t) => {
  const h = await startServer(t);
  const alice = await h.connect('alice');
  const phone = await h.connect('bob');
  const laptop = await h.connect('bob');
  const carol = await h.connect('carol');
  const ack = await alice.request('send:notification', {
    userId: 'bob',
    from: 'mallory',
    notification: { title: 'Nouveau like', message: 'alice aime votre histoire', type: 'like', data: { storyId: 7 }, from: 'mallory', id: 'forged' },
  });
  t.equal(ack.type, 'ack');
  t.notOk('delivered' in ack.data, 'the ack does not tell how many devices bob has');
  for (const c of [phone, laptop]) {
    const n = await c.type('notification:received');
    t.equal(n.topic, 'user:bob');
    t.equal(n.data.from, 'alice', 'from is the sender sub, never the client value');
    t.equal(n.data.id, ack.data.id, 'server-made id, same on every device');
    t.not(n.data.id, 'forged');
    t.match(n.data, { title: 'Nouveau like', message: 'alice aime votre histoire', type: 'like', data: { storyId: 7 }, origin: 'user' });
    t.type(n.data.ts, 'number');
  }
  t.ok(await carol.none((f) => f.type === 'notification:received'), 'nobody else receives it');
  t.ok(await alice.none((f) => f.type === 'notification:received'), 'not even the sender');
});

t.test('numeric user ids are accepted and sent on as strings; type defaults to info', async (t) => {
  const h = await startServer(t);
  const alice = await h.connect('alice');
  const u123 = await h.connect('123');
  await alice.request('send:notification', { userId: 123, notification: { title: 'Hi', message: '' } });
  const n = await u123.type('notification:received');
  t.equal(n.topic, 'user:123');
  t.equal(n.data.type, 'info');
});

t.test('a notification to an offline user is acknowledged the same as to an online one', async (t) => {
  const h = await startServer(t);
  const alice = await h.connect('alice');
  const ack = await alice.request('send:notification', { userId: 'ghost', notification: { title: 'x', message: 'y' } });
  t.same(Object.keys(ack.data), ['id'], 'only the id: nothing tells whether ghost is online');
});

t.test('story:published reaches stories and the author followers; the author is stamped', async (t) => {
  const h = await startServer(t);
  const author = await h.connect('victor', { roles: ['stories:publish'] });
  const reader = await h.connect('reader');
  const follower = await h.connect('fan');
  t.equal((await follower.request('unsubscribe', { topic: 'stories' })).type, 'ack');
  t.equal((await follower.request('subscribe', { topic: 'author:victor' })).type, 'ack');
  const ack = await author.request('story:published', { id: 1, title: 'Les Misérables', author: 'Victor Hugo', authorId: 'someone-else' });
  t.equal(ack.type, 'ack');
  const s1 = await reader.type('story:new');
  t.equal(s1.topic, 'stories');
  t.match(s1.data, { id: '1', title: 'Les Misérables', author: 'Victor Hugo', authorId: 'victor' });
  const s2 = await follower.type('story:new');
  t.equal(s2.topic, 'author:victor');
  t.equal(s2.data.authorId, 'victor');
  t.ok(await follower.none((f) => f.type === 'story:new'), 'the follower who left stories gets it once');
});

t.test('chapter:published reaches the story readers and author followers, not others', async (t) => {
  const h = await startServer(t);
  const author = await h.connect('victor', { scope: 'stories:publish', stories: ['1'] });
  const reader = await h.connect('reader');
  const other = await h.connect('other');
  await reader.request('subscribe', { topic: 'story:1' });
  await author.request('chapter:published', { storyId: 1, id: 'c2', title: 'Fantine', number: 2 });
  const c = await reader.type('chapter:new');
  t.match(c, { topic: 'story:1', data: { storyId: '1', id: 'c2', title: 'Fantine', number: 2, authorId: 'victor' } });
  t.ok(await other.none((f) => f.type === 'chapter:new'), 'non-readers do not get chapters');
});

t.test('publishing without the permission is refused and nothing is sent', async (t) => {
  const h = await startServer(t);
  const mallory = await h.connect('mallory', { roles: ['reader'] });
  const reader = await h.connect('reader');
  const e1 = await mallory.request('story:published', { id: 1, title: 'spam' });
  t.equal(e1.error?.code, 'FORBIDDEN');
  const e2 = await mallory.request('chapter:published', { storyId: 1, id: 1, title: 'spam' });
  t.equal(e2.error?.code, 'FORBIDDEN');
  t.ok(await reader.none((f) => f.type === 'story:new' || f.type === 'chapter:new'));
  const admin = await h.connect('root', { roles: ['admin'] });
  t.equal((await admin.request('story:published', { id: 2, title: 'ok' })).type, 'ack', 'admin may publish');
});

t.test('profile:updated reaches followers and the user own other devices, not the sender', async (t) => {
  const h = await startServer(t);
  const phone = await h.connect('alice');
  const laptop = await h.connect('alice');
  const fan = await h.connect('fan');
  await fan.request('subscribe', { topic: 'author:alice' });
  await phone.request('profile:updated', { displayName: 'Alice', userId: 'forged' });
  t.match((await laptop.type('profile:updated')).data, { userId: 'alice', displayName: 'Alice' });
  t.match((await fan.type('profile:updated')).data, { userId: 'alice', displayName: 'Alice' });
  t.ok(await phone.none((f) => f.type === 'profile:updated'), 'the sending connection is left out');
});

t.test('story:updated from the backend API reaches stories, story and author topics', async (t) => {
  const h = await startServer(t);
  const reader = await h.connect('reader');
  t.equal(await h.server.broadcastStoryUpdated({ id: '9', title: 'New title' }, 'victor'), 1);
  t.match((await reader.type('story:updated')).data, { id: '9', title: 'New title', authorId: 'victor' });
});

t.test('subscriptions: personal topics private, cap enforced, unsubscribe stops delivery', async (t) => {
  const h = await startServer(t, { maxSubscriptions: 2 });
  const alice = await h.connect('alice');
  t.equal((await alice.request('subscribe', { topic: 'user:alice' })).type, 'ack', 'own personal topic is fine');
  t.equal((await alice.request('subscribe', { topic: 'user:bob' })).error?.code, 'TOPIC_FORBIDDEN');
  t.equal((await alice.request('unsubscribe', { topic: 'user:alice' })).error?.code, 'TOPIC_FORBIDDEN', 'personal topic cannot be left');
  t.equal((await alice.request('subscribe', { topic: 'chat:1' })).error?.code, 'INVALID_TOPIC');
  t.equal((await alice.request('subscribe', { topic: 'story:' })).error?.code, 'INVALID_TOPIC');
  t.equal((await alice.request('subscribe', { topic: 'story:1' })).type, 'ack');
  t.equal((await alice.request('subscribe', { topic: 'story:1' })).type, 'ack', 'again: no-op');
  t.equal((await alice.request('subscribe', { topic: 'story:2' })).type, 'ack');
  t.equal((await alice.request('subscribe', { topic: 'story:3' })).error?.code, 'SUBSCRIPTION_LIMIT');
  t.equal((await alice.request('unsubscribe', { topic: 'story:2' })).type, 'ack');
  t.equal((await alice.request('subscribe', { topic: 'story:3' })).type, 'ack', 'room again after unsubscribe');
  await alice.request('unsubscribe', { topic: 'story:1' });
  h.server.broadcastNewChapter({ storyId: '1', id: '1', title: 'x' }, null);
  t.ok(await alice.none((f) => f.type === 'chapter:new'), 'no delivery after unsubscribe');
});

t.test('auto-subscription to stories can be turned off', async (t) => {
  const h = await startServer(t, { autoSubscribeStories: false });
  const alice = await h.connect('alice');
  h.server.broadcastNewStory({ id: '1', title: 'x' }, null);
  t.ok(await alice.none((f) => f.type === 'story:new'));
  await alice.request('subscribe', { topic: 'stories' });
  h.server.broadcastNewStory({ id: '2', title: 'y' }, null);
  t.equal((await alice.type('story:new')).data.id, '2');
});
