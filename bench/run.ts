// CLI: `npm run bench -- <scenario|all> [options]`. Starts the servers under test as separate processes on
// loopback, drives the same workload against each with load-client worker processes, prints one JSON line
// per result on stdout and a Markdown summary at the end. See bench/README.md.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { jsonLines } from './lib/args.js';
import type { Ctx, Options } from './lib/context.js';
import { BENCH_SECRET } from './lib/jwt.js';
import { machineInfo } from './lib/machine.js';
import { Pool } from './lib/pool.js';
import { OWN_SCENARIOS, SCENARIOS, SCHEMA, summaryTable, type Result, type ScenarioName } from './lib/report.js';
import { serverVersion } from './lib/servers.js';
import { SERVER_KINDS, SERVER_LABELS, type ServerKind } from './lib/wire.js';
import { connect } from './scenarios/connect.js';
import { fanout } from './scenarios/fanout.js';
import { notify } from './scenarios/notify.js';
import { ping } from './scenarios/ping.js';
import { PROXY_LIMITS, proxy, proxySummary } from './scenarios/proxy.js';

const RUNNERS: Record<ScenarioName, (ctx: Ctx, kind: ServerKind, run: number) => Promise<void>> = { connect, fanout, notify, ping, proxy };

const USAGE = `usage: npm run bench -- <${SCENARIOS.join('|')}|all> [options]
       npm run bench -- proxy [options]   (storywire only: subscribe and publish through backend proxies)
       npm run bench -- <soak|cluster|recovery|chaos-cluster|chat|webhooks|history|ab> [their options; --help lists them]

  --servers LIST        servers under test, comma separated (default uws,storywire,socketio)
  --runs N              repeat each measurement N times; the summary shows medians (default 1)
  --workers N           load-client processes (default: 2, one more per 15,000 connections)
  --duration S          seconds per measured phase: fanout, ping (default 10)
  --warmup S            unmeasured warm-up seconds before each phase (default 2)
  --connections LIST    connect: connection counts, "max" = all the server process may hold (default 10000,max)
  --concurrency N       handshakes in flight per worker (default 64)
  --subscribers N       fanout, ping: connections, all subscribed to stories (default 5000)
  --window N            fanout, ping: broadcasts in flight for the max-rate run (default 8)
  --payload-bytes N     extra bytes in each story (default 0)
  --publishers N        publisher connections, used round-robin (default 4)
  --users N             notify: connected users (default 5000)
  --rates LIST          notify: rates to try, per second (default 2500,5000,10000,15000,20000,25000,...,60000,70000,...,150000)
  --ref-rate N          notify: rate at which server CPU per message is reported (default 10000)
  --step S              notify: seconds per rate (default 5)
  --p99-limit MS        notify: latency limit (default 50)
  --ping-rate N         ping: pings per second in total (default 500)
  --clients N           proxy: subscriber connections (default 1000)
  --per-client N        proxy: channels each client subscribes to in a pass, at most ${PROXY_LIMITS.perClient} (default 50)
  --inflight N          proxy: subscribes / publishes in flight, at most ${PROXY_LIMITS.inflight} (default 64)
  --source-addresses N  loopback source addresses 127.0.0.1..N (default auto: one per 25,000 connections)
  --settle S            connect: longest wait for the server RSS to settle (default 8)
  --quiet-wait S        before each server start, wait up to S s for other processes to calm down (default 60, 0 = never)
  --quiet-pct P         "calm": other processes under P % of one core (default 30)
  --jwt-secret S        HS256 secret given to every server (default: a fixed bench secret)
  --publish-via ws      how stories and notifications are injected (ws, the one driver: bench/README.md)
  --cpu-prof            write a V8 CPU profile of each server to bench/out/profiles/
  --server-node-args A  extra node flags for the server processes, space separated (experiments)
  --storywire-root DIR  run storywire from DIR/dist (another checkout: before/after comparisons)
  --storywire-env LIST  extra storywire environment, K=V comma separated (experiments)
  --out FILE            also append the JSON lines to FILE
  --smoke               tiny sizes, a few seconds in all (what CI runs)
  --no-table            no summary table
`;

function list(s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean);
}

