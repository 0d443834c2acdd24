import t from 'tap';
import { backoffCap, backoffDelay, jwtExp, NotificationStore, RECONNECT_DEFAULTS } from '../../src/client/index.js';
import { refreshDelay } from '../../src/client/token.js';
import { resolveReconnect } from '../../src/client/backoff.js';
import { sign } from '../helpers.js';

t.test('full-jitter backoff: uniform in [0, min(max, min * factor^attempt))', async (t) => {
  const o = resolveReconnect({ minDelayMs: 100, maxDelayMs: 1000 });
  t.same([0, 1, 2, 3, 4, 10].map((a) => backoffCap(a, o)), [100, 200, 400, 800, 1000, 1000]);
  t.equal(backoffDelay(3, o, () => 0), 0);
  t.equal(backoffDelay(3, o, () => 0.999999), 799);
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelay(5, o, Math.random);
    if (d < 0 || d >= 1000) t.fail(`out of range: ${d}`);
  }
  t.equal(RECONNECT_DEFAULTS.minDelayMs, 500);
  t.throws(() => resolveReconnect({ minDelayMs: 10, maxDelayMs: 5 }), RangeError);
});

t.test('notification store: capacity, order, dedupe, read state, events', async (t) => {
  const s = new NotificationStore(2);
  const n = (id: string) => ({ id, title: id, message: '', type: 'info', from: null, ts: 1 });
  const kinds: string[] = [];
  s.onChange((c) => kinds.push(c.kind));
  t.equal(s.add(n('a')), true);
  t.equal(s.add(n('a')), false, 'same id twice is kept once');
  s.add(n('b'));
  s.markAsRead('a');
  s.add(n('c'));
  t.same(s.items.map((x) => x.id), ['c', 'b']);
  t.equal(s.unreadCount, 2, 'dropping the read "a" does not change the unread count');
  s.add(n('d'));
  t.equal(s.unreadCount, 2, 'dropping the unread "b" does');
  t.equal(s.markAsRead('zzz'), false);
  const before = s.items;
  t.equal(s.markAllAsRead(), 2);
  t.not(s.items, before, 'a new array on change');
  t.equal(s.markAllAsRead(), 0);
  s.clear();
  t.same(kinds, ['added', 'added', 'read', 'added', 'added', 'all-read', 'cleared']);
  t.throws(() => new NotificationStore(0));
});

t.test('notification store against an inbox: merge, reads from other devices, counts beyond the capacity', async (t) => {
  const s = new NotificationStore(3);
  const n = (id: string, ts: number, offset?: number, read = false) => ({ id, title: id, message: '', type: 'info', from: null, ts, read, ...(offset ? { offset } : {}) });
  const sent: unknown[] = [];
  s.bindSync((c) => sent.push(c));
  s.add(n('live', 50), 9);
  s.add(n('lost', 5));
  s.merge({ notifications: [n('c', 30, 3), n('b', 20, 2, true), n('a', 10, 1)], unreadCount: 7 });
  t.same(s.items.map((x) => x.id), ['live', 'c', 'b'], 'by ts, newest first, capped; the server copy of b wins');
  t.equal(s.unreadCount, 8, '7 on the server (a included) + live, which it does not know yet');
  s.applyRemoteRead({ ids: ['c'], unreadCount: 7 });
  t.same(s.items.map((x) => x.read), [false, true, true]);
  t.equal(s.unreadCount, 7, 'the server count, which now includes live');
  s.applyRemoteRead({ allUpTo: 2, unreadCount: 1 });
  t.equal(s.unreadCount, 1, 'live (offset 9) stays unread');
  t.same(sent, [], 'nothing sent back for server changes');
  t.equal(s.markAsRead('live'), true);
  t.same(sent, [{ id: 'live' }]);
  s.serverUnread(0);
  t.equal(s.unreadCount, 0);
});

t.test('jwtExp reads exp without verifying; refreshDelay keeps a lead', async (t) => {
  const token = await sign('u', { name: 'Émilie' }, 120);
  const exp = jwtExp(token)!;
  t.ok(Math.abs(exp - (Date.now() / 1000 + 120)) < 5);
  t.equal(jwtExp('garbage'), undefined);
  t.equal(jwtExp('a.b.c'), undefined);
  t.equal(refreshDelay(undefined, 0, 60_000), undefined);
  t.equal(refreshDelay(3600, 0, 60_000), 3_540_000, '60 s before a one-hour expiry');
  t.equal(refreshDelay(10, 0, 60_000), 5_000, 'half the life of a short token');
  t.equal(refreshDelay(0, 5000, 60_000), 1000, 'never sooner than 1 s');
});
