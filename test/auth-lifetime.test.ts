// Token lifetime and shape outside dev mode: JWT_REQUIRE_EXP, JWT_MAX_TTL_S, JWT_TYP, what an `auth` refresh may
// change, and the warning when neither JWT_AUDIENCE nor JWT_ISSUER is set.
import { generateKeyPairSync } from 'node:crypto';
import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import pino from 'pino';
import t from 'tap';
import { Client, SECRET, expectReject, startServer } from './helpers.js';

const KEY = new TextEncoder().encode(SECRET);
/** Not dev mode: the defaults a deployment gets. */
const PROD = { STORYWIRE_DEV: '0' };
const now = () => Math.floor(Date.now() / 1000);

/** An HS256 token; `exp` absent when `expS` is undefined; `typ` in the header when given. */
function token(sub: string, expS: number | undefined, typ?: string): Promise<string> {
  const jwt = new SignJWT({}).setProtectedHeader(typ === undefined ? { alg: 'HS256' } : { alg: 'HS256', typ }).setSubject(sub).setIssuedAt();
  if (expS !== undefined) jwt.setExpirationTime(now() + expS);
  return jwt.sign(KEY);
}

t.test('outside dev mode a token without exp is refused TOKEN_INVALID; dev mode and JWT_REQUIRE_EXP=false allow it', async (t) => {
  const h = await startServer(t, {}, PROD);
  t.equal(h.server.config.jwtRequireExp, true, 'the default outside dev mode');
  const err = await expectReject(Client.open(`${h.url}?token=${await token('alice', undefined)}`));
  t.equal(err.status, 401);
  t.equal(err.body.error.code, 'TOKEN_INVALID');
  t.match(err.body.error.message, /no exp claim: tokens must expire \(JWT_REQUIRE_EXP\)/, 'the message says why');
  const ok = await Client.open(`${h.url}?token=${await token('alice', 600)}`);
  t.teardown(() => ok.close());
  t.pass('with exp it connects');

  for (const [label, env] of [['dev mode', { STORYWIRE_DEV: '1' }], ['JWT_REQUIRE_EXP=false', { ...PROD, JWT_REQUIRE_EXP: 'false' }]] as const) {
    const open = await startServer(t, {}, env);
    const c = await Client.open(`${open.url}?token=${await token('bob', undefined)}`);
    t.teardown(() => c.close());
    t.equal((await c.type('connected')).data.exp, undefined, `${label}: no exp, connected without a deadline`);
  }
});

t.test('JWT_MAX_TTL_S (default 24 h): a token valid for longer is refused, at the upgrade and on auth', async (t) => {
  const h = await startServer(t, {}, PROD);
  t.equal(h.server.config.jwtMaxTtlS, 86400);
  const err = await expectReject(Client.open(`${h.url}?token=${await token('alice', 2 * 86400)}`));
  t.match(err, { status: 401, body: { error: { code: 'TOKEN_INVALID', message: /exp is more than JWT_MAX_TTL_S \(86400 s\) away/ } } });
  const c = await Client.open(`${h.url}?token=${await token('alice', 86400)}`);
  t.teardown(() => c.close());
  const exp = (await c.type('connected')).data.exp as number;
  t.pass('exactly 24 h connects');
  const refresh = await c.request('auth', { token: await token('alice', 7 * 86400) });
  t.equal(refresh.error?.code, 'TOKEN_INVALID', 'a refresh cannot push the deadline past JWT_MAX_TTL_S');
  const again = await c.request('auth', { token: await token('alice', 600) });
  t.equal(again.type, 'ack', 'the connection stays; a shorter one is fine');
  t.ok(again.data.exp < exp, 'and moves the deadline');

  const unbounded = await startServer(t, {}, { ...PROD, JWT_MAX_TTL_S: '0' });
  const long = await Client.open(`${unbounded.url}?token=${await token('alice', 30 * 86400)}`);
  t.teardown(() => long.close());
  t.pass('JWT_MAX_TTL_S=0: no bound');
});

