// proxy: what a backend proxy (protocol.md section 12) costs, against the rule that needs no backend, in the
// same run on the same server. A fast local backend (proxy-backend.mjs, its own process) allows everything.
// - subscribe: N clients subscribe to distinct channels (K each) through the subscribe proxy, cold (every
//   decision new: one backend request each) and cached (the same users and channels again after an
//   unsubscribe, within cacheTtlMs: no backend request), against the same subscribes on a namespace whose
//   subscribe rule is "public";
// - publish: publishes through the publish proxy (never cached: one backend request each) against the same
//   publishes on a namespace whose publish rule is a permission; a window in flight (rate), then one at a time
//   (latency); timed from the send to the ack and to the subscriber's receipt.
// The clients run in this process (cheap parsing: the id of an ack, the bench mark of a publication).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type WebSocket from 'ws';
import { childEnv, stopChild, track } from '../lib/children.js';
import { PROFILE_DIR, result, us2ms, type Ctx } from '../lib/context.js';
import { Histogram, median } from '../lib/hist.js';
import { benchToken } from '../lib/jwt.js';
import { Meter, round, waitQuiet, type CpuFigures } from '../lib/measure.js';
import { cpuSeconds, maxOpenFiles } from '../lib/proc.js';
import { fmt, type Result } from '../lib/report.js';
import { ROOT, startServer, type ServerHandle } from '../lib/servers.js';
import { BENCH_MARK, benchTag, nowUs, openClient, readUint, type ServerKind } from '../lib/wire.js';

/** Bounds the options are checked against: storywire's default MAX_SUBSCRIPTIONS, the bench proxy's maxInFlight. */
export const PROXY_LIMITS = { perClient: 100, inflight: 256 } as const;

/** The namespaces of the bench's CHANNELS_FILE: identical but for the rule under test. No history on either. */
const NS = {
  /** subscribe and publish through the proxy */
  proxy: 'guarded',
  /** subscribe public, publish by permission */
  plain: 'room',
} as const;
const PUBLISH_PERMISSION = 'room:publish';
/** A request without an answer after this long counts as failed. */
const REQUEST_TIMEOUT_MS = 10_000;
/** A subscribe pass ends after this long even if not done (then it is not ok). */
const PASS_MAX_MS = 120_000;

// ---- the backend -------------------------------------------------------------------------------------

interface Backend {
  pid: number;
  url: string;
  stats(): Promise<{ subscribe: number; publish: number; other: number; bad: number }>;
  stop(): Promise<void>;
}

async function startBackend(host: string): Promise<Backend> {
  const child: ChildProcess = track(
    spawn(process.execPath, [join(ROOT, 'bench', 'scenarios', 'proxy-backend.mjs')], { cwd: ROOT, env: childEnv({ HOST: host, PORT: '0' }), stdio: ['pipe', 'pipe', 'pipe'] }),
  );
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the proxy backend did not listen within 10 s: ${out}`)), 10_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-2000)));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the proxy backend exited (${code}): ${out}`));
    });
  }).catch(async (err: unknown) => {
    await stopChild(child);
    throw err;
  });
  const stats = () =>
    new Promise<{ subscribe: number; publish: number; other: number; bad: number }>((resolve, reject) => {
      const req = request({ host, port, path: '/stats', method: 'GET', agent: false, timeout: 5000 }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(body));
          } catch (err) {
            reject(err as Error);
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error('proxy backend /stats timed out')));
      req.on('error', reject);
      req.end();
    });
  return { pid: child.pid!, url: `http://${host}:${port}/decide`, stats, stop: () => stopChild(child) };
}

function channelsFile(dir: string, backendUrl: string, decisions: number): string {
  const file = join(dir, 'channels.json');
  writeFileSync(
    file,
    JSON.stringify({
      // A TTL far longer than a run, room for every decision of a run: the cached pass must hit every time.
      proxies: { app: { url: backendUrl, timeoutMs: 5000, cacheTtlMs: 3_600_000, cacheMax: Math.max(10_000, decisions), maxInFlight: PROXY_LIMITS.inflight } },
      namespaces: {
        [NS.proxy]: { subscribe: { proxy: 'app' }, publish: { proxy: 'app' }, history: false },
        [NS.plain]: { subscribe: 'public', publish: { permission: PUBLISH_PERMISSION }, history: false },
      },
    }),
  );
  return file;
}

// ---- the clients -------------------------------------------------------------------------------------

const ACK = Buffer.from('{"type":"ack"');
const ERROR = Buffer.from('{"type":"error"');
/** The request id: the first `"id":"` of an ack or error frame (it comes before data and error). */
const ID_MARK = Buffer.from('"id":"');
const PUBLICATION = Buffer.from('{"type":"publication"');

