// Operations: health, readiness during drain, Prometheus metrics that move, ADMIN_PORT, SIGTERM, logs.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { MemoryPresence } from '../../src/seams/presence/memory.js';
import t from 'tap';
import { Client, SECRET, expectReject, sign, startServer } from '../helpers.js';
import { WAIT_MS } from '../wait.js';

const KEY = 'test-api-key-0123456789';

function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

t.test('healthz and readyz', async (t) => {
  const h = await startServer(t);
  const base = `http://127.0.0.1:${h.port}`;
  t.equal((await fetch(`${base}/healthz`)).status, 200);
  t.same(await (await fetch(`${base}/readyz`)).json(), { status: 'ready' });
});

t.test('/metrics needs the API key on the public port and its counters move with traffic', async (t) => {
  const h = await startServer(t, { apiKey: KEY, presenceGraceMs: 0 });
  const url = `http://127.0.0.1:${h.port}/metrics`;
  t.equal((await fetch(url)).status, 401, 'no key: 401');
  const scrape = async () => (await fetch(url, { headers: { authorization: `Bearer ${KEY}` } })).text();
  const before = await scrape();
  t.match(before, /# TYPE storywire_connections_open gauge/);
  t.match(before, /storywire_nodejs_eventloop_lag_seconds/, 'event-loop lag');
  t.match(before, /storywire_process_resident_memory_bytes/, 'process memory');

  const author = await h.connect('victor', { roles: ['stories:publish'] });
  const bob = await h.connect('bob');
  await expectReject(Client.open(`${h.url}?token=${await sign('x', {}, -100)}`));
  await expectReject(Client.open(h.url));
  await author.request('ping');
  await author.request('story:published', { id: 1, title: 't' });
  await author.request('send:notification', { userId: 'bob', notification: { title: 'a', message: 'b' } });
  h.server.sendNotificationToUser('bob', { title: 'a', message: 'b', type: 'info', data: undefined });
  author.send('garbage');
  await author.type('error');
  await bob.type('notification:received');

  const after = await scrape();
  t.equal(metric(after, 'storywire_connections_open'), 2);
  t.equal(metric(after, 'storywire_connections_total', 'outcome="accepted"'), 2);
  t.equal(metric(after, 'storywire_connections_total', 'outcome="401"'), 2);
  t.equal(metric(after, 'storywire_messages_in_total', 'type="ping"'), 1);
  t.equal(metric(after, 'storywire_messages_in_total', 'type="story:published"'), 1);
  t.equal(metric(after, 'storywire_messages_rejected_total', 'reason="BAD_JSON"'), 1);
  t.equal(metric(after, 'storywire_publishes_total', 'type="story:new"'), 2, 'stories + author topic');
  t.equal(metric(after, 'storywire_notifications_delivered_total'), 2, 'the client and the backend notification delivered to bob');
  t.equal(metric(after, 'storywire_presence_online_users'), 2);
  t.ok(metric(after, 'storywire_messages_out_total') >= 7, 'connected x2, pong, acks, story:new x2, notifications');
  bob.close();
  await bob.closed;
  // The server sees the close after the client does: wait for it in the metrics themselves.
  const settled = async (pred: (text: string) => boolean): Promise<string> => {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const text = await scrape();
      if (pred(text) || Date.now() > deadline) return text;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const last = await settled((x) => metric(x, 'storywire_connections_open') === 1);
  t.equal(metric(last, 'storywire_connections_open'), 1);
  t.equal(metric(last, 'storywire_connection_closes_total', 'code="1006"'), 1);
  // A close code the client picks is not a label of its own: a stranger cannot grow the metric series.
  author.ws.close(4321, 'mine');
  const odd = await settled((x) => metric(x, 'storywire_connections_open') === 0);
  t.equal(metric(odd, 'storywire_connection_closes_total', 'code="other"'), 1, `an unknown close code is counted as other: ${odd.split('\n').filter((l) => l.startsWith('storywire_connection_closes_total')).join('; ')}`);
  t.notMatch(odd, /code="4321"/);
});

t.test('ADMIN_PORT serves the API and open metrics; the public port does not', async (t) => {
  const h = await startServer(t, { apiKey: KEY, adminPort: 0 });
  t.ok(h.server.adminPort && h.server.adminPort !== h.port);
  const admin = `http://127.0.0.1:${h.server.adminPort}`;
  const pub = `http://127.0.0.1:${h.port}`;
  t.equal((await fetch(`${admin}/metrics`)).status, 200, 'metrics open on the admin port');
  t.equal((await fetch(`${pub}/metrics`)).status, 404, 'no metrics on the public port');
  const post = (base: string) =>
    fetch(`${base}/v1/stories`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: JSON.stringify({ id: 1, title: 't' }) });
  t.equal((await post(admin)).status, 200);
  t.equal((await post(pub)).status, 404);
  t.equal((await fetch(`${pub}/readyz`)).status, 200, 'health on both');
});

t.test('ADMIN_PORT listens on 127.0.0.1 by default (its /metrics is open), whatever HOST is; ADMIN_HOST moves it', async (t) => {
  // Loopback only: the public port on 127.0.0.2, so that "not on HOST" can be seen without leaving the machine.
  const reach = (host: string, port: number) => fetch(`http://${host}:${port}/healthz`).then((r) => r.status, () => 'refused');
  const h = await startServer(t, { apiKey: KEY, adminPort: 0 }, { HOST: '127.0.0.2' });
  t.equal(await reach('127.0.0.2', h.port), 200, 'the public port on HOST');
  t.equal(await reach('127.0.0.2', h.server.adminPort!), 'refused', 'the admin port is not on HOST');
  t.equal(await reach('127.0.0.1', h.server.adminPort!), 200, 'but on 127.0.0.1');
  const moved = await startServer(t, { apiKey: KEY, adminPort: 0 }, { ADMIN_HOST: '127.0.0.2' });
  t.equal(await reach('127.0.0.2', moved.server.adminPort!), 200, 'ADMIN_HOST=127.0.0.2: there');
  t.equal(await reach('127.0.0.1', moved.server.adminPort!), 'refused', 'and only there');
});

t.test('shutdown: readiness goes false, clients closed with 4000 in batches over the drain time', async (t) => {
  const h = await startServer(t, { adminPort: 0 });
  const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => h.connect(`u${i}`)));
  const closedAt: number[] = [];
  const codes = clients.map((c) =>
    c.closed.then((x) => {
      closedAt.push(Date.now());
      return x.code;
    }),
  );
  const readyz = `http://127.0.0.1:${h.server.adminPort}/readyz`;
  t.equal((await fetch(readyz)).status, 200);
  const started = Date.now();
  const done = h.server.shutdown(600);
  t.equal((await fetch(readyz)).status, 503, 'readiness false while draining');
  await expectReject(Client.open(`${h.url}?token=${await sign('late')}`)).catch(() => undefined);
  await done;
  t.same(await Promise.all(codes), Array(20).fill(4000));
  const spread = Math.max(...closedAt) - Math.min(...closedAt);
  t.ok(spread >= 300, `closes spread over the drain (${spread} ms)`);
  t.ok(Date.now() - started < 3000, 'done in time');
});

