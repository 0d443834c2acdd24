// Cluster test support: a throwaway redis-server per suite (random port, killed by PID) and in-process nodes.
// TEST_REDIS_BACKEND=single (default) | sentinel | cluster: what startRedis starts, so that every suite on it runs
// on a redis-server, on Sentinel (a primary, a replica, a sentinel) or on a Redis Cluster (3 + 3 nodes).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as netServer, connect } from 'node:net';
import { Cluster, Redis } from 'ioredis';
import pino from 'pino';
import { RedisBackplane } from '../../src/seams/backplane/redis/backplane.js';
import type { Config } from '../../src/config.js';
import { SECRET, startServer, type Harness } from '../helpers.js';
import { WAIT_MS } from '../wait.js';
import { skipUnlessRequired } from '../ci-require.js';
import { clusterMissing, startRedisCluster, type TestRedisCluster } from './redis-cluster.js';

export { startRedisCluster, type ClusterAddress, type ClusterPrimary, type TestRedisCluster } from './redis-cluster.js';


/** Scheduling slack allowed on top of a promised bound (lease + sweep) on a loaded 2-core CI machine. */
export const SLACK_MS = 1000;

interface Tap {
  teardown(fn: () => unknown): void;
}

export type RedisBackend = 'single' | 'sentinel' | 'cluster';

/** TEST_REDIS_BACKEND: what startRedis (and so every suite on it) runs on. */
export const REDIS_BACKEND: RedisBackend = (() => {
  const b = process.env['TEST_REDIS_BACKEND'] || 'single';
  if (b !== 'single' && b !== 'sentinel' && b !== 'cluster') throw new Error(`TEST_REDIS_BACKEND must be single, sentinel or cluster, got "${b}"`);
  return b;
})();

/**
 * What startRedis hands a suite: one redis-server (`url`), Sentinel (`sentinel`, TestSentinel) or a Redis Cluster
 * (`cluster`, TestRedisCluster). Give it to startNode, redisEnv (a child node's env) and redisClient (a client of it).
 */
export interface TestRedis {
  backend: RedisBackend;
  /** Only for the single backend: on the others reading it throws (use redisEnv / redisClient). */
  url: string;
  /** Sentinel: the RedisBackplane / REDIS_SENTINELS view of it. */
  sentinel?: { sentinels: { host: string; port: number }[]; name: string; password?: string };
  /** Redis Cluster: its nodes (RedisBackplane `cluster.nodes`, REDIS_CLUSTER_NODES). */
  cluster?: { host: string; port: number }[];
  /** A fresh key prefix: suites sharing one Redis (REDIS_URL) do not see each other. */
  prefix: string;
  /** Only for a redis-server this suite spawned: stop it (SIGKILL: its data is lost unless persistent) and start it again. */
  stop?(): Promise<void>;
  start?(): Promise<void>;
}

const hasRedisServer = spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status === 0;

