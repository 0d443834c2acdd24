// The bench's CI smoke run: every scenario against all three servers with tiny sizes, so the scripts never
// rot. It checks that every JSON line parses and carries the documented fields with sane values (counts
// that must match do); it never asserts performance.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { SCHEMA, SCENARIOS, type Result } from '../bench/lib/report.js';
import { SERVER_KINDS } from '../bench/lib/wire.js';

const ROOT = join(import.meta.dirname, '..');

const VARIANTS: Record<string, string[]> = {
  connect: ['n=20'],
  fanout: ['max-rate', 'one-at-a-time'],
  notify: ['steps'],
  ping: ['idle', 'under-fanout'],
};

function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    delete env.NODE_V8_COVERAGE;
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    // The bench kills its own servers and workers on SIGTERM; SIGKILL if it hangs anyway.
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    const hard = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 5000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      clearTimeout(hard);
      resolve({ code, stdout, stderr });
    });
  });
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

t.test('bench smoke: every scenario against every server', async (t) => {
  if (!existsSync(join(ROOT, 'dist', 'main.js'))) {
    const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
    t.equal(build.status, 0, `npm run build: ${build.stderr}`);
  }
  const { code, stdout, stderr } = await runBench(['all', '--smoke'], 90_000);
  t.equal(code, 0, `bench exit code (stderr tail: ${stderr.slice(-2000)})`);

  const lines = stdout.split('\n').filter((l) => l.startsWith('{'));
  const results = lines.map((l) => JSON.parse(l) as Result);
  t.equal(results.length, SERVER_KINDS.length * Object.values(VARIANTS).flat().length, 'one JSON line per scenario variant and server');
  t.match(stdout, /\| scenario \| figure \| raw uWS\.js \| storywire \| Socket\.IO seed \|/, 'a summary table at the end');

  for (const r of results) {
    const where = `${r.scenario}/${r.variant}/${r.server?.kind}`;
    t.equal(r.schema, SCHEMA, `${where}: schema`);
    t.ok((SCENARIOS as readonly string[]).includes(r.scenario), `${where}: scenario`);
    t.ok(VARIANTS[r.scenario]?.includes(r.variant), `${where}: variant`);
    t.ok((SERVER_KINDS as readonly string[]).includes(r.server.kind) && r.server.version.length > 0, `${where}: server`);
    t.match(r.machine, { node: process.version, cpu: String, cores: Number, platform: 'linux', arch: String }, `${where}: machine`);
    t.ok(r.machine.cores > 0, `${where}: cores`);
    t.type(r.params, 'object', `${where}: params`);
    t.ok(Object.values(r.figures).every((v) => typeof v === 'number' || v === null), `${where}: figures are numbers`);
    t.ok(isNum(r.cpu.wallS) && r.cpu.wallS > 0, `${where}: wall time`);
    t.ok(isNum(r.cpu.serverCpuS) && r.cpu.serverCpuS >= 0 && isNum(r.cpu.clientCpuS) && r.cpu.clientCpuS >= 0, `${where}: cpu seconds`);
    t.ok(isNum(r.cpu.serverPct) && isNum(r.cpu.clientPct), `${where}: cpu %`);
    t.ok(r.cpu.bound === 'client-bound' || r.cpu.bound === 'server-bound', `${where}: bound`);
    t.same(r.errors, [], `${where}: no errors`);
    t.equal(r.ok, true, `${where}: ok`);
    t.equal(r.run, 1, `${where}: run`);
    const f = r.figures;
    switch (r.scenario) {
      case 'connect':
        t.equal(f.connections, 20, `${where}: all connections held`);
        t.equal(f.failed, 0, `${where}: no failed handshake`);
        t.ok(isNum(f.handshakesPerSec) && f.handshakesPerSec! > 0, `${where}: handshakes/s`);
        t.ok(isNum(f.serverCpuUsPerHandshake) && f.serverCpuUsPerHandshake! >= 0, `${where}: cpu per handshake`);
        t.ok(isNum(f.rssPerConnKiB) && isNum(f.projected1MGiB) && f.rssAfterMiB! > 0, `${where}: memory figures`);
        break;
      case 'fanout':
        t.equal(f.subscribers, 20, `${where}: subscribers`);
        t.ok(f.broadcasts! > 0, `${where}: broadcasts`);
        t.equal(f.lost, 0, `${where}: nothing lost`);
        t.equal(f.delivered, f.broadcasts! * 20, `${where}: every broadcast reached every subscriber once`);
        t.equal(f.delivered, f.expected, `${where}: delivered = expected`);
        t.ok(isNum(f.serverCpuSecPerMillion) && isNum(f.p50Ms) && isNum(f.p99Ms) && f.p99Ms! >= f.p50Ms!, `${where}: cpu and latency`);
        break;
      case 'notify': {
        t.equal(f.users, 20, `${where}: users`);
        const steps = (r.detail as { steps: { rate: number; sent: number; delivered: number; p99Ms: number }[] }).steps;
        t.ok(steps.length >= 1 && steps.length === f.stepsRun, `${where}: steps`);
        for (const s of steps) t.equal(s.delivered, s.sent, `${where}: every notification at ${s.rate}/s delivered once`);
        t.ok(isNum(f.maxRateP99Under50ms), `${where}: max rate`);
        break;
      }
      case 'ping':
        t.equal(f.connections, 20, `${where}: connections`);
        t.ok(f.pings! > 0, `${where}: pings sent`);
        t.equal(f.pongs, f.pings, `${where}: every ping answered`);
        t.ok(isNum(f.p50Ms) && isNum(f.p99Ms), `${where}: rtt`);
        break;
    }
  }
  for (const kind of SERVER_KINDS) {
    for (const [scenario, variants] of Object.entries(VARIANTS)) {
      for (const variant of variants) {
        t.ok(results.some((r) => r.server.kind === kind && r.scenario === scenario && r.variant === variant), `${scenario}/${variant} ran against ${kind}`);
      }
    }
  }
});
