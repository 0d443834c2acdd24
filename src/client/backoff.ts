// Reconnect delays: exponential backoff with full jitter, the close-code policy, and the default clock.
import type { Clock, ReconnectOptions } from './types.js';

export type ResolvedReconnect = Required<ReconnectOptions>;

export const RECONNECT_DEFAULTS: ResolvedReconnect = Object.freeze({
  minDelayMs: 500,
  maxDelayMs: 30_000,
  factor: 2,
  maxAttempts: Number.POSITIVE_INFINITY,
  stableAfterMs: 5_000,
});

export function resolveReconnect(o: ReconnectOptions | undefined): ResolvedReconnect {
  const r = { ...RECONNECT_DEFAULTS, ...o };
  if (!(r.minDelayMs >= 0) || !(r.maxDelayMs >= r.minDelayMs)) throw new RangeError('reconnect: need 0 <= minDelayMs <= maxDelayMs');
  if (!(r.factor >= 1)) throw new RangeError('reconnect: factor must be >= 1');
  if (!(r.maxAttempts >= 1)) throw new RangeError('reconnect: maxAttempts must be >= 1');
  return r;
}

/** The cap of the draw for a given attempt (0-based): min(max, min * factor^attempt). */
export function backoffCap(attempt: number, o: ResolvedReconnect): number {
  return Math.min(o.maxDelayMs, o.minDelayMs * o.factor ** attempt);
}

/**
 * Full jitter (delay drawn uniformly in [0, cap)): clients dropped together by one server restart spread
 * their retries over the whole window instead of arriving in waves.
 */
export function backoffDelay(attempt: number, o: ResolvedReconnect, random: () => number): number {
  return Math.floor(random() * backoffCap(attempt, o));
}

/** The "reconnect now" ranges still get a small random delay, so a whole node's clients do not return at once. */
export function nowDelay(o: ResolvedReconnect, random: () => number): number {
  return Math.floor(random() * Math.min(o.minDelayMs, 1000));
}

const perf = (globalThis as { performance?: { now(): number } }).performance;

export const systemClock: Clock = {
  now: () => (perf ? perf.now() : Date.now()),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
  random: Math.random,
};
