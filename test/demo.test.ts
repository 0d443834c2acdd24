import { request } from 'node:http';
import { networkInterfaces } from 'node:os';
import pino from 'pino';
import WebSocket from 'ws';
import t from 'tap';
import { loadConfig } from '../src/config.js';
import { devTokenRefusal } from '../src/api/demo.js';
import { createServer } from '../src/edge/server.js';
import { StorywireClient } from '../src/client/index.js';
import { SECRET, startServer } from './helpers.js';

t.test('DEMO_PAGE defaults to on in dev mode, off otherwise (whatever NODE_ENV says), and can be set either way', async (t) => {
  t.equal(loadConfig({ JWT_SECRET: SECRET, STORYWIRE_DEV: '1' }).demoPage, true);
  t.equal(loadConfig({ JWT_SECRET: SECRET }).demoPage, false);
  t.equal(loadConfig({ JWT_SECRET: SECRET, NODE_ENV: 'development' }).demoPage, false);
  t.equal(loadConfig({ JWT_SECRET: SECRET, DEMO_PAGE: 'true' }).demoPage, true);
  t.equal(loadConfig({ JWT_SECRET: SECRET, STORYWIRE_DEV: '1', DEMO_PAGE: 'off' }).demoPage, false);
  t.throws(() => loadConfig({ DEMO_PAGE: 'maybe' }), /DEMO_PAGE must be true or false/);
});

t.test('with a JWT key: the page and the SDK modules, but no dev tokens', async (t) => {
  const h = await startServer(t);
  const base = `http://127.0.0.1:${h.port}`;
  const page = await fetch(`${base}/`);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /text\/html/);
  t.match(page.headers.get('content-security-policy'), /default-src 'self'/);
  const html = await page.text();
  t.match(html, '<meta name="storywire-ws-path" content="/ws">');
  t.match(html, '<meta name="storywire-dev" content="0">');
  const sdk = await fetch(`${base}/client/index.js`);
  t.equal(sdk.status, 200, 'dist/client/index.js is served (npm ci builds dist/)');
  t.match(sdk.headers.get('content-type'), /text\/javascript/);
  t.match(await sdk.text(), /export function connect/);
  t.equal((await fetch(`${base}/demo/app.js`)).status, 200);
  t.equal((await fetch(`${base}/demo/page.js`)).status, 404, 'only the page script is served from dist/demo');
  const codes = await fetch(`${base}/wire/codes.js`);
  t.equal(codes.status, 200, 'the wire code tables the SDK imports (../wire/codes.js) are served too');
  t.match(await codes.text(), /reconnectPolicy/);
  t.equal((await fetch(`${base}/client/index.js.map`)).status, 404);
  t.equal((await fetch(`${base}/client/..%2Fserver.js`)).status, 404);
  const dev = await fetch(`${base}/dev/token?user=alice`);
  t.equal(dev.status, 404);
  t.match(await dev.json(), { error: { code: 'NOT_FOUND' } });
});

t.test('DEMO_PAGE=false: none of the routes exist', async (t) => {
  const h = await startServer(t, {}, { DEMO_PAGE: 'false' });
  for (const path of ['/', '/client/index.js', '/wire/codes.js', '/dev/token?user=a']) t.equal((await fetch(`http://127.0.0.1:${h.port}${path}`)).status, 404, path);
});

