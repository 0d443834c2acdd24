import pino from 'pino';
import WebSocket from 'ws';
import t from 'tap';
import { loadConfig } from '../src/config.js';
import { createServer } from '../src/edge/server.js';
import { StorywireClient } from '../src/client/index.js';
import { SECRET, startServer } from './helpers.js';

t.test('DEMO_PAGE defaults to on, off in production, and can be set either way', async (t) => {
  t.equal(loadConfig({ JWT_SECRET: SECRET }).demoPage, true);
  t.equal(loadConfig({ JWT_SECRET: SECRET, NODE_ENV: 'production' }).demoPage, false);
  t.equal(loadConfig({ JWT_SECRET: SECRET, NODE_ENV: 'production', DEMO_PAGE: 'true' }).demoPage, true);
  t.equal(loadConfig({ JWT_SECRET: SECRET, DEMO_PAGE: 'off' }).demoPage, false);
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
  const server = createServer(loadConfig({ HOST: '127.0.0.1', PORT: '0' }), { logger: pino({ level: 'silent' }) });
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
