// Webhooks and the push fallback (issue #19), one storywire node (from the sources through tsx, like
// chaos-cluster: the working tree, no stale dist/) and a local receiver in its own process
// (scenarios/webhook-receiver.mjs: answers 200 at once, counts, verifies a sample of signatures):
// 1. throughput: `notification.unread` events for `--users` distinct offline users (PUSH_DELAY_MS=100,
//    PUSH_COALESCE_MS=0, WEBHOOK_EVENTS=notification.unread), their notifications published through the
//    backend HTTP API in batches; events/s received, event time -> receipt p50/p99, server CPU per event.
// 2. notify-cost: the notify workload (connected users, notifications at a fixed rate through publisher
//    connections) on three fresh servers in the same run, order rotated per run: `push off` (no webhook
//    at all), `push+receipts` (PUSH_WEBHOOK_URL; every client sends `notifications:received` every 50 ms,
//    so nothing falls due) and `push, no receipts` (everything pushed, coalesced); server CPU per
//    notification of each and their ratios to `push off` (the last line).
//   npm run bench -- webhooks [--users 20000] [--clients 2000] [--rate 2000] [--seconds 10] [--runs 2]
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import WebSocket from 'ws';
import { cliOptions, jsonLines } from './lib/args.js';
import { childEnv, stopChild, track } from './lib/children.js';
import { Histogram, median } from './lib/hist.js';
import { benchToken, PUBLISH_ROLE } from './lib/jwt.js';
import { machineInfo } from './lib/machine.js';
import { cpuSeconds } from './lib/proc.js';
import { freePort, ROOT, serverVersion, startFlags, STORYWIRE_LOAD_ENV } from './lib/servers.js';

const opts = cliOptions('npm run bench -- webhooks', {
  users: { default: 20_000, int: true, max: 100_000, doc: 'throughput: distinct offline users, one notification (one event) each' },
  batch: { default: 500, int: true, max: 1000, doc: 'throughput: users per POST /v1/notifications' },
  clients: { default: 2000, int: true, max: 10_000, doc: 'notify-cost: connected users (one connection each, in this process)' },
  rate: { default: 2000, int: true, max: 50_000, doc: 'notify-cost: notifications per second to random connected users' },
  seconds: { default: 10, min: 0.5, max: 300, doc: 'notify-cost: measured seconds of sending per variant' },
  'push-delay': { default: 2000, int: true, min: 100, max: 60_000, doc: 'notify-cost: PUSH_DELAY_MS' },
  coalesce: { default: 2000, int: true, min: 0, max: 60_000, doc: 'notify-cost: PUSH_COALESCE_MS' },
  pace: { default: 1000, int: true, min: 0, max: 100_000, doc: 'throughput: events/s of the paced variant (the delay without a backlog); 0: burst only' },
  runs: { default: 2, int: true, max: 10, doc: 'notify-cost: rounds of the three variants (order rotated)' },
});
const write = jsonLines(opts.out);
let allOk = true;
const emit = (line: { ok: boolean } & Record<string, unknown>) => {
  allOk &&= line.ok;
  write(line);
};
const SECRET = 'bench-secret-bench-secret-bench-secret-0123';
const API_KEY = 'bench-api-key-0123456789';
const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const NODE_ROOT = process.env['STORYWIRE_BENCH_ROOT'] || ROOT;
const machine = machineInfo();
const underTest = { kind: 'storywire', name: 'storywire', version: serverVersion('storywire', NODE_ROOT), run: 'node --import tsx src/main.ts' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Every wait of the bench ends by this (a run that stalls is reported, not waited for). */
const WAIT_MS = 120_000;
/** Receipts are batched per client like the SDK will: every 50 ms, at most 100 offsets per message. */
const RECEIPT_EVERY_MS = 50;
const MAX_RECEIPTS = 100;

async function until(ok: () => Promise<boolean> | boolean, what: string, ms = WAIT_MS): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (await ok()) return true;
    await sleep(50);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

interface ReceiverStats {
  requests: number;
  events: Record<string, number>;
  notificationsPushed: number;
  users: number;
  verified: number;
  badSignatures: number;
  badBodies: number;
  duplicateIds: number;
  firstAt: number;
  lastAt: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

async function startReceiver(): Promise<{ child: ChildProcess; url: string; stats(): Promise<ReceiverStats>; reset(): Promise<void> }> {
  const env = childEnv({ HOST: '127.0.0.1', PORT: '0', WEBHOOK_SECRET, VERIFY_EVERY: '10' });
  const child = track(spawn(process.execPath, [join(ROOT, 'bench', 'scenarios', 'webhook-receiver.mjs')], { env, stdio: ['pipe', 'pipe', 2] }));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  await until(() => /listening \d+/.test(out), 'the receiver to listen', 10_000);
  const base = `http://127.0.0.1:${/listening (\d+)/.exec(out)![1]}`;
  return {
    child,
    url: `${base}/hook`,
    stats: async () => (await (await fetch(`${base}/stats`)).json()) as ReceiverStats,
    reset: async () => void (await fetch(`${base}/reset`, { method: 'POST' })),
  };
}

async function startNode(env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = track(
    spawn(process.execPath, [...startFlags(NODE_ROOT), '--import', 'tsx', join(NODE_ROOT, 'src', 'main.ts')], {
      cwd: NODE_ROOT,
      // MAX_CONNECTIONS below the open-files limit minus what webhooks keep (their sockets; chat.ts does the same).
      env: childEnv({ ...STORYWIRE_LOAD_ENV, MAX_CONNECTIONS: '15000', NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), JWT_SECRET: SECRET, API_KEY, LOG_LEVEL: 'warn', WEBHOOK_SECRET, ...env }),
      // The node's log goes to stderr: stdout carries the bench's JSON lines only.
      stdio: ['ignore', 2, 2],
    }),
  );
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`storywire exited (${code}) before it was ready`))));
  await Promise.race([until(() => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false), 'storywire to be ready', 60_000), exited]);
  return { child, port };
}

