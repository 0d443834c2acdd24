// Results: one JSON line each (stable schema, documented in bench/README.md), and the human summary:
// medians per server, ratios storywire / raw uWS.js and storywire / Socket.IO seed, and the issue's targets.
import type { Machine } from './machine.js';
import type { CpuFigures } from './measure.js';
import { median } from './hist.js';
import { SERVER_KINDS, SERVER_LABELS, type ServerKind } from './wire.js';

export const SCHEMA = 'storywire-bench/1';
/** The scenarios run against the three servers (`all` runs these). */
export const SCENARIOS = ['connect', 'fanout', 'notify', 'ping'] as const;
/** storywire's own scenarios in the same envelope, comparing two setups of storywire in one run; not part of `all`. */
export const OWN_SCENARIOS = ['proxy'] as const;
export type ScenarioName = (typeof SCENARIOS)[number] | (typeof OWN_SCENARIOS)[number];

export interface Result {
  schema: typeof SCHEMA;
  scenario: ScenarioName;
  /** Which measurement of the scenario: `n=10000`, `max`, `max-rate`, `one-at-a-time`, `steps`, `idle`, `under-fanout`. */
  variant: string;
  run: number;
  runs: number;
  server: { kind: ServerKind; name: string; version: string };
  machine: Machine;
  params: Record<string, unknown>;
  /** The measured figures, all numbers; see bench/README.md for each. */
  figures: Record<string, number>;
  cpu: CpuFigures;
  /** False when something went wrong (lost messages, failed handshakes, timeouts): see errors. */
  ok: boolean;
  errors: string[];
  detail?: unknown;
  ts: string;
}

interface Target {
  vs: ServerKind;
  op: '<=' | '>=';
  ratio: number;
}

interface FigureSpec {
  figure: string;
  label: string;
  targets?: Target[];
  /** Only for these variants (all when unset). */
  variants?: string[];
}

/** What the summary shows for each scenario, and the targets of issues #3 and #14 (storywire vs the others; RSS per connection <= 1.3x is #14's). */
export const TABLE: Record<ScenarioName, FigureSpec[]> = {
  connect: [
    { figure: 'connections', label: 'connections held' },
    { figure: 'handshakesPerSec', label: 'handshakes/s (incl. JWT verify)' },
    { figure: 'serverCpuUsPerHandshake', label: 'server CPU per handshake (µs)', targets: [{ vs: 'uws', op: '<=', ratio: 1.5 }] },
    { figure: 'rssPerConnKiB', label: 'server RSS per connection (KiB)', targets: [{ vs: 'uws', op: '<=', ratio: 1.3 }] },
    { figure: 'rssMarginalKiB', label: 'server RSS per connection, marginal: 2nd half (KiB)' },
    { figure: 'projected1MGiB', label: 'projected server RSS for 1M connections (GiB)', variants: ['max'] },
  ],
  fanout: [
    { figure: 'deliveredPerSec', label: 'delivered messages/s' },
    { figure: 'serverCpuSecPerMillion', label: 'server CPU-s per million delivered', targets: [{ vs: 'uws', op: '<=', ratio: 1.3 }] },
    { figure: 'p50Ms', label: 'delivery latency p50 (ms)' },
    { figure: 'p99Ms', label: 'delivery latency p99 (ms)' },
  ],
  notify: [
    { figure: 'maxRateP99Under50ms', label: 'highest rate with p99 < 50 ms (/s)', targets: [{ vs: 'uws', op: '>=', ratio: 0.8 }, { vs: 'socketio', op: '>=', ratio: 3 }] },
    { figure: 'serverCpuUsPerMsg', label: 'server CPU per notification at the reference rate (µs)' },
  ],
  ping: [
    { figure: 'p50Ms', label: 'RTT p50 (ms)' },
    { figure: 'p99Ms', label: 'RTT p99 (ms)', targets: [{ vs: 'uws', op: '<=', ratio: 1.5 }] },
  ],
  // storywire only: its summary compares a proxy with the rule that needs no backend (scenarios/proxy.ts).
  proxy: [],
};

