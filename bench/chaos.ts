// Chaos: clients cut at random while notifications flow, against a production storywire process; SDK resume vs naive reconnect.
//   npm run bench:chaos -- [--clients 200] [--duration 60] [--rate 200] [--every 1000] [--share 0.05] [--away 2000] [--scenarios resume,naive]
// Prints one JSON line per scenario (machine and parameters included), then a short summary.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import { SignJWT } from 'jose';
import { runChaos, type ChaosOptions, type ChaosResult } from './chaos-run.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const num = (name: string, dflt: number) => {
  const v = Number(args.get(name) ?? dflt);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a non-negative number`);
  return v;
};
const params = {
  clients: num('clients', 200),
  durationS: num('duration', 60),
  ratePerS: num('rate', 200),
  chaosEveryMs: num('every', 1000),
  dropShare: num('share', 0.05),
  awayMs: num('away', 2000),
  settleMs: num('settle', 15_000),
  historySize: num('history', 50),
};
const scenarios = (args.get('scenarios') ?? 'resume,naive').split(',').filter(Boolean);
for (const s of scenarios) if (s !== 'resume' && s !== 'naive') throw new Error(`unknown scenario ${s}: resume or naive`);

const SECRET = 'chaos-secret-chaos-secret-chaos-secret-0123';
const API_KEY = 'chaos-api-key-0123456789';
const KEY = new TextEncoder().encode(SECRET);
const machine = { node: process.version, cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** `node dist/main.js` in production mode on a free loopback port; resolves once /healthz answers. */
async function startServer(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [new URL('../dist/main.js', import.meta.url).pathname], {
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      JWT_SECRET: SECRET,
      API_KEY,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      HISTORY_SIZE: String(params.historySize),
      MAX_CONNECTIONS_PER_IP: String(params.clients * 2 + 10),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
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
  const onExit = () => killNow(server);
  process.once('exit', onExit);
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
    process.off('exit', onExit);
    await stop(server);
  }
}

/** Last resort on exit: the server must not outlive the benchmark. */
function killNow(c: ChildProcess): void {
  if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL');
}

async function main(): Promise<void> {
  const results: [string, ChaosResult][] = [];
  for (const name of scenarios) {
    const r = await scenario(name);
    results.push([name, r]);
    console.log(JSON.stringify({ bench: 'chaos', scenario: name, params, machine, result: r }));
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