const ms = (x: number) => Math.round(x * 1000) / 1000;

/**
 * Part 1: one event per offline user; `pace` 0: published at once (a burst: the sender's rate, and the delays
 * are mostly the queue), else at `pace` users per second (the delay of an event when the sender keeps up).
 */
async function throughput(receiver: Awaited<ReturnType<typeof startReceiver>>, pace: number): Promise<void> {
  const node = await startNode({ WEBHOOK_URL: receiver.url, WEBHOOK_EVENTS: 'notification.unread', PUSH_DELAY_MS: '100', PUSH_COALESCE_MS: '0', MAX_BATCH: String(opts.batch) });
  const errors: string[] = [];
  try {
    await receiver.reset();
    const pid = node.child.pid!;
    const cpu0 = cpuSeconds(pid);
    const t0 = Date.now();
    let next = 0;
    const batch = pace === 0 ? opts.batch : Math.max(1, Math.min(opts.batch, Math.round(pace / 20)));
    const post = async () => {
      while (next < opts.users) {
        const from = next;
        next = Math.min(opts.users, next + batch);
        if (pace > 0) await sleep(t0 + (from / pace) * 1000 - Date.now());
        const userIds = Array.from({ length: next - from }, (_, i) => `off${from + i}`);
        const r = await fetch(`http://127.0.0.1:${node.port}/v1/notifications`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ userIds, notification: { title: 'Bench', message: 'A bench notification' } }),
        });
        if (!r.ok) errors.push(`POST /v1/notifications: ${r.status} ${(await r.text()).slice(0, 200)}`);
      }
    };
    await Promise.all(Array.from({ length: pace === 0 ? 4 : 1 }, post));
    const publishedAt = Date.now();
    let s = await receiver.stats();
    const all = async () => {
      s = await receiver.stats();
      return s.requests >= opts.users || errors.length > 0;
    };
    await until(all, `${opts.users} events`).catch((e: Error) => errors.push(e.message));
    const serverCpuS = cpuSeconds(pid) - cpu0;
    const events = s.events['notification.unread'] ?? 0;
    if (events !== opts.users || s.users !== opts.users) errors.push(`received ${events} notification.unread event(s) for ${s.users} user(s), expected ${opts.users} each`);
    if (s.badSignatures > 0 || s.verified === 0) errors.push(`signatures: ${s.verified} verified, ${s.badSignatures} bad`);
    if (s.duplicateIds > 0 || s.badBodies > 0) errors.push(`${s.duplicateIds} duplicate webhook-id(s), ${s.badBodies} bad bodies`);
    const receiveS = Math.max(0.001, (s.lastAt - s.firstAt) / 1000);
    emit({
      bench: 'webhooks',
      scenario: 'throughput',
      variant: pace === 0 ? 'burst' : 'paced',
      server: underTest,
      params: { users: opts.users, batch, pace, pushDelayMs: 100, pushCoalesceMs: 0, webhookConcurrency: 16, verifyEvery: 10 },
      events,
      eventsPerSec: Math.round(events / receiveS),
      endToEndEventsPerSec: Math.round(events / Math.max(0.001, (s.lastAt - t0) / 1000)),
      publishS: ms((publishedAt - t0) / 1000),
      p50Ms: s.p50Ms,
      p99Ms: s.p99Ms,
      maxMs: s.maxMs,
      serverCpuUsPerEvent: Math.round((serverCpuS * 1e6) / Math.max(1, events)),
      receiverCpuS: ms(cpuSeconds(receiver.child.pid!)),
      signaturesVerified: s.verified,
      ok: errors.length === 0,
      errors,
      machine,
    });
  } finally {
    await stopChild(node.child);
  }
}

