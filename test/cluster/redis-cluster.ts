// Cluster test support: a throwaway Redis Cluster (3 primaries + 3 replicas on loopback) for a suite, each node
// on a port of its own whose cluster bus (port + 10000) is free too, killed by PID when the suite ends.
// Re-exported by test/cluster/redis.ts, where startRedis hands it out with TEST_REDIS_BACKEND=cluster.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { WAIT_MS } from '../wait.js';
import type { TestRedis } from './redis.js';

// cluster-key-slot (ioredis' own slot function) is CommonJS without types, and a dependency of ioredis rather
// than of this package: it is loaded from where ioredis is, as the function it exports (module.exports).
const requireFromIoredis = createRequire(createRequire(import.meta.url).resolve('ioredis'));
const calculateSlot = requireFromIoredis('cluster-key-slot') as (key: string) => number;

export const SLOTS = 16384;

interface Tap {
  teardown(fn: () => unknown): void;
}

export interface ClusterAddress {
  host: string;
  port: number;
}

export interface ClusterPrimary {
  port: number;
  /** Inclusive slot ranges, in order. */
  slots: [number, number][];
  /** Ports of its replicas (CLUSTER NODES; those marked failed left out). */
  replicas: number[];
}

export interface TestRedisCluster extends TestRedis {
  backend: 'cluster';
  /** The 6 nodes' addresses (RedisBackplane `cluster.nodes`, REDIS_CLUSTER_NODES). */
  cluster: ClusterAddress[];
  prefix: string;
  /** The primaries owning slots now (CLUSTER SLOTS of a running node), by port. */
  primaries(): Promise<ClusterPrimary[]>;
  /** Port of the primary owning the slot of `key` now. */
  primaryOf(key: string): Promise<number>;
  /** SIGKILLs one node by PID; resolves once it exited. */
  kill(port: number): Promise<void>;
  /** Starts a killed node again with the same configuration (its nodes-P.conf); resolves once it answers PING. */
  restart(port: number): Promise<void>;
  /** As TestRedis.stop: SIGKILLs all 6 (their data is lost unless persistent; the cluster configuration is kept). */
  stop(): Promise<void>;
  /** As TestRedis.start: starts every node that is not running, then waits until the cluster is ready (`ready`). */
  start(): Promise<void>;
  /**
   * Resolves when every running node says cluster_state:ok with all 16384 slots ok and knows all 6 nodes, they
   * all see the same primaries, replicas and slots (none of the running ones failing), and every running
   * replica's link to its primary is up (so that a primary killed next can be failed over).
   */
  ready(): Promise<void>;
  /** Waits until a former replica of `oldPrimaryPort` is a primary (owning slots) and the cluster is ok; its port. */
  waitPromoted(oldPrimaryPort: number): Promise<number>;
  /**
   * Moves one slot, with its keys, from the primary owning it to the primary on `toPort` while the cluster
   * serves (as `redis-cli --cluster reshard` does): IMPORTING and MIGRATING, MIGRATE of its keys in batches,
   * then SETSLOT NODE on both and on every other primary; resolves once every node agrees (`ready`).
   */
  migrateSlot(slot: number, toPort: number): Promise<void>;
}

const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
/** Why a Redis Cluster cannot be started here, or false when it can. */
export const clusterMissing: string | false =
  has('redis-server') && has('redis-cli') ? false : 'a Redis Cluster needs redis-server and redis-cli on PATH (apt-get install redis-server)';

/** Polls `ok` every 25 ms until it holds; rejects after WAIT_MS (a bound on a hang, never a pace). */
async function poll(ok: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const end = Date.now() + WAIT_MS;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const listens = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = netServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });

/**
 * `n` loopback ports that are free with their bus port (+10000), both below the kernel's ephemeral range: an
 * ephemeral port (freePort's) may be taken by any outgoing connection of the suite by the time a node is
 * restarted, and one near 60000 has no bus port at all.
 */
async function clusterPorts(n: number): Promise<number[]> {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {}
  const min = 10000;
  const span = Math.max(1000, low - 10000 - min);
  const ports: number[] = [];
  for (let tries = 0; ports.length < n; tries++) {
    if (tries > 1000) throw new Error('no free pair of loopback ports (P, P + 10000) for a Redis Cluster node');
    const p = min + Math.floor(Math.random() * span);
    if (ports.some((q) => q === p || q + 10000 === p || p + 10000 === q)) continue;
    if ((await listens(p)) && (await listens(p + 10000))) ports.push(p);
  }
  return ports;
}

