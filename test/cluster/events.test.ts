// Every event type across three nodes on one Redis: each subscriber gets each event exactly once.
import t, { type Test } from 'tap';
import type { Client, Frame } from '../helpers.js';
import { api, skipReason, startNodes, startRedis } from './redis.js';

/** The next frame matching pred, then none like it: exactly once. */
async function once(t: Tap, c: Client, pred: (f: Frame) => boolean, what: string): Promise<Frame> {
  const f = await c.next(pred);
  t.ok(await c.none(pred, 150), `${what}: exactly once`);
  return f;
}
type Tap = Test;

t.test('events across nodes', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const [a, b, c] = await startNodes(t, redis, 3, { presenceGraceMs: 200 });
  const alice = await a!.connect('alice');
  const bob = await b!.connect('bob');
  const bob2 = await c!.connect('bob');
  const carol = await c!.connect('carol', { scope: 'stories:publish', stories: ['42'] });
  for (const cl of [alice, bob, bob2, carol]) await cl.type('connected');
  t.equal((await alice.request('subscribe', { topic: 'author:carol' })).type, 'ack');
  t.equal((await bob.request('subscribe', { topic: 'story:42' })).type, 'ack');
  t.equal((await alice.request('subscribe', { topic: 'author:bob' })).type, 'ack');

  t.test('send:notification from a client on A to a user on B and C', async (t) => {
    const ack = await alice.request('send:notification', { userId: 'bob', notification: { title: 'Hi', message: 'from A' } });
    t.equal(ack.type, 'ack');
    t.same(Object.keys(ack.data), ['id'], 'no device count in the ack');
    for (const cl of [bob, bob2]) t.match((await once(t, cl, (f) => f.type === 'notification:received', 'notification')).data, { title: 'Hi', from: 'alice', origin: 'user' });
  });

  t.test('HTTP API notification on C reaches B and C', async (t) => {
    const r = await api(c!, 'POST', '/v1/notifications', { userId: 'bob', notification: { title: 'API', message: 'x' } });
    t.equal(r.status, 200);
    t.equal(r.body.delivered, 1, 'bob2 on C');
    for (const cl of [bob, bob2]) await once(t, cl, (f) => f.type === 'notification:received' && f.data.title === 'API', 'API notification');
  });

  t.test('embedded API on A', async (t) => {
    const r = a!.server.sendNotificationToUser(['bob', 'alice'], { title: 'Embedded', message: 'x', type: 'info', data: undefined });
    t.equal(await r.delivered, 1, 'alice on A');
    for (const cl of [alice, bob, bob2]) await once(t, cl, (f) => f.type === 'notification:received' && f.data.title === 'Embedded', 'embedded notification');
  });

  t.test('story:published on C: stories and author:carol everywhere', async (t) => {
    t.equal((await carol.request('story:published', { id: '42', title: 'Le Petit Prince' })).type, 'ack');
    await once(t, alice, (f) => f.type === 'story:new' && f.topic === 'stories', 'story:new on stories (A)');
    await once(t, alice, (f) => f.type === 'story:new' && f.topic === 'author:carol', 'story:new on author:carol (A)');
    await once(t, bob, (f) => f.type === 'story:new', 'story:new (B)');
    await once(t, bob2, (f) => f.type === 'story:new', 'story:new (C, same node as the publisher)');
    await once(t, carol, (f) => f.type === 'story:new', 'story:new to the publisher itself');
  });

  t.test('chapter:published, story:updated (HTTP) and a raw publish reach story:42 on B', async (t) => {
    t.equal((await carol.request('chapter:published', { storyId: '42', id: 'c1', title: 'I' })).type, 'ack');
    await once(t, bob, (f) => f.type === 'chapter:new', 'chapter:new');
    await once(t, alice, (f) => f.type === 'chapter:new' && f.topic === 'author:carol', 'chapter:new to followers');
    t.equal((await api(a!, 'POST', '/v1/stories/42/updated', { title: 'v2' })).status, 200);
    await once(t, bob, (f) => f.type === 'story:updated' && f.topic === 'story:42', 'story:updated on story:42');
    await once(t, bob, (f) => f.type === 'story:updated' && f.topic === 'stories', 'story:updated on stories');
    await once(t, alice, (f) => f.type === 'story:updated', 'story:updated on A');
    for (const cl of [bob2, carol]) await once(t, cl, (f) => f.type === 'story:updated', 'story:updated on C');
    t.equal((await api(a!, 'POST', '/v1/stories', { id: '43', title: 'HTTP story', authorId: 'carol' })).status, 200);
    await once(t, bob2, (f) => f.type === 'story:new' && f.data.id === '43', 'HTTP story:new');
    await once(t, alice, (f) => f.type === 'story:new' && f.data.id === '43' && f.topic === 'author:carol', 'HTTP story:new to followers');
    await once(t, alice, (f) => f.type === 'story:new' && f.data.id === '43', 'HTTP story:new on stories (A)');
    for (const cl of [bob, carol]) await once(t, cl, (f) => f.type === 'story:new' && f.data.id === '43', 'HTTP story:new on stories');
    t.equal((await api(a!, 'POST', '/v1/stories/42/chapters', { id: 'c2', title: 'II' })).status, 200);
    await once(t, bob, (f) => f.type === 'chapter:new' && f.data.id === 'c2', 'HTTP chapter:new');
    const raw = await api(c!, 'POST', '/v1/publish', [{ topic: 'story:42', type: 'story:liked', data: { by: 'x' } }]);
    t.equal(raw.status, 200);
    await once(t, bob, (f) => f.type === 'story:liked', 'raw publish');
    await a!.server.publish('story:42', 'comment:new', { text: 'embedded' });
    await once(t, bob, (f) => f.type === 'comment:new', 'embedded raw publish');
  });

  t.test('typing and profile updates', async (t) => {
    t.same((await alice.request('typing:start', { target: 'user:bob' })).data, { relayed: true });
    for (const cl of [bob, bob2]) await once(t, cl, (f) => f.type === 'user:typing', 'user:typing');
    await alice.request('typing:stop', { target: 'user:bob' });
    for (const cl of [bob, bob2]) await once(t, cl, (f) => f.type === 'user:stopped_typing', 'user:stopped_typing');
    t.equal((await bob.request('profile:updated', { displayName: 'Bob' })).type, 'ack');
    await once(t, alice, (f) => f.type === 'profile:updated', 'profile:updated to a follower on A');
    await once(t, bob2, (f) => f.type === 'profile:updated', "profile:updated to bob's other device on C");
    t.ok(await bob.none((f) => f.type === 'profile:updated', 100), 'not to the sending connection');
  });

  t.test('presence events and queries', async (t) => {
    t.equal((await alice.request('subscribe', { topic: 'presence:dave' })).type, 'ack');
    const dave = await c!.connect('dave');
    await once(t, alice, (f) => f.type === 'user:online' && f.data.userId === 'dave', 'user:online');
    t.same((await alice.request('presence:query', { userIds: ['dave', 'bob', 'zed'] })).data.online, ['dave', 'bob']);
    t.same((await api(b!, 'GET', '/v1/presence?userIds=carol,zed,alice')).body, { online: ['carol', 'alice'] });
    dave.close();
    await once(t, alice, (f) => f.type === 'user:offline' && f.data.userId === 'dave', 'user:offline');
  });

  t.test('nothing left over: no duplicate of anything', async (t) => {
    for (const cl of [alice, bob, bob2, carol]) t.same(cl.frames.filter((f) => f.type !== 'heartbeat' && f.type !== 'user:online' && f.type !== 'user:offline'), []);
  });
});
