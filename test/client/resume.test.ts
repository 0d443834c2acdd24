// SDK resume against a live server: cut connections, missed events replayed once and in order, resync on lost history, saved positions.
import t from 'tap';
import { startServer, type Harness } from '../helpers.js';
import type { EventMeta, ResyncInfo, StorywireClient } from '../../src/client/index.js';
import { client, fakeServer, gate, next, reservePort, tapped, until } from './util.js';

const note = (title: string) => ({ title, message: 'm', type: 'like', data: undefined });

/** Everything the app sees: notification titles and chapter ids, with their meta, in arrival order. */
function record(c: StorywireClient): { notes: string[]; chapters: string[]; metas: EventMeta[] } {
  const seen = { notes: [] as string[], chapters: [] as string[], metas: [] as EventMeta[] };
  c.onNotification((n, m) => {
    seen.notes.push(n.title);
    seen.metas.push(m);
  });
  c.onNewChapter((ch, m) => {
    seen.chapters.push(ch.id);
    seen.metas.push(m);
  });
  return seen;
}

/** Bob on a tapped socket whose reconnects wait on a gate, subscribed to story:s1, having seen one notification and one chapter. */
async function bobWithHistory(t: { teardown(fn: () => unknown): void }, h: Harness, transport: 'protocol' | 'query') {
  const net = tapped();
  const away = gate();
  const bob = client(t, {
    url: h.url,
    WebSocket: net.WebSocket,
    tokenTransport: transport,
    reconnect: { minDelayMs: 10, maxDelayMs: 50 },
    token: async (ctx) => {
      if (ctx.reason === 'reconnect') await away.wait();
      return h.token('bob');
    },
  });
  const seen = record(bob);
  await bob.whenOpen();
  await bob.subscribe('story:s1');
  await h.server.sendNotificationToUser('bob', note('n0')).delivered;
  await h.server.broadcastNewChapter({ storyId: 's1', id: 'c0', title: 'zero' }, 'victor');
  await until(() => seen.notes.length === 1 && seen.chapters.length === 1, 3000, 'n0 and c0 live');
  return { bob, seen, net, away };
}

for (const transport of ['protocol', 'query'] as const) {
  t.test(`connection cut (${transport} token): what was published while away arrives once, in order, then live`, async (t) => {
    const h = await startServer(t);
    const { bob, seen, net, away } = await bobWithHistory(t, h, transport);
    const user = bob.positions['user:bob']!;
    t.match(bob.positions, { 'user:bob': { offset: 1 }, 'story:s1': { offset: 1 } });

    away.close();
    const lost = next(bob, 'disconnected');
    net.cut();
    t.match((await lost)[0], { code: 1006, kind: 'network' });
    await until(() => h.server.connectionsOf('bob') === 0, 3000, 'the server saw the connection go');
    for (let i = 1; i <= 5; i++) await h.server.sendNotificationToUser('bob', note(`n${i}`)).delivered;
    for (let i = 1; i <= 3; i++) await h.server.broadcastNewChapter({ storyId: 's1', id: `c${i}`, title: `${i}` }, 'victor');
    const resyncs: ResyncInfo[] = [];
    bob.on('resync', (r) => resyncs.push(r));
    away.open();
    await bob.whenOpen();

    const url = new URL(net.urls[net.urls.length - 1]!);
    t.equal(url.searchParams.get('since'), `${user.epoch}:1`, 'the personal topic resumes with ?since=');
    t.equal(url.searchParams.has('token'), transport === 'query');
    await until(() => seen.notes.length === 6 && seen.chapters.length === 4, 3000, 'the missed events');
    t.same(seen.notes, ['n0', 'n1', 'n2', 'n3', 'n4', 'n5'], 'every missed notification, in order');
    t.same(seen.chapters, ['c0', 'c1', 'c2', 'c3'], 'every missed chapter, through subscribe.since');
    t.same(seen.metas.filter((m) => m.topic === 'user:bob').map((m) => m.offset), [1, 2, 3, 4, 5, 6]);
    t.same(resyncs, [], 'nothing to refetch');

    await h.server.sendNotificationToUser('bob', note('n6')).delivered;
    await until(() => seen.notes.length === 7, 3000, 'live again');
    await new Promise((r) => setTimeout(r, 100));
    t.same(seen.notes.slice(6), ['n6'], 'then live, no duplicate');
    t.same(seen.chapters.length, 4);
    t.match(bob.positions, { 'user:bob': { epoch: user.epoch, offset: 7 }, 'story:s1': { offset: 4 } });
    t.equal(new Set(bob.notifications.items.map((n) => n.id)).size, 7, 'the store holds each once');
  });
}

