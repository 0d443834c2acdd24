// Token extraction from an upgrade request and JWT verification with jose -> Principal.
import { createHmac, createPublicKey, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import pino, { type Logger } from 'pino';
import { errors as joseErrors, jwtVerify, SignJWT, type FlattenedJWSInput, type JWSHeaderParameters, type JWTPayload } from 'jose';
import type { Config } from '../config.js';
import { ErrorCode, WireError } from '../wire/codes.js';
import { RemoteKeySet } from './jwks.js';

/** Who a connection belongs to, from a verified token. */
export interface Principal {
  readonly userId: string;
  /** `scope` (space-separated) and `roles` (array) claims merged. */
  readonly permissions: ReadonlySet<string>;
  /** Token expiry, seconds since epoch; undefined when the token has no `exp`. */
  readonly exp: number | undefined;
  /**
   * The token's id-list claims that a channel rule reads (`{"claim": ...}` in the registry, e.g. `stories`,
   * `watch`): claim -> ids. Undefined when the token has none of them (most connections: no cost).
   */
  readonly claims: ReadonlyMap<string, ReadonlySet<string>> | undefined;
}

/** Ids one list claim may carry; a longer list is refused (the backend should use a proxy then). */
export const MAX_CLAIM_IDS = 10000;

/** The subprotocol the server speaks; echoed back when a client offers it. */
export const SUBPROTOCOL = 'storywire.v1';
/**
 * Offered next to `storywire.v1` by clients that want a refused upgrade as a WebSocket close with a code
 * and a reason (browsers cannot read the HTTP status of a refused upgrade: they see a bare 1006).
 */
export const REFUSAL_SUBPROTOCOL = 'storywire.close-on-refusal';
/** Prefix of the subprotocol entry that carries a token: `bearer.<jwt>`. */
export const SUBPROTOCOL_TOKEN_PREFIX = 'bearer.';
/** User, story and author ids: what may follow `user:`, `story:`, `author:` in a topic. */
export const ID_PATTERN = /^[A-Za-z0-9_.@|+=-]{1,128}$/;
export const ADMIN_PERMISSION = 'admin';

export interface TokenSource {
  token: string | undefined;
  /** What to answer in Sec-WebSocket-Protocol ('' for nothing). */
  protocol: string;
  /** The client offered REFUSAL_SUBPROTOCOL: refuse by accepting and closing with a code. */
  closeOnRefusal: boolean;
}

/** Reads the token from `Authorization: Bearer`, then `Sec-WebSocket-Protocol: bearer.<jwt>`, then `?token=`. */
export function extractToken(authorization: string, protocols: string, queryToken: string): TokenSource {
  const offered = protocols ? protocols.split(',').map((p) => p.trim()) : [];
  const closeOnRefusal = offered.includes(REFUSAL_SUBPROTOCOL);
  // The answer must be one of the offered protocols, or a browser fails the handshake.
  const protocol = offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : closeOnRefusal ? REFUSAL_SUBPROTOCOL : '';
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (bearer) return { token: bearer[1], protocol, closeOnRefusal };
  const fromProtocol = offered.find((p) => p.startsWith(SUBPROTOCOL_TOKEN_PREFIX));
  if (fromProtocol) return { token: fromProtocol.slice(SUBPROTOCOL_TOKEN_PREFIX.length), protocol, closeOnRefusal };
  return { token: queryToken || undefined, protocol, closeOnRefusal };
}

export function hasPermission(p: Principal, permission: string): boolean {
  return p.permissions.has(permission) || p.permissions.has(ADMIN_PERMISSION);
}

type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<unknown>;
type KeyInput = Uint8Array | KeyObject | KeyResolver;

export interface Verifier {
  verify(token: string): Promise<Principal>;
  /** Checks signature, expiry, issuer and audience only: the claims set (subscription tokens). */
  verifyPayload(token: string): Promise<JWTPayload>;
  /** The same check, synchronously, when the key is a shared secret (HS*): set then, undefined otherwise. */
  readonly verifyNow: ((token: string) => Principal) | undefined;
  /** Set when no key was configured in dev mode: a random HS256 secret for local use only. */
  readonly devSecret: Uint8Array | undefined;
  /** True when verification needs nothing from the network (a secret or a public key, no JWKS): it cannot hang. */
  readonly local: boolean;
  /** False until the JWKS was fetched once (readiness); always true for a secret or a public key. */
  readonly ready: boolean;
  /** Starts fetching the JWKS and keeping it fresh (nothing without one). */
  start(): void;
  stop(): void;
}

function algorithmsForKey(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      return curve === 'prime256v1' ? ['ES256'] : curve === 'secp384r1' ? ['ES384'] : ['ES512'];
    }
    case 'ed25519':
      return ['EdDSA'];
    default:
      throw new WireError(ErrorCode.INTERNAL, `unsupported public key type ${key.asymmetricKeyType}`, 500);
  }
}

