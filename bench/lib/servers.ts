// The servers under test, each started as its own process on loopback, and stopped by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childEnv, stopChild, track } from './children.js';
import { listenersOn, maxOpenFiles, socketInodes } from './proc.js';
import type { Endpoint, ServerKind } from './wire.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ServerHandle {
  readonly kind: ServerKind;
  readonly pid: number;
  readonly endpoint: Endpoint;
  readonly version: string;
  /** Last lines the server printed (stdout + stderr), for error reports. */
  output(): string;
  alive(): boolean;
  stop(): Promise<void>;
}

export interface StartOptions {
  host: string;
  secret: string;
  /** Directory for a V8 CPU profile of the server (node --cpu-prof), written when it stops. */
  cpuProfDir?: string | undefined;
  profName?: string | undefined;
  /** Extra node flags for the server process (e.g. --max-semi-space-size=2), for experiments. */
  nodeArgs?: readonly string[];
  /** Run storywire from this checkout's dist/ instead of this repository's (before/after comparisons). */
  storywireRoot?: string | undefined;
  /** Extra environment for the server (wins over the bench's). */
  env?: Readonly<Record<string, string>>;
  timeoutMs?: number;
}

function pkgVersion(dir: string): string {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function serverVersion(kind: ServerKind, storywireRoot = ROOT): string {
  switch (kind) {
    case 'storywire':
      return `storywire ${pkgVersion(storywireRoot)}${storywireRoot === ROOT ? '' : ` (${storywireRoot})`}`;
    case 'uws':
      return `uWebSockets.js ${pkgVersion(join(ROOT, 'node_modules', 'uWebSockets.js'))}`;
    case 'socketio':
      return `socket.io ${pkgVersion(join(ROOT, 'node_modules', 'socket.io'))}`;
  }
}

/** A port nothing listens on right now (the server is then checked to be its only listener). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Production settings, except the abuse limits one load-generating machine would trip by design: every
 * bench connection comes from 127.0.0.1, and a handful of publisher connections carry the whole publish
 * load that real backends spread over many. Builds that predate these options ignore them.
 */
export const STORYWIRE_LOAD_ENV: Readonly<Record<string, string>> = {
  // As many as the open-files limit holds beside what storywire keeps for itself (64, +4 with Redis:
  // src/edge/descriptors.ts): a larger value stops a build that checks it (older builds ignore the limit).
  MAX_CONNECTIONS: String(Math.min(10_000_000, maxOpenFiles('self') - 68)),
  MAX_CONNECTIONS_PER_IP: '10000000',
  RATE_LIMIT_PER_S: '100000',
  RATE_LIMIT_BURST: '100000',
  NOTIFY_RATE_PER_S: '100000',
  NOTIFY_BURST: '100000',
  PUBLISH_RATE_PER_S: '100000',
  PUBLISH_BURST: '100000',
  // Per-address budgets (every bench connection is 127.0.0.1) and handshake budgets (20,000 upgrades in a
  // few seconds from one address; reconnect storms of the same users in the chaos benches).
  RATE_LIMIT_PER_S_PER_IP: '10000000',
  RATE_LIMIT_BURST_PER_IP: '10000000',
  NOTIFY_RATE_PER_S_PER_IP: '10000000',
  NOTIFY_BURST_PER_IP: '10000000',
  PUBLISH_RATE_PER_S_PER_IP: '10000000',
  PUBLISH_BURST_PER_IP: '10000000',
  HANDSHAKES_PER_S_PER_IP: '10000000',
  HANDSHAKE_BURST_PER_IP: '10000000',
  HANDSHAKES_PER_S_PER_USER: '10000000',
  HANDSHAKE_BURST_PER_USER: '10000000',
  // The publisher sends notifications from client connections, as the seed's clients did (lib/publisher.ts):
  // production's default NOTIFY_POLICY=backend refuses them (issue #15). `any` is the policy the three servers
  // are compared on; a notify proxy would be measured on its own, like the channel proxies (scenarios/proxy.ts).
  NOTIFY_POLICY: 'any',
};

/**
 * The node flags of the checkout's `npm start` ("node <flags> dist/main.js" in package.json): storywire is
 * benchmarked the way it is started in production, whichever checkout --storywire-root names.
 */
export function startFlags(root: string): string[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const words = (pkg.scripts?.['start'] ?? '').split(/\s+/);
  const node = words.indexOf('node');
  const main = words.indexOf('dist/main.js');
  return node >= 0 && main > node ? words.slice(node + 1, main) : [];
}

function command(kind: ServerKind, storywireRoot: string): { script: string; flags: string[]; env: Record<string, string> } {
  switch (kind) {
    case 'storywire': {
      const script = join(storywireRoot, 'dist', 'main.js');
      if (!existsSync(script)) throw new Error(`${script} is missing: run "npm run build" first`);
      // Production mode is what runs without --dev; NODE_ENV is for checkouts older than that (--storywire-root), which read it.
      return { script, flags: startFlags(storywireRoot), env: { NODE_ENV: 'production', LOG_LEVEL: 'warn', ...STORYWIRE_LOAD_ENV } };
    }
    case 'uws':
      return { script: join(ROOT, 'bench', 'baselines', 'uws-raw.mjs'), flags: [], env: {} };
    case 'socketio':
      return { script: join(ROOT, 'bench', 'baselines', 'socketio-seed.mjs'), flags: [], env: {} };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startServer(kind: ServerKind, opts: StartOptions): Promise<ServerHandle> {
  const port = await freePort(opts.host);
  const { script, flags, env } = command(kind, opts.storywireRoot ?? ROOT);
  const nodeArgs: string[] = [...flags, ...(opts.nodeArgs ?? [])];
  if (opts.cpuProfDir) {
    mkdirSync(opts.cpuProfDir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`, `--cpu-prof-name=${opts.profName ?? `${kind}-${Date.now()}`}.cpuprofile`);
  }
  const child: ChildProcess = track(
    spawn(process.execPath, [...nodeArgs, script], {
      cwd: ROOT,
      env: childEnv({ ...env, HOST: opts.host, PORT: String(port), JWT_SECRET: opts.secret, ...opts.env }),
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let tail = '';
  const keep = (d: Buffer) => {
    tail = (tail + d.toString()).slice(-4000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const pid = child.pid!;
  const handle: ServerHandle = {
    kind,
    pid,
    endpoint: { kind, host: opts.host, port },
    version: serverVersion(kind, opts.storywireRoot),
    output: () => tail,
    alive: () => child.exitCode === null && child.signalCode === null,
    stop: () => stopChild(child),
  };

  // Ready when this process owns a listening socket on the port, and nobody else does (SO_REUSEPORT).
  const deadline = Date.now() + (opts.timeoutMs ?? 15000);
  for (;;) {
    if (!handle.alive()) throw new Error(`${kind} exited with ${child.exitCode ?? child.signalCode} before listening:\n${tail}`);
    const listeners = listenersOn(port);
    if (listeners.length > 0) {
      const mine = socketInodes(pid);
      const own = listeners.filter((i) => mine.has(i));
      if (own.length > 0) {
        if (own.length !== listeners.length) {
          await handle.stop();
          throw new Error(`port ${port} is shared with another process: the figures would mix two servers`);
        }
        return handle;
      }
    }
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`${kind} did not listen on ${opts.host}:${port} within ${opts.timeoutMs ?? 15000} ms:\n${tail}`);
    }
    await sleep(20);
  }
}
