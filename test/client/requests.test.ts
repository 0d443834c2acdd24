import t from 'tap';
import type { StorywireError } from '../../src/client/index.js';
import { client, fakeServer, ManualClock, next } from './util.js';

const fail = (p: Promise<unknown>) => p.then(() => new Error('expected a rejection'), (e: StorywireError) => e);

t.test('a request without a reply times out (sent: true); the connection stays up', async (t) => {
  const fake = await fakeServer(t, () => {});
  const c = client(t, { url: fake.url, token: 'x', requestTimeoutMs: 150 });
  await c.whenOpen();
  const started = Date.now();
  const e = await fail(c.sendNotificationToUser('bob', { title: 't', message: 'm' }));
  t.match(e, { code: 'TIMEOUT', sent: true, fromServer: false });
  t.ok(Date.now() - started >= 140, 'not before the timeout');
  t.equal(c.status, 'open');
  t.match(await fail(c.ping({ timeoutMs: 50 })), { code: 'TIMEOUT' });
});

t.test('offline: queue (bounded, with timeout) or reject, chosen per call', async (t) => {
  const clock = new ManualClock();
  const c = client(t, { url: 'ws://127.0.0.1:1/ws', token: 'x', autoConnect: false, maxQueue: 2, clock });
  const rejected = fail(c.broadcastStoryPublished({ id: 1, title: 't' }, { offline: 'reject' }));
  t.match(await rejected, { code: 'NOT_CONNECTED', sent: false });

  const q1 = fail(c.sendNotificationToUser('bob', { title: 'a', message: '' }, { timeoutMs: 1000 }));
  const q2 = fail(c.sendNotificationToUser('bob', { title: 'b', message: '' }, { timeoutMs: 2000 }));
  t.match(await fail(c.sendNotificationToUser('bob', { title: 'c', message: '' })), { code: 'QUEUE_FULL' });
  t.equal(c.queued, 2);
  clock.advance(1000);
  t.match(await q1, { code: 'TIMEOUT', sent: false }, 'dropped from the queue, never sent');
  t.equal(c.queued, 1);
  c.connect();
  c.close();
  t.match(await q2, { code: 'CLOSED', sent: false }, 'close() rejects what is still queued');
  t.equal(c.queued, 0);
});

t.test('queued requests are written in order once connected; in-flight ones fail with DISCONNECTED', async (t) => {
  const received: string[] = [];
  const fake = await fakeServer(t, (ws) =>
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString()) as { type: string; id: string; data: { notification: { title: string } } };
      if (m.type !== 'send:notification') return;
      received.push(m.data.notification.title);
      if (m.data.notification.title === 'drop') ws.close(4000, 'bye');
      else ws.send(JSON.stringify({ type: 'ack', id: m.id, data: { id: 'n', delivered: 1 }, ts: Date.now() }));
    }),
  );
  const c = client(t, { url: fake.url, token: 'x', autoConnect: false });
  const a = c.sendNotificationToUser('bob', { title: 'one', message: '' });
  const b = c.sendNotificationToUser('bob', { title: 'two', message: '' });
  c.connect();
  t.same(await Promise.all([a, b]), [{ id: 'n', delivered: 1 }, { id: 'n', delivered: 1 }]);
  t.same(received, ['one', 'two']);
  const lost = await fail(c.sendNotificationToUser('bob', { title: 'drop', message: '' }));
  t.match(lost, { code: 'DISCONNECTED', sent: true }, 'the caller learns the outcome is unknown');
  await next(c, 'open');
});

t.test('unsolicited server errors and unknown events are reported, not thrown', async (t) => {
  const fake = await fakeServer(t, (ws) => {
    ws.send(JSON.stringify({ type: 'error', error: { code: 'RATE_LIMITED', message: 'slow down' }, ts: 1 }));
    ws.send(JSON.stringify({ type: 'future:event', topic: 'stories', data: { x: 1 }, ts: 2 }));
  });
  const c = client(t, { url: fake.url, token: 'x' });
  const err = next(c, 'error');
  const ev = next(c, 'event');
  t.match((await err)[0], { code: 'RATE_LIMITED', fromServer: true });
  t.same(await ev, ['future:event', { x: 1 }, { topic: 'stories', ts: 2 }]);
});