const MAX_TOKEN_LENGTH = 8192;
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

interface Keys {
  key: KeyInput;
  algorithms: string[];
  devSecret: Uint8Array | undefined;
  keySet: RemoteKeySet | undefined;
}

/** The configured key (a secret, a public key or a JWKS), or a throwaway secret in dev mode, and its algorithms. */
function keysOf(config: Config, log: Logger): Keys {
  if (config.jwtSecret !== undefined) {
    return { key: new TextEncoder().encode(config.jwtSecret), algorithms: [...(config.jwtAlgorithms ?? ['HS256'])], devSecret: undefined, keySet: undefined };
  }
  if (config.jwtPublicKey !== undefined) {
    const publicKey = createPublicKey(config.jwtPublicKey.replaceAll('\\n', '\n'));
    return { key: publicKey, algorithms: [...(config.jwtAlgorithms ?? algorithmsForKey(publicKey))], devSecret: undefined, keySet: undefined };
  }
  if (config.jwtJwksUrl !== undefined) {
    const keySet = new RemoteKeySet({ url: new URL(config.jwtJwksUrl), cacheMaxAgeMs: config.jwtJwksCacheMs, timeoutMs: config.upgradeTimeoutMs, maxBytes: config.jwtJwksMaxBytes, cooldownMs: Math.min(30_000, config.jwtJwksCacheMs), log });
    return { key: keySet.resolve, algorithms: [...(config.jwtAlgorithms ?? ASYMMETRIC)], devSecret: undefined, keySet };
  }
  if (config.production) throw new WireError(ErrorCode.INTERNAL, 'no JWT key configured outside dev mode', 500);
  const devSecret = new Uint8Array(randomBytes(32));
  return { key: devSecret, algorithms: ['HS256'], devSecret, keySet: undefined };
}

/**
 * Connection tokens (upgrade, `auth`) get every check: signature, time claims, JWT_ISSUER, JWT_AUDIENCE, JWT_TYP,
 * JWT_REQUIRE_EXP, JWT_MAX_TTL_S. Subscription tokens (verifyPayload), which the app's backend mints for one
 * channel, get the first four: their `exp` is required and bounds the subscription (section 13 of protocol.md).
 */
