// Token sources: a fixed string or an async provider, and reading a JWT's `exp` to refresh before expiry.
import { ClientErrorCode, StorywireError } from './codes.js';
import type { TokenContext, TokenProvider } from './types.js';

/** Calls the provider (or returns the fixed token); a failure becomes a TOKEN_PROVIDER error. */
export async function obtainToken(source: string | TokenProvider, ctx: TokenContext): Promise<string> {
  if (typeof source === 'string') return source;
  let token: unknown;
  try {
    token = await source(ctx);
  } catch (err) {
    throw new StorywireError(ClientErrorCode.TOKEN_PROVIDER, `token provider failed: ${(err as Error)?.message ?? String(err)}`, false, false);
  }
  if (typeof token !== 'string' || token.length === 0) {
    throw new StorywireError(ClientErrorCode.TOKEN_PROVIDER, 'token provider must return a non-empty string', false, false);
  }
  return token;
}

/** A JWT's payload, decoded without verifying it; undefined when unreadable. */
function jwtPayload(token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (part.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return typeof payload === 'object' && payload !== null ? (payload as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The `exp` claim (seconds since epoch) of a JWT, without verifying it; undefined when unreadable. */
export function jwtExp(token: string): number | undefined {
  const exp = jwtPayload(token)?.['exp'];
  return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined;
}

/** The `sub` claim (the user id) of a JWT, without verifying it; undefined when unreadable. */
export function jwtSub(token: string): string | undefined {
  const sub = jwtPayload(token)?.['sub'];
  return typeof sub === 'string' && sub.length > 0 ? sub : undefined;
}

/**
 * ms from now until a refresh should run: `leadMs` before expiry, or half the remaining life when that is
 * shorter, never less than 1 s. Undefined when the token does not expire.
 */
export function refreshDelay(expS: number | undefined, nowMs: number, leadMs: number): number | undefined {
  if (expS === undefined) return undefined;
  const remaining = expS * 1000 - nowMs;
  return Math.max(1000, remaining - Math.min(leadMs, remaining / 2));
}