t.test('dev mode: /dev/token mints a publishing token for a name', async (t) => {
  const server = createServer(loadConfig({ PORT: '0' }, ['--dev']), { logger: pino({ level: 'silent' }) });
  const port = await server.listen();
  t.teardown(() => server.close());
  t.ok(server.devMode);
  const bad = await fetch(`http://127.0.0.1:${port}/dev/token?user=${encodeURIComponent('no spaces')}`);
  t.equal(bad.status, 400);
  t.equal((await fetch(`http://127.0.0.1:${port}/dev/token`)).status, 400, 'a name is required');
  const res = await fetch(`http://127.0.0.1:${port}/dev/token?user=alice`);
  t.equal(res.status, 200);
  t.equal(res.headers.get('cache-control'), 'no-store');
  const { token, userId } = (await res.json()) as { token: string; userId: string };
  t.equal(userId, 'alice');
  const c = new StorywireClient({ url: `ws://127.0.0.1:${port}/ws`, token, WebSocket });
  t.teardown(() => c.close());
  const info = await c.whenOpen(5000);
  t.equal(info.userId, 'alice');
  t.ok(info.permissions.includes('stories:publish'));
  t.match(await (await fetch(`http://127.0.0.1:${port}/`)).text(), '<meta name="storywire-dev" content="1">');
});

/** This machine's first address that is not loopback (the peer address of a connection made to it). */
function outsideAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
}

/** GET on 127.0.0.1:port with the given headers (node:http: fetch may not set Host). */
function get(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('dev mode: /dev/token only to this machine: a loopback peer and Host, no proxy header', async (t) => {
  const server = createServer(loadConfig({ HOST: '0.0.0.0', PORT: '0' }, ['--dev']), { logger: pino({ level: 'silent' }) });
  const port = await server.listen();
  t.teardown(() => server.close());
  t.equal((await get(port, '/dev/token?user=alice', { host: `localhost:${port}` })).status, 200, 'Host localhost');
  t.equal((await get(port, '/dev/token?user=alice', { host: `127.0.0.1:${port}` })).status, 200, 'Host 127.0.0.1');
  const rebound = await get(port, '/dev/token?user=alice', { host: `evil.example:${port}` });
  t.match(rebound, { status: 403, body: { error: { code: 'FORBIDDEN', message: /loopback Host/ } } }, 'a DNS-rebinding page (foreign Host) is refused');
  for (const h of ['x-forwarded-for', 'forwarded', 'x-real-ip']) {
    t.match(await get(port, '/dev/token?user=alice', { host: 'localhost', [h]: '203.0.113.9' }), { status: 403, body: { error: { code: 'FORBIDDEN', message: /through a proxy/ } } }, `${h}: refused`);
  }
  const outside = outsideAddress();
  if (outside === undefined) {
    t.fail('this test needs a non-loopback IPv4 interface to connect from');
    return;
  }
  const res = await fetch(`http://${outside}:${port}/dev/token?user=alice`);
  t.equal(res.status, 403, `a peer at ${outside} is refused`);
  t.match(await res.json(), { error: { code: 'FORBIDDEN', message: /loopback peers only/ } });
  t.equal((await fetch(`http://${outside}:${port}/`)).status, 200, 'the demo page itself is served to it (HOST=0.0.0.0 was asked for)');
});

t.test('devTokenRefusal: IPv4, IPv6 as uWS writes it, IPv4-mapped', async (t) => {
  const header = (host: string) => (name: string) => (name === 'host' ? host : '');
  for (const peer of ['127.0.0.1', '127.1.2.3', '0000:0000:0000:0000:0000:0000:0000:0001', '0000:0000:0000:0000:0000:ffff:7f00:0001']) {
    t.equal(devTokenRefusal(peer, header('localhost:9001')), undefined, `${peer}: served`);
  }
  for (const peer of ['10.0.0.1', '192.0.2.2', '0000:0000:0000:0000:0000:ffff:0a00:0001', 'fd00:0000:0000:0000:0000:0000:0000:0002', '']) {
    t.match(devTokenRefusal(peer, header('localhost')), /loopback peers only/, `${peer || '(empty)'}: refused`);
  }
  for (const host of ['localhost', 'LOCALHOST:9001', '127.0.0.1', '[::1]:9001']) t.equal(devTokenRefusal('127.0.0.1', header(host)), undefined, `Host ${host}`);
  for (const host of ['', 'localhost.evil.example', '127.0.0.1.nip.io', 'evil.example:9001']) t.match(devTokenRefusal('127.0.0.1', header(host)), /loopback Host/, `Host ${host || '(none)'}`);
});