export function createVerifier(config: Config, claimNames: ReadonlySet<string> = new Set(), log: Logger = pino({ level: 'silent' })): Verifier {
  const { key, algorithms, devSecret, keySet } = keysOf(config, log);
  if (config.production && config.jwtIssuer === undefined && config.jwtAudience === undefined) {
    log.warn('neither JWT_AUDIENCE nor JWT_ISSUER is set: any token signed with this key is accepted, including one the same issuer minted for another service. Set JWT_AUDIENCE (and JWT_ISSUER) to what your tokens carry.');
  }
  const claimsOnly = {
    algorithms,
    clockTolerance: config.jwtClockToleranceS,
    ...(config.jwtIssuer !== undefined ? { issuer: config.jwtIssuer } : {}),
    ...(config.jwtAudience !== undefined ? { audience: config.jwtAudience } : {}),
  };
  const connection = config.jwtTyp !== undefined ? { ...claimsOnly, typ: config.jwtTyp } : claimsOnly;
  const lifetime = lifetimeCheck(config);

  // Shared secrets are checked synchronously with node:crypto: jose goes through WebCrypto, which imports
  // the key again on every call and runs the HMAC on the thread pool; profiled, that was ~60 % of the
  // server CPU of a handshake (bench/RESULTS.md). Asymmetric keys and JWKS stay with jose.
  const hmacConnection = key instanceof Uint8Array ? hmacVerifier(key, algorithms, connection) : undefined;
  const hmacClaims = key instanceof Uint8Array ? hmacVerifier(key, algorithms, claimsOnly) : undefined;
  const bounded = (token: string): string => {
    if (token.length > MAX_TOKEN_LENGTH) throw new WireError(ErrorCode.TOKEN_INVALID, 'token too long', 401);
    return token;
  };
  const viaJose = async (token: string, opts: typeof connection): Promise<JWTPayload> => {
    try {
      // jwtVerify is overloaded on the key kind; the union is resolved at run time by jose itself.
      return (await jwtVerify(bounded(token), key as Uint8Array, opts)).payload;
    } catch (err) {
      throw joseRefusal(err, keySet !== undefined);
    }
  };
  const verifyNow = hmacConnection ? (token: string): Principal => principalFromClaims(lifetime(hmacConnection(bounded(token))), config, claimNames) : undefined;
  return {
    verifyNow,
    verify: async (token) => verifyNow?.(token) ?? principalFromClaims(lifetime(await viaJose(token, connection)), config, claimNames),
    verifyPayload: async (token) => (hmacClaims ? hmacClaims(bounded(token)) : viaJose(token, claimsOnly)),
    devSecret,
    local: keySet === undefined,
    get ready() {
      return keySet?.ready ?? true;
    },
    start: () => keySet?.start(),
    stop: () => keySet?.stop(),
  };
}

/** jose's error for a refused token -> ours; with a JWKS, whatever is not about the token is the key set's outage. */
function joseRefusal(err: unknown, remote: boolean): WireError {
  if (err instanceof WireError) return err;
  if (err instanceof joseErrors.JWTExpired) return new WireError(ErrorCode.TOKEN_EXPIRED, 'token expired', 401);
  if (err instanceof joseErrors.JWKSNoMatchingKey) return invalidToken('no key with this kid');
  if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'typ') return invalidToken('typ header: JWT_TYP');
  if (!(err instanceof joseErrors.JOSEError) && remote) return new WireError(ErrorCode.UNAVAILABLE, 'key set unavailable', 503);
  return invalidToken(err instanceof joseErrors.JOSEError ? err.code : 'malformed');
}

/**
 * JWT_REQUIRE_EXP and JWT_MAX_TTL_S, on connection tokens (upgrade, `auth` refresh): a token without
 * `exp` is refused when expiry is required, one whose `exp` is more than JWT_MAX_TTL_S (plus the clock
 * tolerance) away is refused always (so no connection lives past that without a refresh).
 */
function lifetimeCheck(config: Pick<Config, 'jwtRequireExp' | 'jwtMaxTtlS' | 'jwtClockToleranceS'>): (payload: JWTPayload) => JWTPayload {
  const { jwtRequireExp: required, jwtMaxTtlS: maxTtlS, jwtClockToleranceS: tolerance } = config;
  return (payload) => {
    const exp = payload.exp;
    if (exp === undefined) {
      if (required) throw invalidToken('no exp claim: tokens must expire (JWT_REQUIRE_EXP)');
      return payload;
    }
    if (maxTtlS > 0 && typeof exp === 'number' && exp - Date.now() / 1000 > maxTtlS + tolerance) {
      throw invalidToken(`exp is more than JWT_MAX_TTL_S (${maxTtlS} s) away`);
    }
    return payload;
  };
}