function positiveInt(name: string, s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got "${s}"`);
  return n;
}

function positive(name: string, s: string): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got "${s}"`);
  return n;
}

function parseOptions(argv: string[]): { scenarios: ScenarioName[]; opts: Options; out: string | undefined; table: boolean } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      servers: { type: 'string' },
      runs: { type: 'string' },
      workers: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      concurrency: { type: 'string' },
      subscribers: { type: 'string' },
      window: { type: 'string' },
      'payload-bytes': { type: 'string' },
      publishers: { type: 'string' },
      users: { type: 'string' },
      rates: { type: 'string' },
      'ref-rate': { type: 'string' },
      step: { type: 'string' },
      'p99-limit': { type: 'string' },
      'ping-rate': { type: 'string' },
      clients: { type: 'string' },
      'per-client': { type: 'string' },
      inflight: { type: 'string' },
      'source-addresses': { type: 'string' },
      settle: { type: 'string' },
      'quiet-wait': { type: 'string' },
      'quiet-pct': { type: 'string' },
      'jwt-secret': { type: 'string' },
      'publish-via': { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      'server-node-args': { type: 'string' },
      'storywire-root': { type: 'string' },
      'storywire-env': { type: 'string' },
      out: { type: 'string' },
      smoke: { type: 'boolean' },
      'no-table': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length !== 1) throw new Error(USAGE);
  const which = positionals[0]!;
  if (which !== 'all' && !([...SCENARIOS, ...OWN_SCENARIOS] as readonly string[]).includes(which)) throw new Error(`unknown scenario "${which}"\n\n${USAGE}`);
  const scenarios = which === 'all' ? [...SCENARIOS] : [which as ScenarioName];
  const smoke = values.smoke ?? false;

  // Defaults: the sizes; --smoke shrinks everything to a few seconds in all.
  const opts: Options = {
    servers: [...SERVER_KINDS],
    runs: 1,
    workers: 0,
    host: '127.0.0.1',
    secret: BENCH_SECRET,
    connections: smoke ? [20] : [10_000, 'max'],
    concurrency: smoke ? 8 : 64,
    subscribers: smoke ? 20 : 5000,
    window: smoke ? 4 : 8,
    durationS: smoke ? 0.2 : 10,
    warmupS: smoke ? 0.1 : 2,
    users: smoke ? 20 : 5000,
    // Steps of 5,000/s from 20,000 to 60,000, where these servers top out on 2 cores: a 10,000/s step made the
    // ratio of two maxima jump between 0.67 and 0.8 on one step's luck.
    rates: smoke ? [100, 200] : [2500, 5000, 10_000, 15_000, 20_000, 25_000, 30_000, 35_000, 40_000, 45_000, 50_000, 55_000, 60_000, 70_000, 80_000, 100_000, 120_000, 150_000],
    refRate: smoke ? 100 : 10_000,
    stepS: smoke ? 0.2 : 5,
    p99LimitMs: 50,
    pingRate: smoke ? 100 : 500,
    proxyClients: smoke ? 10 : 1000,
    proxyPerClient: smoke ? 2 : 50,
    proxyInflight: smoke ? 4 : 64,
    sourceAddresses: 'auto',
    settleMaxS: smoke ? 0.1 : 8,
    quietWaitS: smoke ? 0 : 60,
    quietPct: 30,
    payloadBytes: 0,
    publishers: 4,
    cpuProf: values['cpu-prof'] ?? false,
    serverNodeArgs: values['server-node-args'] ? values['server-node-args'].split(' ').filter(Boolean) : [],
    storywireRoot: values['storywire-root'] ? resolve(values['storywire-root']) : undefined,
    storywireEnv: {},
    publishVia: 'ws',
    smoke,
  };
  if (values.servers !== undefined) {
    const servers = list(values.servers);
    for (const s of servers) if (!(SERVER_KINDS as readonly string[]).includes(s)) throw new Error(`unknown server "${s}" (one of ${SERVER_KINDS.join(', ')})`);
    opts.servers = servers as ServerKind[];
    if (scenarios.includes('proxy') && !opts.servers.includes('storywire')) throw new Error('proxy measures storywire only: --servers must include storywire');
  }
  if (values.runs !== undefined) opts.runs = positiveInt('runs', values.runs);
  if (values.workers !== undefined) opts.workers = positiveInt('workers', values.workers);
  if (values.duration !== undefined) opts.durationS = positive('duration', values.duration);
  if (values.warmup !== undefined) opts.warmupS = positive('warmup', values.warmup);
  if (values.connections !== undefined) opts.connections = list(values.connections).map((c) => (c === 'max' ? 'max' : positiveInt('connections', c)));
  if (values.concurrency !== undefined) opts.concurrency = positiveInt('concurrency', values.concurrency);
  if (values.subscribers !== undefined) opts.subscribers = positiveInt('subscribers', values.subscribers);
  if (values.window !== undefined) opts.window = positiveInt('window', values.window);
  if (values['payload-bytes'] !== undefined) opts.payloadBytes = Number(values['payload-bytes']) || 0;
  if (values.publishers !== undefined) opts.publishers = positiveInt('publishers', values.publishers);
  if (values.users !== undefined) opts.users = positiveInt('users', values.users);
  if (values.rates !== undefined) opts.rates = list(values.rates).map((r) => positiveInt('rates', r));
  if (values['ref-rate'] !== undefined) opts.refRate = positiveInt('ref-rate', values['ref-rate']);
  else if (!opts.rates.includes(opts.refRate)) opts.refRate = opts.rates[0]!;
  if (values.step !== undefined) opts.stepS = positive('step', values.step);
  if (values['p99-limit'] !== undefined) opts.p99LimitMs = positive('p99-limit', values['p99-limit']);
  if (values['ping-rate'] !== undefined) opts.pingRate = positiveInt('ping-rate', values['ping-rate']);
  if (values.clients !== undefined) opts.proxyClients = positiveInt('clients', values.clients);
  if (values['per-client'] !== undefined) opts.proxyPerClient = positiveInt('per-client', values['per-client']);
  if (values.inflight !== undefined) opts.proxyInflight = positiveInt('inflight', values.inflight);
  if (opts.proxyPerClient > PROXY_LIMITS.perClient) throw new Error(`--per-client must be at most ${PROXY_LIMITS.perClient} (storywire's MAX_SUBSCRIPTIONS), got ${opts.proxyPerClient}`);
  if (opts.proxyInflight > PROXY_LIMITS.inflight) throw new Error(`--inflight must be at most ${PROXY_LIMITS.inflight} (the bench proxy's maxInFlight), got ${opts.proxyInflight}`);
  if (values['source-addresses'] !== undefined) opts.sourceAddresses = values['source-addresses'] === 'auto' ? 'auto' : positiveInt('source-addresses', values['source-addresses']);
  if (values.settle !== undefined) opts.settleMaxS = positive('settle', values.settle);
  if (values['quiet-wait'] !== undefined) opts.quietWaitS = Number(values['quiet-wait']) || 0;
  if (values['quiet-pct'] !== undefined) opts.quietPct = positive('quiet-pct', values['quiet-pct']);
  if (values['jwt-secret'] !== undefined) {
    if (Buffer.byteLength(values['jwt-secret']) < 32) throw new Error('--jwt-secret must be at least 32 bytes (storywire refuses shorter)');
    opts.secret = values['jwt-secret'];
  }
  if (values['storywire-env'] !== undefined) {
    for (const kv of list(values['storywire-env'])) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error(`--storywire-env takes K=V pairs, got "${kv}"`);
      opts.storywireEnv[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
  }
  if (values['publish-via'] !== undefined && values['publish-via'] !== 'ws') {
    throw new Error(`--publish-via ${values['publish-via']}: only "ws" exists (an HTTP driver needs the same routes on the baselines: bench/README.md, "Publish driver")`);
  }
  if (opts.workers === 0) {
    const most = Math.max(opts.subscribers, opts.users, ...opts.connections.map((c) => (c === 'max' ? 20_000 : c)));
    opts.workers = Math.max(2, 1 + Math.ceil(most / 15_000));
    if (smoke) opts.workers = 2;
    // proxy drives its clients from this process: the pool's workers stay idle.
    if (scenarios.every((sc) => sc === 'proxy')) opts.workers = 1;
  }
  return { scenarios, opts, out: values.out, table: !(values['no-table'] ?? false) };
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const { scenarios, opts, out, table } = parsed;
  const machine = machineInfo();
  const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
  const write = jsonLines(out);
  const results: Result[] = [];
  const emit = (r: Result) => {
    results.push(r);
    write(r);
  };
  log(`${machine.cpu}, ${machine.cores} cores, Node ${machine.node}; servers: ${opts.servers.map((s) => serverVersion(s, opts.storywireRoot)).join(', ')}; ${opts.workers} client workers`);
  const pool = await Pool.start(opts.workers);
  const ctx: Ctx = { opts, machine, pool, log, emit };
  try {
    // Scenario by scenario, and inside each run all servers one after the other: every comparison is made
    // minutes apart at most, on the same machine in the same state.
    for (const scenario of scenarios) {
      for (let run = 1; run <= opts.runs; run++) {
        // proxy compares two setups of storywire, not servers.
        for (const kind of (OWN_SCENARIOS as readonly string[]).includes(scenario) ? (['storywire'] as const) : opts.servers) {
          log(`${scenario} / ${SERVER_LABELS[kind]} / run ${run} of ${opts.runs}`);
          try {
            await RUNNERS[scenario](ctx, kind, run);
          } catch (err) {
            const message = err instanceof Error ? err.message : String(err);
            log(`${scenario} / ${kind} failed: ${message}`);
            emit({
              schema: SCHEMA,
              scenario,
              variant: 'error',
              run,
              runs: opts.runs,
              server: { kind, name: SERVER_LABELS[kind], version: serverVersion(kind, opts.storywireRoot) },
              machine,
              params: {},
              figures: {},
              cpu: { wallS: 0, serverCpuS: 0, clientCpuS: 0, serverPct: 0, clientPct: 0, otherPct: 0, bound: 'client-bound' },
              ok: false,
              errors: [message],
              ts: new Date().toISOString(),
            });
          }
        }
      }
    }
  } finally {
    await pool.stop();
  }
  const measured = results.filter((r) => r.variant !== 'error');
  const own = measured.filter((r) => r.scenario === 'proxy');
  if (table && measured.length > own.length) process.stdout.write(`\n${summaryTable(measured.filter((r) => r.scenario !== 'proxy'))}`);
  if (table && own.length > 0) process.stdout.write(`\n${proxySummary(own)}`);
  return results.every((r) => r.ok) ? 0 : 1;
}