/** Why the cluster suites cannot run here, or false when they can (with CI_REQUIRE=redis: they must, or fail). */
export const skipReason: string | false = skipUnlessRequired(
  'redis',
  REDIS_BACKEND === 'cluster' && clusterMissing
    ? `\n\n  !!! SKIPPED: TEST_REDIS_BACKEND=cluster: ${clusterMissing} !!!\n`
    : (process.env['REDIS_URL'] && REDIS_BACKEND === 'single') || hasRedisServer
      ? false
      : `\n\n  !!! SKIPPED: cluster tests need redis-server on PATH (apt-get install redis-server)${REDIS_BACKEND === 'single' ? ' or REDIS_URL' : ''} !!!\n`,
);
if (skipReason) process.stderr.write(skipReason);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `ok` until it holds; `ms` below WAIT_MS is raised to it (a deadline bounds a hang, it is not what a test asserts). */
async function until(ok: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  ms = Math.max(ms, WAIT_MS);
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('data', (d) => {
      sock.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('error', () => resolve(false));
  });

/** `persistent`: an append-only file fsynced on every write, so that a restart (even a SIGKILL) keeps every key. */
/**
 * A redis-server for a contract suite (startRedis), each of the suite's tests under a key prefix of its own:
 * the tests of one implementation never see each other's keys.
 */
export async function redisPerTest(t: Tap & { beforeEach(fn: () => void): void }): Promise<TestRedis> {
  const redis = await startRedis(t);
  const base = redis.prefix;
  let n = 0;
  t.beforeEach(() => {
    redis.prefix = `${base}${++n}:`;
  });
  return redis;
}

/**
 * The suite's Redis, on TEST_REDIS_BACKEND: a redis-server of its own (or REDIS_URL's), startSentinel's or
 * startRedisCluster's. REDIS_URL counts only for the single backend; the others always start their own.
 */
export async function startRedis(t: Tap, opts: { persistent?: boolean } = {}): Promise<TestRedis> {
  if (REDIS_BACKEND === 'cluster') return startRedisCluster(t, opts);
  if (REDIS_BACKEND === 'sentinel') return startSentinel(t, opts);
  const prefix = `swtest:${randomBytes(4).toString('hex')}:`;
  if (process.env['REDIS_URL']) return { backend: 'single', url: process.env['REDIS_URL'], prefix };
  const port = await freePort();
  let child: ChildProcess | undefined;
  const dir = opts.persistent ? mkdtempSync(join(tmpdir(), 'sw-redis-')) : undefined;
  if (dir !== undefined) t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const persistence = dir !== undefined ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir] : ['--appendonly', 'no'];
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence], { stdio: 'ignore' });
    await until(() => accepts(port), 5000, `redis-server on port ${port}`);
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  t.teardown(stop);
  return { backend: 'single', url: `redis://127.0.0.1:${port}`, prefix, stop, start };
}

/** The backplane's view of the suite's Redis: `url`, `sentinel` or `cluster` of RedisBackplaneOptions. */
export function backplaneTarget(redis: TestRedis): { url: string } | { sentinel: NonNullable<TestRedis['sentinel']> } | { cluster: { nodes: { host: string; port: number }[] } } {
  if (redis.cluster !== undefined) return { cluster: { nodes: redis.cluster } };
  if (redis.sentinel !== undefined) return { sentinel: redis.sentinel };
  return { url: redis.url };
}

/** A child node's env entries for the suite's Redis: REDIS_URL, REDIS_SENTINELS (+ name, password) or REDIS_CLUSTER_NODES. */
export function redisEnv(redis: TestRedis): Record<string, string> {
  const list = (a: { host: string; port: number }[]) => a.map(({ host, port }) => `${host}:${port}`).join(',');
  if (redis.cluster !== undefined) return { REDIS_CLUSTER_NODES: list(redis.cluster) };
  const s = redis.sentinel;
  if (s !== undefined) return { REDIS_SENTINELS: list(s.sentinels), REDIS_SENTINEL_NAME: s.name, ...(s.password === undefined ? {} : { REDIS_PASSWORD: s.password }) };
  return { REDIS_URL: redis.url };
}

export type RedisClient = Redis | Cluster;

/** The options redisClient passes on (to each node's connection of a cluster; lazyConnect and enableOfflineQueue to the Cluster itself). */
export interface RedisClientOptions {
  lazyConnect?: boolean;
  enableOfflineQueue?: boolean;
  maxRetriesPerRequest?: number | null;
  commandTimeout?: number;
}

/**
 * A client of the suite's Redis (the caller disconnects it): a Redis of the URL, a Redis of the primary the
 * sentinel names, or an ioredis Cluster of the cluster's nodes. A command without a key goes to one node of a cluster.
 */
export function redisClient(redis: TestRedis, options: RedisClientOptions = {}): RedisClient {
  // Its commands reject while the backend is away (outage suites): the 'error' events would only be console noise.
  return quiet(connectClient(redis, options));
}

function quiet<T extends RedisClient>(c: T): T {
  c.on('error', () => {});
  return c;
}

