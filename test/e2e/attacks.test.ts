// Forged and malformed tokens against a JWKS (RS256) configuration; a JWKS that is slow or down.
import { generateKeyPairSync, sign as rsaSign, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK } from 'jose';
import t from 'tap';
import WebSocket from 'ws';
import { Client, expectReject, startServer } from '../helpers.js';

const b64 = (o: unknown) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');

interface Jwks {
  url: string;
  stop(): Promise<void>;
  setKeys(keys: object[]): void;
}

/** A JWKS endpoint on loopback; `hang` never answers. */
async function jwksServer(t: { teardown(fn: () => unknown): void }, keys: object[], hang = false): Promise<Jwks> {
  let current = keys;
  const server = http.createServer((_req, res) => {
    if (hang) return;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: current }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const stop = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  t.teardown(() => server.listening && stop());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`, stop, setKeys: (k) => (current = k) };
}

async function rsaKey(kid: string): Promise<{ priv: KeyObject; jwk: object; pem: string }> {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { priv: privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** Signs any header (even one jose refuses to produce) with RS256. */
const rawSign = (header: object, claims: object | string, key: KeyObject) => {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${rsaSign('sha256', Buffer.from(input), key).toString('base64url')}`;
};

const sign = (claims: Record<string, unknown>, key: KeyObject | Uint8Array, header: Record<string, unknown> = { alg: 'RS256', kid: 'k1' }) =>
  new SignJWT(claims).setProtectedHeader(header as never).sign(key);

t.test('at least 20 forged or malformed tokens: all 401, none upgraded', async (t) => {
  const k1 = await rsaKey('k1');
  const rogue = await rsaKey('k1');
  const jwks = await jwksServer(t, [k1.jwk]);
  const h = await startServer(t, {}, { JWT_SECRET: '', JWT_JWKS_URL: jwks.url, JWT_ISSUER: 'https://id.example', JWT_AUDIENCE: 'storywire' });
  const now = Math.floor(Date.now() / 1000);
  const good = { sub: 'alice', iss: 'https://id.example', aud: 'storywire', exp: now + 600 };
  const valid = await sign(good, k1.priv);
  const [vh, vp, vs] = valid.split('.') as [string, string, string];
  const cases: [string, string][] = [
    ['alg none', `${b64({ alg: 'none', kid: 'k1' })}.${b64(good)}.`],
    ['alg None (case)', `${b64({ alg: 'None', kid: 'k1' })}.${b64(good)}.`],
    ['HS256 signed with the public key PEM', await sign(good, new TextEncoder().encode(k1.pem), { alg: 'HS256', kid: 'k1' })],
    ['HS256 signed with the JWK n', await sign(good, new TextEncoder().encode((k1.jwk as { n: string }).n), { alg: 'HS256', kid: 'k1' })],
    ['signed by another key with the same kid', await sign(good, rogue.priv)],
    ['unknown kid', await sign(good, k1.priv, { alg: 'RS256', kid: 'k2' })],
    ['no kid, wrong key', await sign(good, rogue.priv, { alg: 'RS256' })],
    ['expired', await sign({ ...good, exp: now - 120 }, k1.priv)],
    ['not yet valid', await sign({ ...good, nbf: now + 600 }, k1.priv)],
    ['wrong issuer', await sign({ ...good, iss: 'https://evil.example' }, k1.priv)],
    ['wrong audience', await sign({ ...good, aud: 'someone-else' }, k1.priv)],
    ['missing sub', await sign({ ...good, sub: undefined }, k1.priv)],
    ['numeric sub', await sign({ ...good, sub: 42 }, k1.priv)],
    ['empty sub', await sign({ ...good, sub: '' }, k1.priv)],
    ['sub too long', await sign({ ...good, sub: 'a'.repeat(200) }, k1.priv)],
    ['sub with a topic separator', await sign({ ...good, sub: 'bob:admin' }, k1.priv)],
    ['exp as a string', await sign({ ...good, exp: String(now + 600) }, k1.priv)],
    ['exp of 1e400 (Infinity once parsed)', rawSign({ alg: 'RS256', kid: 'k1' }, JSON.stringify(good).replace(/"exp":\d+/, '"exp":1e400'), k1.priv)],
    ['payload swapped after signing', `${vh}.${b64({ ...good, sub: 'mallory' })}.${vs}`],
    ['signature stripped', `${vh}.${vp}.`],
    ['truncated', valid.slice(0, -20)],
    ['two segments', `${vh}.${vp}`],
    ['non-JSON payload', `${vh}.${b64('not json at all')}.${vs}`],
    ['non-JSON header', `${b64('{alg:RS256')}.${vp}.${vs}`],
    ['huge token', `${vh}.${b64({ ...good, pad: 'x'.repeat(9000) })}.${vs}`],
    ['crit header not understood', rawSign({ alg: 'RS256', kid: 'k1', crit: ['x-policy'], 'x-policy': 1 }, good, k1.priv)],
    ['jku header pointing elsewhere', await sign(good, rogue.priv, { alg: 'RS256', kid: 'k1', jku: 'http://127.0.0.1:1/evil.json' })],
    ['garbage', '%%%.@@@.!!!'],
  ];
  t.ok(cases.length >= 20);
  for (const [name, token] of cases) {
    const err = await expectReject(Client.open(`${h.url}?token=${encodeURIComponent(token)}`));
    t.equal(err.status, 401, `${name}: 401 ${err.body?.error?.code}`);
    t.match(err.body?.error?.code, /^TOKEN_(INVALID|EXPIRED)$/, `${name}: a token error code`);
  }
  const ok = await Client.open(`${h.url}?token=${valid}`);
  t.teardown(() => ok.close());
  t.equal((await ok.type('connected')).data.userId, 'alice', 'the genuine token still connects');
});

t.test('a JWKS that never answers: upgrades answered 503 (TIMEOUT or UNAVAILABLE) in bounded time, server fine', async (t) => {
  const k1 = await rsaKey('k1');
  const jwks = await jwksServer(t, [k1.jwk], true);
  const h = await startServer(t, { upgradeTimeoutMs: 300 }, { JWT_SECRET: '', JWT_JWKS_URL: jwks.url });
  const started = Date.now();
  const err = await expectReject(Client.open(`${h.url}?token=${await sign({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 60 }, k1.priv)}`));
  // The key set's own fetch (started at listen) gives up first (UNAVAILABLE) or the upgrade's deadline does (TIMEOUT).
  t.match(err, { status: 503, body: { error: { code: /^(TIMEOUT|UNAVAILABLE)$/ } } });
  t.ok(Date.now() - started < 3000, 'answered promptly');
  // The same refusal in band, after the verification gave up (the asynchronous path of the upgrade).
  const ws = new WebSocket(`${h.url}?token=${await sign({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 60 }, k1.priv)}`, ['storywire.v1', 'storywire.close-on-refusal']);
  ws.on('error', () => {});
  const [code, reason] = await new Promise<[number, string]>((r) => ws.on('close', (c, why) => r([c, why.toString()])));
  t.equal(code, 4104, 'in band: 4104 UNAVAILABLE, reconnect with backoff');
  t.match(reason, /^(TIMEOUT|UNAVAILABLE): /);
  const res = await fetch(`http://127.0.0.1:${h.port}/healthz`);
  t.equal(res.status, 200);
});

t.test('JWKS down: known keys keep working, an unknown kid is UNAVAILABLE (it cannot be looked up)', async (t) => {
  const k1 = await rsaKey('k1');
  const k2 = await rsaKey('k2');
  const jwks = await jwksServer(t, [k1.jwk]);
  const h = await startServer(t, { jwtJwksCacheMs: 100, upgradeTimeoutMs: 2000 }, { JWT_SECRET: '', JWT_JWKS_URL: jwks.url });
  const exp = Math.floor(Date.now() / 1000) + 60;
  const first = await Client.open(`${h.url}?token=${await sign({ sub: 'alice', exp }, k1.priv)}`);
  t.teardown(() => first.close());
  await jwks.stop();
  await new Promise((r) => setTimeout(r, 250));
  const again = await Client.open(`${h.url}?token=${await sign({ sub: 'bob', exp }, k1.priv)}`);
  t.teardown(() => again.close());
  t.equal((await again.type('connected')).data.userId, 'bob', 'cached key verifies while the JWKS is down');
  const err = await expectReject(Client.open(`${h.url}?token=${await sign({ sub: 'carol', exp }, k2.priv, { alg: 'RS256', kid: 'k2' })}`));
  // Past the cooldown (JWT_JWKS_CACHE_MS here) a kid not cached needs a fetch: it may be a key rotated in meanwhile.
  t.match(err, { status: 503, body: { error: { code: 'UNAVAILABLE' } } }, `unknown kid refused, as an outage (${err.body?.error?.message})`);
});