/** One probe connection per node, made again after the node went away; never queues, never retries. */
class Probes {
  private readonly conns = new Map<number, Redis>();
  async ask(port: number, ...args: (string | number)[]): Promise<unknown> {
    let r = this.conns.get(port);
    if (r !== undefined && r.status !== 'ready') {
      r.disconnect();
      r = undefined;
    }
    try {
      if (r === undefined) {
        r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000, commandTimeout: 2000 });
        r.on('error', () => {});
        this.conns.set(port, r);
        await r.connect();
      }
      return await r.call(String(args[0]), ...args.slice(1));
    } catch {
      return undefined;
    }
  }
  drop(port: number): void {
    this.conns.get(port)?.disconnect();
    this.conns.delete(port);
  }
  close(): void {
    for (const port of [...this.conns.keys()]) this.drop(port);
  }
}

interface NodeLine {
  id: string;
  port: number;
  flags: string[];
  /** The primary's node id for a replica, else undefined. */
  master: string | undefined;
  /** Slot ranges for a primary. */
  slots: string[];
}

/** CLUSTER NODES: `<id> <ip:port@cport[,host]> <flags> <master|-> <ping> <pong> <epoch> <link> <slot>...`. */
function parseNodes(text: string): NodeLine[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const f = l.trim().split(' ');
      return { id: f[0]!, port: Number(/:(\d+)@/.exec(f[1]!)?.[1] ?? 0), flags: f[2]!.split(','), master: f[3] === '-' ? undefined : f[3], slots: f.slice(8) };
    });
}

