// What the parts of the Redis backplane (frames, control, membership, presence) share: the node's two
// Redis connections, the key layout, and whether the node is registered in the cluster.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisKeys } from './keys.js';

export interface Link {
  readonly nodeId: string;
  /** Commands, scripts and SPUBLISH. */
  readonly cmd: Redis;
  /** SSUBSCRIBE only. */
  readonly sub: Redis;
  readonly keys: RedisKeys;
  readonly log: Logger;
  /** Bound on every Redis round trip. */
  readonly timeoutMs: number;
  /** Redis reachable and this node registered in the cluster. */
  readonly up: boolean;
  /** Both connections are ready (the node may not be registered yet). */
  readonly connected: boolean;
  /** close() was called: nothing is registered any more. */
  readonly closing: boolean;
}
