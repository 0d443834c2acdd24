// What every scenario gets: options, the machine, the worker pool, the result sink; and the shared
// building blocks: a server's lifetime, opening connections, the broadcast loop and the rate loop.
import { join } from 'node:path';
import { Histogram } from './hist.js';
import type { Machine } from './machine.js';
import { round, waitQuiet, type CpuFigures } from './measure.js';
import type { Pool, PoolOpenResult } from './pool.js';
import { createPublisher, type Publisher, type PublishVia } from './publisher.js';
import { SCHEMA, type Result, type ScenarioName } from './report.js';
import { ROOT, startServer, type ServerHandle } from './servers.js';
import { nowUs, SERVER_LABELS, type ServerKind } from './wire.js';

export interface Options {
  servers: ServerKind[];
  runs: number;
  workers: number;
  host: string;
  secret: string;
  /** connect: connection counts to measure; `max` = as many as the server process may hold. */
  connections: (number | 'max')[];
  /** Handshakes in flight per worker. */
  concurrency: number;
  /** fanout, ping: connections subscribed to `stories`. */
  subscribers: number;
  /** fanout: broadcasts in flight for the max-rate measurement (the second one keeps 1 in flight). */
  window: number;
  durationS: number;
  warmupS: number;
  /** notify: connected users (one connection each). */
  users: number;
  rates: number[];
  /** notify: the rate at which server CPU per notification is reported (the same for every server). */
  refRate: number;
  stepS: number;
  p99LimitMs: number;
  /** ping: pings per second in total, spread over the connections. */
  pingRate: number;
  /** proxy: subscriber connections, and the channels each subscribes to in a pass (at most MAX_SUBSCRIPTIONS). */
  proxyClients: number;
  proxyPerClient: number;
  /** proxy: subscribes or publishes in flight (at most the proxy's maxInFlight, 256). */
  proxyInflight: number;
  /** `auto`: one more loopback source address per 25,000 connections (the ephemeral port range holds ~28k). */
  sourceAddresses: number | 'auto';
  settleMaxS: number;
  /** Before each server start, wait up to this long for the rest of the machine to be quiet (0: never). */
  quietWaitS: number;
  /** "Quiet": other processes below this percent of one core. */
  quietPct: number;
  payloadBytes: number;
  /** Publisher connections, used round-robin. */
  publishers: number;
  cpuProf: boolean;
  /** Extra node flags for every server process. */
  serverNodeArgs: string[];
  /** A storywire checkout whose dist/ is the storywire under test (default: this repository). */
  storywireRoot: string | undefined;
  /** Extra environment for storywire (experiments: what does a feature cost). */
  storywireEnv: Record<string, string>;
  publishVia: PublishVia;
  smoke: boolean;
}

export interface Ctx {
  opts: Options;
  machine: Machine;
  pool: Pool;
  log(msg: string): void;
  emit(r: Result): void;
}

export const PROFILE_DIR = join(ROOT, 'bench', 'out', 'profiles');

export async function withServer<T>(ctx: Ctx, kind: ServerKind, scenario: ScenarioName, fn: (s: ServerHandle) => Promise<T>): Promise<T> {
  if (ctx.opts.quietWaitS > 0) {
    const q = await waitQuiet(ctx.opts.quietPct, ctx.opts.quietWaitS);
    if (!q.quiet) ctx.log(`the machine is busy (other processes at ${q.otherPct} % of a core after ${q.waitedS} s): measuring anyway, see cpu.otherPct`);
  }
  const server = await startServer(kind, {
    host: ctx.opts.host,
    secret: ctx.opts.secret,
    cpuProfDir: ctx.opts.cpuProf ? PROFILE_DIR : undefined,
    profName: `${kind}-${scenario}-${new Date().toISOString().replace(/[:.]/g, '-')}`,
    nodeArgs: ctx.opts.serverNodeArgs,
    storywireRoot: ctx.opts.storywireRoot,
    env: kind === 'storywire' ? ctx.opts.storywireEnv : {},
  });
  try {
    return await fn(server);
  } finally {
    try {
      await ctx.pool.closeAll();
    } finally {
      await server.stop();
    }
  }
}

export function sourceAddresses(opts: Options, count: number): string[] {
  const n = opts.sourceAddresses === 'auto' ? Math.ceil(count / 25_000) : opts.sourceAddresses;
  if (n <= 1) return [];
  return Array.from({ length: n }, (_, i) => `127.0.0.${i + 1}`);
}

/** Opens `count` more authenticated connections, for users `${prefix}${offset}..` on the server. */
export function openConns(ctx: Ctx, server: ServerHandle, count: number, prefix = 'u', offset = 0): Promise<PoolOpenResult> {
  return ctx.pool.open({
    offset,
    endpoint: server.endpoint,
    secret: ctx.opts.secret,
    userPrefix: prefix,
    count,
    roles: [],
    concurrency: ctx.opts.concurrency,
    localAddresses: sourceAddresses(ctx.opts, count),
    timeoutMs: 15_000,
  });
}

