import t from 'tap';
import { startServer } from '../helpers.js';
import type { CloseReason, StorywireError } from '../../src/client/index.js';
import { client, ManualClock, next, proxy, reservePort, until } from './util.js';

t.test('reconnects after a server restart, re-subscribes, flushes the queue; backoff delays are honoured', async (t) => {
  // An explicit port, not 0: see reservePort() for why a restart on a port-0 port fails.
  const port = await reservePort();
  const first = await startServer(t, {}, { PORT: String(port) });
  const token = await first.token('bob');
  // random() = 1 takes the top of every full-jitter draw, so the delays are exactly min(max, min * 2^attempt).
  const bob = client(t, { url: first.url, token, reconnect: { minDelayMs: 100, maxDelayMs: 400 }, clock: { random: () => 1 } });
  await bob.whenOpen();
  await bob.subscribe('story:s1');

  const attempts: number[] = [];
  const delays: number[] = [];
  const reasons: CloseReason[] = [];
  bob.on('connecting', () => attempts.push(Date.now()));
  bob.on('reconnecting', (r) => {
    delays.push(r.delayMs);
    reasons.push(r.reason);
  });

  await first.server.close();
  await until(() => delays.length >= 4, 5000, 'four scheduled retries while the server is down');
  t.match(reasons[0], { code: 4000, kind: 'server', policy: 'now' }, 'shutdown close code read as "reconnect now"');
  t.equal(bob.status, 'reconnecting');
  t.same(delays.slice(0, 4), [100, 100, 200, 400], '"now" delay, then full-jitter caps 100, 200, 400 (max)');
  for (let i = 1; i < Math.min(attempts.length, 4); i++) {
    const gap = attempts[i]! - attempts[i - 1]!;
    t.ok(gap >= delays[i]! - 5, `attempt ${i + 1} came ${gap} ms after the previous one, for a ${delays[i]} ms delay`);
  }
  t.match(reasons[1], { code: 1006, kind: 'network' }, 'refused attempts are network failures');

  const queued = bob.sendNotificationToUser('bob', { title: 'à moi-même', message: 'queued while offline' });
  queued.catch(() => {}); // awaited below; this only keeps an early failure from becoming an unhandled rejection
  const rejected = await bob.ping().catch((e: StorywireError) => e);
  t.match(rejected, { code: 'NOT_CONNECTED', sent: false }, 'ping rejects offline by default');
  t.equal(bob.queued, 1);

  const second = await startServer(t, {}, { PORT: String(port) });
  t.equal(second.port, port, 'restarted on the same port');
  await bob.whenOpen(5000);
  t.match(await queued, { id: String }, 'the queued request was flushed and acknowledged');
  await until(() => bob.notifications.items.length === 1, 3000, 'own notification');

  const alice = client(t, { url: second.url, token: await second.token('alice', { roles: ['stories:publish'], stories: ['s1'] }) });
  await alice.whenOpen();
  const chapter = next(bob, 'chapter:new');
  await alice.broadcastChapterPublished({ storyId: 's1', id: 'c9', title: 'after restart' });
  t.equal((await chapter)[0].id, 'c9', 'story:s1 was subscribed again on the new connection');
});

t.test('backoff on a fake clock: no attempt before its delay, full-jitter draws, cap', async (t) => {
  const port = await reservePort();
  const clock = new ManualClock(0.5);
  const c = client(t, { url: `ws://127.0.0.1:${port}/ws`, token: 'x', clock, reconnect: { minDelayMs: 1000, maxDelayMs: 5000 } });
  const expected = [500, 1000, 2000, 2500, 2500];
  for (const [i, delay] of expected.entries()) {
    const [r] = await next(c, 'reconnecting');
    t.equal(r.delayMs, delay, `attempt ${i + 1}: half of min(5000, 1000 * 2^${i})`);
    t.equal(r.attempt, i + 1);
    let started = false;
    const off = c.on('connecting', () => (started = true));
    clock.advance(delay - 1);
    t.notOk(started, 'nothing before the delay');
    clock.advance(1);
    t.ok(started, 'the attempt starts when the delay is over');
    off();
  }
});

t.test('a dead server (no heartbeats, socket never closed) is detected and replaced', async (t) => {
  const h = await startServer(t, {}, { HEARTBEAT_INTERVAL_MS: '100' });
  const p = await proxy(t, h.port);
  const c = client(t, { url: `ws://127.0.0.1:${p.port}/ws`, token: await h.token('bob'), reconnect: { minDelayMs: 50, maxDelayMs: 100 } });
  const [info] = await next(c, 'open');
  t.equal(info.heartbeatIntervalMs, 100);
  await next(c, 'heartbeat');
  const frozenAt = Date.now();
  p.freeze();
  const [why] = await next(c, 'disconnected', () => true, 5000);
  const silence = Date.now() - frozenAt;
  t.match(why, { kind: 'heartbeat', code: 1006 });
  t.ok(silence >= 2 * 100 + 1000 - 50, `declared dead after ${silence} ms, the default timeout being 1200 ms`);
  await next(c, 'open', () => true, 5000);
  t.equal(p.pipes, 2, 'reconnected through a new connection');
});
