import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { CloseCode as ServerCloseCode, ErrorCode, reconnectPolicy as serverPolicy } from '../../src/wire/codes.js';
import { CloseCode, ServerErrorCode, reconnectPolicy, type CloseReason, type TokenContext } from '../../src/client/index.js';
import { startServer } from '../helpers.js';
import { client, fakeServer, next, until } from './util.js';

t.test("the SDK uses the server's own code tables and policy (not a copy)", async (t) => {
  t.equal(CloseCode, ServerCloseCode);
  t.equal(ServerErrorCode, ErrorCode);
  t.equal(reconnectPolicy, serverPolicy);
  t.equal(reconnectPolicy(4000), 'now');
  t.equal(reconnectPolicy(4101), 'backoff');
  t.equal(reconnectPolicy(4401), 'stop');
  t.equal(reconnectPolicy(1006), 'standard');
});

t.test('the SDK sources use no Node API (browsers load them as they are)', async (t) => {
  const dir = new URL('../../src/client/', import.meta.url);
  const files = [...readdirSync(dir).map((f) => new URL(f, dir)), new URL('../../src/wire/codes.ts', import.meta.url)];
  for (const f of files) {
    const src = readFileSync(f, 'utf8').replace(/\/\/.*$/gm, '');
    t.notMatch(src, /from 'node:|require\(|\bBuffer\b|\bprocess\./, `${f.pathname.split('/').pop()} is browser-safe`);
  }
  t.notMatch(readFileSync(new URL('../../src/wire/codes.ts', import.meta.url), 'utf8'), /^import /m, 'errors.ts imports nothing (browsers load it alone)');
});

const closeAfterHello = (code: number) => (ws: { close(c: number, r: string): void }) => setTimeout(() => ws.close(code, `closing with ${code}`), 20);

t.test('4000-4099: reconnect at once (small random delay, attempt count unchanged)', async (t) => {
  const fake = await fakeServer(t, closeAfterHello(4001));
  const c = client(t, { url: fake.url, token: 'x', reconnect: { minDelayMs: 2000 }, clock: { random: () => 0.5 } });
  const [r] = await next(c, 'reconnecting');
  t.match(r, { attempt: 0, delayMs: 500, reason: { code: 4001, kind: 'server', policy: 'now', reason: 'closing with 4001' } });
});

t.test('4100-4199: exponential backoff', async (t) => {
  const fake = await fakeServer(t, closeAfterHello(4101));
  const c = client(t, { url: fake.url, token: 'x', reconnect: { minDelayMs: 2000 }, clock: { random: () => 0.5 } });
  const [r] = await next(c, 'reconnecting');
  t.match(r, { attempt: 1, delayMs: 1000, reason: { code: 4101, policy: 'backoff' } });
});

t.test('4400-4499 with a fixed token: stop and say why', async (t) => {
  const fake = await fakeServer(t, closeAfterHello(4403));
  const c = client(t, { url: fake.url, token: 'x' });
  let reconnecting = 0;
  c.on('reconnecting', () => reconnecting++);
  const [why] = await next(c, 'closed');
  t.match(why, { code: 4403, policy: 'stop', kind: 'server', reason: 'closing with 4403' });
  t.equal(c.status, 'closed');
  t.match(c.state.reason, { code: 4403 });
  await new Promise((r) => setTimeout(r, 300));
  t.equal(reconnecting, 0);
  t.equal(fake.connections, 1, 'never came back');
  const late = await c.ping().catch((e: Error) => e);
  t.match(late, { code: 'CLOSED' });
});

t.test('4400-4499 with a provider: one more try with a new token, then stop', async (t) => {
  const fake = await fakeServer(t, closeAfterHello(4401));
  const contexts: TokenContext[] = [];
  const c = client(t, {
    url: fake.url,
    token: (ctx) => {
      contexts.push(ctx);
      return `token-${contexts.length}`;
    },
    reconnect: { minDelayMs: 10 },
  });
  const [why] = await next(c, 'closed');
  t.match(why, { code: 4401, policy: 'stop' });
  t.equal(fake.connections, 2);
  t.same(contexts.map((x) => x.reason), ['connect', 'reconnect']);
  t.equal(contexts[1]!.lastReason?.code, 4401);
});

t.test('a refused upgrade, told in band (close 4400/4401): a fixed token stops; a provider gets another chance', async (t) => {
  const h = await startServer(t);
  const fixed = client(t, { url: h.url, token: 'not-a-jwt' });
  const [why] = await next(fixed, 'closed');
  t.match(why, { kind: 'handshake', code: ServerCloseCode.TOKEN_INVALID, policy: 'stop', reason: /^TOKEN_INVALID: / });
  t.equal(why.httpStatus, undefined, 'a close code, not an HTTP status');

  let calls = 0;
  const good = await h.token('bob');
  const provided = client(t, { url: h.url, token: () => (++calls === 1 ? h.token('bob', {}, { expS: -60 }) : good), reconnect: { minDelayMs: 10 } });
  const [info] = await next(provided, 'open');
  t.equal(info.userId, 'bob');
  t.equal(calls, 2, 'an expired token was replaced by the provider');
  t.equal(provided.state.reason, undefined, 'open: the failed attempt is behind it');
});

t.test('a refused upgrade answered over HTTP (a server or proxy without in-band refusals): 401 stops a fixed token', async (t) => {
  const server = http.createServer();
  server.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const fixed = client(t, { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`, token: 'x' });
  const [why] = await next(fixed, 'closed');
  t.match(why, { kind: 'handshake', httpStatus: 401, policy: 'stop' } satisfies Partial<CloseReason>);
});

t.test('maxAttempts ends the client; reconnect: false never reconnects', async (t) => {
  const fake = await fakeServer(t, closeAfterHello(1011));
  const limited = client(t, { url: fake.url, token: 'x', reconnect: { minDelayMs: 5, maxAttempts: 2 } });
  const [why] = await next(limited, 'closed');
  t.match(why, { kind: 'attempts', code: 1011 });
  t.equal(fake.connections, 3, 'the first connection and two more attempts');

  const fake2 = await fakeServer(t, closeAfterHello(4000));
  const once = client(t, { url: fake2.url, token: 'x', reconnect: false });
  t.match((await next(once, 'closed'))[0], { code: 4000 });
  await until(() => once.status === 'closed');
  t.equal(fake2.connections, 1);
});

t.test('tokens travel as the bearer subprotocol by default, or in the query string', async (t) => {
  const seen: string[] = [];
  const fake = await fakeServer(t, (ws, url) => seen.push(`${ws.protocol} ${url}`));
  const a = client(t, { url: fake.url, token: 'abc.def.ghi' });
  await a.whenOpen();
  const b = client(t, { url: `${fake.url}?x=1`, token: 'a b', tokenTransport: 'query' });
  await b.whenOpen();
  t.same(seen, ['storywire.v1 /ws', 'storywire.v1 /ws?x=1&token=a%20b']);
});

t.test('a hanging token provider or a server that never says "connected" is a failed attempt', async (t) => {
  const silent = await fakeServer(t, () => {}, false);
  const c = client(t, { url: silent.url, token: 'x', connectTimeoutMs: 200 });
  const [why] = await next(c, 'disconnected');
  t.match(why, { kind: 'timeout', code: 1006 });

  const stuck = client(t, { url: silent.url, token: () => new Promise<string>(() => {}), connectTimeoutMs: 200, reconnect: { minDelayMs: 10 } });
  t.match((await next(stuck, 'disconnected'))[0], { kind: 'timeout' });
  t.match((await next(stuck, 'reconnecting'))[0], { attempt: 2 }, 'and the next one too');
  stuck.close();
  await t.rejects(stuck.whenOpen(), { code: 'CLOSED' }, 'whenOpen() on a closed client rejects at once');
});