export function openErrors(r: PoolOpenResult): string[] {
  return Object.entries(r.errors).map(([msg, n]) => `${n} handshake(s) failed: ${msg}`);
}

export function result(
  ctx: Ctx,
  server: ServerHandle,
  scenario: ScenarioName,
  variant: string,
  run: number,
  params: Record<string, unknown>,
  figures: Record<string, number>,
  cpu: CpuFigures,
  errors: string[],
  detail?: unknown,
): Result {
  const rounded: Record<string, number> = {};
  for (const [k, v] of Object.entries(figures)) rounded[k] = round(v, 3);
  return {
    schema: SCHEMA,
    scenario,
    variant,
    run,
    runs: ctx.opts.runs,
    server: { kind: server.kind, name: SERVER_LABELS[server.kind], version: server.version },
    machine: ctx.machine,
    params,
    figures: rounded,
    cpu,
    ok: errors.length === 0,
    errors,
    ...(detail === undefined ? {} : { detail }),
    ts: new Date().toISOString(),
  };
}

/** The publisher for a scenario, with the options every scenario uses. */
export function publisher(ctx: Ctx, server: ServerHandle): Promise<Publisher> {
  return createPublisher(server.endpoint, { via: ctx.opts.publishVia, secret: ctx.opts.secret, payloadBytes: ctx.opts.payloadBytes, connections: ctx.opts.publishers });
}

/** Error lines for publishes the server refused. */
export function refusedErrors(pub: Publisher): string[] {
  const r = pub.refused();
  return r.count === 0 ? [] : [`${r.count} publish(es) refused or publisher closed, e.g. ${r.sample.join(' | ')}`];
}

export const us2ms = (us: number): number => us / 1000;

// Broadcast sequence numbers are unique for the whole bench run, so a late delivery from an earlier
// phase can never be mistaken for one of the current phase.
let nextSeq = 1;

export interface LoopResult {
  sent: number;
  completed: number;
  /** Broadcasts that did not reach every subscriber before the drain deadline. */
  lost: number;
  /** Time from publish to the last subscriber's delivery, per broadcast, µs. */
  completion: Histogram;
  elapsedMs: number;
}

/**
 * Keeps `window` broadcasts in flight: the next story is published as soon as one has reached every
 * subscriber. Runs for durationMs (or until stop()), then waits up to drainMs for the ones in flight.
 */
export function broadcastLoop(
  pool: Pool,
  pub: Publisher,
  opts: { window: number; durationMs: number; drainMs: number },
): { done: Promise<LoopResult>; stop(): void } {
  const pending = new Map<number, number>();
  const completion = new Histogram();
  const started = performance.now();
  let sent = 0;
  let completed = 0;
  let stopped = false;
  let finished = false;
  let resolveDone!: (r: LoopResult) => void;
  const done = new Promise<LoopResult>((r) => (resolveDone = r));
  let drainTimer: NodeJS.Timeout | undefined;

  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearTimeout(runTimer);
    clearTimeout(drainTimer);
    pool.onSeq = () => {};
    resolveDone({ sent, completed, lost: pending.size, completion, elapsedMs: performance.now() - started });
  };
  const sendOne = (): void => {
    const seq = nextSeq++;
    const t0 = nowUs();
    pending.set(seq, t0);
    sent++;
    pub.story(seq, t0);
  };
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    if (pending.size === 0) finish();
    else drainTimer = setTimeout(finish, opts.drainMs);
  };
  pool.onSeq = (seq) => {
    const t0 = pending.get(seq);
    if (t0 === undefined) return;
    pending.delete(seq);
    completed++;
    completion.record(nowUs() - t0);
    if (!stopped) sendOne();
    else if (pending.size === 0) finish();
  };
  const runTimer = setTimeout(stop, opts.durationMs);
  for (let i = 0; i < opts.window; i++) sendOne();
  return { done, stop };
}

export interface RateResult {
  sent: number;
  elapsedMs: number;
  /** How late sends left against their schedule, µs: large means the publisher could not keep up. */
  sendLag: Histogram;
}

/** Open loop: `rate` notifications per second to random users among `users`, for durationMs. */
export function rateLoop(pub: Publisher, opts: { rate: number; durationMs: number; users: number; prefix: string }): Promise<RateResult> {
  const total = Math.max(1, Math.round((opts.rate * opts.durationMs) / 1000));
  const intervalUs = 1e6 / opts.rate;
  const sendLag = new Histogram();
  const startUs = nowUs();
  const started = performance.now();
  let sent = 0;
  return new Promise((resolve) => {
    const tick = (): void => {
      const now = nowUs();
      const due = Math.min(total, Math.floor((now - startUs) / intervalUs) + 1);
      while (sent < due) {
        const t0 = nowUs();
        sendLag.record(t0 - (startUs + sent * intervalUs));
        pub.notify(`${opts.prefix}${Math.floor(Math.random() * opts.users)}`, nextSeq++, t0);
        sent++;
      }
      if (sent >= total) resolve({ sent, elapsedMs: performance.now() - started, sendLag });
      else setTimeout(tick, 1);
    };
    tick();
  });
}