/**
 * Scenarios with a shape of their own, run by their own scripts in this process (their options:
 * `npm run bench -- <name> --help`): storywire over time (soak), one node against two over Redis (cluster),
 * the SDK's resume against a naive reconnect while sockets are cut (recovery), and the chaos of issue #21
 * against a real cluster (chaos-cluster, which runs the nodes from src/ through tsx: no build needed), and chat
 * through the publish proxy against chat without a backend and the generic publish, on 1 node and 2 + Redis (chat),
 * and webhook throughput and the cost of push tracking on notify (webhooks, from src/ through tsx like chaos-cluster),
 * and the in-memory history's own cost per append and per kept event (history, from src/ too), and two
 * storywire setups on the notify workload in alternating pairs, the order swapped every pair (ab).
 */
const STANDALONE: Record<string, string> = { soak: './soak.js', cluster: './cluster-fanout.js', recovery: './chaos.js', 'chaos-cluster': './chaos-cluster.js', chat: './chat.js', webhooks: './webhooks.js', history: './history.js', ab: './ab.js' };
const FROM_SOURCES: ReadonlySet<string> = new Set(['chaos-cluster', 'webhooks', 'history']);

async function standalone(name: string): Promise<void> {
  if (!FROM_SOURCES.has(name) && !existsSync(new URL('../dist/main.js', import.meta.url))) {
    process.stderr.write(`bench ${name}: dist/main.js is missing: run "npm run build" first\n`);
    process.exit(2);
  }
  // The script reads its options from process.argv after the script name, and exits when done.
  process.argv.splice(2, 1);
  await import(STANDALONE[name]!);
}

const which = process.argv[2];
const run = which !== undefined && Object.hasOwn(STANDALONE, which) ? standalone(which).then(() => new Promise<number>(() => {})) : main();
run.then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
