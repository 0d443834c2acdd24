// Token extraction from an upgrade request and JWT verification with jose -> Principal.
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  SignJWT,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type JWTPayload,
} from 'jose';
import type { Config } from './config.js';
import { ErrorCode, WireError } from './errors.js';

/** Who a connection belongs to, from a verified token. */
export interface Principal {
  readonly userId: string;
  /** `scope` (space-separated) and `roles` (array) claims merged. */
  readonly permissions: ReadonlySet<string>;
  /** Token expiry, seconds since epoch; undefined when the token has no `exp`. */
  readonly exp: number | undefined;
}

/** The subprotocol the server speaks; echoed back when a client offers it. */
export const SUBPROTOCOL = 'storywire.v1';
/** Prefix of the subprotocol entry that carries a token: `bearer.<jwt>`. */
export const SUBPROTOCOL_TOKEN_PREFIX = 'bearer.';
/** User, story and author ids: what may follow `user:`, `story:`, `author:` in a topic. */
export const ID_PATTERN = /^[A-Za-z0-9_.@|+=-]{1,128}$/;
export const ADMIN_PERMISSION = 'admin';

export interface TokenSource {
  token: string | undefined;
  /** What to answer in Sec-WebSocket-Protocol ('' for nothing). */
  protocol: string;
}

/** Reads the token from `Authorization: Bearer`, then `Sec-WebSocket-Protocol: bearer.<jwt>`, then `?token=`. */
export function extractToken(authorization: string, protocols: string, queryToken: string): TokenSource {
  const offered = protocols ? protocols.split(',').map((p) => p.trim()) : [];
  const protocol = offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : '';
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (bearer) return { token: bearer[1], protocol };
  const fromProtocol = offered.find((p) => p.startsWith(SUBPROTOCOL_TOKEN_PREFIX));
  if (fromProtocol) return { token: fromProtocol.slice(SUBPROTOCOL_TOKEN_PREFIX.length), protocol };
  return { token: queryToken || undefined, protocol };
}

export function hasPermission(p: Principal, permission: string): boolean {
  return p.permissions.has(permission) || p.permissions.has(ADMIN_PERMISSION);
}

type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<unknown>;
type KeyInput = Uint8Array | KeyObject | KeyResolver;

/**
 * A remote JWKS that survives its endpoint going down: keys fetched before keep verifying (a refetch
 * that fails falls back to the last good set), while a kid never seen is refused (no key to check it).
 */
export function resilientJwks(url: URL, cacheMaxAgeMs: number, timeoutMs: number): KeyResolver {
  const remote = createRemoteJWKSet(url, { timeoutDuration: timeoutMs, cooldownDuration: 30_000, cacheMaxAge: cacheMaxAgeMs });
  let lastGood: JSONWebKeySet | undefined;
  return async (header, token) => {
    try {
      const key = await remote(header, token);
      lastGood = remote.jwks() ?? lastGood;
      return key;
    } catch (err) {
      const unreachable = !(err instanceof joseErrors.JOSEError) || err instanceof joseErrors.JWKSTimeout || err.code === 'ERR_JOSE_GENERIC';
      if (unreachable && lastGood) return createLocalJWKSet(lastGood)(header, token);
      throw err;
    }
  };
}

export interface Verifier {
  verify(token: string): Promise<Principal>;
  /** Set when no key was configured outside production: a random HS256 secret for local use only. */
  readonly devSecret: Uint8Array | undefined;
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

export function createVerifier(config: Config): Verifier {
  let key: KeyInput;
  let algorithms: string[];
  let devSecret: Uint8Array | undefined;
  if (config.jwtSecret !== undefined) {
    key = new TextEncoder().encode(config.jwtSecret);
    algorithms = [...(config.jwtAlgorithms ?? ['HS256'])];
  } else if (config.jwtPublicKey !== undefined) {
    const pem = config.jwtPublicKey.replaceAll('\\n', '\n');
    const publicKey = createPublicKey(pem);
    key = publicKey;
    algorithms = [...(config.jwtAlgorithms ?? algorithmsForKey(publicKey))];
  } else if (config.jwtJwksUrl !== undefined) {
    key = resilientJwks(new URL(config.jwtJwksUrl), config.jwtJwksCacheMs, config.upgradeTimeoutMs);
    algorithms = [...(config.jwtAlgorithms ?? ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])];
  } else {
    if (config.production) throw new WireError(ErrorCode.INTERNAL, 'no JWT key configured in production', 500);
    devSecret = new Uint8Array(randomBytes(32));
    key = devSecret;
    algorithms = ['HS256'];
  }
  const options = {
    algorithms,
    clockTolerance: config.jwtClockToleranceS,
    ...(config.jwtIssuer !== undefined ? { issuer: config.jwtIssuer } : {}),
    ...(config.jwtAudience !== undefined ? { audience: config.jwtAudience } : {}),
  };

  async function verify(token: string): Promise<Principal> {
    if (token.length > MAX_TOKEN_LENGTH) throw new WireError(ErrorCode.TOKEN_INVALID, 'token too long', 401);
    let payload: JWTPayload;
    try {
      // jwtVerify is overloaded on the key kind; the union is resolved at run time by jose itself.
      ({ payload } = await jwtVerify(token, key as Uint8Array, options));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new WireError(ErrorCode.TOKEN_EXPIRED, 'token expired', 401);
      if (err instanceof joseErrors.JWKSTimeout) throw new WireError(ErrorCode.UNAVAILABLE, 'key set unavailable', 503);
      if (err instanceof joseErrors.JWKSNoMatchingKey) throw new WireError(ErrorCode.TOKEN_INVALID, 'token invalid (no key with this kid)', 401);
      if (!(err instanceof joseErrors.JOSEError) && typeof key === 'function') throw new WireError(ErrorCode.UNAVAILABLE, 'key set unavailable', 503);
      const reason = err instanceof joseErrors.JOSEError ? err.code : 'malformed';
      throw new WireError(ErrorCode.TOKEN_INVALID, `token invalid (${reason})`, 401);
    }
    return principalFromClaims(payload, config);
  }
  return { verify, devSecret };
}

export function principalFromClaims(payload: JWTPayload, config: Config): Principal {
  const sub = payload.sub;
  if (typeof sub !== 'string' || !ID_PATTERN.test(sub)) {
    throw new WireError(ErrorCode.TOKEN_INVALID, 'token invalid (sub must be a string of 1-128 characters [A-Za-z0-9_.@|+=-])', 401);
  }
  const permissions = new Set<string>();
  if (typeof payload.scope === 'string') for (const s of payload.scope.split(' ')) if (s) permissions.add(s);
  if (Array.isArray(payload.roles)) for (const r of payload.roles) if (typeof r === 'string') permissions.add(r);
  const principal: Principal = { userId: sub, permissions, exp: typeof payload.exp === 'number' ? payload.exp : undefined };
  if (config.connectPermission !== undefined && !hasPermission(principal, config.connectPermission)) {
    throw new WireError(ErrorCode.FORBIDDEN, `token lacks the "${config.connectPermission}" permission`, 403);
  }
  return principal;
}

/** Signs an HS256 token with the dev secret (dev mode only). */
export async function signDevToken(secret: Uint8Array, userId: string, roles: readonly string[], ttlS = 24 * 3600, config?: Config): Promise<string> {
  const jwt = new SignJWT({ roles: [...roles] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS);
  if (config?.jwtIssuer !== undefined) jwt.setIssuer(config.jwtIssuer);
  if (config?.jwtAudience !== undefined) jwt.setAudience(config.jwtAudience);
  return jwt.sign(secret);
}
