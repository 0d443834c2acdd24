// Reads a V8 .cpuprofile (node --cpu-prof, or `npm run bench -- <scenario> --cpu-prof`) and prints where
// the time went: self time by function, inclusive time by function, or folded stacks for a flame graph
// (`--folded > out.folded`, then flamegraph.pl or https://www.speedscope.app).
//
//   node --import tsx bench/tools/cpuprofile.ts <file.cpuprofile> [--top 30] [--folded] [--filter text]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Frame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface Node {
  id: number;
  callFrame: Frame;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string' }, folded: { type: 'boolean' }, filter: { type: 'string' } },
});
if (positionals.length !== 1) {
  process.stderr.write('usage: cpuprofile.ts <file.cpuprofile> [--top N] [--folded] [--filter text]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

function label(f: Frame): string {
  const file = f.url.replace(/^file:\/\/.*?\/(node_modules|dist|src|bench)\//, '$1/').replace(/^node:/, 'node:');
  return `${f.functionName || '(anonymous)'} ${file ? `${file}:${f.lineNumber + 1}` : ''}`.trim();
}

// Time per sample: the delta to the next sample.
const selfUs = new Map<number, number>();
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i + 1] ?? 0;
  const id = profile.samples[i]!;
  selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
}
const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);

function stack(id: number): Node[] {
  const out: Node[] = [];
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) out.push(byId.get(cur)!);
  return out.reverse();
}

if (values.folded) {
  const folded = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const key = stack(id)
      .filter((n) => n.callFrame.functionName !== '(root)')
      .map((n) => label(n.callFrame).replaceAll(';', ','))
      .join(';');
    folded.set(key, (folded.get(key) ?? 0) + us);
  }
  for (const [k, us] of folded) process.stdout.write(`${k} ${Math.round(us)}\n`);
  process.exit(0);
}

const top = Number(values.top ?? 30);
const self = new Map<string, number>();
const inclusive = new Map<string, number>();
for (const [id, us] of selfUs) {
  const s = stack(id);
  const leaf = label(s[s.length - 1]!.callFrame);
  self.set(leaf, (self.get(leaf) ?? 0) + us);
  for (const l of new Set(s.map((n) => label(n.callFrame)))) inclusive.set(l, (inclusive.get(l) ?? 0) + us);
}
const pct = (us: number) => `${((us / totalUs) * 100).toFixed(1).padStart(5)}%`;
const show = (title: string, m: Map<string, number>) => {
  process.stdout.write(`\n${title} (of ${(totalUs / 1e6).toFixed(2)} s sampled)\n`);
  const rows = [...m.entries()]
    .filter(([k]) => !values.filter || k.includes(values.filter))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top);
  for (const [k, us] of rows) process.stdout.write(`${pct(us)} ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}\n`);
};
show('self time', self);
show('inclusive time', inclusive);
