// Chooses the backplane from the configuration: Redis when REDIS_URL (or REDIS_SENTINELS) is set, memory otherwise.
// The Redis backplane (and ioredis) is imported only when it is chosen: loading it costs a memory-mode
// server ~60 ms of start-up and about 4 MiB of surviving heap, which makes V8 double its young generation.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { userShareOf, type Config } from '../../config.js';
import { redisAddress } from './options.js';
import type { RedisHistoryOptions } from '../history/redis.js';
import { MemoryBackplane } from './memory.js';
import type { Backplane } from './types.js';

/**
 * The backplane the configuration asks for. A Redis backplane is connected before it is returned; when
 * Redis is not reachable within `connectTimeoutMs` it is returned anyway (degraded: local connections only)
 * and joins the cluster when Redis comes up. `historyLimits`: each namespace's own history (the channel
 * registry's `historyLimits`), as the memory history's in edge/server.ts; without it every topic has
 * HISTORY_SIZE and HISTORY_TTL_S; `longestTtlMs`: the longest of them (the registry's `longestHistoryTtlMs`).
 */
export async function createBackplane(config: Config, log: Logger, connectTimeoutMs = 5000, historyLimits?: RedisHistoryOptions['perTopic'], longestTtlMs?: number): Promise<Backplane> {
  const nodeId = config.nodeId ?? randomBytes(4).toString('hex');
  if (config.redisUrl === undefined && config.redisSentinels === undefined && config.redisClusterNodes === undefined) return new MemoryBackplane(nodeId);
  const { RedisBackplane } = await import('./redis/backplane.js');
  const sentinels = config.redisSentinels?.map((s) => redisAddress(s)!);
  const password = config.redisPassword === undefined ? {} : { password: config.redisPassword };
  const backplane = new RedisBackplane({
    ...(config.redisClusterNodes !== undefined
      ? { cluster: { nodes: config.redisClusterNodes.map((s) => redisAddress(s)!), ...password } }
      : sentinels === undefined
        ? { url: config.redisUrl! }
        : { sentinel: { sentinels, name: config.redisSentinelName!, ...password } }),
    prefix: config.redisPrefix,
    nodeId,
    leaseMs: config.nodeLeaseMs,
    graceMs: config.presenceGraceMs,
    history: {
      size: config.historySize,
      ttlMs: config.historyTtlS * 1000,
      maxBytes: config.historyMaxBytes,
      userSize: userShareOf(config),
      ...(historyLimits ? { perTopic: historyLimits } : {}),
      ...(longestTtlMs === undefined ? {} : { longestTtlMs }),
    },
    idempotencyMs: config.idempotencyTtlS * 1000,
    log,
  });
  await backplane.connect(connectTimeoutMs);
  return backplane;
}

export { MemoryBackplane };
export type * from './types.js';