/**
 * An `auth` refresh on a connection whose deadline is `current`: a token without `exp` cannot remove the
 * deadline (whatever JWT_REQUIRE_EXP says); its own `exp` was bounded by JWT_MAX_TTL_S when it was verified.
 */
export function checkRefresh(current: number | undefined, next: Principal): void {
  if (current !== undefined && next.exp === undefined) throw invalidToken('no exp claim: a refresh cannot remove the connection\'s expiry');
}

// A Map, not an object literal: an `alg` such as "constructor" must not find an inherited entry.
const HMAC_HASH: ReadonlyMap<string, string> = new Map([['HS256', 'sha256'], ['HS384', 'sha384'], ['HS512', 'sha512']]);
const B64URL = /^[A-Za-z0-9_-]+$/;
// Fatal, as jose's: a header or claims set that is not valid UTF-8 is refused, not patched with U+FFFD.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function invalidToken(reason: string): WireError {
  return new WireError(ErrorCode.TOKEN_INVALID, `token invalid (${reason})`, 401);
}

function decodeJson(part: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(strictUtf8.decode(Buffer.from(part, 'base64url')));
  } catch {
    throw invalidToken('ERR_JWT_INVALID');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidToken('ERR_JWT_INVALID');
  return v as Record<string, unknown>;
}

interface ClaimOptions {
  algorithms: readonly string[];
  clockTolerance: number;
  issuer?: string;
  audience?: string;
  /** The `typ` header required (JWT_TYP), compared as jose does: case-insensitive, `application/` implied. */
  typ?: string;
}

const normalizeTyp = (v: string): string => (v.includes('/') ? v.toLowerCase() : `application/${v.toLowerCase()}`);

/**
 * HS256/384/512 compact JWS verification with node:crypto, and the claim checks jose's jwtVerify makes
 * for the options storywire uses (typ, exp, nbf, iat type, iss, aud, clock tolerance). Same error codes.
 */
