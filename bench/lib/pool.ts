// The coordinator's side of the load-client worker processes: fork, RPC with deadlines, fan-in of stats.
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { childEnv, stopChild, track } from './children.js';
import { Histogram } from './hist.js';
import { ROOT } from './servers.js';
import type { Command, OpenResult, OpenSpec, PingResult, PingSpec, Stats } from '../worker.js';

type Args<C extends Command['cmd']> = Extract<Command, { cmd: C }>['args'];

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

class Worker {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(
    readonly child: ChildProcess,
    onSeq: (seq: number) => void,
  ) {
    child.on('message', (m: { id?: number; ev?: string; seq?: number; result?: unknown; error?: string }) => {
      if (m.ev === 'seq') return onSeq(m.seq!);
      if (m.id === undefined) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error !== undefined) p.reject(new Error(`worker ${child.pid}: ${m.error}`));
      else p.resolve(m.result);
    });
    child.on('exit', (code, signal) => {
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`worker ${child.pid} exited (${code ?? signal})`));
      }
      this.pending.clear();
    });
  }

  call<C extends Command['cmd'], R>(cmd: C, args: Args<C>, timeoutMs: number): Promise<R> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`worker ${this.child.pid}: ${cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child.send({ id, cmd, args });
    });
  }
}

export interface PoolOpenResult {
  opened: number;
  failed: number;
  errors: Record<string, number>;
  /** Wall time from the first handshake started to the last one done, over all workers. */
  elapsedMs: number;
  handshake: Histogram;
}

export interface PoolStats {
  conns: number;
  delivered: number;
  pongs: number;
  other: number;
  dropped: number;
  dropCodes: Record<string, number>;
  latency: Histogram;
}

export class Pool {
  private constructor(private readonly workers: Worker[]) {}
  /** Called when every worker holding connections has seen all its deliveries of a broadcast. */
  onSeq: (seq: number) => void = () => {};
  private readonly seqSeen = new Map<number, number>();
  /** Workers holding connections (the ones whose seq reports count). */
  active = 0;

  static async start(n: number): Promise<Pool> {
    const script = join(ROOT, 'bench', 'worker.ts');
    const workers: Worker[] = [];
    const pool = new Pool(workers);
    const ready: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const child = track(
        fork(script, [], {
          cwd: ROOT,
          execArgv: ['--import', 'tsx'],
          env: childEnv(),
          serialization: 'advanced',
          stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        }),
      );
      ready.push(
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('worker did not start within 20 s')), 20000);
          child.once('message', () => {
            clearTimeout(timer);
            resolve();
          });
          child.once('exit', (code) => reject(new Error(`worker exited at start (${code})`)));
        }),
      );
      workers.push(new Worker(child, (seq) => pool.seq(seq)));
    }
    await Promise.all(ready);
    return pool;
  }

  get pids(): number[] {
    return this.workers.map((w) => w.child.pid!);
  }

  get size(): number {
    return this.workers.length;
  }

  private seq(seq: number): void {
    const n = (this.seqSeen.get(seq) ?? 0) + 1;
    if (n >= this.active) {
      this.seqSeen.delete(seq);
      this.onSeq(seq);
    } else this.seqSeen.set(seq, n);
  }

  /**
   * Opens `count` more connections spread evenly over the workers; users are
   * `${userPrefix}${offset}..${offset + count - 1}`.
   */
  async open(spec: Omit<OpenSpec, 'from' | 'count'> & { count: number; offset?: number }, timeoutMs = 300_000): Promise<PoolOpenResult> {
    const n = this.workers.length;
    const shares = this.workers.map((_, i) => Math.floor(spec.count / n) + (i < spec.count % n ? 1 : 0));
    let from = spec.offset ?? 0;
    await Promise.all(
      this.workers.map((w, i) => {
        const { offset: _offset, ...rest } = spec;
        const args: OpenSpec = { ...rest, from, count: shares[i]! };
        from += shares[i]!;
        return w.call('prepare', args, 60_000);
      }),
    );
    const started = performance.now();
    const results = await Promise.all(this.workers.map((w) => w.call<'open', OpenResult>('open', {}, timeoutMs)));
    const elapsedMs = performance.now() - started;
    const handshake = new Histogram();
    const errors: Record<string, number> = {};
    let opened = 0;
    let failed = 0;
    for (const r of results) {
      opened += r.opened;
      failed += r.failed;
      handshake.merge(r.handshake);
      for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    }
    this.active = (await Promise.all(this.workers.map((w) => w.call<'stats', Stats>('stats', { reset: false, latency: false }, 10_000)))).filter((st) => st.conns > 0).length;
    return { opened, failed, errors, elapsedMs, handshake };
  }

  async closeAll(): Promise<number> {
    const r = await Promise.all(this.workers.map((w) => w.call<'closeAll', { closed: number }>('closeAll', {}, 30_000)));
    this.active = 0;
    this.seqSeen.clear();
    return r.reduce((a, b) => a + b.closed, 0);
  }

  async mode(reportSeqs: boolean): Promise<void> {
    this.seqSeen.clear();
    await Promise.all(this.workers.map((w) => w.call('mode', { reportSeqs }, 10_000)));
  }

  async stats(reset: boolean, latency = true): Promise<PoolStats> {
    const all = await Promise.all(this.workers.map((w) => w.call<'stats', Stats>('stats', { reset, latency }, 10_000)));
    const out: PoolStats = { conns: 0, delivered: 0, pongs: 0, other: 0, dropped: 0, dropCodes: {}, latency: new Histogram() };
    for (const s of all) {
      out.conns += s.conns;
      out.delivered += s.delivered;
      out.pongs += s.pongs;
      out.other += s.other;
      out.dropped += s.dropped;
      for (const [k, v] of Object.entries(s.dropCodes)) out.dropCodes[k] = (out.dropCodes[k] ?? 0) + v;
      if (s.latency) out.latency.merge(s.latency);
    }
    return out;
  }

  /** Pings at `rate` per second in total (split over the workers), from `conns` connections in total. */
  async ping(spec: PingSpec): Promise<{ sent: number; received: number; lost: number; rtt: Histogram }> {
    const n = this.workers.length;
    const all = await Promise.all(
      this.workers.map((w) =>
        w.call<'ping', PingResult>('ping', { ...spec, rate: spec.rate / n, conns: Math.ceil(spec.conns / n) }, spec.durationMs + spec.drainMs + 10_000),
      ),
    );
    const rtt = new Histogram();
    let sent = 0;
    let received = 0;
    let lost = 0;
    for (const r of all) {
      sent += r.sent;
      received += r.received;
      lost += r.lost;
      rtt.merge(r.rtt);
    }
    return { sent, received, lost, rtt };
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => stopChild(w.child)));
  }
}
