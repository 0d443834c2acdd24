// Refused upgrades told in band: a client that offers `storywire.close-on-refusal` (browsers cannot read
// the HTTP status of a refused upgrade) gets a socket closed at once with a code and `<CODE>: <message>`.
import WebSocket from 'ws';
import t from 'tap';
import { CloseCode, ErrorCode, WireError, refusalCloseCode } from '../../src/wire/codes.js';
import { closeReason } from '../../src/edge/upgrade.js';
import { Client, expectReject, sign, startServer } from '../helpers.js';

const IN_BAND = ['storywire.v1', 'storywire.close-on-refusal'];

interface Outcome {
  opened: boolean;
  protocol: string;
  code: number;
  reason: string;
  frames: string[];
}

/** Opens a raw socket offering `protocols` and waits for its close (or for `connected` when `keep`). */
function attempt(url: string, protocols: string[] = IN_BAND, opts: WebSocket.ClientOptions = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, opts);
    const frames: string[] = [];
    let opened = false;
    ws.on('open', () => (opened = true));
    ws.on('message', (d) => frames.push(String(d)));
    ws.on('error', reject);
    ws.on('close', (code, reason) => resolve({ opened, protocol: ws.protocol, code, reason: reason.toString(), frames }));
  });
}

t.test('each refusal has its close code and a reason that starts with the error code; nothing is sent before', async (t) => {
  const h = await startServer(t, { maxConnectionsPerUser: 1 }, { CONNECT_PERMISSION: 'app' });
  const alice = await h.connect('alice', { roles: ['app'] });
  await alice.type('connected');
  const cases: [string, string, number, string][] = [
    ['no token', h.url, CloseCode.TOKEN_INVALID, 'TOKEN_MISSING'],
    ['bad signature', `${h.url}?token=${await sign('bob', { roles: ['app'] }, 60, new TextEncoder().encode('z'.repeat(40)))}`, CloseCode.TOKEN_INVALID, 'TOKEN_INVALID'],
    ['expired', `${h.url}?token=${await sign('bob', { roles: ['app'] }, -60)}`, CloseCode.TOKEN_EXPIRED, 'TOKEN_EXPIRED'],
    ['no connect permission', `${h.url}?token=${await sign('bob')}`, CloseCode.FORBIDDEN, 'FORBIDDEN'],
    ['over the per-user limit', `${h.url}?token=${await sign('alice', { roles: ['app'] })}`, CloseCode.CONNECTION_LIMIT, 'CONNECTION_LIMIT'],
    ['a malformed since', `${h.url}?since=nonsense&token=${await sign('bob', { roles: ['app'] })}`, CloseCode.PROTOCOL_ERROR, 'INVALID_PAYLOAD'],
  ];
  for (const [what, url, code, errorCode] of cases) {
    const o = await attempt(url);
    t.ok(o.opened, `${what}: the socket opened`);
    t.equal(o.protocol, 'storywire.v1', `${what}: storywire.v1 answered`);
    t.equal(o.code, code, `${what}: close code ${code}`);
    t.match(o.reason, new RegExp(`^${errorCode}: \\S`), `${what}: reason "${o.reason}"`);
    t.same(o.frames, [], `${what}: no frame`);
  }
  t.equal(h.server.connectionsOf('alice'), 1, 'the refused second connection of alice was never registered');
  t.equal(h.server.connectionsOf('bob'), 0, 'bob was never registered');
  t.equal(await h.server.isOnline('bob'), false, 'bob never came online');

  // Without the opt-in, the same refusals stay HTTP errors.
  const err = await expectReject(Client.open(h.url, {}, ['storywire.v1']));
  t.match(err, { status: 401, body: { error: { code: 'TOKEN_MISSING' } } });
});

