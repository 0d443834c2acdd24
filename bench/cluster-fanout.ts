// Cross-node fan-out: 2 nodes + Redis against 1 node, same clients, same publisher, same machine.
// --mode stories: batches of events on `stories`, which every client hears (fan-out to all);
// --mode notify: batches of notifications to random users (POST /v1/notifications with userIds), each heard by
// one client: many topics of one subscriber each, where crossing Redis costs the most per delivery.
// Prints one JSON line per scenario: delivered msgs/s at the clients and server CPU per million deliveries
// (storywire nodes + redis-server, from /proc; redis-server's share also apart). Needs redis-server on the PATH.
// --shards N: the 2 nodes on a Redis Cluster of N primaries (no replicas; slots split evenly; N=1 is a one-shard
// cluster) instead of one plain redis-server; the Redis CPU is then the sum over the shards.
//   npm run bench -- cluster [--mode stories|notify] [--clients 400] [--seconds 5] [--batch 50] [--inflight 2] [--shards 0]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { cliOptions, jsonLines } from './lib/args.js';
import { track } from './lib/children.js';
import { machineInfo } from './lib/machine.js';
import { freePort, serverVersion, startFlags, STORYWIRE_LOAD_ENV } from './lib/servers.js';
/** The checkout whose `npm start` flags storywire runs with. */
const ROOT_DIR = new URL('..', import.meta.url).pathname;

const opts = cliOptions('npm run bench -- cluster', {
  clients: { default: 400, int: true, doc: 'subscribers of stories, spread over the nodes' },
  seconds: { default: 5, min: 0.1, doc: 'seconds of publishing per setup' },
  batch: { default: 50, int: true, doc: 'events per POST /v1/publish' },
  inflight: { default: 2, int: true, doc: 'publish requests in flight' },
  mode: { default: 'stories', oneOf: ['stories', 'notify'], doc: 'stories: events every client hears; notify: notifications to random users, one client each' },
  shards: { default: 0, int: true, min: 0, max: 8, doc: '0: the 2 nodes on one redis-server; N (1-8): on a Redis Cluster of N primaries' },
});
const MODE = opts.mode;
const emit = jsonLines(opts.out);
const CLIENTS = opts.clients;
const SECONDS = opts.seconds;
const BATCH = opts.batch;
const INFLIGHT = opts.inflight;
const SECRET = 'bench-secret-bench-secret-bench-secret-0123';
const API_KEY = 'bench-api-key-0123456789';
const MAIN = new URL('../dist/main.js', import.meta.url).pathname;
const TICK = 100; // USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on Linux

const machine = machineInfo();
const underTest = { kind: 'storywire', name: 'storywire', version: serverVersion('storywire') };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
};

async function waitFor(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      // Ready, and in cluster mode registered ("degraded" until the backplane is up).
      const r = await fetch(url);
      if (r.ok && !(await r.text()).includes('degraded')) return;
    } catch {}
    await sleep(50);
  }
  throw new Error(`${url} never answered`);
}

async function node(port: number, env: Record<string, string>): Promise<ChildProcess> {
  const child = track(spawn(process.execPath, [...startFlags(ROOT_DIR), MAIN], {
    env: { PATH: process.env['PATH'] ?? '', ...STORYWIRE_LOAD_ENV, HOST: '127.0.0.1', PORT: String(port), JWT_SECRET: SECRET, API_KEY, LOG_LEVEL: 'warn', HEARTBEAT_INTERVAL_MS: '600000', ...env },
    // The nodes' logs go to stderr: stdout carries the bench's JSON lines only.
    stdio: ['ignore', 2, 2],
  }));
  await waitFor(`http://127.0.0.1:${port}/readyz`);
  return child;
}

