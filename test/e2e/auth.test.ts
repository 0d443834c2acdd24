// Authentication on upgrade: every way a token arrives, every way it is refused.
import { createHmac, generateKeyPairSync } from 'node:crypto';
import net from 'node:net';
import { SignJWT, exportJWK } from 'jose';
import t from 'tap';
import { Client, SECRET, expectReject, sign, startServer } from '../helpers.js';

const key = new TextEncoder().encode(SECRET);
const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
/** An HS256 token over a claims text written by hand (JSON.stringify cannot write 1e400). */
const hs256Raw = (claims: string) => {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${Buffer.from(claims).toString('base64url')}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
};

t.test('token in Authorization header, subprotocol and query all connect', async (t) => {
  const h = await startServer(t);
  const token = await sign('alice');
  const viaHeader = await Client.open(h.url, { headers: { authorization: `Bearer ${token}` } });
  t.teardown(() => viaHeader.close());
  t.equal((await viaHeader.type('connected')).data.userId, 'alice');

  const viaProtocol = await Client.open(h.url, {}, ['storywire.v1', `bearer.${token}`]);
  t.teardown(() => viaProtocol.close());
  t.equal(viaProtocol.ws.protocol, 'storywire.v1', 'the chosen subprotocol is echoed, never the token');
  t.equal((await viaProtocol.type('connected')).data.userId, 'alice');

  const viaQuery = await Client.open(`${h.url}?token=${token}`);
  t.teardown(() => viaQuery.close());
  t.equal(viaQuery.ws.protocol, '', 'no subprotocol offered, none answered');
  t.equal((await viaQuery.type('connected')).data.userId, 'alice');
});

t.test('roles and scope become permissions', async (t) => {
  const h = await startServer(t);
  const c = await h.connect('alice', { scope: 'read stories:publish', roles: ['author'] });
  t.same((await c.type('connected')).data.permissions.sort(), ['author', 'read', 'stories:publish']);
});

t.test('refused tokens answer 401 with a code and never upgrade', async (t) => {
  const h = await startServer(t, {}, { JWT_ISSUER: 'https://auth.example', JWT_AUDIENCE: 'storywire' });
  const good = { iss: 'https://auth.example', aud: 'storywire' };
  const now = Math.floor(Date.now() / 1000);
  const cases: [string, string, string][] = [
    ['no token', '', 'TOKEN_MISSING'],
    ['wrong issuer', await sign('alice', { ...good, iss: 'evil' }), 'TOKEN_INVALID'],
    ['wrong audience', await sign('alice', { ...good, aud: 'other' }), 'TOKEN_INVALID'],
    ['no issuer', await sign('alice', { aud: 'storywire' }), 'TOKEN_INVALID'],
    ['expired', await sign('alice', good, -60), 'TOKEN_EXPIRED'],
    ['not yet valid', await new SignJWT({ ...good, nbf: now + 600 }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').sign(key), 'TOKEN_INVALID'],
    ['bad signature', await sign('alice', good, 60, new TextEncoder().encode('y'.repeat(40))), 'TOKEN_INVALID'],
    ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...good, sub: 'alice', exp: now + 60 })}.`, 'TOKEN_INVALID'],
    ['HS512 when HS256 is pinned', await new SignJWT(good).setProtectedHeader({ alg: 'HS512' }).setSubject('alice').sign(new TextEncoder().encode(SECRET + SECRET)), 'TOKEN_INVALID'],
    ['missing sub', await sign(undefined, good), 'TOKEN_INVALID'],
    ['numeric sub', await new SignJWT({ ...good, sub: 42 } as never).setProtectedHeader({ alg: 'HS256' }).sign(key), 'TOKEN_INVALID'],
    ['sub with a colon', await sign('a:b', good), 'TOKEN_INVALID'],
    ['garbage', 'not.a.jwt', 'TOKEN_INVALID'],
    ['truncated', (await sign('alice', good)).slice(0, -10), 'TOKEN_INVALID'],
    ['exp of 1e400 (Infinity once parsed)', hs256Raw(`{"iss":"https://auth.example","aud":"storywire","sub":"alice","exp":1e400}`), 'TOKEN_INVALID'],
  ];
  for (const [name, token, code] of cases) {
    const err = await expectReject(Client.open(token ? `${h.url}?token=${encodeURIComponent(token)}` : h.url));
    t.equal(err.status, 401, `${name}: 401`);
    t.equal(err.body?.error?.code, code, `${name}: ${code}`);
  }
  const ok = await Client.open(`${h.url}?token=${await sign('alice', good)}`);
  t.teardown(() => ok.close());
  t.pass('a token with the right iss and aud connects');
});

t.test('public key configuration pins RS256: HS256 signed with the public key is refused', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const h = await startServer(t, {}, { JWT_SECRET: '', JWT_PUBLIC_KEY: pem });
  const rs = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('alice').setExpirationTime('1h').sign(privateKey);
  const c = await Client.open(`${h.url}?token=${rs}`);
  t.teardown(() => c.close());
  t.pass('RS256 token accepted');
  const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('1h').sign(new TextEncoder().encode(pem));
  const err = await expectReject(Client.open(`${h.url}?token=${confused}`));
  t.equal(err.status, 401);
  t.equal(err.body.error.code, 'TOKEN_INVALID');
  t.ok(await exportJWK(publicKey), 'key exported');
});

t.test('a valid token without the connect permission gets 403', async (t) => {
  const h = await startServer(t, { connectPermission: 'app:connect' });
  const err = await expectReject(Client.open(`${h.url}?token=${await sign('alice')}`));
  t.equal(err.status, 403);
  t.equal(err.body.error.code, 'FORBIDDEN');
  const c = await Client.open(`${h.url}?token=${await sign('alice', { scope: 'app:connect' })}`);
  t.teardown(() => c.close());
  t.pass('with the permission it connects');
});

t.test('a client that aborts during verification does not crash the server', async (t) => {
  const h = await startServer(t);
  const token = await sign('alice');
  for (let i = 0; i < 50; i++) {
    const s = net.connect(h.port, '127.0.0.1');
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    s.write(`GET /ws?token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    s.destroy();
  }
  const c = await h.connect('bob');
  t.equal((await c.request('ping')).type, 'pong', 'server still serves');
});

t.test('other paths answer 404 JSON', async (t) => {
  const h = await startServer(t);
  const res = await fetch(`http://127.0.0.1:${h.port}/nope`);
  t.equal(res.status, 404);
  t.equal(((await res.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
});

t.test('the connected frame carries the token expiry', async (t) => {
  const h = await startServer(t);
  const c = await Client.open(`${h.url}?token=${await sign('alice', {}, 600)}`);
  t.teardown(() => c.close());
  const exp = (await c.type('connected')).data.exp;
  t.ok(Math.abs(exp - (Math.floor(Date.now() / 1000) + 600)) <= 2, `exp ${exp}`);
});
