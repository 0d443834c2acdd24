// CPU meters over a measured phase (server process vs load clients) and RSS settling.
import { cpuSeconds, cpuSecondsOf, machineBusySeconds, rssBytes } from './proc.js';

/** Server CPU at or above this share of one core means the server, not the clients, set the pace. */
export const SATURATED_PCT = 85;

export interface CpuFigures {
  wallS: number;
  serverCpuS: number;
  /** Worker processes plus the coordinator (which runs the publisher). */
  clientCpuS: number;
  /** Percent of one core (100 = one core busy). */
  serverPct: number;
  clientPct: number;
  /**
   * CPU used meanwhile by everything else on the machine (other users' processes, the kernel's own work
   * not charged to ours), percent of one core: the noise indicator. Large values make a result suspect.
   */
  otherPct: number;
  /** "server-bound" when the server was saturated; "client-bound" otherwise (the clients or the machine set the pace). */
  bound: 'server-bound' | 'client-bound';
}

export class Meter {
  private t0 = 0;
  private s0 = 0;
  private c0 = 0;
  private m0 = 0;

  constructor(
    private readonly serverPid: number,
    private readonly clientPids: readonly number[],
  ) {}

  private clients(): number {
    return cpuSecondsOf(this.clientPids) + cpuSeconds('self');
  }

  start(): this {
    this.t0 = performance.now();
    this.s0 = cpuSeconds(this.serverPid);
    this.c0 = this.clients();
    this.m0 = machineBusySeconds();
    return this;
  }

  stop(): CpuFigures {
    const wallS = (performance.now() - this.t0) / 1000;
    const serverCpuS = cpuSeconds(this.serverPid) - this.s0;
    const clientCpuS = this.clients() - this.c0;
    const otherS = Math.max(0, machineBusySeconds() - this.m0 - serverCpuS - clientCpuS);
    return cpuFigures(wallS, serverCpuS, clientCpuS, wallS > 0 ? (otherS / wallS) * 100 : 0);
  }
}

/** The figures of a phase from its wall time and CPU seconds (percentages of one core). */
function cpuFigures(wallS: number, serverCpuS: number, clientCpuS: number, otherPct: number): CpuFigures {
  const serverPct = wallS > 0 ? (serverCpuS / wallS) * 100 : 0;
  return {
    otherPct: round(otherPct, 1),
    wallS: round(wallS, 3),
    serverCpuS: round(serverCpuS, 3),
    clientCpuS: round(clientCpuS, 3),
    serverPct: round(serverPct, 1),
    clientPct: round(wallS > 0 ? (clientCpuS / wallS) * 100 : 0, 1),
    bound: serverPct >= SATURATED_PCT ? 'server-bound' : 'client-bound',
  };
}

/** Two measured phases as one (CPU and wall added, percentages recomputed). */
export function sumCpu(a: CpuFigures, b: CpuFigures): CpuFigures {
  const wallS = a.wallS + b.wallS;
  const otherPct = wallS > 0 ? (a.otherPct * a.wallS + b.otherPct * b.wallS) / wallS : 0;
  return cpuFigures(wallS, a.serverCpuS + b.serverCpuS, a.clientCpuS + b.clientCpuS, otherPct);
}

/**
 * Waits (at most maxS seconds) until the rest of the machine has used less than maxPct of a core for two
 * one-second samples in a row; call it while the bench itself is idle. Returns the last sample and whether
 * the machine got quiet.
 */
export async function waitQuiet(maxPct: number, maxS: number): Promise<{ quiet: boolean; otherPct: number; waitedS: number }> {
  const started = performance.now();
  let calm = 0;
  let pct = 0;
  while ((performance.now() - started) / 1000 < maxS) {
    const b0 = machineBusySeconds();
    const t0 = performance.now();
    await sleep(1000);
    pct = ((machineBusySeconds() - b0) / ((performance.now() - t0) / 1000)) * 100;
    calm = pct < maxPct ? calm + 1 : 0;
    if (calm >= 2) return { quiet: true, otherPct: round(pct, 1), waitedS: round((performance.now() - started) / 1000, 1) };
  }
  return { quiet: maxS <= 0, otherPct: round(pct, 1), waitedS: round((performance.now() - started) / 1000, 1) };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the server's RSS stops moving (four samples 250 ms apart within 1 %), at most maxMs,
 * and returns the last sample in bytes.
 */
export async function settleRss(pid: number, maxMs: number): Promise<number> {
  const samples: number[] = [rssBytes(pid)];
  const deadline = performance.now() + maxMs;
  while (performance.now() < deadline) {
    await sleep(Math.min(250, Math.max(0, deadline - performance.now())));
    samples.push(rssBytes(pid));
    const last = samples.slice(-4);
    if (last.length === 4 && (Math.max(...last) - Math.min(...last)) / Math.max(...last) < 0.01) break;
  }
  return samples[samples.length - 1]!;
}

export function round(x: number, digits = 2): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