t.test('a server restart (new epoch) is a resync for each topic; live events of the new epoch are not taken for duplicates', async (t) => {
  const port = await reservePort();
  const first = await startServer(t, {}, { PORT: String(port) });
  const bob = client(t, { url: first.url, token: await first.token('bob'), reconnect: { minDelayMs: 20, maxDelayMs: 100 } });
  const seen = record(bob);
  await bob.whenOpen();
  await bob.subscribe('story:s1');
  for (let i = 1; i <= 3; i++) await first.server.sendNotificationToUser('bob', note(`old${i}`)).delivered;
  await first.server.broadcastNewChapter({ storyId: 's1', id: 'c1', title: 'one' }, 'victor');
  await until(() => seen.notes.length === 3 && seen.chapters.length === 1, 3000, 'before the restart');
  const before = bob.positions;

  const resyncs: ResyncInfo[] = [];
  bob.on('resync', (r) => resyncs.push(r));
  await first.server.close();
  const second = await startServer(t, {}, { PORT: String(port) });
  await until(() => resyncs.length === 2, 5000, 'a resync per topic');
  t.same(resyncs.map((r) => r.topic).sort(), ['story:s1', 'user:bob']);
  for (const r of resyncs) {
    t.equal(r.reason, 'epoch');
    t.same(r.from, before[r.topic], 'from the position held');
    t.not(r.to.epoch, r.from.epoch, 'to the new epoch');
  }
  t.same(bob.positions, Object.fromEntries(resyncs.map((r) => [r.topic, r.to])), 'the new positions are adopted');

  await second.server.sendNotificationToUser('bob', note('new1')).delivered;
  await second.server.broadcastNewChapter({ storyId: 's1', id: 'c2', title: 'two' }, 'victor');
  await until(() => seen.notes.length === 4 && seen.chapters.length === 2, 3000, 'offset 1 of the new epoch is delivered');
  t.same(seen.notes, ['old1', 'old2', 'old3', 'new1']);
  t.same(bob.notifications.items.map((n) => n.title), ['new1'], 'the store holds what the new server holds: the old epoch is gone with its history');
});

t.test('more missed than the history holds: resync (gap), nothing replayed, live continues', async (t) => {
  const h = await startServer(t, { historySize: 3 });
  const { bob, seen, net, away } = await bobWithHistory(t, h, 'protocol');
  away.close();
  net.cut();
  await until(() => h.server.connectionsOf('bob') === 0, 3000, 'away');
  for (let i = 1; i <= 5; i++) await h.server.sendNotificationToUser('bob', note(`n${i}`)).delivered;
  const resync = next(bob, 'resync');
  away.open();
  const [r] = await resync;
  t.match(r, { topic: 'user:bob', reason: 'gap', from: { offset: 1 }, to: { offset: 6 } });
  t.equal(r.to.epoch, r.from.epoch);
  await h.server.sendNotificationToUser('bob', note('n6')).delivered;
  await until(() => seen.notes.length === 2, 3000, 'live');
  t.same(seen.notes, ['n0', 'n6'], 'the app refetches the gap itself');
  t.equal(bob.positions['user:bob']!.offset, 7);
});