export function hmacVerifier(secret: Uint8Array, algorithms: readonly string[], opts: ClaimOptions): (token: string) => JWTPayload {
  const key = createSecretKey(secret);
  return (token) => {
    const dot1 = token.indexOf('.');
    const dot2 = token.indexOf('.', dot1 + 1);
    if (dot1 <= 0 || dot2 <= dot1 + 1 || dot2 === token.length - 1 || token.indexOf('.', dot2 + 1) !== -1) throw invalidToken('ERR_JWS_INVALID');
    const h = token.slice(0, dot1);
    const p = token.slice(dot1 + 1, dot2);
    const s = token.slice(dot2 + 1);
    if (!B64URL.test(h) || !B64URL.test(p) || !B64URL.test(s)) throw invalidToken('ERR_JWS_INVALID');
    const header = decodeJson(h);
    const alg = header['alg'];
    const hash = typeof alg === 'string' && algorithms.includes(alg) ? HMAC_HASH.get(alg) : undefined;
    if (hash === undefined) throw invalidToken('ERR_JOSE_ALG_NOT_ALLOWED');
    // jose understands no critical header parameter here, and `b64: false` is not a JWT.
    if (header['crit'] !== undefined || (header['b64'] !== undefined && header['b64'] !== true)) throw invalidToken('ERR_JWS_INVALID');
    const mac = createHmac(hash, key).update(token.slice(0, dot2)).digest();
    const sig = Buffer.from(s, 'base64url');
    if (sig.length !== mac.length || !timingSafeEqual(sig, mac)) throw invalidToken('ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
    const payload = decodeJson(p) as JWTPayload;
    const typ = header['typ'];
    if (opts.typ !== undefined && (typeof typ !== 'string' || normalizeTyp(typ) !== normalizeTyp(opts.typ))) throw invalidToken('typ header: JWT_TYP');
    const now = Math.floor(Date.now() / 1000);
    for (const claim of ['iat', 'nbf', 'exp'] as const) {
      if (payload[claim] !== undefined && typeof payload[claim] !== 'number') throw invalidToken('ERR_JWT_CLAIM_VALIDATION_FAILED');
    }
    if (payload.nbf !== undefined && payload.nbf > now + opts.clockTolerance) throw invalidToken('ERR_JWT_CLAIM_VALIDATION_FAILED');
    if (payload.exp !== undefined && payload.exp <= now - opts.clockTolerance) throw new WireError(ErrorCode.TOKEN_EXPIRED, 'token expired', 401);
    if (opts.issuer !== undefined && payload.iss !== opts.issuer) throw invalidToken('ERR_JWT_CLAIM_VALIDATION_FAILED');
    if (opts.audience !== undefined) {
      const aud = payload.aud;
      if (!(aud === opts.audience || (Array.isArray(aud) && aud.includes(opts.audience)))) throw invalidToken('ERR_JWT_CLAIM_VALIDATION_FAILED');
    }
    return payload;
  };
}

const NO_PERMISSIONS: ReadonlySet<string> = new Set();

export function principalFromClaims(payload: JWTPayload, config: Config, claimNames: ReadonlySet<string> = new Set()): Principal {
  const sub = payload.sub;
  if (typeof sub !== 'string' || !ID_PATTERN.test(sub)) {
    throw new WireError(ErrorCode.TOKEN_INVALID, 'token invalid (sub must be a string of 1-128 characters [A-Za-z0-9_.@|+=-])', 401);
  }
  // A subscription token grants one channel: it must not open (or refresh) a whole connection.
  if (payload['channel'] !== undefined) throw new WireError(ErrorCode.TOKEN_INVALID, 'token invalid (a subscription token, with a channel claim, cannot open a connection)', 401);
  // JSON allows 1e400 (Infinity): an expiry must be a real second, or absent.
  if (payload.exp !== undefined && !Number.isFinite(payload.exp)) throw new WireError(ErrorCode.TOKEN_INVALID, 'token invalid (exp must be a finite number)', 401);
  // Most users carry no permission at all: they share one empty set instead of holding ~170 bytes each.
  let permissions: Set<string> | undefined;
  const grant = (p: string) => {
    permissions ??= new Set();
    permissions.add(p);
  };
  if (typeof payload['scope'] === 'string') for (const s of payload['scope'].split(' ')) if (s) grant(s);
  if (Array.isArray(payload['roles'])) for (const r of payload['roles']) if (typeof r === 'string') grant(r);
  let claims: Map<string, ReadonlySet<string>> | undefined;
  for (const name of claimNames) {
    const v = payload[name];
    if (v === undefined) continue;
    if (!Array.isArray(v) || v.length > MAX_CLAIM_IDS || !v.every((x) => typeof x === 'string' || typeof x === 'number')) {
      throw new WireError(ErrorCode.TOKEN_INVALID, `token invalid (claim "${name}" must be an array of at most ${MAX_CLAIM_IDS} ids)`, 401);
    }
    claims ??= new Map();
    claims.set(name, new Set(v.map(String)));
  }
  const principal: Principal = { userId: sub, permissions: permissions ?? NO_PERMISSIONS, exp: typeof payload.exp === 'number' ? payload.exp : undefined, claims };
  if (config.connectPermission !== undefined && !hasPermission(principal, config.connectPermission)) {
    throw new WireError(ErrorCode.FORBIDDEN, `token lacks the "${config.connectPermission}" permission`, 403);
  }
  return principal;
}

/** Signs an HS256 token with the dev secret (dev mode only); `claims` are added (a subscription token's `channel`). */
export async function signDevToken(secret: Uint8Array, userId: string, roles: readonly string[], ttlS = 24 * 3600, config?: Config, claims: Record<string, unknown> = {}): Promise<string> {
  const jwt = new SignJWT({ ...claims, roles: [...roles] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS);
  if (config?.jwtIssuer !== undefined) jwt.setIssuer(config.jwtIssuer);
  if (config?.jwtAudience !== undefined) jwt.setAudience(config.jwtAudience);
  return jwt.sign(secret);
}
