// The dev webhook receiver (DEV_WEBHOOKS, src/api/demo.ts): the server's own events reach it signed, a forged
// or oversized POST is refused, only this machine may use it, and without dev mode it does not exist.
import { request } from 'node:http';
import pino from 'pino';
import t from 'tap';
import WebSocket from 'ws';
import { DEV_WEBHOOK_MAX_BYTES } from '../src/api/demo.js';
import { StorywireClient } from '../src/client/index.js';
import { loadConfig } from '../src/config.js';
import { createServer, type StorywireServer } from '../src/edge/server.js';
import { Signer, generateSecret } from '../src/webhooks/signing.js';
import { SECRET } from './helpers.js';
import { WAIT_MS } from './wait.js';

type Logged = { id: string; type: string; timestamp: string; data: any };

async function devServer(t: { teardown(fn: () => unknown): void }, env: Record<string, string> = {}): Promise<{ server: StorywireServer; base: string }> {
  const server = createServer(loadConfig({ PORT: '0', DEV_WEBHOOKS: '1', PUSH_DELAY_MS: '100', PUSH_COALESCE_MS: '0', ...env }, ['--dev']), { logger: pino({ level: 'silent' }) });
  const port = await server.listen();
  t.teardown(() => server.close());
  return { server, base: `http://127.0.0.1:${port}` };
}

async function logged(base: string): Promise<Logged[]> {
  const res = await fetch(`${base}/dev/webhooks`);
  if (res.status !== 200) throw new Error(`GET /dev/webhooks: ${res.status}`);
  return ((await res.json()) as { events: Logged[] }).events;
}

/** Polls the receiver's log until `pred` holds; rejects after WAIT_MS. */
async function logUntil(base: string, pred: (events: Logged[]) => boolean, what: string): Promise<Logged[]> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const events = await logged(base);
    if (pred(events)) return events;
    if (Date.now() > deadline) throw new Error(`${what}: not in the dev webhook log within ${WAIT_MS} ms (${JSON.stringify(events.map((e) => e.type))})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A raw HTTP request to 127.0.0.1 (node:http: fetch may not set Host as asked). */
function send(base: string, method: string, path: string, headers: Record<string, string>, body = ''): Promise<{ status: number; body: any }> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: { 'content-length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

t.test('DEV_WEBHOOKS: the server\'s own user.online, and the push of a notification to an offline user, newest first', async (t) => {
  const { server, base } = await devServer(t);
  const page = await (await fetch(`${base}/`)).text();
  t.match(page, '<meta name="storywire-dev-webhooks" content="1">', 'the page is told to show its webhook log');
  t.match(page, 'id="webhook-log"');
  t.same(await logged(base), [], 'nothing yet');

  const { token } = (await (await fetch(`${base}/dev/token?user=alice`)).json()) as { token: string };
  const alice = new StorywireClient({ url: `ws://127.0.0.1:${server.port}/ws`, token, WebSocket });
  t.teardown(() => alice.close());
  await alice.whenOpen();
  await logUntil(base, (es) => es.some((e) => e.type === 'user.online' && e.data.userId === 'alice'), 'alice online');

  await server.sendNotificationToUser('bob', { title: 'Nouveau like', message: 'alice aime', type: 'like', data: undefined }).delivered;
  const events = await logUntil(base, (es) => es.some((e) => e.type === 'notification.unread'), 'bob\'s push');
  const push = events.find((e) => e.type === 'notification.unread')!;
  t.match(push.data, { userId: 'bob', count: 1, unreadCount: 1, online: false, notifications: [{ received: false, notification: { title: 'Nouveau like' } }] });
  t.match(push.id, /^msg_[0-9a-f]{32}$/, 'the webhook-id is kept');
  t.ok(Number.isFinite(Date.parse(push.timestamp)));
  const online = events.findIndex((e) => e.type === 'user.online');
  t.ok(events.indexOf(push) < online, 'newest first');
  t.notOk(events.some((e) => e.type === 'notification.unread' && e.data.userId === 'alice'), 'alice (connected, her SDK acknowledges) is not pushed');
});