function connectClient(redis: TestRedis, options: RedisClientOptions): RedisClient {
  const { lazyConnect, enableOfflineQueue, ...node } = options;
  if (redis.cluster !== undefined) {
    return new Cluster(redis.cluster.map(({ host, port }) => ({ host, port })), {
      ...(lazyConnect === undefined ? {} : { lazyConnect }),
      ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
      redisOptions: node,
    });
  }
  const s = redis.sentinel;
  if (s === undefined) return new Redis(redis.url, options);
  return new Redis({ ...options, sentinels: s.sentinels.map(({ host, port }) => ({ host, port })), name: s.name, ...(s.password === undefined ? {} : { password: s.password }) });
}

export interface Node extends Harness {
  backplane: RedisBackplane;
}

/** A node in this process, on the shared Redis, registered in the cluster before it listens. */
export async function startNode(t: Tap, redis: TestRedis | TestSentinel | TestRedisCluster, overrides: Partial<Config> = {}): Promise<Node> {
  const nodeId = `n${randomBytes(3).toString('hex')}`;
  const backplane = new RedisBackplane({
    ...backplaneTarget(redis),
    prefix: redis.prefix,
    nodeId,
    leaseMs: overrides.nodeLeaseMs ?? 1500,
    graceMs: overrides.presenceGraceMs ?? 3000,
    history: {
      size: overrides.historySize ?? 50,
      ttlMs: (overrides.historyTtlS ?? 604800) * 1000,
      // NOTIFY_USER_SHARE of HISTORY_SIZE, as production's (seams/backplane/index.ts).
      userSize: Math.floor(((overrides.historySize ?? 50) * (overrides.notifyUserShare ?? 50)) / 100),
    },
    log: pino({ level: process.env['TEST_LOG'] ?? 'silent' }),
  });
  if (!(await backplane.connect(5000))) throw new Error('node did not join the cluster');
  const h = await startServer(t, { nodeLeaseMs: 1500, ...overrides }, { API_KEY: API_KEY }, { backplane });
  return Object.assign(h, { backplane });
}

export async function startNodes(t: Tap, redis: TestRedis | TestSentinel | TestRedisCluster, n: number, overrides: Partial<Config> = {}): Promise<Node[]> {
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) nodes.push(await startNode(t, redis, overrides));
  return nodes;
}

export const API_KEY = 'cluster-test-api-key-0123456789';