t.test('an auth refresh cannot remove the expiry, whatever JWT_REQUIRE_EXP says', async (t) => {
  const h = await startServer(t, {}, { ...PROD, JWT_REQUIRE_EXP: 'false' });
  const c = await Client.open(`${h.url}?token=${await token('alice', 600)}`);
  t.teardown(() => c.close());
  const exp = (await c.type('connected')).data.exp as number;
  const removed = await c.request('auth', { token: await token('alice', undefined) });
  t.equal(removed.error?.code, 'TOKEN_INVALID', 'a token without exp is refused for a connection that has a deadline');
  t.match(removed.error?.message, /cannot remove the connection's expiry/);
  const kept = await c.request('auth', { token: await token('alice', 600) });
  t.equal(kept.type, 'ack', 'the connection stays');
  t.ok(Math.abs(kept.data.exp - exp) <= 2, 'and has a deadline');

  const open = await Client.open(`${h.url}?token=${await token('bob', undefined)}`);
  t.teardown(() => open.close());
  t.equal((await open.request('auth', { token: await token('bob', undefined) })).type, 'ack', 'a connection without a deadline may refresh without one');
  t.equal((await open.request('auth', { token: await token('bob', 600) })).data.exp > now(), true, 'and may get one');
});

t.test('JWT_TYP: the header typ must match (case-insensitive, application/ implied), with a secret and with a public key', async (t) => {
  const h = await startServer(t, {}, { ...PROD, JWT_TYP: 'at+jwt' });
  for (const typ of ['at+jwt', 'AT+JWT', 'application/at+jwt']) {
    const c = await Client.open(`${h.url}?token=${await token('alice', 600, typ)}`);
    t.teardown(() => c.close());
    t.pass(`typ ${typ} connects`);
  }
  for (const typ of ['JWT', undefined]) {
    const err = await expectReject(Client.open(`${h.url}?token=${await token('alice', 600, typ)}`));
    t.match(err, { status: 401, body: { error: { code: 'TOKEN_INVALID', message: /typ header: JWT_TYP/ } } }, `typ ${typ}: refused`);
  }

  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const pk = await startServer(t, {}, { ...PROD, JWT_SECRET: '', JWT_PUBLIC_KEY: pem, JWT_TYP: 'at+jwt' });
  const es = (typ: string) => new SignJWT({}).setProtectedHeader({ alg: 'ES256', typ }).setSubject('alice').setExpirationTime('10m').sign(privateKey);
  const c = await Client.open(`${pk.url}?token=${await es('at+jwt')}`);
  t.teardown(() => c.close());
  t.pass('jose path: at+jwt connects');
  const err = await expectReject(Client.open(`${pk.url}?token=${await es('JWT')}`));
  t.match(err, { status: 401, body: { error: { code: 'TOKEN_INVALID', message: /typ header: JWT_TYP/ } } }, 'jose path: typ JWT refused');
});

t.test('neither JWT_AUDIENCE nor JWT_ISSUER outside dev mode: one warning at start naming both', async (t) => {
  const warnings = async (env: Record<string, string>) => {
    const lines: { level: number; msg: string }[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as { level: number; msg: string });
        cb();
      },
    });
    await startServer(t, {}, env, { logger: pino({ level: 'warn' }, stream) });
    return lines.filter((l) => l.level === 40 && /JWT_AUDIENCE/.test(l.msg) && /JWT_ISSUER/.test(l.msg));
  };
  const warned = await warnings(PROD);
  t.equal(warned.length, 1, 'warned once');
  t.match(warned[0]?.msg, /neither JWT_AUDIENCE nor JWT_ISSUER is set/);
  t.equal((await warnings({ ...PROD, JWT_AUDIENCE: 'storywire' })).length, 0, 'JWT_AUDIENCE set: no warning');
  t.equal((await warnings({ ...PROD, JWT_ISSUER: 'https://id.example' })).length, 0, 'JWT_ISSUER set: no warning');
  t.equal((await warnings({ STORYWIRE_DEV: '1' })).length, 0, 'dev mode: no warning');
});
