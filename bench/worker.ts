// A load-client process: holds a share of the connections, counts and times what they receive, sends pings.
// Driven by the coordinator (lib/pool.ts) over IPC. Kept lean on the receive path: one Buffer.indexOf per
// frame, no JSON.parse, a fixed-size histogram; so that the client is as cheap as a client can be.
import type WebSocket from 'ws';
import { Histogram } from './lib/hist.js';
import { benchToken } from './lib/jwt.js';
import { BENCH_MARK, PONG_MARK, nowUs, openClient, pingFrame, readUint, type Endpoint } from './lib/wire.js';

export interface OpenSpec {
  endpoint: Endpoint;
  secret: string;
  userPrefix: string;
  /** User ids are `${userPrefix}${from + i}` for i < count. */
  from: number;
  count: number;
  roles: string[];
  concurrency: number;
  localAddresses: string[];
  timeoutMs: number;
}

export interface OpenResult {
  opened: number;
  failed: number;
  errors: Record<string, number>;
  elapsedMs: number;
  handshake: Uint32Array;
}

export interface Stats {
  conns: number;
  delivered: number;
  pongs: number;
  other: number;
  dropped: number;
  /** Close code (and reason) of each unexpected close, counted. */
  dropCodes: Record<string, number>;
  latency?: Uint32Array;
}

export interface PingSpec {
  conns: number;
  rate: number;
  durationMs: number;
  drainMs: number;
}

export interface PingResult {
  sent: number;
  received: number;
  lost: number;
  rtt: Uint32Array;
}

export type Command =
  | { cmd: 'prepare'; args: OpenSpec }
  | { cmd: 'open'; args: Record<string, never> }
  | { cmd: 'closeAll'; args: Record<string, never> }
  | { cmd: 'mode'; args: { reportSeqs: boolean } }
  | { cmd: 'stats'; args: { reset: boolean; latency: boolean } }
  | { cmd: 'ping'; args: PingSpec };

const conns = new Set<WebSocket>();
let endpoint: Endpoint | undefined;
let prepared: { spec: OpenSpec; tokens: string[] } | undefined;
let closing = false;

let delivered = 0;
let pongs = 0;
let other = 0;
let dropped = 0;
const latency = new Histogram();
let reportSeqs = false;
const seqCounts = new Map<number, number>();

const pingSent = new Map<number, number>();
let pingRtt = new Histogram();
let nextPingId = 1;

const pos = new Int32Array(1);
const send = (m: unknown) => process.send!(m);

function onMessage(data: Buffer): void {
  const b = data.indexOf(BENCH_MARK);
  if (b !== -1) {
    const seq = readUint(data, b + BENCH_MARK.length, pos);
    const t0 = readUint(data, pos[0]! + 1, pos);
    latency.record(nowUs() - t0);
    delivered++;
    if (reportSeqs) {
      const n = (seqCounts.get(seq) ?? 0) + 1;
      if (n >= conns.size) {
        seqCounts.delete(seq);
        send({ ev: 'seq', seq });
      } else seqCounts.set(seq, n);
    }
    return;
  }
  const p = data.indexOf(PONG_MARK);
  if (p !== -1) {
    const id = readUint(data, p + PONG_MARK.length, pos);
    const t = pingSent.get(id);
    if (t !== undefined) {
      pingSent.delete(id);
      pingRtt.record(nowUs() - t);
      pongs++;
    }
    return;
  }
  other++;
}

const dropCodes: Record<string, number> = {};
function onClose(this: WebSocket, code: number, reason: Buffer): void {
  if (conns.delete(this) && !closing) {
    dropped++;
    const key = `${code}${reason.length ? ` ${reason.toString().slice(0, 80)}` : ''}`;
    dropCodes[key] = (dropCodes[key] ?? 0) + 1;
  }
}

function prepare(spec: OpenSpec): { tokens: number } {
  endpoint = spec.endpoint;
  const tokens: string[] = [];
  for (let i = 0; i < spec.count; i++) tokens.push(benchToken(spec.secret, `${spec.userPrefix}${spec.from + i}`, spec.roles));
  prepared = { spec, tokens };
  return { tokens: tokens.length };
}