t.test('refused sockets count toward no limit and nobody sees them', async (t) => {
  const h = await startServer(t, { maxConnectionsPerIp: 2 });
  const watcher = await h.connect('carol');
  await watcher.type('connected');
  t.match(await watcher.request('subscribe', { topic: 'presence:dave' }), { type: 'ack' });
  for (let i = 0; i < 5; i++) {
    const o = await attempt(`${h.url}?token=${await sign('dave', {}, -60)}`);
    t.equal(o.code, CloseCode.TOKEN_EXPIRED, `refusal ${i + 1}`);
  }
  t.ok(await watcher.none((f) => f.type === 'user:online'), 'no presence event for refused sockets');
  // The address holds carol's connection; one more is allowed, and the refusals above did not use it up.
  const dave = await h.connect('dave');
  t.equal((await dave.type('connected')).data.userId, 'dave', 'a good connection after five refusals from the same address');
  t.match(await watcher.type('user:online'), { data: { userId: 'dave' } }, 'the good one is seen');
  const full = await attempt(`${h.url}?token=${await sign('erin')}`);
  t.equal(full.code, CloseCode.CONNECTION_LIMIT, 'the third connection from the address is over the limit');
  t.match(full.reason, /^CONNECTION_LIMIT: too many connections/);
  t.equal(h.server.connectionsOf('dave'), 1);
});

t.test('a forbidden origin is refused over HTTP even when the client asks for in-band refusals', async (t) => {
  const h = await startServer(t, { allowedOrigins: ['https://app.example'] });
  const err = await expectReject(Client.open(`${h.url}?token=${await sign('alice')}`, { origin: 'https://evil.example' }, IN_BAND));
  t.match(err, { status: 403, body: { error: { code: 'ORIGIN_FORBIDDEN' } } });
  const ok = await Client.open(`${h.url}?token=${await sign('alice')}`, { origin: 'https://app.example' }, IN_BAND);
  t.teardown(() => ok.close());
  t.equal((await ok.type('connected')).data.userId, 'alice');
});

t.test('the opt-in changes nothing for a good token; alone it is the protocol answered', async (t) => {
  const h = await startServer(t);
  const token = await sign('alice');
  const both = await Client.open(h.url, {}, [...IN_BAND, `bearer.${token}`]);
  t.teardown(() => both.close());
  t.equal(both.ws.protocol, 'storywire.v1');
  t.equal((await both.type('connected')).data.userId, 'alice');
  both.send(JSON.stringify({ type: 'ping', id: 1 }));
  t.match(await both.type('pong'), { id: 1 });

  // A client that offers only the opt-in must get it back: a browser fails a handshake answered with
  // none of the protocols it offered.
  const alone = await Client.open(h.url, {}, ['storywire.close-on-refusal', `bearer.${token}`]);
  t.teardown(() => alone.close());
  t.equal(alone.ws.protocol, 'storywire.close-on-refusal');
  t.equal((await alone.type('connected')).data.userId, 'alice');
  const refused = await attempt(h.url, ['storywire.close-on-refusal', 'bearer.not-a-jwt']);
  t.equal(refused.protocol, 'storywire.close-on-refusal');
  t.equal(refused.code, CloseCode.TOKEN_INVALID);
});

t.test('refusal close codes: shutdown and verification failures', async (t) => {
  const unavailable = new WireError(ErrorCode.UNAVAILABLE, 'x', 503);
  t.equal(refusalCloseCode(unavailable, true), CloseCode.SHUTDOWN, 'shutting down: reconnect to another node now');
  t.equal(refusalCloseCode(unavailable, false), CloseCode.UNAVAILABLE, 'JWKS unreachable: back off');
  t.equal(refusalCloseCode(new WireError(ErrorCode.TIMEOUT, 'x', 503), false), CloseCode.UNAVAILABLE);
  t.equal(refusalCloseCode(new WireError(ErrorCode.CONNECTION_LIMIT, 'x', 503), false), CloseCode.CONNECTION_LIMIT);
});

t.test('close reasons are cut to 123 bytes on a character boundary', async (t) => {
  t.equal(closeReason('short'), 'short');
  const ascii = 'A'.repeat(123);
  t.equal(closeReason(ascii), ascii, 'exactly 123 bytes is kept');
  for (const text of ['B'.repeat(500), 'é'.repeat(100), `${'C'.repeat(119)}😀😀😀`, '😀'.repeat(60)]) {
    const r = closeReason(text);
    t.ok(Buffer.byteLength(r) <= 123, `${Buffer.byteLength(r)} bytes`);
    t.ok(r.endsWith('...'), 'marked as cut');
    t.notOk(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(r), 'no half of a surrogate pair');
    t.ok(text.startsWith(r.slice(0, -3)), 'a prefix of the text');
  }
});
