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
