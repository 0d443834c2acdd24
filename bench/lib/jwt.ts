// HS256 tokens for the load clients, signed with node:crypto (20,000 of them take ~0.1 s).
import { createHmac } from 'node:crypto';

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

/** The default bench secret (>= 32 bytes, as storywire requires). Not a secret: the bench is local. */
export const BENCH_SECRET = 'storywire-bench-secret-0123456789abcdef';
export const PUBLISH_ROLE = 'stories:publish';

export function signHs256(secret: string, claims: Record<string, unknown>): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const sig = createHmac('sha256', secret).update(`${HEADER}.${payload}`).digest('base64url');
  return `${HEADER}.${payload}.${sig}`;
}

/**
 * A bench user's token. `claims` adds list claims a channel rule reads, e.g. `{ stories: ['1'] }`: a
 * `chapter:published` needs its story in the `stories` claim (built-in `story` namespace).
 */
export function benchToken(secret: string, sub: string, roles: readonly string[] = [], ttlS = 6 * 3600, claims: Readonly<Record<string, readonly string[]>> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  return signHs256(secret, { ...claims, sub, roles, iat: now, exp: now + ttlS });
}
