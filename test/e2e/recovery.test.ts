// Nothing lost on reconnect: offsets and epochs, resume with ?since= and subscribe.since, replay races,
// gaps beyond history, restarts, and the notification inbox synced across devices.
import t from 'tap';
import { MemoryHistory } from '../../src/seams/history/memory.js';
import type { AsyncLocalHistory } from '../../src/seams/history/types.js';
import { Client, expectReject, sign, startServer, type Frame, type Harness } from '../helpers.js';
import { WAIT_MS } from '../wait.js';

const note = (i: number) => ({ title: `n${i}`, message: `message ${i}`, type: 'like', data: undefined });

async function connectSince(h: Harness, sub: string, since?: { epoch: string; offset: number }): Promise<Client> {
  const q = since ? `&since=${since.epoch}:${since.offset}` : '';
  const c = await Client.open(`${h.url}?token=${await sign(sub)}${q}`);
  return c;
}

const offsets = (frames: Frame[]) => frames.map((f) => (f as Frame & { offset: number }).offset);

t.test('events on recoverable topics carry epoch and offset; ephemeral ones do not', async (t) => {
  const h = await startServer(t);
  const bob = await h.connect('bob');
  const hello = await bob.type('connected');
  const start = hello.data.topics['user:bob'];
  t.match(start, { epoch: /^[A-Za-z0-9_-]+$/, offset: 0 });
  await h.server.sendNotificationToUser('bob', note(1)).delivered;
  await h.server.sendNotificationToUser('bob', note(2)).delivered;
  const [a, b] = [await bob.type('notification:received'), await bob.type('notification:received')];
  t.match([a, b], [{ epoch: start.epoch, offset: 1 }, { epoch: start.epoch, offset: 2 }]);
  const alice = await h.connect('alice');
  alice.send({ type: 'typing:start', data: { target: 'user:bob' } });
  const typing = (await bob.type('user:typing')) as Frame & { offset?: number };
  t.equal(typing.offset, undefined, 'typing is not numbered');
  h.server.broadcastNewStory({ id: '1', title: 't' }, null);
  t.notOk('offset' in (await bob.type('story:new')), 'stories topic is not recoverable');
});