t.test('positions saved and passed back as resumeFrom: a new client (app restart) gets what it missed', async (t) => {
  const h = await startServer(t);
  const first = client(t, { url: h.url, token: await h.token('bob') });
  const seen1 = record(first);
  await first.whenOpen();
  await first.subscribe('story:s1');
  await h.server.sendNotificationToUser('bob', note('a')).delivered;
  await h.server.broadcastNewChapter({ storyId: 's1', id: 'c1', title: 'one' }, 'victor');
  await until(() => seen1.notes.length === 1 && seen1.chapters.length === 1, 3000, 'first run');
  const saved = JSON.stringify(first.positions);
  first.close();
  await h.server.sendNotificationToUser('bob', note('b')).delivered;
  await h.server.broadcastNewChapter({ storyId: 's1', id: 'c2', title: 'two' }, 'victor');

  const second = client(t, { url: h.url, token: await h.token('bob'), resumeFrom: JSON.parse(saved), topics: ['story:s1'] });
  const seen2 = record(second);
  await until(() => seen2.notes.length === 1 && seen2.chapters.length === 1, 3000, 'second run');
  t.same(seen2.notes, ['b']);
  t.same(seen2.chapters, ['c2']);
  t.throws(() => client(t, { url: h.url, token: 'x', resumeFrom: { 'user:bob': { epoch: 'no spaces', offset: 1 } } }), TypeError);
  t.throws(() => client(t, { url: h.url, token: 'x', resumeFrom: { stories: { epoch: 'e', offset: 1 } } }), TypeError);
});

t.test('resume: false never asks for a replay, and unsubscribe forgets the position', async (t) => {
  const h = await startServer(t);
  const net = tapped();
  const bob = client(t, { url: h.url, WebSocket: net.WebSocket, token: await h.token('bob'), resume: false, reconnect: { minDelayMs: 10, maxDelayMs: 20 } });
  await bob.whenOpen();
  await bob.subscribe('story:s1');
  await h.server.sendNotificationToUser('bob', note('a')).delivered;
  await until(() => bob.positions['user:bob']?.offset === 1, 3000, 'tracked anyway');
  net.cut();
  await next(bob, 'open');
  t.equal(new URL(net.urls[1]!).searchParams.has('since'), false);
  await bob.unsubscribe('story:s1');
  t.same(Object.keys(bob.positions), ['user:bob']);
});

t.test('duplicates by offset are dropped even if a server sends them; another epoch is adopted', async (t) => {
  const frame = (epoch: string, offset: number) => JSON.stringify({ type: 'notification:received', topic: 'user:u', epoch, offset, data: { id: `${epoch}${offset}`, title: `${epoch}${offset}`, message: '', type: 'info', from: null, ts: 1 }, ts: 1 });
  const fake = await fakeServer(t, (ws) => {
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString()) as { type: string; id: string };
      ws.send(JSON.stringify({ type: 'error', id: m.id, error: { code: 'UNKNOWN_TYPE', message: 'old server' }, ts: 1 }));
    });
    for (const [e, o] of [['E', 1], ['E', 2], ['E', 2], ['E', 1], ['E', 4], ['E', 3], ['E', 3], ['F', 1], ['F', 2]] as const) ws.send(frame(e, o));
  });
  const c = client(t, { url: fake.url, token: 'x' });
  const seen = record(c);
  const errors: string[] = [];
  c.on('error', (e) => errors.push(e.code));
  await until(() => seen.notes.length >= 6, 3000, 'six distinct');
  await new Promise((r) => setTimeout(r, 100));
  t.same(seen.notes, ['E1', 'E2', 'E4', 'E3', 'F1', 'F2'], 'a late offset below the highest is not a duplicate; a new epoch starts over');
  t.same(c.positions, { 'user:u': { epoch: 'F', offset: 2 } });
  t.same(errors, [], 'an older server without the inbox is not an error');
});
