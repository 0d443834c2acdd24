// The `storywire/redis` entry point: the Redis backplane for cluster mode. Kept out of the package root so that
// an embedder in memory mode never loads ioredis (test/entry-points.test.ts holds that).
export { RedisBackplane, type RedisBackplaneOptions } from './seams/backplane/redis/backplane.js';
export { createBackplane } from './seams/backplane/index.js';
