// The in-memory history's own cost (issue #18: the GC of the kept history was the largest part of a single
// node's CPU per notification over raw uWS.js): appends of notification-sized frames to `--users` personal
// topics, HISTORY_SIZE 50 with the user share of 25 (what the notify bench fills), each variant in a fresh
// process with npm start's V8 flag, order rotated per run:
// - `none`: the frame is numbered and measured, then dropped (what a node that keeps nothing does);
// - `strings`: the frames kept in one plain array per topic, nothing else (the bare cost of holding them);
// - `memory`: MemoryHistory (src/seams/history/memory.ts), everything it keeps and bounds.
// Per variant: CPU per append (all threads: GC included), and the memory each kept event holds after a full
// GC: in V8's heap and outside it (the buffers the memory history keeps frames in).
//   npm run bench -- history [--users 5000] [--appends 400000] [--runs 3]
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { cliOptions, jsonLines } from './lib/args.js';
import { median } from './lib/hist.js';
import { machineInfo } from './lib/machine.js';
import { ROOT, serverVersion, startFlags } from './lib/servers.js';

const VARIANTS = ['none', 'strings', 'memory'] as const;
type Variant = (typeof VARIANTS)[number];
const SIZE = 50;
const USER_SHARE = 25;

interface Sample {
  variant: Variant;
  cpuUsPerAppend: number;
  heldEvents: number;
  liveHeapBytes: number;
  /** Buffers' bytes outside V8's heap (process.memoryUsage().arrayBuffers). */
  externalBytes: number;
}

/** One variant in this process (the child): appends, then a full GC and the heap. */
async function child(variant: Variant, users: number, appends: number): Promise<Sample> {
  const { MemoryHistory } = await import('../src/seams/history/memory.js');
  const { numberedFrame } = await import('../src/wire/position.js');
  const history = variant === 'memory' ? new MemoryHistory({ size: SIZE, ttlMs: 7 * 86_400_000, maxTopics: 4 * users, userSize: USER_SHARE }) : undefined;
  const kept: string[][] = Array.from({ length: users }, () => []);
  let bytes = 0;
  const start = process.cpuUsage();
  for (let i = 0; i < appends; i++) {
    const u = (i * 7919) % users;
    const topic = `user:u${u}`;
    const head = `{"type":"notification:received","topic":${JSON.stringify(topic)}`;
    const ts = Date.now();
    const tail = `,"data":{"id":"${randomUUID()}","title":"bench","message":"notification ${i} of the history bench","type":"like","from":"bench-publisher-0","origin":"user","ts":${ts},"data":{"seq":${i}}},"ts":${ts}}`;
    if (history) bytes += history.append(topic, head, tail, { ifStreamExists: false, user: true })!.frame.length;
    else {
      const frame = numberedFrame(head, 'bench-epoch', i + 1, tail);
      bytes += Buffer.byteLength(frame);
      if (variant === 'strings') {
        const k = kept[u]!;
        if (k.length === USER_SHARE) k.shift();
        k.push(frame);
      }
    }
    // A server yields between messages: timers and GC tasks run as they would.
    if ((i & 1023) === 1023) await new Promise((r) => setImmediate(r));
  }
  const cpu = process.cpuUsage(start);
  const gc = (globalThis as { gc?: () => void }).gc!;
  gc();
  gc();
  const { heapUsed: liveHeapBytes, arrayBuffers: externalBytes } = process.memoryUsage();
  // Read after the GC, so that what is kept is still reachable when the heap is measured.
  let heldEvents = kept.reduce((n, k) => n + k.length, 0);
  if (history) for (const topic of history.heldTopics()) heldEvents += (await history.latest(topic, SIZE)).length;
  if (bytes === 0) throw new Error('nothing appended');
  return { variant, cpuUsPerAppend: (cpu.user + cpu.system) / appends, heldEvents, liveHeapBytes, externalBytes };
}

if (process.argv[2] === '--child') {
  const [variant, users, appends] = process.argv.slice(3);
  child(variant as Variant, Number(users), Number(appends)).then(
    (s) => {
      process.stdout.write(`${JSON.stringify(s)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
} else {
  const opts = cliOptions('npm run bench -- history', {
    users: { default: 5000, int: true, min: 1, max: 100_000, doc: 'personal topics appended to, in turn' },
    appends: { default: 400_000, int: true, min: 1000, max: 5_000_000, doc: 'appends per variant' },
    runs: { default: 3, int: true, min: 1, max: 10, doc: 'rounds of the three variants (order rotated)' },
  });
  const write = jsonLines(opts.out);
  const machine = machineInfo();
  const server = { kind: 'storywire', name: 'storywire MemoryHistory', version: serverVersion('storywire'), run: 'node --import tsx (src/)' };
  const params = { users: opts.users, appends: opts.appends, historySize: SIZE, userShare: USER_SHARE, nodeFlags: startFlags(ROOT) };
  const samples: Sample[] = [];
  let ok = true;
  for (let run = 1; run <= opts.runs; run++) {
    const order = VARIANTS.map((_, i) => VARIANTS[(i + run - 1) % VARIANTS.length]!);
    for (const variant of order) {
      const args = [...startFlags(ROOT), '--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', variant, String(opts.users), String(opts.appends)];
      const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 600_000 });
      const errors = r.status === 0 ? [] : [`exit ${r.status ?? r.signal}: ${r.stderr.slice(-500)}`];
      ok &&= errors.length === 0;
      const s = errors.length === 0 ? (JSON.parse(r.stdout.trim().split('\n').pop()!) as Sample) : undefined;
      if (s) samples.push(s);
      write({ bench: 'history', scenario: 'append', variant, run, ok: errors.length === 0, machine, server, params, figures: s ?? {}, errors });
    }
  }
  const med = (v: Variant, f: (s: Sample) => number) => median(samples.filter((s) => s.variant === v).map(f));
  const floor = med('none', (s) => s.liveHeapBytes);
  const externalFloor = med('none', (s) => s.externalBytes);
  const figures = Object.fromEntries(
    VARIANTS.map((v) => [
      v,
      {
        cpuUsPerAppend: Number(med(v, (s) => s.cpuUsPerAppend).toFixed(2)),
        heldEvents: med(v, (s) => s.heldEvents),
        heapBytesPerHeldEvent: v === 'none' ? 0 : Math.round((med(v, (s) => s.liveHeapBytes) - floor) / Math.max(1, med(v, (s) => s.heldEvents))),
        externalBytesPerHeldEvent: v === 'none' ? 0 : Math.round((med(v, (s) => s.externalBytes) - externalFloor) / Math.max(1, med(v, (s) => s.heldEvents))),
      },
    ]),
  );
  const over = (v: Variant) => Number((figures[v]!.cpuUsPerAppend - figures['none']!.cpuUsPerAppend).toFixed(2));
  write({
    bench: 'history',
    scenario: 'append',
    variant: 'medians',
    ok,
    machine,
    server,
    params,
    figures: { ...figures, keepingCpuUs: { strings: over('strings'), memory: over('memory') }, memoryOverStrings: Number((over('memory') / Math.max(0.01, over('strings'))).toFixed(2)) },
    errors: ok ? [] : ['a variant failed'],
  });
  process.exit(ok ? 0 : 1);
}
