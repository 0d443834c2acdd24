// InboxSync and the store against a scripted request function and a manual clock: refill races, retries, epochs.
import t from 'tap';
import { INBOX_RETRY, InboxSync } from '../../src/client/inbox.js';
import { NotificationStore, type StoredNotification } from '../../src/client/store.js';
import { StorywireError } from '../../src/client/codes.js';
import { ManualClock } from './util.js';

interface Call {
  type: string;
  data: any;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/** A store wired to an InboxSync whose requests wait until the test answers them. */
function rig(capacity = 50) {
  const calls: Call[] = [];
  const errors: string[] = [];
  const clock = new ManualClock(0.5);
  const store = new NotificationStore(capacity);
  let connected = true;
  const request = <T>(type: string, data: unknown): Promise<T> =>
    connected
      ? new Promise<T>((resolve, reject) => calls.push({ type, data, resolve: resolve as (v: unknown) => void, reject }))
      : Promise.reject(new StorywireError('NOT_CONNECTED', `${type}: not connected`, false, false));
  const sync = new InboxSync(store, request, () => connected, (e) => errors.push(e.code), clock);
  /** Lets promise callbacks run (no time passes on the manual clock). */
  const settle = () => new Promise<void>((r) => setImmediate(r));
  const take = (type: string): Call => {
    const i = calls.findIndex((c) => c.type === type);
    if (i < 0) throw new Error(`no ${type} request waiting (have ${calls.map((c) => c.type).join(', ') || 'none'})`);
    return calls.splice(i, 1)[0]!;
  };
  return {
    calls, errors, clock, store, sync, settle, take,
    has: (type: string) => calls.filter((c) => c.type === type).length,
    /** The data of the first waiting request of a type, left waiting. */
    peek: (type: string): unknown => calls.find((c) => c.type === type)?.data,
    async answer(type: string, data: unknown) {
      take(type).resolve(data);
      await settle();
    },
    async refuse(type: string, code: string) {
      take(type).reject(new StorywireError(code, `${type}: ${code}`, code === code.toUpperCase() && !['TIMEOUT', 'DISCONNECTED'].includes(code), true));
      await settle();
    },
    /** The connection drops: requests on their way fail as the SDK fails them. */
    async drop() {
      connected = false;
      sync.lost();
      for (const c of calls.splice(0)) c.reject(new StorywireError('DISCONNECTED', `${c.type}: dropped`, false, true));
      await settle();
    },
    async open(historySize?: number) {
      connected = true;
      sync.opened(historySize);
      await settle();
    },
  };
}

const item = (id: string, offset: number, read = false): StoredNotification => ({ id, title: id, message: '', type: 'info', from: null, ts: offset, offset, read });
const note = (id: string) => ({ id, title: id, message: '', type: 'info', from: null, ts: 1 });
const page = (epoch: string, offset: number, items: StoredNotification[]) => ({ notifications: items, unreadCount: items.filter((i) => !i.read).length, epoch, offset });
const view = (s: NotificationStore) => s.items.map((n) => `${n.id}${n.read ? '+' : ''}`).join(' ');

t.test('a read in flight survives a refill that answers first (issue 21 item 6)', async (t) => {
  const r = rig();
  await r.open();
  await r.answer('notifications:list', page('E', 3, [item('c', 3), item('b', 2), item('a', 1)]));
  t.equal(view(r.store), 'c b a');

  // The next connection: the refill goes out, then the app reads "b" before the refill answers.
  await r.drop();
  await r.open();
  r.store.markAsRead('b');
  await r.settle();
  t.equal(r.has('notifications:read'), 1, 'the read is on its way');
  await r.answer('notifications:list', page('E', 3, [item('c', 3), item('b', 2), item('a', 1)]));
  t.equal(view(r.store), 'c b+ a', 'the refill, prepared before the read, does not undo it');
  t.equal(r.store.unreadCount, 2);
  t.equal(r.sync.unacknowledged, 1, 'not acknowledged yet');
  await r.answer('notifications:read', { unreadCount: 2 });
  t.equal(r.sync.unacknowledged, 0);
  t.equal(view(r.store), 'c b+ a');
  t.equal(r.store.unreadCount, 2);
  t.equal(r.has('notifications:list'), 0, 'the ack agrees: no further refill');
});

t.test('a read acknowledged while the refill was on its way is applied over its (older) answer', async (t) => {
  const r = rig();
  await r.open();
  await r.answer('notifications:list', page('E', 2, [item('b', 2), item('a', 1)]));
  r.sync.autoLoad();
  r.store.markAsRead('a');
  await r.settle();
  await r.answer('notifications:read', { unreadCount: 1 });
  t.equal(r.sync.unacknowledged, 0);
  await r.answer('notifications:list', page('E', 2, [item('b', 2), item('a', 1)]));
  t.equal(view(r.store), 'b a+');
  t.equal(r.store.unreadCount, 1);
  t.equal(r.has('notifications:list'), 0, 'no refill asked: the store agrees with the server');
});

t.test("another device's read heard while the refill was on its way is applied over its answer", async (t) => {
  const r = rig();
  await r.open();
  await r.answer('notifications:list', page('E', 3, [item('c', 3), item('b', 2), item('a', 1)]));
  r.sync.autoLoad();
  await r.settle();
  r.sync.remote({ ids: ['c'], unreadCount: 2 });
  r.sync.remote({ allUpTo: 1, unreadCount: 1 });
  await r.answer('notifications:list', page('E', 3, [item('c', 3), item('b', 2), item('a', 1)]));
  t.equal(view(r.store), 'c+ b a+');
  t.equal(r.store.unreadCount, 1);
});

t.test('reads made offline are shown at once, re-applied over the refill and sent on the next connection', async (t) => {
  const r = rig();
  await r.open();
  await r.answer('notifications:list', page('E', 2, [item('b', 2), item('a', 1)]));
  await r.drop();
  t.equal(await r.sync.send({ id: 'a' }).then(() => r.store.setRead('a', 'local') || true), true);
  t.equal(r.sync.unacknowledged, 1);
  await r.open();
  t.same(r.calls.map((c) => c.type).sort(), ['notifications:list', 'notifications:read'], 'refill and read sent together');
  await r.answer('notifications:list', page('E', 2, [item('b', 2), item('a', 1)]));
  t.equal(view(r.store), 'b a+');
  await r.answer('notifications:read', { unreadCount: 1 });
  t.equal(r.sync.unacknowledged, 0);
});

t.test('a refill answered UNAVAILABLE is retried with backoff while connected, and stops while not (item 7)', async (t) => {
  const r = rig();
  await r.open();
  await r.refuse('notifications:list', 'UNAVAILABLE');
  t.same(r.errors, [], 'not reported: it is retried');
  t.same(r.clock.pending(), [Math.floor(0.5 * INBOX_RETRY.minDelayMs)], 'one retry, after a full-jitter delay');
  r.clock.advance(125);
  await r.settle();
  await r.refuse('notifications:list', 'UNAVAILABLE');
  t.same(r.clock.pending(), [250], 'the delay grows');
  r.clock.advance(250);
  await r.settle();
  await r.refuse('notifications:list', 'TIMEOUT');
  t.same(r.clock.pending(), [500]);
  for (let i = 0; i < 10; i++) {
    r.clock.advance(r.clock.pending()[0]!);
    await r.settle();
    await r.refuse('notifications:list', 'UNAVAILABLE');
  }
  t.same(r.clock.pending(), [INBOX_RETRY.maxDelayMs / 2], 'bounded by maxDelayMs');
  await r.drop();
  t.same(r.clock.pending(), [], 'no retry while disconnected');
  await r.open();
  t.same(r.clock.pending(), []);
  await r.answer('notifications:list', page('E', 1, [item('a', 1)]));
  t.equal(view(r.store), 'a');
  t.equal(r.has('notifications:list'), 0);

  // An error that retrying cannot cure is reported, not retried.
  r.sync.autoLoad();
  await r.settle();
  await r.refuse('notifications:list', 'INTERNAL');
  t.same(r.errors, ['INTERNAL']);
  t.same(r.clock.pending(), []);
});

t.test('a read refused with UNAVAILABLE is kept and retried with backoff, and on the next connection (item 9)', async (t) => {
  const r = rig();
  await r.open();
  await r.answer('notifications:list', page('E', 2, [item('b', 2), item('a', 1)]));
  r.store.markAsRead('a');
  await r.settle();
  await r.refuse('notifications:read', 'UNAVAILABLE');
  t.equal(view(r.store), 'b a+', 'still read here');
  t.equal(r.sync.unacknowledged, 1, 'kept');
  t.same(r.errors, []);
  t.same(r.clock.pending(), [125]);
  r.clock.advance(125);
  await r.settle();
  await r.refuse('notifications:read', 'UNAVAILABLE');
  t.same(r.clock.pending(), [250], 'backoff');
  await r.drop();
  t.same(r.clock.pending(), []);
  t.equal(r.sync.unacknowledged, 1, 'kept across the disconnection');
  await r.open();
  t.same(r.peek('notifications:read'), { id: 'a' }, 'sent again on the next connection');
  await r.answer('notifications:list', page('E', 2, [item('b', 2), item('a', 1)]));
  t.equal(view(r.store), 'b a+', 'and shown read over the refill');
  t.equal(r.store.unreadCount, 1);

  // The one in flight is lost with the connection; the next connection acknowledges it.
  await r.drop();
  await r.open();
  await r.answer('notifications:list', page('E', 2, [item('b', 2), item('a', 1)]));
  await r.answer('notifications:read', { unreadCount: 1 });
  t.equal(r.sync.unacknowledged, 0);
  t.equal(r.store.unreadCount, 1);

  // markAllAsRead refused the same way is kept too.
  r.store.markAllAsRead();
  await r.settle();
  await r.refuse('notifications:read', 'UNAVAILABLE');
  t.equal(r.sync.unacknowledged, 1);
  r.clock.advance(r.clock.pending()[0]!);
  await r.settle();
  t.same(r.peek('notifications:read'), { all: true });
});

t.test('after the history was renewed the store holds exactly the server inbox, plus what came after its answer (item 8)', async (t) => {
  const r = rig();
  await r.open(50);
  await r.answer('notifications:list', page('OLD', 5, [5, 4, 3, 2, 1].map((o) => item(`o${o}`, o))));
  t.equal(r.store.unreadCount, 5);
  // The server lost its history (Redis restarted empty): live events now carry another epoch. One of them
  // tells the client: it refills.
  r.store.add(note('n1'), 1, 'NEW');
  r.sync.position('NEW', 1);
  await r.settle();
  t.equal(r.has('notifications:list'), 1, 'a new epoch on a live event asks for a refill');
  r.store.add(note('n2'), 2, 'NEW');
  r.sync.position('NEW', 2);
  r.store.add(note('n3'), 3, 'NEW');
  r.sync.position('NEW', 3);
  await r.settle();
  t.equal(r.has('notifications:list'), 1, 'once per new epoch');
  // The server answered at offset 2: n3 arrived after its answer and stays; o1..o5 are gone from the server.
  await r.answer('notifications:list', page('NEW', 2, [item('n2', 2), item('n1', 1, true)]));
  t.equal(view(r.store), 'n3 n2 n1+');
  t.equal(r.store.unreadCount, 2);

  // Items of another epoch arriving while the refill is on its way are dropped with it.
  r.sync.autoLoad();
  await r.settle();
  r.store.add(note('stale'), 9, 'OLD');
  await r.answer('notifications:list', page('NEW', 3, [item('n3', 3), item('n2', 2), item('n1', 1, true)]));
  t.equal(view(r.store), 'n3 n2 n1+');
  t.equal(r.store.unreadCount, 2);
});

t.test('an empty inbox after a renewal empties the store, unread count included', async (t) => {
  const r = rig();
  await r.open();
  await r.answer('notifications:list', page('OLD', 42, Array.from({ length: 42 }, (_, i) => item(`o${42 - i}`, 42 - i))));
  t.equal(r.store.unreadCount, 42);
  await r.drop();
  await r.open();
  await r.answer('notifications:list', { notifications: [], unreadCount: 0, epoch: 'NEW', offset: 0 });
  t.same(r.store.items, []);
  t.equal(r.store.unreadCount, 0);
});

t.test('a server count that differs from the store once nothing is in flight asks for a refill', async (t) => {
  const r = rig();
  await r.open();
  await r.answer('notifications:list', page('E', 2, [item('b', 2), item('a', 1)]));
  r.store.markAsRead('a');
  await r.settle();
  // The server also marked something the store does not know about (say, a notification still on its way).
  await r.answer('notifications:read', { unreadCount: 2 });
  t.equal(r.store.unreadCount, 1, 'not adopted blindly');
  t.equal(r.has('notifications:list'), 1, 'refill asked');
  await r.answer('notifications:list', page('E', 3, [item('c', 3), item('b', 2), item('a', 1, true)]));
  t.equal(view(r.store), 'c b a+');
  t.equal(r.store.unreadCount, 2);
  // A remote read whose count agrees asks nothing.
  r.sync.remote({ ids: ['c'], unreadCount: 1 });
  await r.settle();
  t.equal(r.has('notifications:list'), 0);
});

t.test('NOT_FOUND on a read: dropped (the server no longer holds it) and the store refilled', async (t) => {
  const r = rig();
  await r.open();
  await r.answer('notifications:list', page('E', 1, [item('a', 1)]));
  r.store.markAsRead('a');
  await r.settle();
  await r.refuse('notifications:read', 'NOT_FOUND');
  t.equal(r.sync.unacknowledged, 0);
  t.same(r.errors, []);
  await r.answer('notifications:list', { notifications: [], unreadCount: 0, epoch: 'E2', offset: 0 });
  t.same(r.store.items, []);
});

t.test('notifications that fell out of the server history (historySize) leave the store', async (t) => {
  const r = rig();
  await r.open(3);
  await r.answer('notifications:list', page('E', 3, [item('c', 3), item('b', 2), item('a', 1)]));
  r.store.add(note('d'), 4, 'E');
  r.sync.position('E', 4);
  t.equal(view(r.store), 'd c b', 'a (offset 1) is out of the last 3 offsets');
  t.equal(r.store.unreadCount, 3);
  r.sync.position('E', 6); // two events of another kind (e.g. profile sync) on the topic
  t.equal(view(r.store), 'd');
  t.equal(r.store.unreadCount, 1);
});

t.test('a page without a position (a server without history): local notifications stay, as before', async (t) => {
  const r = rig();
  await r.open();
  r.store.add(note('local'));
  await r.answer('notifications:list', { notifications: [{ ...note('x'), ts: 0, read: false }], unreadCount: 1 });
  t.equal(view(r.store), 'local x');
  t.equal(r.store.unreadCount, 2);
  r.store.markAsRead('x');
  await r.settle();
  await r.answer('notifications:read', { unreadCount: 1 });
  t.equal(r.store.unreadCount, 1);
  t.equal(r.has('notifications:list'), 0, 'counts adopted as before, no refill');
});

t.test('UNKNOWN_TYPE: the store stays local, reads are not kept', async (t) => {
  const r = rig();
  await r.open();
  await r.refuse('notifications:list', 'UNKNOWN_TYPE');
  r.store.add(note('a'));
  r.store.markAsRead('a');
  await r.settle();
  await r.refuse('notifications:read', 'UNKNOWN_TYPE');
  t.equal(r.sync.unacknowledged, 0);
  t.same(r.errors, []);
  r.sync.position('E', 1);
  await r.settle();
  t.equal(r.has('notifications:list'), 0);
});

t.test('mark-all acknowledged while a refill was on its way: applied over it, then checked once more', async (t) => {
  const r = rig();
  await r.open();
  await r.answer('notifications:list', page('E', 2, [item('b', 2), item('a', 1)]));
  r.sync.autoLoad();
  r.store.markAllAsRead();
  await r.settle();
  await r.answer('notifications:read', { unreadCount: 0 });
  await r.answer('notifications:list', page('E', 2, [item('b', 2), item('a', 1)]));
  t.equal(view(r.store), 'b+ a+', 'the older answer does not undo it');
  t.equal(r.store.unreadCount, 0);
  t.equal(r.has('notifications:list'), 1, 'the offset it covered is unknown here: one more refill');
  await r.answer('notifications:list', page('E', 3, [item('c', 3), item('b', 2, true), item('a', 1, true)]));
  t.equal(view(r.store), 'c b+ a+', 'what came after it shows unread');
  t.equal(r.store.unreadCount, 1);
  t.equal(r.has('notifications:list'), 0);
});

t.test("another device's allUpTo heard across a renewal is not applied to the new epoch's offsets", async (t) => {
  const r = rig();
  await r.open();
  await r.answer('notifications:list', page('OLD', 9, [item('z', 9)]));
  r.sync.autoLoad();
  await r.settle();
  r.sync.remote({ allUpTo: 9, unreadCount: 0 });
  await r.answer('notifications:list', page('NEW', 2, [item('b', 2), item('a', 1)]));
  t.equal(view(r.store), 'b a');
  t.equal(r.store.unreadCount, 2);
});

t.test('a server count is not checked while reads are still on their way', async (t) => {
  const r = rig();
  await r.open();
  await r.answer('notifications:list', page('E', 3, [item('c', 3), item('b', 2), item('a', 1)]));
  r.store.markAsRead('a');
  r.store.markAsRead('b');
  await r.settle();
  await r.answer('notifications:read', { unreadCount: 2 }); // the server had applied "a" only
  t.equal(r.has('notifications:list'), 0, 'the other read settles it');
  await r.answer('notifications:read', { unreadCount: 1 });
  t.equal(r.has('notifications:list'), 0);
  t.equal(r.store.unreadCount, 1);
});

t.test('a refusal that retrying cannot cure: the promise rejects and the store is refilled to the server state', async (t) => {
  const r = rig();
  await r.open();
  await r.answer('notifications:list', page('E', 1, [item('a', 1)]));
  r.store.setRead('a', 'local');
  const p = r.sync.send({ id: 'a' }).catch((e: StorywireError) => e);
  await r.settle();
  await r.refuse('notifications:read', 'INTERNAL');
  t.match(await p, { code: 'INTERNAL' }, 'the caller hears it');
  t.equal(r.sync.unacknowledged, 0);
  await r.answer('notifications:list', page('E', 1, [item('a', 1)]));
  t.equal(view(r.store), 'a', 'unread, as on the server');
  t.equal(r.store.unreadCount, 1);
});

t.test('a store smaller than the inbox: the page lists the whole inbox, so the unread ones beyond it are known and counted exactly', async (t) => {
  const r = rig(2);
  await r.open(4);
  t.same(r.peek('notifications:list'), { limit: 4 }, 'asks for the whole inbox (historySize)');
  await r.answer('notifications:list', page('E', 4, [item('d', 4), item('c', 3), item('b', 2), item('a', 1)]));
  t.equal(view(r.store), 'd c');
  t.equal(r.store.unreadCount, 4);
  // e arrives: a (offset 1) falls out of the server's last 4 offsets, c falls out of the store but not of the server.
  r.sync.position('E', 5);
  r.store.add(note('e'), 5, 'E');
  t.equal(view(r.store), 'e d');
  t.equal(r.store.unreadCount, 4, 'b c d e on the server');
  r.sync.remote({ ids: ['b'], unreadCount: 3 });
  t.equal(r.store.unreadCount, 3, 'a read of one the store does not show');
  r.sync.position('E', 7); // two events of another kind: b and c fall out of the server too
  t.equal(r.store.unreadCount, 2);
  r.sync.remote({ allUpTo: 7, unreadCount: 0 });
  t.equal(r.store.unreadCount, 0);
  await r.settle();
  t.equal(r.has('notifications:list'), 0, 'every server count agreed');
});
