// The inbox under its bounds (issue #17, items 6 and 8): what it parses and serializes is cached per user and
// stays exact, `limit` is bounded by the history size, and read state lives exactly as long as its history.
import t from 'tap';
import { loadConfig } from '../src/config.js';
import { Inbox } from '../src/features/inbox.js';
import type { PubSub } from '../src/pubsub/pubsub.js';
import { MemoryHistory } from '../src/seams/history/memory.js';
import { MemoryReadState } from '../src/seams/readstate/memory.js';
import { notificationFrame } from '../src/wire/frames.js';
import { SECRET, startServer } from './helpers.js';

const pubsub = { emit: async () => 0 } as unknown as PubSub;

function fixture(opts: { size?: number; maxBytes?: number; cacheBytes?: number } = {}) {
  const size = opts.size ?? 10;
  const history = new MemoryHistory({ size, ttlMs: 60_000, maxTopics: 100, ...(opts.maxBytes === undefined ? {} : { maxBytes: opts.maxBytes }) });
  const reads = MemoryReadState.alongside(history, { maxUsers: 100, maxIds: 20 });
  const inbox = new Inbox(history, reads, pubsub, { historySize: size, cacheBytes: opts.cacheBytes ?? 1 << 20 });
  let n = 0;
  const notify = (user: string, message = 'm') => {
    const id = `n${++n}`;
    const frame = notificationFrame(`user:${user}`, { id, title: `t${n}`, message, type: 'like', data: undefined, from: null, origin: 'system', ts: 1 });
    // The stored frame is numbered between the envelope's head and the rest (wire/position.ts).
    const cut = frame.indexOf(',"data":');
    history.append(`user:${user}`, frame.slice(0, cut), frame.slice(cut));
    return id;
  };
  return { history, reads, inbox, notify };
}

/** Runs fn counting the JSON.parse calls made meanwhile (the inbox parses one stored frame per call). */
async function parses<T>(fn: () => Promise<T>): Promise<{ value: T; parsed: number }> {
  const original = JSON.parse;
  let parsed = 0;
  JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
    parsed++;
    return original(text, reviver);
  }) as typeof JSON.parse;
  try {
    return { value: await fn(), parsed };
  } finally {
    JSON.parse = original;
  }
}

t.test('an unchanged inbox is served again without a parse or a serialization; a new notification parses one frame', async (t) => {
  const { inbox, notify } = fixture();
  for (let i = 0; i < 5; i++) notify('bob');
  const first = await parses(() => inbox.listJson('bob'));
  t.equal(first.parsed, 5, 'the first list parses the five stored frames');
  const again = await parses(() => inbox.listJson('bob'));
  t.equal(again.parsed, 0, 'asked again: nothing parsed');
  t.equal(again.value, first.value, 'the very page served before (not serialized again)');
  notify('bob');
  const next = await parses(() => inbox.listJson('bob'));
  t.equal(next.parsed, 1, 'one new notification: one frame parsed');
  t.equal(JSON.parse(next.value.json).notifications.length, 6);
  t.equal(next.value.bytes, Buffer.byteLength(next.value.json), 'its size in UTF-8 bytes, what the budget is charged');
});

t.test('the cached page follows every change: read state, the limit, frames dropped by the byte bound, a new epoch', async (t) => {
  const { inbox, notify, history } = fixture({ maxBytes: 4096 });
  const ids = [notify('bob', 'é'.repeat(200)), notify('bob'), notify('bob')];
  const page = async (limit?: number) => JSON.parse((await inbox.listJson('bob', limit)).json) as { notifications: { id: string; read: boolean }[]; unreadCount: number; offset: number };
  t.same((await page()).notifications.map((n) => n.read), [false, false, false]);
  t.equal(await inbox.markRead('bob', { id: ids[1]! }), 2);
  t.same((await page()).notifications.map((n) => [n.id, n.read]), [[ids[2], false], [ids[1], true], [ids[0], false]], 'a read shows at once');
  t.same((await page(1)).notifications.map((n) => n.id), [ids[2]], 'another limit, another page');
  t.equal((await page()).unreadCount, 2);
  // Other topics' events push bob's oldest out of HISTORY_MAX_BYTES: his offsets do not change, his inbox does.
  for (let i = 0; i < 12; i++) history.append(`story:${i}`, `{"type":"x","topic":"story:${i}"`, `,"data":{"pad":"${'x'.repeat(200)}"}}`);
  const after = await page();
  t.ok(after.notifications.length < 3, `frames dropped by the byte bound leave the page (${after.notifications.length} left)`);
  t.same(after, await inbox.list('bob'), 'the same as the uncached list');
  await inbox.markRead('bob', { all: true });
  t.equal((await page()).unreadCount, 0);
});