export function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  const a = Math.abs(x);
  if (a >= 100000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

function key(r: Result): string {
  return `${r.scenario}\u0000${r.variant}`;
}

/** Medians over runs of every figure, per (scenario, variant) and server. */
export function aggregate(results: readonly Result[]): Map<string, Map<ServerKind, { figures: Record<string, number>; cpu: CpuFigures[]; runs: number; ok: boolean }>> {
  const out = new Map<string, Map<ServerKind, { figures: Record<string, number>; cpu: CpuFigures[]; runs: number; ok: boolean }>>();
  const groups = new Map<string, Result[]>();
  for (const r of results) {
    const k = `${key(r)}\u0000${r.server.kind}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  for (const rs of groups.values()) {
    const first = rs[0]!;
    if (!out.has(key(first))) out.set(key(first), new Map());
    const names = new Set(rs.flatMap((r) => Object.keys(r.figures)));
    const figures: Record<string, number> = {};
    for (const n of names) figures[n] = median(rs.map((r) => r.figures[n] ?? Number.NaN));
    out.get(key(first))!.set(first.server.kind, { figures, cpu: rs.map((r) => r.cpu), runs: rs.length, ok: rs.every((r) => r.ok) });
  }
  return out;
}

/** A Markdown summary: one table of figures with ratios and targets, one of CPU use and who set the pace. */
export function summaryTable(results: readonly Result[]): string {
  if (results.length === 0) return 'no results\n';
  const agg = aggregate(results);
  const kinds = SERVER_KINDS.filter((k) => results.some((r) => r.server.kind === k));
  const runs = Math.max(...results.map((r) => r.runs));
  const lines: string[] = [];
  lines.push(`Medians of ${runs} run(s). Ratios are storywire / the other server, measured in the same run.`, '');
  lines.push(`| scenario | figure | ${kinds.map((k) => SERVER_LABELS[k]).join(' | ')} | storywire / uWS | storywire / seed | target | verdict |`);
  lines.push(`|---|---|${kinds.map(() => '---:').join('|')}|---:|---:|---|---|`);
  const verdicts: string[] = [];
  for (const [k, byServer] of agg) {
    const [scenario, variant] = k.split('\u0000') as [ScenarioName, string];
    for (const spec of TABLE[scenario]) {
      if (spec.variants && !spec.variants.includes(variant)) continue;
      const v = (kind: ServerKind) => byServer.get(kind)?.figures[spec.figure];
      if (kinds.every((kind) => v(kind) === undefined)) continue;
      const sw = v('storywire');
      const ratio = (other: ServerKind) => {
        const o = v(other);
        return sw !== undefined && o !== undefined && o !== 0 ? sw / o : undefined;
      };
      const targets = (spec.targets ?? []).map((t) => `${t.op} ${t.ratio}x ${t.vs === 'uws' ? 'uWS' : 'seed'}`).join(', ');
      const verdict = (spec.targets ?? [])
        .map((t) => {
          const r = ratio(t.vs);
          if (r === undefined || !Number.isFinite(r)) return 'n/a';
          return (t.op === '<=' ? r <= t.ratio : r >= t.ratio) ? 'met' : 'MISSED';
        })
        .join(', ');
      if (verdict) verdicts.push(verdict);
      const ratioCell = (other: ServerKind) => {
        const r = ratio(other);
        return r === undefined ? '' : `${fmt(r)}x`;
      };
      lines.push(`| ${scenario} ${variant} | ${spec.label} | ${kinds.map((kind) => fmt(v(kind))).join(' | ')} | ${ratioCell('uws')} | ${ratioCell('socketio')} | ${targets} | ${verdict} |`);
    }
  }
  lines.push('', `| scenario | ${kinds.map((k) => `${SERVER_LABELS[k]}: CPU % server / clients / other`).join(' | ')} |`);
  lines.push(`|---|${kinds.map(() => '---').join('|')}|`);
  for (const [k, byServer] of agg) {
    const cells = kinds.map((kind) => {
      const a = byServer.get(kind);
      if (!a) return '';
      const s = median(a.cpu.map((c) => c.serverPct));
      const c = median(a.cpu.map((c) => c.clientPct));
      const o = median(a.cpu.map((c) => c.otherPct));
      const serverBound = a.cpu.filter((c) => c.bound === 'server-bound').length > a.cpu.length / 2;
      return `${fmt(s)} / ${fmt(c)} / ${fmt(o)} ${serverBound ? 'server-bound' : 'client-bound'}${a.ok ? '' : ' (ERRORS)'}`;
    });
    lines.push(`| ${k.replace('\u0000', ' ')} | ${cells.join(' | ')} |`);
  }
  return `${lines.join('\n')}\n`;
}