const field = (info: unknown, name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(String(info ?? ''))?.[1]?.trim();

/**
 * A 3-primary + 3-replica Redis Cluster on loopback for a suite: 6 redis-servers (`--cluster-enabled yes`,
 * node timeout 1000 ms, each with a directory of its own holding its nodes-P.conf), joined by
 * `redis-cli --cluster create ... --cluster-replicas 1`; resolves once the cluster is ready (`ready()`).
 * `persistent`: every node keeps an append-only file fsynced on every write (stop/start then keeps the keys);
 * `args`: more redis-server arguments for every node.
 * Every node is SIGKILLed by PID and the directories removed when `t` ends.
 */
export async function startRedisCluster(t: Tap, opts: { persistent?: boolean; args?: readonly string[] } = {}): Promise<TestRedisCluster> {
  if (clusterMissing) throw new Error(clusterMissing);
  const prefix = `swtest:${randomBytes(4).toString('hex')}:`;
  const ports = await clusterPorts(6);
  const dirs = new Map(ports.map((p) => [p, mkdtempSync(join(tmpdir(), `sw-cluster-${p}-`))]));
  const children = new Map<number, ChildProcess>();
  const output = new Map<number, string>();
  const probes = new Probes();
  const running = (c: ChildProcess | undefined): boolean => c !== undefined && c.exitCode === null && c.signalCode === null;
  const live = () => ports.filter((p) => running(children.get(p)));

  const killOne = async (port: number) => {
    probes.drop(port);
    const c = children.get(port);
    if (c === undefined || !running(c)) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  const killAll = () => Promise.all(ports.map(killOne)).then(() => {});
  t.teardown(async () => {
    probes.close();
    await killAll();
    for (const d of dirs.values()) rmSync(d, { recursive: true, force: true });
  });

  const persistence = opts.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const spawnNode = async (port: number) => {
    if (running(children.get(port))) throw new Error(`the cluster node on port ${port} is running`);
    const dir = dirs.get(port)!;
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`),
      '--cluster-node-timeout', '1000', ...persistence, '--save', '', '--dir', dir, ...(opts.args ?? []),
      // A replica's first full sync starts at once (Redis waits 5 s for more replicas by default).
      '--repl-diskless-sync-delay', '0'];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.set(port, child);
    output.set(port, '');
    const keep = (d: Buffer) => output.set(port, (output.get(port)! + d.toString()).slice(-4000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('error', (e) => keep(Buffer.from(`spawn error: ${e.message}\n`)));
    await poll(async () => !running(child) || (await probes.ask(port, 'PING')) === 'PONG', `the cluster node on port ${port} to answer PING`);
    if (!running(child)) throw new Error(`the cluster node on port ${port} exited (${child.exitCode ?? child.signalCode}):\n${output.get(port)}`);
  };

  /** The topology as a running node sees it. */
  const nodesSeen = async (): Promise<NodeLine[]> => {
    for (const p of live()) {
      const text = await probes.ask(p, 'CLUSTER', 'NODES');
      if (typeof text === 'string') return parseNodes(text);
    }
    throw new Error('no cluster node is running');
  };
  /** Ports of each primary's replicas, as last seen while the primary was alive: what waitPromoted looks among. */
  const replicasOf = new Map<number, number[]>();
  const remember = async () => {
    const lines = await nodesSeen();
    for (const m of lines.filter((l) => l.flags.includes('master') && !l.flags.includes('fail'))) {
      replicasOf.set(m.port, lines.filter((l) => l.master === m.id).map((l) => l.port));
    }
  };

  const clusterOk = async (p: number) => {
    const info = await probes.ask(p, 'CLUSTER', 'INFO');
    return field(info, 'cluster_state') === 'ok' && field(info, 'cluster_slots_ok') === String(SLOTS) && field(info, 'cluster_known_nodes') === String(ports.length);
  };
  const replicaInSync = async (p: number) => {
    const info = await probes.ask(p, 'INFO', 'replication');
    return field(info, 'role') === 'master' || field(info, 'master_link_status') === 'up';
  };
  /**
   * Every running node sees the same primaries, replicas and slots (a node started again after a failover says
   * cluster_state:ok as the primary it was, until the gossip demotes it), and none of them as failing.
   */
  const agreed = async () => {
    const running = new Set(live());
    const views: string[] = [];
    for (const p of running) {
      const text = await probes.ask(p, 'CLUSTER', 'NODES');
      if (typeof text !== 'string') return false;
      const lines = parseNodes(text);
      const portOf = new Map(lines.map((l) => [l.id, l.port]));
      if (lines.some((l) => running.has(l.port) && l.flags.some((f) => f === 'fail' || f === 'fail?' || f === 'handshake' || f === 'noaddr'))) return false;
      views.push(lines.map((l) => `${l.port} ${l.flags.includes('master') ? 'primary' : `replica of ${portOf.get(l.master ?? '')}`} ${l.slots.join(' ')}`).sort().join('\n'));
    }
    return views.every((v) => v === views[0]);
  };
  const ready = async () => {
    await poll(async () => {
      for (const p of live()) if (!(await clusterOk(p)) || !(await replicaInSync(p))) return false;
      return live().length > 0 && (await agreed());
    }, 'cluster_state:ok with every slot covered on every running node, the same topology seen by all, and each replica in sync');
    await remember();
  };

  const primaries = async (): Promise<ClusterPrimary[]> => {
    for (const p of live()) {
      const reply = (await probes.ask(p, 'CLUSTER', 'SLOTS')) as [number, number, [string, number, string], ...unknown[]][] | undefined;
      const text = await probes.ask(p, 'CLUSTER', 'NODES');
      if (!Array.isArray(reply) || typeof text !== 'string') continue;
      // The replicas from CLUSTER NODES: CLUSTER SLOTS leaves out a replica until its offset was gossiped.
      const lines = parseNodes(text);
      const by = new Map<number, ClusterPrimary>();
      for (const [from, to, [, port, id]] of reply) {
        const replicas = lines.filter((l) => l.master === id && !l.flags.includes('fail')).map((l) => l.port);
        const e = by.get(port) ?? { port, slots: [], replicas };
        e.slots.push([from, to]);
        by.set(port, e);
      }
      for (const e of by.values()) e.slots.sort((a, b) => a[0] - b[0]);
      return [...by.values()].sort((a, b) => a.slots[0]![0] - b.slots[0]![0]);
    }
    throw new Error('no cluster node answered CLUSTER SLOTS');
  };

  for (const p of ports) await spawnNode(p);
  const cli = spawn('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let cliOut = '';
  cli.stdout!.on('data', (d) => (cliOut += d));
  cli.stderr!.on('data', (d) => (cliOut += d));
  const timer = setTimeout(() => cli.kill('SIGKILL'), WAIT_MS);
  const code = await new Promise<number | null>((r) => {
    cli.once('error', (e) => {
      cliOut += `spawn error: ${e.message}\n`;
      r(null);
    });
    cli.once('exit', (c) => r(c));
  });
  clearTimeout(timer);
  if (code !== 0) throw new Error(`redis-cli --cluster create failed (${code}):\n${cliOut}`);
  await ready();

  const o: Omit<TestRedisCluster, 'url'> = {
    backend: 'cluster',
    cluster: ports.map((port) => ({ host: '127.0.0.1', port })),
    prefix,
    primaries,
    async primaryOf(key) {
      const slot = calculateSlot(key);
      const owner = (await primaries()).find((m) => m.slots.some(([a, b]) => a <= slot && slot <= b));
      if (owner === undefined) throw new Error(`no primary owns slot ${slot} (of ${JSON.stringify(key)})`);
      return owner.port;
    },
    async kill(port) {
      if (!ports.includes(port)) throw new Error(`port ${port} is not a node of this cluster`);
      await remember().catch(() => {});
      await killOne(port);
    },
    async restart(port) {
      if (!ports.includes(port)) throw new Error(`port ${port} is not a node of this cluster`);
      await spawnNode(port);
    },
    stop: killAll,
    async start() {
      for (const p of ports) if (!running(children.get(p))) await spawnNode(p);
      await ready();
    },
    ready,
    async waitPromoted(old) {
      const candidates = replicasOf.get(old) ?? [];
      if (candidates.length === 0) throw new Error(`port ${old} had no replica known to this cluster (was it a primary?)`);
      let promoted = 0;
      await poll(async () => {
        for (const c of candidates) {
          if (!running(children.get(c))) continue;
          const text = await probes.ask(c, 'CLUSTER', 'NODES');
          const me = typeof text === 'string' ? parseNodes(text).find((l) => l.flags.includes('myself')) : undefined;
          if (me?.flags.includes('master') && me.slots.length > 0) promoted = c;
        }
        if (promoted === 0) return false;
        for (const p of live()) if (!(await clusterOk(p))) return false;
        return true;
      }, `a replica of ${old} (${candidates.join(', ')}) to be promoted, and cluster_state:ok`);
      await remember().catch(() => {});
      return promoted;
    },
    async migrateSlot(slot, toPort) {
      const from = (await primaries()).find((m) => m.slots.some(([a, b]) => a <= slot && slot <= b));
      if (from === undefined) throw new Error(`no primary owns slot ${slot}`);
      if (from.port === toPort) throw new Error(`slot ${slot} is on ${toPort} already`);
      const idOf = async (port: number) => String(await probes.ask(port, 'CLUSTER', 'MYID'));
      const [fromId, toId] = [await idOf(from.port), await idOf(toPort)];
      const ok = (r: unknown, what: string) => {
        if (r !== 'OK') throw new Error(`${what}: ${String(r)}`);
      };
      ok(await probes.ask(toPort, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId), 'SETSLOT IMPORTING');
      ok(await probes.ask(from.port, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId), 'SETSLOT MIGRATING');
      for (;;) {
        const keys = (await probes.ask(from.port, 'CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
        if (keys.length === 0) break;
        const r = await probes.ask(from.port, 'MIGRATE', '127.0.0.1', toPort, '', 0, 5000, 'REPLACE', 'KEYS', ...keys);
        if (r !== 'OK' && r !== 'NOKEY') throw new Error(`MIGRATE: ${String(r)}`);
      }
      // The new owner first, then the old one (which then sends sunsubscribe to its shard channels' clients).
      ok(await probes.ask(toPort, 'CLUSTER', 'SETSLOT', slot, 'NODE', toId), 'SETSLOT NODE (new owner)');
      ok(await probes.ask(from.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', toId), 'SETSLOT NODE (old owner)');
      for (const m of await primaries()) if (m.port !== toPort && m.port !== from.port) await probes.ask(m.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', toId);
      const sees = async (p: number) => {
        const r = (await probes.ask(p, 'CLUSTER', 'SLOTS')) as [number, number, [string, number, string], ...unknown[]][] | undefined;
        return Array.isArray(r) && r.some(([a, b, [, port]]) => a <= slot && slot <= b && port === toPort);
      };
      await poll(async () => (await Promise.all(live().map(sees))).every(Boolean), `every node to see slot ${slot} on ${toPort}`);
      await ready();
    },
  };
  // A cluster has no one URL: a suite reading redis.url fails here, saying what to use instead.
  Object.defineProperty(o, 'url', {
    enumerable: false,
    get() {
      throw new Error('redis.url: a Redis Cluster (TEST_REDIS_BACKEND=cluster) has no single URL; use redisEnv(redis) or redisClient(redis) (test/cluster/redis.ts)');
    },
  });
  return o as TestRedisCluster;
}