export async function api(node: Harness, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${node.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

export { until };

export interface TestSentinel extends TestRedis {
  backend: 'sentinel';
  /** The RedisBackplane / REDIS_SENTINELS view of it. */
  sentinel: { sentinels: { host: string; port: number }[]; name: string; password?: string };
  prefix: string;
  /** The port of the primary now (as the sentinel names it). */
  primaryPort(): Promise<number>;
  /** SIGKILLs the primary; resolves with the new primary's port once the sentinel has promoted the replica. */
  failover(): Promise<number>;
  /** As TestRedis.stop: SIGKILLs the primary, the replica and the sentinel (the data is lost unless persistent). */
  stop(): Promise<void>;
  /**
   * As TestRedis.start: starts them again, the last primary the sentinel named as the primary, the other as its
   * replica (a primary lost in a failover comes back so), and resolves once the replica is in sync and the
   * sentinel names the primary up.
   */
  start(): Promise<void>;
}

/** One command over a short-lived connection; undefined when the server cannot be reached or refuses it. */
async function ask(port: number, password: string | undefined, ...args: string[]): Promise<unknown> {
  const r = new Redis({ host: '127.0.0.1', port, ...(password === undefined ? {} : { password }), lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => {});
  try {
    await r.connect();
    return await r.call(args[0]!, ...args.slice(1));
  } catch {
    return undefined;
  } finally {
    r.disconnect();
  }
}

/**
 * Redis with Sentinel on loopback for a suite: a primary, a replica of it, and one sentinel (quorum 1,
 * down-after 1000 ms), each on a free port, killed by PID when the suite ends. With `password`, the primary
 * and the replica require it (the sentinel knows it: `auth-pass`); the sentinel itself needs none.
 * `persistent`: both keep an append-only file fsynced on every write, so that stop/start keeps every key.
 */
export async function startSentinel(t: Tap, opts: { password?: string; persistent?: boolean } = {}): Promise<TestSentinel> {
  const prefix = `swtest:${randomBytes(4).toString('hex')}:`;
  const name = 'swmaster';
  const { password } = opts;
  const [p, r, s] = [await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'sw-sentinel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const children = new Map<number, ChildProcess>();
  const spawnRedis = async (port: number, args: string[], pass: string | undefined) => {
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    children.set(port, child);
    await until(async () => (await ask(port, pass, 'PING')) === 'PONG', 5000, `redis on port ${port}`);
  };
  const killAll = async () => {
    for (const c of children.values()) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const exited = new Promise((res) => c.once('exit', res));
      c.kill('SIGKILL');
      await exited;
    }
  };
  t.teardown(killAll);
  // A directory each; the primary sends its first full sync at once (Redis waits 5 s for more replicas by default).
  for (const port of [p, r]) mkdirSync(join(dir, String(port)));
  const persistence = opts.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const base = (port: number) => {
    const auth = password === undefined ? [] : ['--requirepass', password, '--masterauth', password];
    return ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', join(dir, String(port)), '--repl-diskless-sync-delay', '0', ...auth];
  };
  // In sync before anything is written: a failover then loses nothing but what is in flight.
  const inSync = (replica: number) => until(async () => String(await ask(replica, password, 'INFO', 'replication')).includes('master_link_status:up'), 0, 'the replica in sync');
  await spawnRedis(p, base(p), password);
  await spawnRedis(r, [...base(r), '--replicaof', '127.0.0.1', String(p)], password);
  await inSync(r);
  const conf = join(dir, 'sentinel.conf');
  const lines = [`port ${s}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${name} 127.0.0.1 ${p} 1`, `sentinel down-after-milliseconds ${name} 1000`, `sentinel failover-timeout ${name} 10000`];
  if (password !== undefined) lines.push(`sentinel auth-pass ${name} ${password}`);
  writeFileSync(conf, `${lines.join('\n')}\n`);
  await spawnRedis(s, [conf, '--sentinel'], undefined);
  const primaryPort = async () => Number(((await ask(s, undefined, 'SENTINEL', 'get-master-addr-by-name', name)) as string[] | undefined)?.[1] ?? 0);
  // The sentinel learns of the replica from the primary's INFO; a failover needs it (and the replica in sync).
  await until(async () => ((await ask(s, undefined, 'SENTINEL', 'replicas', name)) as unknown[] | undefined)?.length === 1, 0, 'the sentinel to know the replica');
  /** The primary as last named by the sentinel (stop/start bring it back as the primary). */
  let primary = p;
  const o: Omit<TestSentinel, 'url'> = {
    backend: 'sentinel',
    sentinel: { sentinels: [{ host: '127.0.0.1', port: s }], name, ...(password === undefined ? {} : { password }) },
    prefix,
    primaryPort,
    async failover() {
      const old = await primaryPort();
      const c = children.get(old)!;
      const exited = new Promise((res) => c.once('exit', res));
      c.kill('SIGKILL');
      await exited;
      let now = old;
      await until(async () => {
        now = await primaryPort();
        return now !== old && now !== 0;
      }, 0, 'the sentinel to promote the replica');
      await until(async () => (await ask(now, password, 'PING')) === 'PONG', 0, 'the new primary');
      primary = now;
      return now;
    },
    async stop() {
      primary = (await primaryPort()) || primary;
      await killAll();
    },
    async start() {
      const replica = primary === p ? r : p;
      // The sentinel's file names the last primary it knew (it rewrites it on every change): the one started as such.
      await spawnRedis(primary, base(primary), password);
      await spawnRedis(replica, [...base(replica), '--replicaof', '127.0.0.1', String(primary)], password);
      await inSync(replica);
      await spawnRedis(s, [conf, '--sentinel'], undefined);
      await until(async () => {
        if ((await primaryPort()) !== primary) return false;
        const m = (await ask(s, undefined, 'SENTINEL', 'master', name)) as string[] | undefined;
        const flags = m?.[m.indexOf('flags') + 1];
        const replicas = (await ask(s, undefined, 'SENTINEL', 'replicas', name)) as string[][] | undefined;
        const up = replicas?.some((x) => x[x.indexOf('flags') + 1] === 'slave' && x[x.indexOf('port') + 1] === String(replica));
        return flags === 'master' && up === true;
      }, 0, 'the sentinel to see the primary and its replica up');
    },
  };
  return withoutUrl(o, 'Sentinel (TEST_REDIS_BACKEND=sentinel)');
}

/** Gives `o` a `url` that throws when read (non-enumerable: a spread or an inspection does not read it). */
function withoutUrl<T extends object>(o: T, what: string): T & { url: string } {
  Object.defineProperty(o, 'url', {
    enumerable: false,
    get() {
      throw new Error(`redis.url: ${what} has no single URL; use redisEnv(redis) or redisClient(redis) (test/cluster/redis.ts)`);
    },
  });
  return o as T & { url: string };
}

export interface ChildNode {
  child: ChildProcess;
  port: number;
  /** Resolves when the process has exited. */
  exited: Promise<unknown>;
  /** Everything it printed so far. */
  output(): string;
}

/**
 * A node in a process of its own (`src/main.ts` with `env` on top of a loopback, JWT and API key base), for
 * the tests that SIGKILL one. Resolves once it listens; killed by PID when `t` ends, its output printed
 * when `t` failed.
 */
export async function startChildNode(t: Tap & { passing(): boolean; comment(m: string): void }, env: Record<string, string>): Promise<ChildNode> {
  const main = new URL('../../src/main.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', 'tsx', main], {
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: '0', JWT_SECRET: SECRET, API_KEY, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  t.teardown(() => {
    if (!t.passing()) t.comment(`child node output:\n${out}`);
  });
  await until(() => /"port":(\d+)/.test(out) || child.exitCode !== null, 0, 'the child node to listen');
  if (child.exitCode !== null) throw new Error(`the child node exited with ${child.exitCode}: ${out}`);
  return { child, port: Number(/"port":(\d+)/.exec(out)![1]), exited, output: () => out };
}

/** What notifyUnderLoad saw: every 200 (title, when), the count of each status, and how long publishes were refused. */
export interface Load {
  readonly acked: { title: string; at: number }[];
  readonly statuses: Map<number, number>;
  /** From now on, acknowledged ones count toward the end (20 after the mark). */
  mark(): void;
  readonly ackedAfter: number;
  /** Between the first and the last refused publish, ms (0: none refused). */
  readonly refusedMs: number;
  /** Resolves when 20 were acknowledged after mark(), or the bound (5000 publishes, 3 WAIT_MS) is reached. */
  readonly done: Promise<void>;
}

/**
 * A steady publish load for failover tests: notifications to one user through a node's API, one at a time, each
 * titled n1, n2, ...; a refused one is followed by a short pause (pacing, not a wait for an event).
 */
export function notifyUnderLoad(node: Harness, userId: string): Load {
  const acked: { title: string; at: number }[] = [];
  const statuses = new Map<number, number>();
  let marked = false;
  let ackedAfter = 0;
  let firstRefused: number | undefined;
  let lastRefused = 0;
  const deadline = Date.now() + 3 * WAIT_MS;
  const done = (async () => {
    for (let n = 1; n <= 5000 && Date.now() < deadline && ackedAfter < 20; n++) {
      const title = `n${n}`;
      const res = await fetch(`http://127.0.0.1:${node.port}/v1/notifications`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ userId, notification: { title, message: 'm' } }),
      }).catch(() => undefined);
      const status = res?.status ?? 0;
      await res?.text();
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status === 200) {
        acked.push({ title, at: Date.now() });
        if (marked) ackedAfter++;
      } else {
        firstRefused ??= Date.now();
        lastRefused = Date.now();
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  })();
  return {
    acked,
    statuses,
    mark: () => {
      marked = true;
    },
    get ackedAfter() {
      return ackedAfter;
    },
    get refusedMs() {
      return firstRefused === undefined ? 0 : lastRefused - firstRefused;
    },
    done,
  };
}
