// Idempotency-Key on a single node (memory): the HTTP API, the embedded API, the bounded store.
import t from 'tap';
import { IdempotencyStore, KeyedPublish, idFromKey } from '../src/pubsub/idempotency.js';
import { startServer } from './helpers.js';

const API_KEY = 'idem-test-api-key-0123456789';

t.test('the store: a key for its window, at most maxKeys, the oldest forgotten first', async (t) => {
  const s = new IdempotencyStore(1000, 2);
  t.equal(s.claim('a', 'f', 0), 'new');
  t.equal(s.claim('a', 'f', 10), 'duplicate');
  t.equal(s.claim('a', 'g', 10), 'conflict');
  t.equal(s.claim('b', 'f', 20), 'new');
  t.equal(s.claim('c', 'f', 30), 'new');
  t.equal(s.size, 2, 'bounded');
  t.equal(s.claim('a', 'f', 40), 'new', 'the oldest went first');
  t.equal(s.claim('c', 'f', 1029), 'duplicate');
  t.equal(s.claim('c', 'f', 1031), 'new', 'past its window');
  t.match(idFromKey('notification', 'k'), /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.equal(idFromKey('notification', 'k'), idFromKey('notification', 'k'));
});

t.test('HTTP API and embedded API on one node', async (t) => {
  const h = await startServer(t, {}, { API_KEY });
  const post = async (path: string, body: unknown, key?: string) => {
    const res = await fetch(`http://127.0.0.1:${h.port}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const bob = await h.connect('bob');
  await bob.type('connected');
  t.equal((await bob.request('subscribe', { topic: 'stories' })).type, 'ack');
  const n = { userId: 'bob', notification: { title: 'Nouveau follower', message: 'm' } };

  const first = await post('/v1/notifications', n, 'follow-42');
  t.same([first.status, first.body.delivered, first.body.duplicate], [200, 1, undefined]);
  t.equal(first.body.id, idFromKey('notification', 'follow-42'), 'the id follows from the key');
  const retry = await post('/v1/notifications', n, 'follow-42');
  t.same(retry.body, { id: first.body.id, recipients: 1, delivered: 0, duplicate: true });
  const other = await post('/v1/notifications', { ...n, notification: { title: 'x', message: 'y' } }, 'follow-42');
  t.same([other.status, other.body.error.code], [422, 'IDEMPOTENCY_CONFLICT']);
  await bob.next((f) => f.type === 'notification:received' && f.data.id === first.body.id);
  t.ok(await bob.none((f) => f.type === 'notification:received', 300), 'one notification, not three');
  const list = await bob.request('notifications:list');
  t.equal(list.data.notifications.length, 1, 'stored once');

  for (const key of ['', 'a b', 'é', 'x'.repeat(256)]) {
    const r = await post('/v1/notifications', n, key);
    t.same([r.status, r.body.error?.code], [400, 'INVALID_PAYLOAD'], `key ${JSON.stringify(key.slice(0, 10))} refused, not taken for no key`);
  }

  const batch = [
    { topic: 'stories', type: 'story:liked', data: { id: '1' } },
    { topic: 'stories', type: 'story:liked', data: { id: '2' } },
  ];
  t.same((await post('/v1/publish', batch, 'likes-1')).body, { published: 2, delivered: [1, 1] }, 'two events of one batch, one key');
  t.same((await post('/v1/publish', batch, 'likes-1')).body, { published: 2, delivered: [0, 0], duplicate: true });
  await bob.next((f) => f.type === 'story:liked' && f.data.id === '1');
  await bob.next((f) => f.type === 'story:liked' && f.data.id === '2');
  t.ok(await bob.none((f) => f.type === 'story:liked', 300));

  const story = { id: 's9', title: 'Le phare' };
  t.equal(await h.server.broadcastNewStory(story, null, { idempotencyKey: 'story-s9' }), 1);
  const keyed = new KeyedPublish('story-s9');
  t.equal(await h.server.broadcastNewStory(story, null, keyed), 0, 'the embedded API takes the same key');
  t.ok(keyed.duplicate);
  await bob.type('story:new');
  t.ok(await bob.none((f) => f.type === 'story:new', 300));
  t.throws(() => h.server.broadcastNewStory(story, null, { idempotencyKey: 'bad key' }), { code: 'INVALID_PAYLOAD' });
});