type Variant = 'push off' | 'push+receipts' | 'push, no receipts';
const VARIANTS: readonly Variant[] = ['push off', 'push+receipts', 'push, no receipts'];

interface Client {
  ws: WebSocket;
  epoch: string;
  pending: number[];
}

/** Opens `n` users' connections, `concurrency` handshakes at a time; `onFrame` sees each frame after `connected`. */
async function openClients(port: number, n: number, onFrame: (c: Client, raw: string) => void): Promise<Client[]> {
  const clients: Client[] = [];
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const i = next++;
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${benchToken(SECRET, `u${i}`, [])}`);
      const c: Client = { ws, epoch: '', pending: [] };
      await new Promise<void>((resolve, reject) => {
        ws.once('error', reject);
        ws.once('message', () => {
          ws.on('message', (d) => onFrame(c, String(d)));
          resolve();
        });
      });
      clients[i] = c;
    }
  };
  await Promise.all(Array.from({ length: 50 }, lane));
  return clients;
}

const NOTIFICATION = /^\{"type":"notification:received".*"epoch":"([^"]+)","offset":(\d+)/;

/** Part 2, one variant on a fresh server. */
async function notifyCost(receiver: Awaited<ReturnType<typeof startReceiver>>, variant: Variant, run: number): Promise<{ cpuUs: number }> {
  const push = variant !== 'push off';
  const receipts = variant === 'push+receipts';
  const env: Record<string, string> = push ? { PUSH_WEBHOOK_URL: receiver.url, PUSH_DELAY_MS: String(opts['push-delay']), PUSH_COALESCE_MS: String(opts.coalesce) } : {};
  const node = await startNode(env);
  const errors: string[] = [];
  let latency = new Histogram();
  let delivered = 0;
  let receiptsSent = 0;
  let refused = 0;
  const sample: string[] = [];
  const onFrame = (c: Client, raw: string) => {
    const m = NOTIFICATION.exec(raw);
    if (m) {
      delivered++;
      const t = /"t":([\d.]+)/.exec(raw);
      if (t) latency.record((performance.now() - Number(t[1])) * 1000);
      if (receipts) {
        c.epoch = m[1]!;
        c.pending.push(Number(m[2]));
      }
    } else if (raw.startsWith('{"type":"error"')) {
      refused++;
      if (sample.length < 3) sample.push(raw.slice(0, 200));
    }
  };
  const clients = await openClients(node.port, opts.clients, onFrame);
  const pubs: WebSocket[] = [];
  for (let i = 0; i < 4; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${node.port}/ws?token=${benchToken(SECRET, `publisher-${i}`, [PUBLISH_ROLE])}`);
    await new Promise<void>((resolve, reject) => {
      ws.once('error', reject);
      ws.once('message', () => resolve());
    });
    ws.on('message', (d) => onFrame({ ws, epoch: '', pending: [] }, String(d)));
    pubs.push(ws);
  }
  const flushReceipts = setInterval(() => {
    for (const c of clients) {
      while (c.pending.length > 0) {
        const offsets = c.pending.splice(0, MAX_RECEIPTS);
        // As the SDK sends them: no request id, so no ack (an invalid one would still get an error frame).
        receiptsSent++;
        c.ws.send(`{"type":"notifications:received","data":{"epoch":${JSON.stringify(c.epoch)},"offsets":[${offsets.join(',')}]}}`);
      }
    }
  }, RECEIPT_EVERY_MS);
  const send = async (seconds: number) => {
    const start = performance.now();
    let seq = 0;
    while (performance.now() - start < seconds * 1000) {
      const due = Math.floor(((performance.now() - start) / 1000) * opts.rate);
      for (; seq < due; seq++) {
        const user = `u${Math.floor(Math.random() * opts.clients)}`;
        pubs[seq % pubs.length]!.send(`{"type":"send:notification","data":{"userId":"${user}","notification":{"title":"Bench","message":"A bench notification","data":{"t":${performance.now()}}}}}`);
      }
      await sleep(5);
    }
    return seq;
  };
  try {
    const pushed = async () => (await receiver.stats()).notificationsPushed;
    // Warm-up, not measured; in the variant without receipts its pushes are awaited before measuring.
    await receiver.reset();
    const warm = await send(Math.min(2, opts.seconds));
    await until(() => delivered >= warm, 'the warm-up delivered');
    if (variant === 'push, no receipts') await until(async () => (await pushed()) >= warm, 'the warm-up pushed');
    else await sleep(500);
    await receiver.reset();
    delivered = 0;
    latency = new Histogram();
    const pid = node.child.pid!;
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    const measured = await send(opts.seconds);
    await until(() => delivered >= measured, 'every notification delivered');
    // Every variant waits as long as a push takes to fall due, so the windows match; without receipts, also
    // until every notification was pushed.
    await sleep(opts['push-delay'] + opts.coalesce + 500);
    if (variant === 'push, no receipts') await until(async () => (await pushed()) >= measured, 'every notification pushed').catch((e: Error) => errors.push(e.message));
    const wallS = (performance.now() - t0) / 1000;
    const serverCpuS = cpuSeconds(pid) - cpu0;
    const s = await receiver.stats();
    const events = s.events['notification.unread'] ?? 0;
    if (delivered !== measured) errors.push(`delivered ${delivered} of ${measured}`);
    if (refused > 0) errors.push(`${refused} error repl(ies): ${sample.join(' | ')}`);
    if (variant === 'push+receipts' && events !== 0) errors.push(`${events} push(es) made although every notification was acknowledged`);
    if (variant === 'push, no receipts' && s.notificationsPushed !== measured) errors.push(`pushed ${s.notificationsPushed} notifications of ${measured}`);
    if (s.badSignatures > 0) errors.push(`${s.badSignatures} bad signature(s)`);
    const cpuUs = (serverCpuS * 1e6) / Math.max(1, measured);
    emit({
      bench: 'webhooks',
      scenario: 'notify-cost',
      variant,
      run,
      server: underTest,
      params: { clients: opts.clients, rate: opts.rate, seconds: opts.seconds, pushDelayMs: push ? opts['push-delay'] : null, pushCoalesceMs: push ? opts.coalesce : null, receiptEveryMs: receipts ? RECEIPT_EVERY_MS : null },
      notifications: measured,
      delivered,
      p50Ms: ms(latency.quantile(0.5) / 1000),
      p99Ms: ms(latency.quantile(0.99) / 1000),
      receiptMessages: receipts ? receiptsSent : 0,
      pushEvents: events,
      notificationsPushed: s.notificationsPushed,
      pushP99Ms: s.p99Ms,
      wallS: ms(wallS),
      serverCpuS: ms(serverCpuS),
      serverCpuUsPerNotification: Math.round(cpuUs * 100) / 100,
      ok: errors.length === 0,
      errors,
      machine,
    });
    return { cpuUs };
  } finally {
    clearInterval(flushReceipts);
    for (const c of clients) c.ws.terminate();
    for (const ws of pubs) ws.terminate();
    await stopChild(node.child);
  }
}

