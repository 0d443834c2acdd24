// Liveness: the app-level heartbeat, half-open connections closed in bounded time, silent healthy clients kept.
import net from 'node:net';
import t from 'tap';
import { sign, startServer } from '../helpers.js';

t.test('every connection receives the heartbeat at the configured interval', async (t) => {
  const h = await startServer(t, { heartbeatIntervalMs: 200 });
  const a = await h.connect('a');
  const b = await h.connect('b');
  const a2 = await h.connect('a');
  const hello = await a.type('connected');
  t.equal(hello.data.heartbeatIntervalMs, 200);
  const t0 = Date.now();
  const h1 = await a.type('heartbeat');
  const h2 = await a.type('heartbeat');
  t.type(h1.ts, 'number');
  t.ok(h2.ts - h1.ts >= 150, 'spaced by about the interval');
  t.ok(Date.now() - t0 < 2000);
  await b.type('heartbeat');
  await a2.type('heartbeat');
  t.pass('a second device of the same user gets it too');
});

t.test('a half-open client is closed within the idle bound; a silent healthy client stays', async (t) => {
  const h = await startServer(t, { idleTimeoutS: 8, heartbeatIntervalMs: 1000 });
  const healthy = await h.connect('healthy');
  const token = await sign('halfopen');
  const s = net.connect(h.port, '127.0.0.1');
  t.teardown(() => s.destroy());
  const started = Date.now();
  s.on('connect', () =>
    s.write(`GET /ws?token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`),
  );
  let upgraded = false;
  s.on('data', (d) => {
    if (d.toString('latin1').startsWith('HTTP/1.1 101')) upgraded = true;
  });
  const closedAfter = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('half-open connection not closed within 16 s')), 16000);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
  t.ok(upgraded, 'the raw client was upgraded');
  t.ok(closedAfter <= 8000 + 4000 + 1000, `closed after ${closedAfter} ms (idle 8 s + 4 s granularity)`);
  t.equal(healthy.ws.readyState, healthy.ws.OPEN, 'the silent ws client answered protocol pings and is still open');
  t.equal((await healthy.request('ping')).type, 'pong');
});