t.test('a forged, unsigned, stale or oversized POST is refused; a correctly signed one is kept; only from this machine', async (t) => {
  const { server, base } = await devServer(t);
  const body = JSON.stringify({ type: 'user.online', timestamp: new Date().toISOString(), data: { userId: 'mallory' } });
  const headers = (signer: Signer, at = Date.now()) => ({ 'content-type': 'application/json', host: new URL(base).host, ...signer.headers('msg_forged', body, at) });
  const forged = await send(base, 'POST', '/dev/webhooks', headers(new Signer([generateSecret()])), body);
  t.match(forged, { status: 401, body: { error: { code: 'UNAUTHORIZED' } } }, 'signed with another secret');
  t.equal((await send(base, 'POST', '/dev/webhooks', { host: new URL(base).host }, body)).status, 401, 'no signature headers');
  const own = new Signer(server.webhookSecrets);
  t.equal((await send(base, 'POST', '/dev/webhooks', headers(own, Date.now() - 3_600_000), body)).status, 401, 'the right secret, an hour old');
  const tampered = await send(base, 'POST', '/dev/webhooks', headers(own), body.replace('mallory', 'alice'));
  t.equal(tampered.status, 401, 'a body changed after signing');
  t.notOk((await logged(base)).some((e) => e.data?.userId === 'mallory' || e.data?.userId === 'alice'), 'none of them kept');

  const big = 'x'.repeat(DEV_WEBHOOK_MAX_BYTES + 1);
  t.equal((await send(base, 'POST', '/dev/webhooks', headers(own), big)).status, 413, 'a body over the cap');
  t.equal((await send(base, 'POST', '/dev/webhooks', { ...headers(own), host: 'evil.example' }, body)).status, 403, 'a foreign Host (DNS rebinding)');
  t.equal((await send(base, 'GET', '/dev/webhooks', { host: 'evil.example' })).status, 403, 'the log is not read by a foreign Host either');
  t.equal((await send(base, 'POST', '/dev/webhooks', { ...headers(own), 'x-forwarded-for': '203.0.113.9' }, body)).status, 403, 'through a proxy');

  t.equal((await send(base, 'POST', '/dev/webhooks', headers(own), body)).status, 200, 'signed by the server\'s secret');
  t.match((await logged(base))[0], { id: 'msg_forged', type: 'user.online', data: { userId: 'mallory' } });
  const notJson = 'not json';
  t.equal((await send(base, 'POST', '/dev/webhooks', { host: new URL(base).host, ...own.headers('msg_2', notJson) }, notJson)).status, 400, 'signed but not JSON');
});

t.test('the log keeps the last 50 events', async (t) => {
  const { server, base } = await devServer(t);
  const own = new Signer(server.webhookSecrets);
  for (let i = 0; i < 55; i++) {
    const body = JSON.stringify({ type: 'user.online', timestamp: new Date().toISOString(), data: { userId: `u${i}` } });
    t.equal((await send(base, 'POST', '/dev/webhooks', { host: new URL(base).host, ...own.headers(`msg_${i}`, body) }, body)).status, 200);
  }
  const events = await logged(base);
  t.equal(events.length, 50);
  t.equal(events[0]!.data.userId, 'u54');
  t.equal(events[49]!.data.userId, 'u5');
});

t.test('no receiver without DEV_WEBHOOKS, outside dev mode, or with a real URL', async (t) => {
  const plain = createServer(loadConfig({ PORT: '0' }, ['--dev']), { logger: pino({ level: 'silent' }) });
  const prod = createServer(loadConfig({ PORT: '0', JWT_SECRET: SECRET, DEMO_PAGE: 'true' }), { logger: pino({ level: 'silent' }) });
  t.teardown(() => Promise.all([plain.close(), prod.close()]));
  for (const [name, s] of [['dev mode without DEV_WEBHOOKS', plain], ['production', prod]] as const) {
    const base = `http://127.0.0.1:${await s.listen()}`;
    t.equal((await fetch(`${base}/dev/webhooks`)).status, 404, `${name}: GET`);
    t.equal((await fetch(`${base}/dev/webhooks`, { method: 'POST', body: '{}' })).status, 404, `${name}: POST`);
    t.match(await (await fetch(`${base}/`)).text(), '<meta name="storywire-dev-webhooks" content="0">', `${name}: the page hides its webhook log`);
  }
  t.throws(() => loadConfig({ DEV_WEBHOOKS: '1', JWT_SECRET: SECRET }), /DEV_WEBHOOKS needs dev mode/);
  const { base } = await devServer(t, { WEBHOOK_URL: 'http://127.0.0.1:9/hooks' });
  t.equal((await fetch(`${base}/dev/webhooks`)).status, 404, 'WEBHOOK_URL set: events go there, not to the dev receiver');
});