interface Waiter {
  t0: number;
  done(ok: boolean, frame: Buffer, atUs: number): void;
}

/** Requests waiting for their ack or error, by id, across all clients; swept for timeouts. */
const waiting = new Map<string, Waiter>();
/** Publications waiting for their receipt, by bench sequence number. */
const receipts = new Map<number, (atUs: number) => void>();
let nextId = 1;
let nextSeq = 1;
const pos = new Int32Array(1);

function onFrame(data: Buffer): void {
  const atUs = nowUs();
  const isAck = data.subarray(0, ACK.length).equals(ACK);
  if (isAck || data.subarray(0, ERROR.length).equals(ERROR)) {
    const at = data.indexOf(ID_MARK);
    if (at === -1) return;
    const from = at + ID_MARK.length;
    const end = data.indexOf(0x22, from);
    const id = data.toString('latin1', from, end);
    const w = waiting.get(id);
    if (w) {
      waiting.delete(id);
      w.done(isAck, data, atUs);
    }
    return;
  }
  if (data.subarray(0, PUBLICATION.length).equals(PUBLICATION)) {
    const b = data.indexOf(BENCH_MARK);
    if (b === -1) return;
    const seq = readUint(data, b + BENCH_MARK.length, pos);
    const r = receipts.get(seq);
    if (r) {
      receipts.delete(seq);
      r(atUs);
    }
  }
}

/** Sends one request; resolves with the answer time (µs) on an ack, rejects with the error frame or a timeout. */
function ask(ws: WebSocket, type: string, data: unknown): Promise<{ t0: number; atUs: number }> {
  const id = `r${nextId++}`;
  return new Promise((resolve, reject) => {
    const t0 = nowUs();
    waiting.set(id, {
      t0,
      done: (ok, frame, atUs) => (ok ? resolve({ t0, atUs }) : reject(new Error(frame.toString().slice(0, 200).replace(/"id":"r\d+",/, '')))),
    });
    ws.send(`{"type":"${type}","id":"${id}","data":${JSON.stringify(data)}}`);
  });
}

function sweep(): void {
  const limit = nowUs() - REQUEST_TIMEOUT_MS * 1000;
  for (const [id, w] of waiting) {
    if (w.t0 < limit) {
      waiting.delete(id);
      w.done(false, Buffer.from(`no answer within ${REQUEST_TIMEOUT_MS} ms`), nowUs());
    }
  }
}

async function openAll(server: ServerHandle, secret: string, count: number, prefix: string, roles: string[], dropped: { n: number }): Promise<WebSocket[]> {
  const out: WebSocket[] = new Array(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      const ws = await openClient(server.endpoint, benchToken(secret, `${prefix}${i}`, roles), { timeoutMs: 15_000 }, onFrame);
      ws.on('error', () => {});
      ws.on('close', () => dropped.n++);
      out[i] = ws;
    }
  };
  await Promise.all(Array.from({ length: Math.min(32, count) }, lane));
  return out;
}

interface DriveResult {
  done: number;
  failed: number;
  errors: Record<string, number>;
  elapsedMs: number;
}

/** Keeps `window` ops in flight until `count` have run or `maxMs` has passed (bounded in count and time). */
async function drive(count: number, window: number, maxMs: number, op: (i: number) => Promise<void>): Promise<DriveResult> {
  const started = performance.now();
  const errors: Record<string, number> = {};
  let next = 0;
  let done = 0;
  let failed = 0;
  const lane = async () => {
    while (next < count && performance.now() - started < maxMs) {
      const i = next++;
      try {
        await op(i);
        done++;
      } catch (err) {
        failed++;
        const key = (err as Error).message.slice(0, 160);
        errors[key] = (errors[key] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(window, count)) }, lane));
  return { done, failed, errors, elapsedMs: performance.now() - started };
}

const errorLines = (r: DriveResult, what: string): string[] =>
  Object.entries(r.errors)
    .slice(0, 5)
    .map(([msg, n]) => `${n} ${what} failed: ${msg}`);

// ---- the scenario ------------------------------------------------------------------------------------

type Rule = 'proxy' | 'public' | 'permission';

