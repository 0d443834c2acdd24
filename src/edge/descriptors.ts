// Open files: the process's limit, the descriptors kept for what is not a client connection, and the
// MAX_CONNECTIONS that fits between them (derived or checked at start: config.ts, then createServer).
import { readFileSync } from 'node:fs';

/**
 * Descriptors every node keeps for itself: stdio, libuv's and uWS's epoll, eventfds and timers, the listen
 * sockets (PORT, ADMIN_PORT), files it reads (CHANNELS_FILE, the demo page, /proc), JWKS and DNS lookups, and
 * HTTP sockets that are not WebSockets (backend API calls, upgrades in progress).
 */
export const RESERVE_BASE = 64;
/** With REDIS_URL: the command and subscriber connections, and room for a reconnect to overlap them. */
export const RESERVE_REDIS = 4;
/** With Redis Cluster: two connections (commands, sharded subscriber) to each of up to 32 nodes. */
export const RESERVE_REDIS_CLUSTER = 64;
/** MAX_CONNECTIONS where the limit cannot be read (not Linux): the old default, not checked. */
export const UNKNOWN_LIMIT_MAX_CONNECTIONS = 19000;
/** A derived MAX_CONNECTIONS is at most this, however high the limit (memory runs out first). */
export const DERIVED_AT_MOST = 1_000_000;

/**
 * The open-files soft limit of this process (RLIMIT_NOFILE, from /proc/self/limits on Linux); undefined
 * where it cannot be read. Node raises the soft limit to the hard one at start, so this is `ulimit -Hn` of
 * the shell that started it.
 */
export function openFilesLimit(limits: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  if (process.platform !== 'linux') return undefined;
  let text: string;
  try {
    text = limits();
  } catch {
    return undefined;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  if (soft === 'unlimited') return Number.POSITIVE_INFINITY;
  return soft !== undefined && /^\d+$/.test(soft) ? Number(soft) : undefined;
}

/** Descriptors kept for other than client connections: the base, Redis, and each backend proxy's sockets (its maxInFlight). */
export function descriptorReserve(redis: boolean, proxiesMaxInFlight: Iterable<number> = [], redisCluster = false): number {
  let reserve = RESERVE_BASE + (redisCluster ? RESERVE_REDIS_CLUSTER : redis ? RESERVE_REDIS : 0);
  for (const n of proxiesMaxInFlight) reserve += n;
  return reserve;
}

/** What MAX_CONNECTIONS became, and why. */
export interface OpenFiles {
  /** The open-files limit read at start; undefined: not known, nothing checked. */
  readonly limit: number | undefined;
  /** True when MAX_CONNECTIONS was not set and follows the limit. */
  readonly derived: boolean;
}

export type Budget = { readonly maxConnections: number; readonly problem?: undefined } | { readonly maxConnections?: undefined; readonly problem: string };

const FIX = 'raise the limit (ulimit -n in the shell that starts it, LimitNOFILE= in a systemd unit, --ulimit nofile= for docker run)';

/**
 * MAX_CONNECTIONS against the open-files limit. Set: it must fit with the reserve, or the start stops (a node
 * out of descriptors spins in uWS's accept loop and answers nobody, /healthz included). Unset: the limit
 * minus the reserve, at most DERIVED_AT_MOST.
 */
export function connectionBudget(maxConnections: number | undefined, reserve: number, limit: number | undefined): Budget {
  if (limit === undefined) return { maxConnections: maxConnections ?? UNKNOWN_LIMIT_MAX_CONNECTIONS };
  const room = limit - reserve;
  if (maxConnections === undefined) {
    if (room < 1) return { problem: `the open-files limit is ${limit}, which leaves no room for connections beside the ${reserve} descriptors a node keeps for itself: ${FIX}` };
    return { maxConnections: Math.min(room, DERIVED_AT_MOST) };
  }
  if (maxConnections <= room) return { maxConnections };
  return {
    problem: `MAX_CONNECTIONS=${maxConnections} needs ${maxConnections + reserve} open files (${reserve} kept for the node itself), but the open-files limit is ${limit}: ${FIX} to at least ${maxConnections + reserve}, or set MAX_CONNECTIONS to at most ${Math.max(room, 0)} (or leave it unset: it follows the limit)`,
  };
}

/**
 * The cap once the backend proxies are known (CHANNELS_FILE is read after the configuration): their sockets
 * join the reserve. A derived MAX_CONNECTIONS shrinks to make room; a set one that no longer fits is a problem.
 */
export function withProxies(maxConnections: number, openFiles: OpenFiles, redis: boolean, proxiesMaxInFlight: readonly number[]): Budget {
  if (proxiesMaxInFlight.length === 0 || openFiles.limit === undefined) return { maxConnections };
  const budget = connectionBudget(openFiles.derived ? undefined : maxConnections, descriptorReserve(redis, proxiesMaxInFlight), openFiles.limit);
  return budget.maxConnections === undefined ? budget : { maxConnections: Math.min(budget.maxConnections, maxConnections) };
}
