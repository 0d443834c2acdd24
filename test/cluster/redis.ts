// Cluster test support: a throwaway redis-server per suite (random port, killed by PID) and in-process nodes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as netServer, connect } from 'node:net';
import { Redis } from 'ioredis';
import pino from 'pino';
import { RedisBackplane } from '../../src/seams/backplane/redis/backplane.js';
import type { Config } from '../../src/config.js';
import { SECRET, startServer, type Harness } from '../helpers.js';
import { WAIT_MS } from '../wait.js';
import { skipUnlessRequired } from '../ci-require.js';


/** Scheduling slack allowed on top of a promised bound (lease + sweep) on a loaded 2-core CI machine. */
export const SLACK_MS = 1000;

interface Tap {
  teardown(fn: () => unknown): void;
}

export interface TestRedis {
  url: string;
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
  process.env['REDIS_URL'] || hasRedisServer
    ? false
    : '\n\n  !!! SKIPPED: cluster tests need redis-server on PATH (apt-get install redis-server) or REDIS_URL !!!\n',
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

export async function startRedis(t: Tap, opts: { persistent?: boolean } = {}): Promise<TestRedis> {
  const prefix = `swtest:${randomBytes(4).toString('hex')}:`;
  if (process.env['REDIS_URL']) return { url: process.env['REDIS_URL'], prefix };
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
  return { url: `redis://127.0.0.1:${port}`, prefix, stop, start };
}

export interface Node extends Harness {
  backplane: RedisBackplane;
}

/** A node in this process, on the shared Redis, registered in the cluster before it listens. */
export async function startNode(t: Tap, redis: TestRedis | TestSentinel, overrides: Partial<Config> = {}): Promise<Node> {
  const nodeId = `n${randomBytes(3).toString('hex')}`;
  const backplane = new RedisBackplane({
    ...('url' in redis ? { url: redis.url } : { sentinel: redis.sentinel }),
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

export async function startNodes(t: Tap, redis: TestRedis | TestSentinel, n: number, overrides: Partial<Config> = {}): Promise<Node[]> {
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

export interface TestSentinel {
  /** The RedisBackplane / REDIS_SENTINELS view of it. */
  sentinel: { sentinels: { host: string; port: number }[]; name: string; password?: string };
  prefix: string;
  /** The port of the primary now (as the sentinel names it). */
  primaryPort(): Promise<number>;
  /** SIGKILLs the primary; resolves with the new primary's port once the sentinel has promoted the replica. */
  failover(): Promise<number>;
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
 */
export async function startSentinel(t: Tap, opts: { password?: string } = {}): Promise<TestSentinel> {
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
  t.teardown(async () => {
    for (const c of children.values()) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const exited = new Promise((res) => c.once('exit', res));
      c.kill('SIGKILL');
      await exited;
    }
  });
  // A directory each; the primary sends its first full sync at once (Redis waits 5 s for more replicas by default).
  const base = (port: number) => {
    const own = join(dir, String(port));
    mkdirSync(own);
    const auth = password === undefined ? [] : ['--requirepass', password, '--masterauth', password];
    return ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', own, '--repl-diskless-sync-delay', '0', ...auth];
  };
  await spawnRedis(p, base(p), password);
  await spawnRedis(r, [...base(r), '--replicaof', '127.0.0.1', String(p)], password);
  // In sync before anything is written: a failover then loses nothing but what is in flight.
  await until(async () => String(await ask(r, password, 'INFO', 'replication')).includes('master_link_status:up'), 0, 'the replica in sync');
  const conf = join(dir, 'sentinel.conf');
  const lines = [`port ${s}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${name} 127.0.0.1 ${p} 1`, `sentinel down-after-milliseconds ${name} 1000`, `sentinel failover-timeout ${name} 10000`];
  if (password !== undefined) lines.push(`sentinel auth-pass ${name} ${password}`);
  writeFileSync(conf, `${lines.join('\n')}\n`);
  await spawnRedis(s, [conf, '--sentinel'], undefined);
  const primaryPort = async () => Number(((await ask(s, undefined, 'SENTINEL', 'get-master-addr-by-name', name)) as string[] | undefined)?.[1] ?? 0);
  // The sentinel learns of the replica from the primary's INFO; a failover needs it (and the replica in sync).
  await until(async () => ((await ask(s, undefined, 'SENTINEL', 'replicas', name)) as unknown[] | undefined)?.length === 1, 0, 'the sentinel to know the replica');
  return {
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
      return now;
    },
  };
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