export async function proxy(ctx: Ctx, kind: ServerKind, run: number): Promise<void> {
  if (kind !== 'storywire') throw new Error('proxy measures storywire only');
  const { opts } = ctx;
  const clientsN = opts.proxyClients;
  const perClient = opts.proxyPerClient;
  const total = clientsN * perClient;
  const inflight = opts.proxyInflight;
  if (opts.quietWaitS > 0) {
    const q = await waitQuiet(opts.quietPct, opts.quietWaitS);
    if (!q.quiet) ctx.log(`the machine is busy (other processes at ${q.otherPct} % of a core after ${q.waitedS} s): measuring anyway, see cpu.otherPct`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'storywire-bench-proxy-'));
  const backend = await startBackend(opts.host);
  let server: ServerHandle | undefined;
  const sockets: WebSocket[] = [];
  const sweeper = setInterval(sweep, 500);
  try {
    // Decisions of a run: the warm-up's and the cold pass's (the publish setup subscribes to the plain namespace).
    const file = channelsFile(dir, backend.url, 2 * total + 1000);
    server = await startServer('storywire', {
      host: opts.host,
      secret: opts.secret,
      cpuProfDir: opts.cpuProf ? PROFILE_DIR : undefined,
      profName: `storywire-proxy-${new Date().toISOString().replace(/[:.]/g, '-')}`,
      nodeArgs: opts.serverNodeArgs,
      storywireRoot: opts.storywireRoot,
      // The proxy's sockets (maxInFlight) join what storywire keeps beside its connections (src/edge/descriptors.ts).
      env: { MAX_CONNECTIONS: String(maxOpenFiles('self') - 68 - PROXY_LIMITS.inflight), ...opts.storywireEnv, CHANNELS_FILE: file },
    });
    const srv = server;
    const dropped = { n: 0 };
    const clients = await openAll(srv, opts.secret, clientsN, 'u', [], dropped);
    sockets.push(...clients);
    const publishers = await openAll(srv, opts.secret, opts.publishers, 'pub', [PUBLISH_PERMISSION], dropped);
    sockets.push(...publishers);
    ctx.log(`proxy run ${run}: ${clientsN} clients x ${perClient} channels = ${total} subscribes a pass, ${inflight} in flight; ${opts.publishers} publishers`);
    const common = { clients: clientsN, perClient, inflight, publishers: opts.publishers, durationS: opts.durationS, warmupS: opts.warmupS, history: false, cacheTtlMs: 3_600_000 };
    const alive = (): string[] => [...(srv.alive() ? [] : [`server died: ${srv.output()}`]), ...(dropped.n > 0 ? [`${dropped.n} client connection(s) closed during the run`] : [])];

    // ---- subscribe ----
    const ns = (rule: Rule) => (rule === 'proxy' ? NS.proxy : NS.plain);
    const subscribePass = (rule: Rule, prefix: string, count: number, latency?: Histogram) =>
      drive(count, inflight, PASS_MAX_MS, async (i) => {
        const r = await ask(clients[i % clientsN]!, 'subscribe', { topic: `${ns(rule)}:${prefix}${i}` });
        latency?.record(r.atUs - r.t0);
      });
    const unsubscribePass = async (rule: Rule, prefix: string, count: number): Promise<string[]> => {
      const r = await drive(count, inflight, PASS_MAX_MS, async (i) => {
        await ask(clients[i % clientsN]!, 'unsubscribe', { topic: `${ns(rule)}:${prefix}${i}` });
      });
      return errorLines(r, 'unsubscribe(s)');
    };
    // Warm-up (not measured): both paths, other channels, left again.
    const warm = Math.min(total, opts.smoke ? 10 : 2000);
    for (const rule of ['proxy', 'public'] as const) {
      const w = await subscribePass(rule, 'w', warm);
      if (w.failed > 0) throw new Error(`warm-up subscribes to ${ns(rule)} failed: ${errorLines(w, 'subscribe(s)').join('; ')}`);
      await unsubscribePass(rule, 'w', warm);
    }
    // Which setup goes first alternates from run to run, so an order effect shows as spread, not as a bias.
    const subscribeRules: Rule[] = run % 2 === 1 ? ['proxy', 'public'] : ['public', 'proxy'];
    for (const rule of subscribeRules) {
      for (const pass of ['cold', 'cached'] as const) {
        const latency = new Histogram();
        const b0 = await backend.stats();
        const bcpu0 = cpuSeconds(backend.pid);
        const meter = new Meter(srv.pid, [backend.pid, ...ctx.pool.pids]).start();
        const r = await subscribePass(rule, 'c', total, latency);
        const cpu = meter.stop();
        const backendCpuS = cpuSeconds(backend.pid) - bcpu0;
        const b1 = await backend.stats();
        const backendRequests = b1.subscribe - b0.subscribe;
        const errors = [...errorLines(r, 'subscribe(s)'), ...alive()];
        if (r.done + r.failed < total) errors.push(`only ${r.done + r.failed} of ${total} subscribes within ${PASS_MAX_MS} ms`);
        // The figure the pass stands for: cold asks the backend once per subscribe, cached never, public never.
        const expectedRequests = rule === 'proxy' && pass === 'cold' ? r.done : 0;
        if (backendRequests !== expectedRequests) errors.push(`the backend answered ${backendRequests} subscribe request(s), expected ${expectedRequests}`);
        errors.push(...(await unsubscribePass(rule, 'c', total)));
        ctx.emit(
          result(
            ctx,
            srv,
            'proxy',
            `subscribe-${pass}/${rule}`,
            run,
            { ...common, rule, namespace: ns(rule), subscribes: total },
            {
              subscribes: r.done,
              failed: r.failed,
              subscribesPerSec: r.done / (r.elapsedMs / 1000),
              p50Ms: us2ms(latency.quantile(0.5)),
              p99Ms: us2ms(latency.quantile(0.99)),
              maxMs: us2ms(latency.max),
              serverCpuUsPerSubscribe: (cpu.serverCpuS * 1e6) / Math.max(1, r.done),
              backendRequests,
              backendCpuUsPerSubscribe: (backendCpuS * 1e6) / Math.max(1, r.done),
            },
            cpu,
            errors,
          ),
        );
      }
    }

    // ---- publish ----
    // Channels with one subscriber each (the first clients), on both namespaces; publishers round-robin.
    const channels = Math.min(clientsN, 100);
    for (const rule of ['proxy', 'public'] as const) {
      const s = await drive(channels, inflight, PASS_MAX_MS, async (c) => {
        await ask(clients[c]!, 'subscribe', { topic: `${ns(rule)}:p${c}` });
      });
      if (s.failed > 0) throw new Error(`subscribing the publish channels of ${ns(rule)} failed: ${errorLines(s, 'subscribe(s)').join('; ')}`);
    }
    const publishRules: Rule[] = run % 2 === 1 ? ['proxy', 'permission'] : ['permission', 'proxy'];
    const publishOnce = (rule: Rule, i: number, ack?: Histogram, receipt?: Histogram): Promise<void> => {
      const seq = nextSeq++;
      const channel = `${ns(rule)}:p${i % channels}`;
      const got = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          receipts.delete(seq);
          reject(new Error(`publication not received within ${REQUEST_TIMEOUT_MS} ms`));
        }, REQUEST_TIMEOUT_MS);
        receipts.set(seq, (atUs) => {
          clearTimeout(timer);
          resolve(atUs);
        });
      });
      const acked = ask(publishers[i % publishers.length]!, 'publish', { channel, data: { text: 'hello', bench: benchTag(seq, nowUs()) } });
      return Promise.all([acked, got]).then(
        ([a, at]) => {
          ack?.record(a.atUs - a.t0);
          receipt?.record(at - a.t0);
        },
        (err: unknown) => {
          receipts.delete(seq);
          // The receipt's timer is left to fire (the publication never comes after an error), harmlessly.
          got.catch(() => {});
          throw err;
        },
      );
    };
    const variants: [string, number][] = [
      ['max-rate', inflight],
      ['one-at-a-time', 1],
    ];
    for (const [variant, window] of variants) {
      for (const rule of publishRules) {
        // Bounded in time (the phase) and in count (never more than 2,000,000 publishes a phase).
        await drive(2_000_000, window, opts.warmupS * 1000, (i) => publishOnce(rule, i));
        const ack = new Histogram();
        const receipt = new Histogram();
        const b0 = await backend.stats();
        const bcpu0 = cpuSeconds(backend.pid);
        const meter = new Meter(srv.pid, [backend.pid, ...ctx.pool.pids]).start();
        const r = await drive(2_000_000, window, opts.durationS * 1000, (i) => publishOnce(rule, i, ack, receipt));
        const cpu = meter.stop();
        const backendCpuS = cpuSeconds(backend.pid) - bcpu0;
        const backendRequests = (await backend.stats()).publish - b0.publish;
        const errors = [...errorLines(r, 'publish(es)'), ...alive()];
        const expectedRequests = rule === 'proxy' ? r.done + r.failed : 0;
        if (backendRequests !== expectedRequests) errors.push(`the backend answered ${backendRequests} publish request(s), expected ${expectedRequests}`);
        if (r.done === 0) errors.push('no publish completed');
        ctx.emit(
          result(
            ctx,
            srv,
            'proxy',
            `publish-${variant}/${rule}`,
            run,
            { ...common, rule, namespace: ns(rule), window, channels },
            {
              publishes: r.done,
              failed: r.failed,
              publishesPerSec: r.done / (r.elapsedMs / 1000),
              ackP50Ms: us2ms(ack.quantile(0.5)),
              ackP99Ms: us2ms(ack.quantile(0.99)),
              receiptP50Ms: us2ms(receipt.quantile(0.5)),
              receiptP99Ms: us2ms(receipt.quantile(0.99)),
              serverCpuUsPerPublish: (cpu.serverCpuS * 1e6) / Math.max(1, r.done),
              backendRequests,
              backendCpuUsPerPublish: (backendCpuS * 1e6) / Math.max(1, r.done),
            },
            cpu,
            errors,
          ),
        );
      }
    }
  } finally {
    clearInterval(sweeper);
    for (const ws of sockets) {
      ws.removeAllListeners('close');
      ws.terminate();
    }
    waiting.clear();
    receipts.clear();
    try {
      if (server) await server.stop();
    } finally {
      await backend.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

// ---- the summary -------------------------------------------------------------------------------------

/** What the summary compares: per measurement, the proxy against the rule without a backend. */
const COMPARED: { pass: string; alt: Rule; figures: [string, string][] }[] = [
  ...(['cold', 'cached'] as const).map((p) => ({
    pass: `subscribe-${p}`,
    alt: 'public' as Rule,
    figures: [
      ['subscribesPerSec', 'subscribes/s'],
      ['p50Ms', 'subscribe p50 (ms)'],
      ['p99Ms', 'subscribe p99 (ms)'],
      ['serverCpuUsPerSubscribe', 'server CPU per subscribe (µs)'],
      ['backendRequests', 'backend requests'],
    ] as [string, string][],
  })),
  ...(['max-rate', 'one-at-a-time'] as const).map((v) => ({
    pass: `publish-${v}`,
    alt: 'permission' as Rule,
    figures: [
      ['publishesPerSec', 'publishes/s'],
      ['ackP50Ms', 'send -> ack p50 (ms)'],
      ['ackP99Ms', 'send -> ack p99 (ms)'],
      ['receiptP50Ms', 'send -> receipt p50 (ms)'],
      ['receiptP99Ms', 'send -> receipt p99 (ms)'],
      ['serverCpuUsPerPublish', 'server CPU per publish (µs)'],
      ['backendRequests', 'backend requests'],
    ] as [string, string][],
  })),
];

/** Markdown: medians over runs of the proxy and its alternative, their ratio and the difference (what the proxy adds). */
export function proxySummary(results: readonly Result[]): string {
  const runs = Math.max(...results.map((r) => r.runs));
  const med = (variant: string, figure: string) => median(results.filter((r) => r.variant === variant).map((r) => r.figures[figure] ?? Number.NaN));
  const cpu = (variant: string) => {
    const c = results.filter((r) => r.variant === variant).map((r) => r.cpu);
    const m = (f: (x: CpuFigures) => number) => fmt(median(c.map(f)));
    return c.length === 0 ? '' : `${m((x) => x.serverPct)} / ${m((x) => x.clientPct)} / ${m((x) => x.otherPct)}`;
  };
  const lines = [
    `Medians of ${runs} run(s), storywire with a local backend that allows everything. Ratio = proxy / the rule without a backend, measured in the same run; added = proxy - that rule.`,
    '',
    '| measurement | figure | proxy | without backend | ratio | added |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const c of COMPARED) {
    const p = `${c.pass}/proxy`;
    const a = `${c.pass}/${c.alt}`;
    if (!results.some((r) => r.variant === p || r.variant === a)) continue;
    for (const [figure, label] of c.figures) {
      const x = med(p, figure);
      const y = med(a, figure);
      const ratio = Number.isFinite(x) && Number.isFinite(y) && y !== 0 ? `${fmt(x / y)}x` : '';
      const added = Number.isFinite(x) && Number.isFinite(y) ? fmt(round(x - y, 3)) : '';
      lines.push(`| ${c.pass} (vs ${c.alt}) | ${label} | ${fmt(x)} | ${fmt(y)} | ${ratio} | ${added} |`);
    }
  }
  lines.push('', '| measurement | CPU % server / clients+backend / other: proxy | without backend |', '|---|---|---|');
  for (const c of COMPARED) {
    const p = `${c.pass}/proxy`;
    if (!results.some((r) => r.variant === p)) continue;
    const bad = results.some((r) => r.variant.startsWith(`${c.pass}/`) && !r.ok) ? ' (ERRORS)' : '';
    lines.push(`| ${c.pass}${bad} | ${cpu(p)} | ${cpu(`${c.pass}/${c.alt}`)} |`);
  }
  return `${lines.join('\n')}\n`;
}
