// How the cluster-mode settings fit together (REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES and their
// companions): checked by loadConfig, the addresses read by createBackplane (index.ts).

/** The settings read here (the Config's fields of the same names). */
export interface RedisSettings {
  readonly redisUrl: string | undefined;
  readonly redisSentinels: readonly string[] | undefined;
  readonly redisSentinelName: string | undefined;
  readonly redisClusterNodes: readonly string[] | undefined;
  readonly redisPassword: string | undefined;
  readonly redisPrefix: string;
  readonly webhookUrl?: string | undefined;
  readonly pushWebhookUrl?: string | undefined;
}

/** Every problem of the Redis settings, for loadConfig. */
export function redisProblems(cfg: RedisSettings): string[] {
  return [...sentinelProblems(cfg), ...clusterProblems(cfg)];
}

/** `host:port` of a sentinel or a Redis Cluster node, or undefined. */
export function redisAddress(s: string): { host: string; port: number } | undefined {
  const m = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : 0;
  return m && port >= 1 && port <= 65535 ? { host: m[1]!.replace(/^\[|\]$/g, ''), port } : undefined;
}

function clusterProblems(cfg: RedisSettings): string[] {
  const problems: string[] = [];
  if (cfg.redisClusterNodes === undefined) return problems;
  if (cfg.redisUrl !== undefined || cfg.redisSentinels !== undefined) problems.push('set only one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES');
  if (cfg.redisClusterNodes.length === 0) problems.push('REDIS_CLUSTER_NODES must list at least one node');
  for (const s of cfg.redisClusterNodes) if (redisAddress(s) === undefined) problems.push(`REDIS_CLUSTER_NODES: each node is host:port, got "${s}"`);
  // The partitions' hash tags follow the prefix: a tag in the prefix would put every key in one slot.
  if (/[{}]/.test(cfg.redisPrefix)) problems.push('REDIS_PREFIX may not contain { or } with REDIS_CLUSTER_NODES (the partitions\' hash tags follow it)');
  return problems;
}

function sentinelProblems(cfg: RedisSettings): string[] {
  const problems: string[] = [];
  if (cfg.redisSentinels === undefined) {
    if (cfg.redisSentinelName !== undefined) problems.push('REDIS_SENTINEL_NAME needs REDIS_SENTINELS');
    if (cfg.redisPassword !== undefined && cfg.redisClusterNodes === undefined) problems.push('REDIS_PASSWORD is for REDIS_SENTINELS or REDIS_CLUSTER_NODES; with REDIS_URL the password is in the URL');
    return problems;
  }
  if (cfg.redisUrl !== undefined) problems.push('set only one of REDIS_URL and REDIS_SENTINELS');
  if (cfg.redisSentinels.length === 0) problems.push('REDIS_SENTINELS must list at least one sentinel');
  for (const s of cfg.redisSentinels) if (redisAddress(s) === undefined) problems.push(`REDIS_SENTINELS: each sentinel is host:port, got "${s}"`);
  if (cfg.redisSentinelName === undefined || !/^[A-Za-z0-9_.-]{1,64}$/.test(cfg.redisSentinelName)) problems.push('REDIS_SENTINELS needs REDIS_SENTINEL_NAME, the monitored primary\'s name (1-64 characters of [A-Za-z0-9_.-])');
  return problems;
}