function open(): Promise<OpenResult> {
  if (!prepared) throw new Error('open before prepare');
  const { spec, tokens } = prepared;
  prepared = undefined;
  closing = false;
  dropped = 0;
  for (const k of Object.keys(dropCodes)) delete dropCodes[k];
  const handshake = new Histogram();
  const errors: Record<string, number> = {};
  const started = performance.now();
  let next = 0;
  let inflight = 0;
  let opened = 0;
  let failed = 0;
  return new Promise((resolve) => {
    const finish = () =>
      resolve({ opened, failed, errors, elapsedMs: performance.now() - started, handshake: handshake.counts });
    if (spec.count === 0) return finish();
    const pump = (): void => {
      while (inflight < spec.concurrency && next < spec.count) {
        const i = next++;
        inflight++;
        const t = performance.now();
        const localAddress = spec.localAddresses.length > 0 ? spec.localAddresses[i % spec.localAddresses.length] : undefined;
        openClient(spec.endpoint, tokens[i]!, { localAddress, timeoutMs: spec.timeoutMs }, onMessage).then(
          (ws) => {
            handshake.record((performance.now() - t) * 1000);
            opened++;
            conns.add(ws);
            ws.on('close', onClose);
            ws.on('error', (err) => {
              const key = `error: ${err.message.slice(0, 100)}`;
              dropCodes[key] = (dropCodes[key] ?? 0) + 1;
            });
          },
          (err: Error) => {
            failed++;
            const key = err.message.slice(0, 120);
            errors[key] = (errors[key] ?? 0) + 1;
          },
        ).finally(() => {
          inflight--;
          if (opened + failed === spec.count) finish();
          else pump();
        });
      }
    };
    pump();
  });
}

async function closeAll(): Promise<{ closed: number }> {
  closing = true;
  const n = conns.size;
  const all = [...conns];
  const gone = Promise.all(all.map((ws) => new Promise<void>((r) => (ws.readyState === ws.CLOSED ? r() : ws.once('close', () => r())))));
  for (const ws of all) ws.terminate();
  await Promise.race([gone, new Promise((r) => setTimeout(r, 10000))]);
  conns.clear();
  seqCounts.clear();
  return { closed: n };
}

function stats(reset: boolean, withLatency: boolean): Stats {
  const s: Stats = { conns: conns.size, delivered, pongs, other, dropped, dropCodes: { ...dropCodes } };
  if (withLatency) s.latency = latency.counts.slice();
  if (reset) {
    delivered = 0;
    pongs = 0;
    other = 0;
    latency.reset();
  }
  return s;
}

async function ping(spec: PingSpec): Promise<PingResult> {
  if (!endpoint) throw new Error('ping before open');
  const targets = [...conns].slice(0, Math.max(1, spec.conns));
  pingRtt = new Histogram();
  pingSent.clear();
  if (conns.size === 0 || spec.rate <= 0) return { sent: 0, received: 0, lost: 0, rtt: pingRtt.counts };
  const kind = endpoint.kind;
  const total = Math.max(1, Math.floor((spec.rate * spec.durationMs) / 1000));
  const start = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * spec.rate) / 1000) + 1);
      while (sent < due) {
        const ws = targets[sent % targets.length]!;
        const id = nextPingId++;
        if (ws.readyState === ws.OPEN) {
          pingSent.set(id, nowUs());
          ws.send(pingFrame(kind, `p${id}`));
        }
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 2);
    };
    tick();
  });
  const drainUntil = performance.now() + spec.drainMs;
  while (pingSent.size > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 10));
  const lost = pingSent.size;
  pingSent.clear();
  return { sent, received: pingRtt.total, lost, rtt: pingRtt.counts };
}

process.on('message', (m: { id: number } & Command) => {
  const run = async (): Promise<unknown> => {
    switch (m.cmd) {
      case 'prepare':
        return prepare(m.args);
      case 'open':
        return open();
      case 'closeAll':
        return closeAll();
      case 'mode':
        reportSeqs = m.args.reportSeqs;
        seqCounts.clear();
        return {};
      case 'stats':
        return stats(m.args.reset, m.args.latency);
      case 'ping':
        return ping(m.args);
    }
  };
  run().then(
    (result) => send({ id: m.id, result }),
    (err: unknown) => send({ id: m.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
// The coordinator going away (crash, kill) ends the worker too.
process.on('disconnect', () => process.exit(0));
send({ ev: 'ready' });
