// The cluster under chaos: one redis-server and storywire nodes as child processes (started, killed and
// restarted by PID on fixed loopback ports), and a round-robin TCP proxy in front of the nodes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, type WriteStream } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { childEnv, track } from '../lib/children.js';
import { ROOT, STORYWIRE_LOAD_ENV } from '../lib/servers.js';

/** The checkout the nodes run from. */
export const NODE_ROOT = process.env['STORYWIRE_CHAOS_ROOT'] || ROOT;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const hasRedisServer = (): boolean => spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status === 0;

/** A port that nothing listens on now; bus-free like the tests' (the nodes are restarted on it with SO_REUSEPORT). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function until(ok: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await ok()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, sig);
  } catch {
    // already gone
  }
}

const redisPing = (port: number) =>
  new Promise<boolean>((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('data', (d) => done(d.toString().startsWith('+PONG')));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('error', () => done(false));
  });

/** redis-server on a fixed port; with `persistent`, an append-only file fsynced on every write in `dir`. */
export class RedisProcess {
  private child: ChildProcess | undefined;
  starts = 0;
  constructor(
    readonly port: number,
    readonly persistent: boolean,
    readonly dir: string,
    private readonly log: (line: string) => void,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get up(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    const persistence = this.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always', '--save', ''] : ['--save', '', '--appendonly', 'no'];
    this.child = track(spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, ...persistence], { stdio: 'ignore' }));
    this.starts++;
    const child = this.child;
    await until(() => {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode} on port ${this.port}`);
      return redisPing(this.port);
    }, 10_000, `redis-server on port ${this.port}`);
    this.log(`redis started (pid ${child.pid}, ${this.persistent ? 'appendonly, fsync always' : 'no persistence'})`);
  }

  /** SIGTERM (redis-server's clean shutdown) or SIGKILL; resolves when it has exited. */
  async stop(sig: 'SIGTERM' | 'SIGKILL' = 'SIGKILL'): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (!c) return;
    signal(c, sig);
    const timer = setTimeout(() => signal(c, 'SIGKILL'), 5000);
    await exited(c);
    clearTimeout(timer);
    this.log(`redis stopped (${sig})`);
  }
}

export interface NodeOptions {
  name: string;
  port: number;
  redisUrl: string;
  secret: string;
  apiKey: string;
  leaseMs: number;
  graceMs: number;
  /** stderr and stdout of every start of this node are appended here. */
  logFile: string;
  env?: Readonly<Record<string, string>>;
}

/**
 * A storywire node run from the sources (`node --import tsx src/main.ts`, so a run always tests the working
 * tree, with no stale dist/), in production mode, on a fixed port so that a restart takes the same place.
 * `STORYWIRE_CHAOS_ROOT=DIR` runs the nodes from another checkout instead (before/after comparisons).
 */
export class NodeProcess {
  private child: ChildProcess | undefined;
  private out: WriteStream;
  starts = 0;
  constructor(readonly o: NodeOptions, private readonly log: (line: string) => void) {
    this.out = createWriteStream(o.logFile, { flags: 'a' });
  }

  get port(): number {
    return this.o.port;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get up(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    const child = track(
      spawn(process.execPath, ['--import', 'tsx', join(NODE_ROOT, 'src', 'main.ts')], {
        cwd: NODE_ROOT,
        env: childEnv({
          NODE_ENV: 'production',
          // Every device connects from 127.0.0.1 and reconnects through resets, restarts and kills.
          ...STORYWIRE_LOAD_ENV,
          HOST: '127.0.0.1',
          PORT: String(this.o.port),
          JWT_SECRET: this.o.secret,
          API_KEY: this.o.apiKey,
          REDIS_URL: this.o.redisUrl,
          NODE_LEASE_MS: String(this.o.leaseMs),
          PRESENCE_GRACE_MS: String(this.o.graceMs),
          LOG_LEVEL: 'warn',
          ...this.o.env,
        }),
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    this.child = child;
    this.starts++;
    this.out.write(`--- ${new Date().toISOString()} start #${this.starts} of ${this.o.name}, pid ${child.pid}\n`);
    child.stdout!.pipe(this.out, { end: false });
    child.stderr!.pipe(this.out, { end: false });
    // /healthz answers once it listens; with Redis down the node starts degraded and joins when it can.
    await until(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          const tail = readFileSync(this.o.logFile, 'utf8').slice(-1500);
          throw new Error(`${this.o.name} exited with ${child.exitCode ?? child.signalCode} (log: ${this.o.logFile}):\n${tail}`);
        }
        return fetch(`http://127.0.0.1:${this.o.port}/healthz`).then((r) => r.ok, () => false);
      },
      30_000,
      `${this.o.name} on port ${this.o.port}`,
    );
    this.log(`${this.o.name} started (pid ${child.pid}, port ${this.o.port})`);
  }

  /** `/readyz` answers ready: listening and joined to the cluster through Redis. */
  async ready(ms: number): Promise<void> {
    await until(
      () =>
        fetch(`http://127.0.0.1:${this.o.port}/readyz`).then(
          async (r) => r.ok && ((await r.json()) as { status: string }).status === 'ready',
          () => false,
        ),
      ms,
      `${this.o.name} ready`,
    );
  }

  async kill(sig: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (!c) return;
    signal(c, sig);
    const timer = setTimeout(() => signal(c, 'SIGKILL'), 10_000);
    await exited(c);
    clearTimeout(timer);
    this.log(`${this.o.name} stopped (${sig})`);
  }

  async close(): Promise<void> {
    await this.kill('SIGKILL');
    await new Promise<void>((r) => this.out.end(() => r()));
  }
}

