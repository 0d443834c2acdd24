// Chooses the backplane from the configuration: Redis when REDIS_URL is set, memory otherwise.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { MemoryBackplane } from './memory.js';
import { RedisBackplane } from './redis.js';
import type { Backplane } from './types.js';

export function createBackplane(config: Config, log: Logger): Backplane {
  const nodeId = config.nodeId ?? randomBytes(4).toString('hex');
  if (config.redisUrl === undefined) return new MemoryBackplane(nodeId);
  return new RedisBackplane({
    url: config.redisUrl,
    prefix: config.redisPrefix,
    nodeId,
    leaseMs: config.nodeLeaseMs,
    graceMs: config.presenceGraceMs,
    history: { size: config.historySize, ttlMs: config.historyTtlS * 1000 },
    log,
  });
}

export { MemoryBackplane, RedisBackplane };
export type * from './types.js';
