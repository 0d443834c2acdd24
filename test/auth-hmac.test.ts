// The HS256/384/512 fast path against jose's jwtVerify: the same tokens accepted, the same refused, for the same reason.
import { createHmac } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import t from 'tap';
import { hmacVerifier } from '../src/edge/auth.js';
import { ErrorCode, WireError } from '../src/wire/codes.js';

const secret = new TextEncoder().encode('test-secret-test-secret-test-secret-0123456789');
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const now = Math.floor(Date.now() / 1000);

function forge(header: unknown, payload: unknown, hash = 'sha256', key: Uint8Array = secret): string {
  const signing = `${b64(header)}.${b64(payload)}`;
  return `${signing}.${createHmac(hash, key).update(signing).digest('base64url')}`;
}

async function viaJose(token: string, opts: Parameters<typeof hmacVerifier>[2]): Promise<string> {
  try {
    await jwtVerify(token, secret, { ...opts, algorithms: [...opts.algorithms] });
    return 'ok';
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) return ErrorCode.TOKEN_EXPIRED;
    return ErrorCode.TOKEN_INVALID;
  }
}

function viaFastPath(token: string, opts: Parameters<typeof hmacVerifier>[2]): string {
  try {
    hmacVerifier(secret, opts.algorithms, opts)(token);
    return 'ok';
  } catch (err) {
    if (err instanceof WireError) return err.code;
    throw err;
  }
}

t.test('accepts and refuses exactly what jose does', async (t) => {
  const base = { algorithms: ['HS256'], clockTolerance: 5 };
  const hs = { alg: 'HS256', typ: 'JWT' };
  const cases: [string, string, Parameters<typeof hmacVerifier>[2]][] = [
    ['valid', await new SignJWT({ roles: ['a'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('u1').setExpirationTime(now + 60).sign(secret), base],
    ['no exp', forge(hs, { sub: 'u1' }), base],
    ['expired', forge(hs, { sub: 'u1', exp: now - 60 }), base],
    ['expired within tolerance', forge(hs, { sub: 'u1', exp: now - 2 }), base],
    ['exp exactly now minus tolerance', forge(hs, { sub: 'u1', exp: now - 5 }), base],
    ['nbf in the future', forge(hs, { sub: 'u1', nbf: now + 60 }), base],
    ['nbf within tolerance', forge(hs, { sub: 'u1', nbf: now + 2 }), base],
    ['exp not a number', forge(hs, { sub: 'u1', exp: 'soon' }), base],
    ['iat not a number', forge(hs, { sub: 'u1', iat: 'then' }), base],
    ['wrong secret', forge(hs, { sub: 'u1' }, 'sha256', new TextEncoder().encode('another-secret-another-secret-0123456789')), base],
    ['alg none', `${b64({ alg: 'none' })}.${b64({ sub: 'u1' })}.`, base],
    ['alg HS512 not allowed', forge({ alg: 'HS512' }, { sub: 'u1' }, 'sha512'), base],
    ['alg HS512 allowed', forge({ alg: 'HS512' }, { sub: 'u1' }, 'sha512'), { ...base, algorithms: ['HS256', 'HS512'] }],
    ['alg HS384 allowed', forge({ alg: 'HS384' }, { sub: 'u1' }, 'sha384'), { ...base, algorithms: ['HS384'] }],
    ['alg RS256', forge({ alg: 'RS256' }, { sub: 'u1' }), base],
    ['crit header', forge({ alg: 'HS256', crit: ['exp'], exp: 1 }, { sub: 'u1' }), base],
    ['b64 false', forge({ alg: 'HS256', b64: false, crit: ['b64'] }, { sub: 'u1' }), base],
    ['payload an array', forge(hs, [1, 2]), base],
    ['payload not UTF-8', (() => { const s = `${b64(hs)}.${Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]).toString('base64url')}`; return `${s}.${createHmac('sha256', secret).update(s).digest('base64url')}`; })(), base],
    ['nbf not a number', forge(hs, { sub: 'u1', nbf: '0' }), base],
    ['crit empty', forge({ alg: 'HS256', crit: [] }, { sub: 'u1' }), base],
    ['alg missing', forge({ typ: 'JWT' }, { sub: 'u1' }), base],
    ['alg constructor', forge({ alg: 'constructor' }, { sub: 'u1' }), base],
    ['header an array', forge(['HS256'], { sub: 'u1' }), base],
    ['payload not JSON', (() => { const s = `${b64(hs)}.${b64('not json')}`; return `${s}.${createHmac('sha256', secret).update(s).digest('base64url')}`; })(), base],
    ['header not JSON', (() => { const s = `${b64('x')}.${b64({ sub: 'u1' })}`; return `${s}.${createHmac('sha256', secret).update(s).digest('base64url')}`; })(), base],
    ['two parts', `${b64(hs)}.${b64({ sub: 'u1' })}`, base],
    ['four parts', `${forge(hs, { sub: 'u1' })}.x`, base],
    ['empty signature', `${b64(hs)}.${b64({ sub: 'u1' })}.`, base],
    ['truncated signature', forge(hs, { sub: 'u1' }).slice(0, -2), base],
    ['garbage', 'not-a-token', base],
    ['issuer required and right', forge(hs, { sub: 'u1', iss: 'app' }), { ...base, issuer: 'app' }],
    ['issuer required and wrong', forge(hs, { sub: 'u1', iss: 'other' }), { ...base, issuer: 'app' }],
    ['issuer required and missing', forge(hs, { sub: 'u1' }), { ...base, issuer: 'app' }],
    ['audience in a list', forge(hs, { sub: 'u1', aud: ['x', 'ws'] }), { ...base, audience: 'ws' }],
    ['audience wrong', forge(hs, { sub: 'u1', aud: 'x' }), { ...base, audience: 'ws' }],
    ['audience missing', forge(hs, { sub: 'u1' }), { ...base, audience: 'ws' }],
    ['typ required and right', forge({ alg: 'HS256', typ: 'at+jwt' }, { sub: 'u1' }), { ...base, typ: 'at+jwt' }],
    ['typ required, other case and application/', forge({ alg: 'HS256', typ: 'Application/AT+JWT' }, { sub: 'u1' }), { ...base, typ: 'at+jwt' }],
    ['typ required and wrong', forge(hs, { sub: 'u1' }), { ...base, typ: 'at+jwt' }],
    ['typ required and missing', forge({ alg: 'HS256' }, { sub: 'u1' }), { ...base, typ: 'at+jwt' }],
    ['typ required, not a string', forge({ alg: 'HS256', typ: 1 }, { sub: 'u1' }), { ...base, typ: 'at+jwt' }],
    ['typ required, expired too', forge({ alg: 'HS256', typ: 'JWT' }, { sub: 'u1', exp: now - 60 }), { ...base, typ: 'at+jwt' }],
  ];
  for (const [name, token, opts] of cases) {
    t.equal(viaFastPath(token, opts), await viaJose(token, opts), name);
  }
});

t.test('a padded or re-encoded signature is refused (one string per valid token)', async (t) => {
  const token = forge({ alg: 'HS256' }, { sub: 'u1' });
  const opts = { algorithms: ['HS256'], clockTolerance: 0 };
  t.equal(viaFastPath(token, opts), 'ok');
  t.equal(viaFastPath(`${token}=`, opts), ErrorCode.TOKEN_INVALID);
  t.equal(viaFastPath(`${token.slice(0, -1)}+`, opts), ErrorCode.TOKEN_INVALID);
});