/** `pids`: the storywire nodes, then redis-server when there is one (its CPU is also reported apart). */
async function run(name: string, ports: number[], pids: number[], redisPids: number[] = []): Promise<void> {
  const all = [...pids, ...redisPids];
  const key = new TextEncoder().encode(SECRET);
  let delivered = 0;
  const sockets: WebSocket[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(`u${i}`).setExpirationTime('1h').sign(key);
    const ws = new WebSocket(`ws://127.0.0.1:${ports[i % ports.length]}/ws?token=${token}`);
    await new Promise<void>((resolve, reject) => {
      ws.once('message', () => resolve()); // `connected`: listening everywhere
      ws.once('error', reject);
    });
    ws.on('message', () => delivered++);
    sockets.push(ws);
  }
  const stories = JSON.stringify(Array.from({ length: BATCH }, (_, i) => ({ topic: 'stories', type: 'story:liked', data: { storyId: String(i), by: 'bench' } })));
  /** BATCH distinct users at random (all of them when there are fewer). */
  const someUsers = () => {
    const ids = new Set<string>();
    while (ids.size < Math.min(BATCH, CLIENTS)) ids.add(`u${Math.floor(Math.random() * CLIENTS)}`);
    return [...ids];
  };
  const perRequest = MODE === 'stories' ? BATCH : Math.min(BATCH, CLIENTS);
  const publish = async () => {
    const [path, body] =
      MODE === 'stories'
        ? ['/v1/publish', stories]
        : ['/v1/notifications', JSON.stringify({ userIds: someUsers(), notification: { title: 'Bench', message: 'A bench notification', type: 'like' } })];
    const r = await fetch(`http://127.0.0.1:${ports[0]}${path}`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body });
    if (r.status !== 200) throw new Error(`publish answered ${r.status}: ${await r.text()}`);
    await r.arrayBuffer();
  };
  await publish(); // warm-up
  await sleep(300);
  const cpu0 = all.map(cpuSeconds);
  const d0 = delivered;
  const t0 = Date.now();
  let published = 0;
  const end = t0 + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: INFLIGHT }, async () => {
      while (Date.now() < end) {
        await publish();
        published += perRequest;
      }
    }),
  );
  // Stories reach every client; a notification reaches its one user's one connection.
  const expected = d0 + published * (MODE === 'stories' ? CLIENTS : 1);
  for (let i = 0; i < 100 && delivered < expected; i++) await sleep(50);
  const secs = (Date.now() - t0) / 1000;
  const used = all.map((pid, i) => cpuSeconds(pid) - cpu0[i]!);
  const cpu = used.reduce((s, c) => s + c, 0);
  const redisCpu = used.slice(pids.length).reduce((s, c) => s + c, 0);
  const n = delivered - d0;
  emit({
    bench: 'cluster-fanout',
    scenario: name,
    server: underTest,
    params: { mode: MODE, clients: CLIENTS, seconds: SECONDS, batch: BATCH, inflight: INFLIGHT, shards: redisPids.length === 0 ? 0 : opts.shards },
    clients: CLIENTS,
    published,
    delivered: n,
    lost: expected - delivered,
    deliveredPerSec: Math.round(n / secs),
    serverCpuSecondsPerMillion: +((cpu / n) * 1e6).toFixed(2),
    redisCpuSecondsPerMillion: +((redisCpu / n) * 1e6).toFixed(2),
    processes: all.length,
    machine,
  });
  for (const ws of sockets) ws.terminate();
  await sleep(300);
}

const kill = (c: ChildProcess) =>
  new Promise((r) => {
    if (c.exitCode !== null) {
      r(null);
      return;
    }
    c.once('exit', r);
    c.kill('SIGKILL');
  });

if (spawnSync('redis-server', ['--version']).error) {
  process.stderr.write('bench cluster: redis-server is not on the PATH (Debian: apt-get install redis-server)\n');
  process.exit(2);
}

const [p1, p2, rp] = [await freePort(), await freePort(), await freePort()];
const single = await node(p1, {});
await run('1 node (memory backplane)', [p1], [single.pid!]);
await kill(single);

const redisCli = (port: number, ...args: string[]) => {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-cli -p ${port} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const redises: ChildProcess[] = [];
let env: Record<string, string>;
let clusterDir: string | undefined;
if (opts.shards === 0) {
  redises.push(track(spawn('redis-server', ['--port', String(rp), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })));
  await sleep(300);
  env = { REDIS_URL: `redis://127.0.0.1:${rp}`, REDIS_PREFIX: `bench${Date.now()}:` };
} else {
  // N primaries, the 16384 slots split evenly (CLUSTER ADDSLOTSRANGE), met by the first; ready once every one
  // says cluster_state:ok and knows the N.
  const dir = mkdtempSync(join(tmpdir(), 'sw-bench-cluster-'));
  clusterDir = dir;
  const ports = [rp];
  for (let i = 1; i < opts.shards; i++) ports.push(await freePort());
  for (const port of ports) {
    redises.push(track(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '5000', '--cluster-announce-ip', '127.0.0.1', '--dir', dir], { stdio: 'ignore' })));
  }
  await sleep(300);
  for (const [i, port] of ports.entries()) {
    redisCli(port, 'cluster', 'addslotsrange', String(Math.floor((16384 * i) / ports.length)), String(Math.floor((16384 * (i + 1)) / ports.length) - 1));
    if (i > 0) redisCli(ports[0]!, 'cluster', 'meet', '127.0.0.1', String(port));
  }
  const ok = () => ports.every((port) => {
    const info = redisCli(port, 'cluster', 'info');
    return /cluster_state:ok/.test(info) && new RegExp(`cluster_known_nodes:${ports.length}\\b`).test(info);
  });
  for (let i = 0; i < 300 && !ok(); i++) await sleep(100);
  if (!ok()) throw new Error('the Redis Cluster did not become ready');
  // A node on a Redis Cluster keeps 64 more descriptors for itself (one connection per shard and subscriber).
  env = { REDIS_CLUSTER_NODES: ports.map((p) => `127.0.0.1:${p}`).join(','), REDIS_PREFIX: `bench${Date.now()}:`, MAX_CONNECTIONS: String(Number(STORYWIRE_LOAD_ENV['MAX_CONNECTIONS']) - 64) };
}
const a = await node(p1, { ...env, NODE_ID: 'a' });
const b = await node(p2, { ...env, NODE_ID: 'b' });
const where = opts.shards === 0 ? 'Redis' : `a Redis Cluster of ${opts.shards} shard${opts.shards === 1 ? '' : 's'}`;
await run(`2 nodes + ${where} (half the clients on each; publishes on node a)`, [p1, p2], [a.pid!, b.pid!], redises.map((r) => r.pid!));
await Promise.all([kill(a), kill(b), ...redises.map(kill)]);
if (clusterDir !== undefined) rmSync(clusterDir, { recursive: true, force: true });
process.exit(0);
