// Two storywire setups on the notify workload, run in alternating pairs with the order swapped every pair
// (A B, B A, A B, ...): on a machine whose own speed drifts by tens of percent within the hour, a before/after
// is only worth its per-pair ratios, each taken a minute apart. Each run is `npm run bench -- notify
// --servers storywire --runs 1` at one rate; A and B differ by `--a`/`--b` (a checkout whose dist/ is run,
// default this one) and `--a-env`/`--b-env` (extra environment, K=V comma separated).
//   npm run bench -- ab --b ../before [--pairs 3] [--rate 10000] [--step 15] [--users 5000]
//   npm run bench -- ab --b-env NOTIFY_USER_SHARE=0          (what one feature costs)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cliOptions, jsonLines } from './lib/args.js';
import { median } from './lib/hist.js';
import { machineInfo } from './lib/machine.js';
import { ROOT, serverVersion } from './lib/servers.js';

/** A checkout to run: it must have been built. */
const checkout = (dir: string) => (existsSync(join(resolve(dir), 'dist', 'main.js')) ? undefined : 'no dist/main.js there (npm run build in it first)');
/** K=V pairs, comma separated, K an environment variable's name. */
const envList = (v: string) => (v.split(',').every((kv) => /^[A-Z][A-Z0-9_]*=/.test(kv.trim())) ? undefined : 'takes K=V pairs, comma separated');
const opts = cliOptions('npm run bench -- ab', {
  a: { default: '', text: true, valid: checkout, doc: 'setup A: a storywire checkout whose dist/ is run (default: this one)' },
  b: { default: '', text: true, valid: checkout, doc: 'setup B: likewise' },
  'a-env': { default: '', text: true, valid: envList, doc: "setup A's extra environment, K=V comma separated" },
  'b-env': { default: '', text: true, valid: envList, doc: "setup B's extra environment, K=V comma separated" },
  pairs: { default: 3, int: true, min: 1, max: 20, doc: 'pairs of runs (the order swapped every pair)' },
  rate: { default: 10_000, int: true, min: 10, max: 200_000, doc: 'notifications per second' },
  step: { default: 15, min: 0.5, max: 300, doc: 'measured seconds per run' },
  users: { default: 5000, int: true, min: 1, max: 100_000, doc: 'connected users (one connection each)' },
});
const write = jsonLines(opts.out);
const machine = machineInfo();

interface Setup {
  name: 'A' | 'B';
  root: string;
  env: string;
}
const setups: Setup[] = [
  { name: 'A', root: opts.a === '' ? ROOT : resolve(opts.a), env: opts['a-env'] },
  { name: 'B', root: opts.b === '' ? ROOT : resolve(opts.b), env: opts['b-env'] },
];
const params = { pairs: opts.pairs, rate: opts.rate, stepS: opts.step, users: opts.users, a: { root: setups[0]!.root, env: setups[0]!.env }, b: { root: setups[1]!.root, env: setups[1]!.env } };

/** One notify run of a setup: its server CPU per notification, or why it failed. */
function once(s: Setup): Promise<{ us: number | undefined; errors: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'storywire-ab-'));
  const out = join(dir, 'run.jsonl');
  const args = ['--import', 'tsx', join(ROOT, 'bench', 'run.ts'), 'notify', '--servers', 'storywire', '--runs', '1', '--rates', String(opts.rate), '--ref-rate', String(opts.rate), '--step', String(opts.step), '--users', String(opts.users), '--out', out];
  if (s.root !== ROOT) args.push('--storywire-root', s.root);
  if (s.env !== '') args.push('--storywire-env', s.env);
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    // Bounded: a notify run of one rate takes its step, the connects and a drain.
    const timer = setTimeout(() => child.kill('SIGTERM'), 300_000 + opts.step * 2000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      let line: { ok?: boolean; errors?: string[]; figures?: { serverCpuUsPerMsg?: number } } | undefined;
      try {
        line = JSON.parse(readFileSync(out, 'utf8').trim().split('\n').pop()!) as typeof line;
      } catch {
        line = undefined;
      }
      rmSync(dir, { recursive: true, force: true });
      const us = line?.figures?.serverCpuUsPerMsg;
      const errors = [...(line?.errors ?? []), ...(code === 0 && line !== undefined ? [] : [`notify run exited ${code}: ${stderr.slice(-500)}`])];
      done({ us: typeof us === 'number' && Number.isFinite(us) ? us : undefined, errors });
    });
  });
}

const ratios: number[] = [];
const figures: Record<'A' | 'B', number[]> = { A: [], B: [] };
let ok = true;
for (let pair = 1; pair <= opts.pairs; pair++) {
  const order = pair % 2 === 1 ? setups : [setups[1]!, setups[0]!];
  const got: Partial<Record<'A' | 'B', number>> = {};
  for (const [position, s] of order.entries()) {
    const r = await once(s);
    ok &&= r.errors.length === 0 && r.us !== undefined;
    if (r.us !== undefined) {
      got[s.name] = r.us;
      figures[s.name].push(r.us);
    }
    write({
      bench: 'ab',
      scenario: 'notify',
      variant: s.name,
      pair,
      position: position + 1,
      ok: r.errors.length === 0 && r.us !== undefined,
      machine,
      server: { kind: 'storywire', name: 'storywire', version: serverVersion('storywire', s.root) },
      params,
      serverCpuUsPerMsg: r.us ?? null,
      errors: r.errors,
    });
  }
  if (got.A !== undefined && got.B !== undefined) ratios.push(Number((got.B / got.A).toFixed(3)));
}
write({
  bench: 'ab',
  scenario: 'notify',
  variant: 'ratio',
  ok,
  machine,
  params,
  // B over A per pair, each pair's runs a minute apart: the figure to quote, with their median.
  pairRatios: ratios,
  medianRatio: ratios.length > 0 ? Number(median(ratios).toFixed(3)) : null,
  medianA: figures.A.length > 0 ? median(figures.A) : null,
  medianB: figures.B.length > 0 ? median(figures.B) : null,
  errors: ok ? [] : ['a run failed'],
});
process.exit(ok ? 0 : 1);
