// Chaos: clients cut at random while notifications flow, against a production storywire process; SDK resume vs naive reconnect.
//   npm run bench -- recovery [--clients 200] [--duration 60] [--rate 200] [--every 1000] [--share 0.05] [--away 2000] [--scenarios resume,naive]
//   (after npm run build; `npm run bench:chaos` builds and runs it)
// Prints one JSON line per scenario (machine and parameters included), then a short summary.
import { spawn, type ChildProcess } from 'node:child_process';
import { SignJWT } from 'jose';
import { cliOptions, jsonLines } from './lib/args.js';
import { track } from './lib/children.js';
import { machineInfo } from './lib/machine.js';
import { freePort, serverVersion, startFlags, STORYWIRE_LOAD_ENV } from './lib/servers.js';
import { runChaos, type ChaosOptions, type ChaosResult } from './chaos-run.js';
/** The checkout whose `npm start` flags storywire runs with. */
const ROOT_DIR = new URL('..', import.meta.url).pathname;

const cli = cliOptions('npm run bench -- recovery', {
  clients: { default: 200, int: true, doc: 'SDK clients, one user each' },
  duration: { default: 60, min: 0.1, doc: 'seconds of notifications and cuts' },
  rate: { default: 200, doc: 'notifications per second, in total, over HTTP' },
  every: { default: 1000, doc: 'ms between two rounds of cuts' },
  share: { default: 0.05, min: 0, max: 1, doc: 'share of the sockets cut each round (0..1)' },
  away: { default: 2000, min: 0, doc: 'ms a cut client stays away before it may reconnect' },
  settle: { default: 15_000, min: 0, doc: 'ms to wait for the last deliveries' },
  history: { default: 50, int: true, doc: "the server's HISTORY_SIZE" },
  scenarios: { default: 'resume,naive', choices: ['resume', 'naive'], doc: 'resume: the SDK resumes from its position; naive: reconnects without one' },
});
const params = {
  clients: cli.clients,
  durationS: cli.duration,
  ratePerS: cli.rate,
  chaosEveryMs: cli.every,
  dropShare: cli.share,
  awayMs: cli.away,
  settleMs: cli.settle,
  historySize: cli.history,
};
const scenarios = cli.scenarios;
const emit = jsonLines(cli.out);

const SECRET = 'chaos-secret-chaos-secret-chaos-secret-0123';
const API_KEY = 'chaos-api-key-0123456789';
const KEY = new TextEncoder().encode(SECRET);
const machine = machineInfo();
const underTest = { kind: 'storywire', name: 'storywire', version: serverVersion('storywire') };

/** `node dist/main.js` in production mode on a free loopback port; resolves once /healthz answers. */
async function startServer(port: number): Promise<ChildProcess> {
  const child = track(spawn(process.execPath, [...startFlags(ROOT_DIR), new URL('../dist/main.js', import.meta.url).pathname], {
    env: {
      PATH: process.env['PATH'],
      NODE_ENV: 'production',
      // Every client connects from 127.0.0.1 and reconnects through the cuts: the budgets of one address lifted.
      ...STORYWIRE_LOAD_ENV,
      JWT_SECRET: SECRET,
      API_KEY,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      HISTORY_SIZE: String(params.historySize),
      MAX_CONNECTIONS_PER_IP: String(params.clients * 2 + 10),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  }));
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  const deadline = Date.now() + 15_000;
  while (!(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`storywire did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return child;
}

/** Stops the child by its PID: SIGTERM (graceful drain), SIGKILL if it is still there after 5 s. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function scenario(name: string): Promise<ChaosResult> {
  const port = await freePort();
  const server = await startServer(port);
  try {
    const opts: ChaosOptions = {
      url: `ws://127.0.0.1:${port}/ws`,
      apiBase: `http://127.0.0.1:${port}`,
      apiKey: API_KEY,
      token: (sub) => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('2h').sign(KEY),
      clients: params.clients,
      durationMs: params.durationS * 1000,
      ratePerS: params.ratePerS,
      chaosEveryMs: params.chaosEveryMs,
      dropShare: params.dropShare,
      awayMs: params.awayMs,
      settleMs: params.settleMs,
      resume: name === 'resume',
    };
    return await runChaos(opts);
  } finally {
    await stop(server);
  }
}

async function main(): Promise<void> {
  const results: [string, ChaosResult][] = [];
  for (const name of scenarios) {
    const r = await scenario(name);
    results.push([name, r]);
    emit({ bench: 'chaos', scenario: name, server: underTest, params, machine, result: r });
  }
  console.log(`\nchaos: ${params.clients} clients, ${params.durationS} s, ${params.ratePerS} notifications/s, ${params.dropShare * 100} % cut every ${params.chaosEveryMs} ms, history ${params.historySize}`);
  for (const [name, r] of results) {
    console.log(
      `  ${name.padEnd(7)} delivered ${r.delivered}/${r.published} (${r.deliveryPct} %), missing ${r.missing} on ${r.clientsMissing} clients, ` +
        `duplicates ${r.duplicates}, out of order ${r.outOfOrder}, cuts ${r.cuts}, replayed ${r.replayed} (at most ${r.maxReplayed} at once), resyncs ${r.resyncs}, ` +
        `catch-up after reconnect p50 ${r.catchUpMs.p50} / p99 ${r.catchUpMs.p99} / max ${r.catchUpMs.max} ms, outage max ${r.outageMs.max} ms`,
    );
  }
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