let failed = false;
const children: ChildProcess[] = [];
try {
  const receiver = await startReceiver();
  children.push(receiver.child);
  await throughput(receiver, 0);
  if (opts.pace > 0) await throughput(receiver, opts.pace);
  const cpu: Record<Variant, number[]> = { 'push off': [], 'push+receipts': [], 'push, no receipts': [] };
  for (let run = 1; run <= opts.runs; run++) {
    // Rotated: no variant always runs first (or last) on a machine whose load drifts.
    const order = VARIANTS.map((_, i) => VARIANTS[(i + run - 1) % VARIANTS.length]!);
    for (const v of order) {
      process.stderr.write(`[bench] webhooks notify-cost / ${v} / run ${run} of ${opts.runs}\n`);
      cpu[v].push((await notifyCost(receiver, v, run)).cpuUs);
    }
  }
  const off = median(cpu['push off']);
  const r = (v: Variant) => Math.round((median(cpu[v]) / off) * 1000) / 1000;
  emit({
    bench: 'webhooks',
    scenario: 'notify-cost',
    variant: 'ratio',
    server: underTest,
    params: { clients: opts.clients, rate: opts.rate, seconds: opts.seconds, runs: opts.runs },
    medianServerCpuUsPerNotification: Object.fromEntries(VARIANTS.map((v) => [v, Math.round(median(cpu[v]) * 100) / 100])),
    receiptsRatio: r('push+receipts'),
    noReceiptsRatio: r('push, no receipts'),
    ok: true,
    errors: [],
    machine,
  });
} catch (err) {
  failed = true;
  process.stderr.write(`bench webhooks: ${err instanceof Error ? err.stack : String(err)}\n`);
} finally {
  await Promise.all(children.map((c) => stopChild(c)));
}
process.exit(failed || !allOk ? 1 : 0);