t.test('the cache is bounded: past INBOX_CACHE_BYTES the least recently read user goes; 0 keeps nothing and answers the same', async (t) => {
  const { inbox, notify } = fixture({ cacheBytes: 3000 });
  for (const u of ['a', 'b', 'c', 'd']) for (let i = 0; i < 3; i++) notify(u, 'x'.repeat(100));
  for (const u of ['a', 'b', 'c', 'd']) await inbox.listJson(u);
  t.ok(inbox.cache.size.cost <= 3000, `within the bound (${inbox.cache.size.cost} characters)`);
  t.ok(inbox.cache.size.users < 4, `${inbox.cache.size.users} users kept`);
  t.equal((await parses(() => inbox.listJson('d'))).parsed, 0, 'the most recent one is kept');
  t.equal((await parses(() => inbox.listJson('a'))).parsed, 3, 'the oldest was dropped: parsed again');

  const none = fixture({ cacheBytes: 0 });
  for (let i = 0; i < 3; i++) none.notify('a');
  const page = await none.inbox.listJson('a');
  t.equal((await parses(() => none.inbox.listJson('a'))).parsed, 3, 'no cache: parsed every time');
  t.same(JSON.parse((await none.inbox.listJson('a')).json), JSON.parse(page.json));
  t.same(none.inbox.cache.size, { users: 0, cost: 0 });
});

t.test('a limit above the history size is answered as the history size (it cannot hold more)', async (t) => {
  const { inbox, notify } = fixture({ size: 4 });
  for (let i = 0; i < 6; i++) notify('bob');
  const all = await inbox.listJson('bob', 4);
  t.equal(JSON.parse(all.json).notifications.length, 4);
  t.equal(await inbox.listJson('bob', 1000), all, 'limit 1000 is the same page as limit 4, served from the cache');
  t.equal(inbox.clamp(1000), 4);
});

t.test('over the wire: limit 1000 is accepted and answered with at most the personal history', async (t) => {
  const h = await startServer(t, { historySize: 3 });
  for (let i = 0; i < 5; i++) h.server.sendNotificationToUser('bob', { title: `n${i}`, message: 'm', type: 'info', data: undefined });
  const bob = await h.connect('bob');
  await bob.type('connected');
  const r = await bob.request('notifications:list', { limit: 1000 });
  t.equal(r.type, 'ack');
  t.equal(r.data.notifications.length, 3);
  t.equal(r.data.unreadCount, 3);
  t.same(r.data, (await bob.request('notifications:list', { limit: 3 })).data, 'the same as asking for the history size');
});

t.test('read state of users with nothing to read never pushes out the read state of a notification still held (issue #17, item 8)', async (t) => {
  const h = await startServer(t, { historyMaxTopics: 3 });
  h.server.sendNotificationToUser('alice', { title: 'hello', message: 'm', type: 'info', data: undefined });
  const alice = await h.connect('alice');
  await alice.type('connected');
  t.same((await alice.request('notifications:read', { all: true })).data, { unreadCount: 0 });
  // Three users with empty inboxes press "mark all read" (HISTORY_MAX_TOPICS users with read state, before).
  for (const u of ['bob', 'carol', 'dave']) {
    const c = await h.connect(u);
    await c.type('connected');
    t.same((await c.request('notifications:read', { all: true })).data, { unreadCount: 0 });
  }
  const page = (await alice.request('notifications:list')).data;
  t.equal(page.notifications.length, 1, "alice's history is still held");
  t.same([page.notifications[0].read, page.unreadCount], [true, 0], 'and her notification is still read');
});

t.test('HISTORY_MAX_TOPICS, and with it the users with read state, default to twice MAX_CONNECTIONS, at least 10000 (issue #17, item 8)', async (t) => {
  const load = (env: Record<string, string>) => loadConfig({ JWT_SECRET: SECRET, ...env });
  t.equal(load({}).historyMaxTopics, 2 * load({}).maxConnections, 'the default: every connection\'s personal topic fits twice');
  t.ok(load({}).historyMaxTopics >= load({}).maxConnections);
  t.equal(load({ MAX_CONNECTIONS: '9000' }).historyMaxTopics, 18000);
  t.equal(load({ MAX_CONNECTIONS: '100' }).historyMaxTopics, 10000, 'never below the old default');
  t.equal(load({ MAX_CONNECTIONS: '9000', HISTORY_MAX_TOPICS: '500' }).historyMaxTopics, 500, 'a value set is kept');
});