interface Pipe {
  inbound: net.Socket;
  outbound: net.Socket;
  /** Index of the node it reached. */
  node: number;
}

/**
 * The load balancer: each new client connection goes to the next node in turn (round robin); a node that
 * refuses is skipped for this connection (what a health-checking balancer does). `reset()` destroys both
 * sides of some pipes: the client sees 1006, the node a vanished peer.
 */
export class Balancer {
  private server: net.Server | undefined;
  private readonly pipes = new Set<Pipe>();
  private next = 0;
  port = 0;
  accepted = 0;
  refused = 0;

  constructor(private readonly targets: () => readonly number[]) {}

  async start(): Promise<void> {
    this.server = net.createServer((inbound) => this.accept(inbound));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  private accept(inbound: net.Socket): void {
    inbound.pause();
    inbound.on('error', () => inbound.destroy());
    const ports = this.targets();
    const first = this.next++ % ports.length;
    const attempt = (k: number) => {
      if (k >= ports.length || inbound.destroyed) {
        this.refused++;
        inbound.destroy();
        return;
      }
      const node = (first + k) % ports.length;
      const outbound = net.connect(ports[node]!, '127.0.0.1');
      const failed = () => attempt(k + 1);
      outbound.once('error', failed);
      outbound.once('connect', () => {
        outbound.off('error', failed);
        if (inbound.destroyed) {
          outbound.destroy();
          return;
        }
        const pipe: Pipe = { inbound, outbound, node };
        this.pipes.add(pipe);
        this.accepted++;
        const kill = () => {
          this.pipes.delete(pipe);
          inbound.destroy();
          outbound.destroy();
        };
        for (const s of [inbound, outbound]) {
          s.on('error', kill);
          s.on('close', kill);
        }
        inbound.pipe(outbound);
        outbound.pipe(inbound);
        inbound.resume();
      });
    };
    attempt(0);
  }

  get open(): number {
    return this.pipes.size;
  }

  /** Destroys a random `share` of the live pipes (at least one when share > 0 and any is open); returns how many. */
  reset(share: number): number {
    const live = [...this.pipes];
    const n = share <= 0 ? 0 : Math.max(1, Math.round(live.length * share));
    let done = 0;
    for (let k = 0; k < n && live.length > 0; k++) {
      const p = live.splice(Math.floor(Math.random() * live.length), 1)[0]!;
      this.pipes.delete(p);
      p.inbound.destroy();
      p.outbound.destroy();
      done++;
    }
    return done;
  }

  async close(): Promise<void> {
    for (const p of this.pipes) {
      p.inbound.destroy();
      p.outbound.destroy();
    }
    this.pipes.clear();
    if (this.server) await new Promise<void>((r) => this.server!.close(() => r()));
  }
}

export function ensureDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}