t.test('disconnect, N published, reconnect with ?since=: exactly those N, in order, then live', async (t) => {
  const h = await startServer(t);
  const first = await h.connect('bob');
  const hello = await first.type('connected');
  await h.server.sendNotificationToUser('bob', note(0)).delivered;
  const seen = (await first.type('notification:received')) as Frame & { epoch: string; offset: number };
  first.close();
  await first.closed;
  for (let i = 1; i <= 7; i++) await h.server.sendNotificationToUser('bob', note(i)).delivered;
  const again = await connectSince(h, 'bob', { epoch: seen.epoch, offset: seen.offset });
  t.teardown(() => again.close());
  const connected = await again.type('connected');
  t.match(connected.data.topics['user:bob'], { epoch: hello.data.topics['user:bob'].epoch, offset: 8, recovered: true, replayed: 7 });
  const replayed = await Promise.all(Array.from({ length: 7 }, () => again.type('notification:received')));
  t.same(offsets(replayed), [2, 3, 4, 5, 6, 7, 8]);
  t.same(replayed.map((f) => f.data.title), ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7']);
  t.equal(again.frames.findIndex((f) => f.type === 'connected'), -1, 'connected came first (already consumed)');
  await h.server.sendNotificationToUser('bob', note(8)).delivered;
  t.equal(((await again.type('notification:received')) as Frame & { offset: number }).offset, 9, 'then live');
  t.ok(await again.none((f) => f.type === 'notification:received'), 'no duplicate');
});

/** A history whose reads take a while, so that publications land while a replay is being prepared. */
function slowReads(inner: MemoryHistory, ms: number): AsyncLocalHistory {
  const delay = () => new Promise((r) => setTimeout(r, ms));
  return {
    kind: 'slow',
    appends: 'local',
    sync: false,
    append: (...a) => inner.append(...a),
    position: async (topic) => {
      await delay();
      return inner.position(topic);
    },
    since: async (...a) => {
      await delay();
      return inner.since(...a);
    },
    latest: (...a) => inner.latest(...a),
    entry: (...a) => inner.entry(...a),
    close: () => inner.close(),
  };
}

t.test('publishing during the replay: no gap, no duplicate, in order', async (t) => {
  const history = slowReads(new MemoryHistory({ size: 1000, ttlMs: 60000, maxTopics: 100 }), 40);
  const { server, url } = await startServer(t, {}, {}, { history });
  let published = 0;
  let stop = false;
  const publisher = (async () => {
    while (!stop && published < 400) {
      await server.sendNotificationToUser('bob', note(++published)).delivered;
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  const received: number[] = [];
  let since: { epoch: string; offset: number } | undefined;
  for (let round = 0; round < 6; round++) {
    const c = await Client.open(`${url}?token=${await sign('bob')}${since ? `&since=${since.epoch}:${since.offset}` : ''}`);
    const hello = await c.type('connected');
    if (since) t.equal(hello.data.topics['user:bob'].recovered, true, `round ${round}: recovered`);
    const epoch = hello.data.topics['user:bob'].epoch;
    c.ws.on('message', () => {});
    await new Promise((r) => setTimeout(r, 30 + round * 10));
    for (const f of c.frames.splice(0)) if (f.type === 'notification:received') received.push((f as Frame & { offset: number }).offset);
    c.close();
    await c.closed;
    for (const f of c.frames.splice(0)) if (f.type === 'notification:received') received.push((f as Frame & { offset: number }).offset);
    since = { epoch, offset: received.length ? received[received.length - 1]! : hello.data.topics['user:bob'].offset };
    await new Promise((r) => setTimeout(r, 15));
  }
  stop = true;
  await publisher;
  const last = await Client.open(`${url}?token=${await sign('bob')}&since=${since!.epoch}:${since!.offset}`);
  t.teardown(() => last.close());
  await last.type('connected');
  const end = Date.now() + WAIT_MS;
  while (Date.now() < end && (received.length === 0 || received[received.length - 1]! < published)) {
    const f = await last.next((x) => x.type === 'notification:received', 1000).catch(() => undefined);
    if (f) received.push((f as Frame & { offset: number }).offset);
  }
  const first = received[0]!;
  t.same(received, Array.from({ length: published - first + 1 }, (_, i) => first + i), `${received.length} offsets consecutive from ${first} to ${published}: no gap, no duplicate`);
});

t.test('a gap beyond the history answers recovered: false', async (t) => {
  const h = await startServer(t, { historySize: 5 });
  const c = await h.connect('bob');
  const start = (await c.type('connected')).data.topics['user:bob'];
  c.close();
  for (let i = 1; i <= 10; i++) await h.server.sendNotificationToUser('bob', note(i)).delivered;
  const again = await connectSince(h, 'bob', { epoch: start.epoch, offset: start.offset });
  t.teardown(() => again.close());
  t.match((await again.type('connected')).data.topics['user:bob'], { epoch: start.epoch, offset: 10, recovered: false, replayed: 0 });
  t.ok(await again.none((f) => f.type === 'notification:received'), 'nothing replayed: the client refetches');
});

t.test('a restarted in-memory node has a new epoch: recovered: false', async (t) => {
  const h1 = await startServer(t);
  const c = await h1.connect('bob');
  await h1.server.sendNotificationToUser('bob', note(1)).delivered;
  const seen = (await c.type('notification:received')) as Frame & { epoch: string; offset: number };
  await h1.server.close();
  const h2 = await startServer(t);
  const again = await connectSince(h2, 'bob', { epoch: seen.epoch, offset: seen.offset });
  t.teardown(() => again.close());
  const pos = (await again.type('connected')).data.topics['user:bob'];
  t.not(pos.epoch, seen.epoch, 'new epoch');
  t.equal(pos.recovered, false);
});

t.test('story topics resume through subscribe.since; the personal topic too while live', async (t) => {
  const h = await startServer(t);
  const reader = await h.connect('reader');
  const sub = await reader.request('subscribe', { topic: 'story:7' });
  t.match(sub.data, { topic: 'story:7', offset: 0 });
  await h.server.broadcastNewChapter({ storyId: '7', id: 'c1', title: 'one' }, 'victor');
  const c1 = (await reader.type('chapter:new')) as Frame & { epoch: string; offset: number };
  t.match(c1, { topic: 'story:7', epoch: sub.data.epoch, offset: 1 });
  reader.close();
  for (let i = 2; i <= 4; i++) await h.server.broadcastNewChapter({ storyId: '7', id: `c${i}`, title: `${i}` }, 'victor');
  const back = await h.connect('reader');
  const ack = await back.request('subscribe', { topic: 'story:7', since: { epoch: c1.epoch, offset: c1.offset } });
  t.match(ack.data, { topic: 'story:7', recovered: true, replayed: 3, offset: 4 });
  const chapters = [await back.type('chapter:new'), await back.type('chapter:new'), await back.type('chapter:new')];
  t.same(chapters.map((f) => f.data.id), ['c2', 'c3', 'c4']);
  t.equal((await back.request('subscribe', { topic: 'story:7', since: { epoch: 'nope', offset: 1 } })).data.recovered, false, 'wrong epoch');
  t.equal((await back.request('subscribe', { topic: 'story:8', since: { epoch: sub.data.epoch, offset: 99 } })).data.recovered, false, 'a position ahead of the topic');
  await back.request('unsubscribe', { topic: 'stories' });
  t.same((await back.request('subscribe', { topic: 'stories', since: { epoch: 'x', offset: 3 } })).data, { topic: 'stories' }, 'live-only topics ignore since: no position');

  const bob = await h.connect('bob');
  const joined = (await bob.type('connected')).data.topics['user:bob'];
  t.equal((await bob.request('subscribe', { topic: 'user:bob', since: { epoch: joined.epoch, offset: 0 } })).data.recovered, true, 'nothing missed');
});

t.test('resume input is validated', async (t) => {
  const h = await startServer(t);
  const err = await expectReject(Client.open(`${h.url}?token=${await sign('bob')}&since=garbage`));
  t.match(err, { status: 400, body: { error: { code: 'INVALID_PAYLOAD' } } });
  const c = await h.connect('bob');
  t.equal((await c.request('subscribe', { topic: 'story:1', since: { epoch: 'x', offset: -1 } })).error?.code, 'INVALID_PAYLOAD');
  t.equal((await c.request('subscribe', { topic: 'story:1', since: 'x' })).error?.code, 'INVALID_PAYLOAD');
});

t.test('the notification inbox: list with read state, read one or all, synced to the other devices', async (t) => {
  const h = await startServer(t);
  const phone = await h.connect('bob');
  const laptop = await h.connect('bob');
  const ids: string[] = [];
  for (let i = 1; i <= 4; i++) ids.push((await h.server.sendNotificationToUser('bob', note(i))).notification.id);
  await h.server.publish('user:bob', 'story:liked', { storyId: '1' });
  const list = await phone.request('notifications:list', { limit: 3 });
  t.equal(list.data.unreadCount, 4);
  t.same(list.data.notifications.map((n: { title: string }) => n.title), ['n4', 'n3', 'n2'], 'newest first, limited, notifications only');
  t.match(list.data.notifications[0], { id: ids[3], read: false, offset: 4, from: null });

  const r1 = await phone.request('notifications:read', { id: ids[1] });
  t.same(r1.data, { unreadCount: 3 });
  t.match((await laptop.type('notifications:read')).data, { ids: [ids[1]], unreadCount: 3 }, 'the other device is told');
  t.ok(await phone.none((f) => f.type === 'notifications:read'), 'not the device that did it');
  const after = await laptop.request('notifications:list');
  t.same(after.data.notifications.map((n: { read: boolean }) => n.read), [false, false, true, false]);

  t.equal((await laptop.request('notifications:read', { id: 'no-such-id' })).error?.code, 'NOT_FOUND');
  t.equal((await laptop.request('notifications:read', {})).error?.code, 'INVALID_PAYLOAD');
  t.same((await laptop.request('notifications:read', { all: true })).data, { unreadCount: 0 });
  t.match((await phone.type('notifications:read')).data, { allUpTo: 5, unreadCount: 0 });
  const tablet = await h.connect('bob');
  t.equal((await tablet.request('notifications:list')).data.unreadCount, 0, 'a device that connects later sees the same state');
});

t.test('read state belongs to the epoch: a personal topic evicted and recreated starts unread', async (t) => {
  // HISTORY_MAX_TOPICS=1: a notification to alice evicts bob's history, whose next event starts a new epoch at offset 1.
  const h = await startServer(t, { historyMaxTopics: 1 });
  const bob = await h.connect('bob');
  for (let i = 1; i <= 3; i++) await h.server.sendNotificationToUser('bob', note(i)).delivered;
  t.same((await bob.request('notifications:read', { all: true })).data, { unreadCount: 0 });
  await h.server.sendNotificationToUser('alice', note(0)).delivered;
  await h.server.sendNotificationToUser('bob', note(4)).delivered;
  const list = await bob.request('notifications:list');
  t.match(list.data.notifications, [{ title: 'n4', offset: 1, read: false }], 'the old allUpTo: 3 does not cover offset 1 of the new epoch');
  t.equal(list.data.unreadCount, 1);
});

t.test('an unsubscribe answered while the subscribe still reads the history is not undone by the join', async (t) => {
  const history = slowReads(new MemoryHistory({ size: 50, ttlMs: 60000, maxTopics: 100 }), 50);
  const { server, url } = await startServer(t, {}, {}, { history });
  const c = await Client.open(`${url}?token=${await sign('bob')}`);
  t.teardown(() => c.close());
  await c.type('connected');
  c.send({ type: 'subscribe', id: 's1', data: { topic: 'story:1' } });
  t.match((await c.request('unsubscribe', { topic: 'story:1' })).data, { topic: 'story:1' }, 'answered before the join ends');
  t.same((await c.next((f) => f.id === 's1')).data, { topic: 'story:1' }, 'the subscribe is answered without a position');
  await server.broadcastNewChapter({ storyId: '1', id: 'c1', title: 'after' }, null);
  t.ok(await c.none((f) => f.type === 'chapter:new'), 'not subscribed');
  c.send({ type: 'subscribe', id: 's2', data: { topic: 'story:1' } });
  t.match((await c.next((f) => f.id === 's2')).data, { topic: 'story:1', offset: 1 }, 'a later subscribe works');
});