t.test('SIGTERM on a child-process server: every client gets 4000, exit 0 in time; logs carry no secrets', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('../../src/main.ts', import.meta.url).pathname], {
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: '0', JWT_SECRET: SECRET, API_KEY: KEY, DRAIN_MS: '500', SHUTDOWN_TIMEOUT_MS: '5000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + WAIT_MS;
  while (!/"port":\d+/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const port = Number(/"port":(\d+)/.exec(out)![1]);
  const token = await sign('alice');
  const clients = await Promise.all(Array.from({ length: 10 }, () => Client.open(`ws://127.0.0.1:${port}/ws?token=${token}`)));
  await expectReject(Client.open(`ws://127.0.0.1:${port}/ws?token=${token}x`));
  await fetch(`http://127.0.0.1:${port}/v1/notifications`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ userId: 'alice', notification: { title: 'secret-title', message: 'secret-body' } }),
  });
  const sentAt = Date.now();
  child.kill('SIGTERM');
  const codes = await Promise.all(clients.map((c) => c.closed.then((x) => x.code)));
  t.same(codes, Array(10).fill(4000));
  t.equal(await exited, 0, 'exit 0');
  t.ok(Date.now() - sentAt < 5000, 'within SHUTDOWN_TIMEOUT_MS');
  const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  t.ok(lines.some((l) => l.msg === 'connection open' && l.userId === 'alice' && l.connectionId), 'open logged');
  t.ok(lines.some((l) => l.msg === 'connection closed' && l.code === 4000 && typeof l.durationS === 'number'), 'close logged with code and duration');
  t.ok(lines.some((l) => l.msg === 'upgrade rejected' && l.reason === 'TOKEN_INVALID'), 'rejected upgrade logged with reason');
  t.notOk(out.includes(token.split('.')[2]!), 'no token in logs');
  t.notOk(out.includes(KEY), 'no API key in logs');
  t.notOk(out.includes('secret-body') || out.includes('secret-title'), 'no notification body in logs');
});

t.test('an upgrade still being decided when a shutdown begins is refused (503), not opened after the drain', async (t) => {
  // A public key (the jose path) and a presence store whose count is held: the upgrade waits in between.
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const presence = new MemoryPresence();
  let release: () => void = () => {};
  const held = new Promise<void>((r) => {
    release = r;
  });
  let asked: () => void = () => {};
  const counting = new Promise<void>((r) => {
    asked = r;
  });
  const count = presence.count.bind(presence);
  presence.count = async (userId: string) => {
    asked();
    await held;
    return count(userId);
  };
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const h = await startServer(t, {}, { JWT_SECRET: '', JWT_PUBLIC_KEY: pem }, { presence });
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setSubject('alice').setExpirationTime('10m').sign(privateKey);
  const opening = expectReject(Client.open(`${h.url}?token=${token}`));
  await counting;
  const stopped = h.server.shutdown(0);
  release();
  t.match(await opening, { status: 503, body: { error: { code: 'UNAVAILABLE', message: /shutting down/ } } }, 'refused: the server is shutting down');
  await stopped;
});
