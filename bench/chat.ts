// Chat (issue #16): messages per second through the publish proxy and the p50/p99 from send to the other
// member's receipt, on 1 node and on 2 nodes + Redis (senders on node a, receivers on node b), against two
// named alternatives in the same run on the same servers: chat:send without a backend (publish rule
// "subscribers"), and the generic `publish` on a namespace with the same history. So proxy/chat is what the
// backend round trip costs, chat/publish what chat's idempotency and message shape cost. The backend is
// bench/scenarios/proxy-backend.mjs (a fast node:http server answering allow, its own process; its stdin a pipe
// from here, so it ends with the bench).
// Prints one JSON line per (setup, variant). Needs redis-server on the PATH.
//   npm run bench -- chat [--messages 20000] [--pairs 4] [--window 32]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { cliOptions, jsonLines } from './lib/args.js';
import { childEnv, stopChild, track } from './lib/children.js';
import { Histogram } from './lib/hist.js';
import { benchToken } from './lib/jwt.js';
import { machineInfo } from './lib/machine.js';
import { cpuSeconds } from './lib/proc.js';
import { freePort, ROOT, serverVersion, startFlags, STORYWIRE_LOAD_ENV } from './lib/servers.js';

const opts = cliOptions('npm run bench -- chat', {
  messages: { default: 20_000, int: true, doc: 'messages per variant and setup (all pairs together)' },
  pairs: { default: 4, int: true, max: 50, doc: 'conversations, each with one sender and one receiver' },
  window: { default: 32, int: true, max: 256, doc: 'messages in flight, all pairs together (at most the proxy\'s maxInFlight)' },
});
const emit = jsonLines(opts.out);
const SECRET = 'bench-secret-bench-secret-bench-secret-0123';
const API_KEY = 'bench-api-key-0123456789';
const MAIN = join(ROOT, 'dist', 'main.js');
/** A message without its ack and receipt after this long counts as failed. */
const TIMEOUT_MS = 10_000;
const machine = machineInfo();
const underTest = { kind: 'storywire', name: 'storywire', version: serverVersion('storywire') };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Variant = 'chat+proxy' | 'chat' | 'publish';
/** The namespace of each variant, identical in history; only the chat option and the publish rule differ. */
const NS: Record<Variant, string> = { 'chat+proxy': 'conversation', chat: 'chatroom', publish: 'room' };
const HISTORY = { size: 1000, ttlS: 3600 };

function channelsFile(dir: string, backendUrl: string): string {
  const file = join(dir, 'channels.json');
  writeFileSync(
    file,
    JSON.stringify({
      proxies: { app: { url: backendUrl, timeoutMs: 5000, cacheTtlMs: 60_000, maxInFlight: 256 } },
      namespaces: {
        conversation: { subscribe: 'public', publish: { proxy: 'app' }, history: HISTORY, chat: true },
        chatroom: { subscribe: 'public', publish: 'subscribers', history: HISTORY, chat: true },
        room: { subscribe: 'public', publish: 'subscribers', history: HISTORY },
      },
    }),
  );
  return file;
}

async function until(ok: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await ok()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function startBackend(): Promise<{ child: ChildProcess; url: string; publishes(): Promise<number> }> {
  const child = track(spawn(process.execPath, [join(ROOT, 'bench', 'scenarios', 'proxy-backend.mjs')], { env: childEnv({ HOST: '127.0.0.1', PORT: '0' }), stdio: ['pipe', 'pipe', 2] }));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  await until(async () => /listening \d+/.test(out), 'the backend to listen');
  const base = `http://127.0.0.1:${/listening (\d+)/.exec(out)![1]}`;
  const publishes = async () => ((await (await fetch(`${base}/stats`)).json()) as { publish: number }).publish;
  return { child, url: `${base}/decide`, publishes };
}

async function node(port: number, env: Record<string, string>): Promise<ChildProcess> {
  const child = track(
    spawn(process.execPath, [...startFlags(ROOT), MAIN], {
      env: childEnv({ ...STORYWIRE_LOAD_ENV, MAX_CONNECTIONS: '1000', CHAT_RATE_PER_S: '100000', HOST: '127.0.0.1', PORT: String(port), JWT_SECRET: SECRET, API_KEY, LOG_LEVEL: 'warn', ...env }),
      // The nodes' logs go to stderr: stdout carries the bench's JSON lines only.
      stdio: ['ignore', 2, 2],
    }),
  );
  await until(() => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false), `the node on port ${port}`);
  return child;
}

function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('data', (d) => done(d.toString().startsWith('+PONG')));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('error', () => done(false));
  });
}

/** Opens a connection for `user` and waits for `connected`; `onFrame` sees every frame after it. */
function open(port: number, user: string, onFrame: (raw: string) => void): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${benchToken(SECRET, user, [])}`);
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('message', () => {
      ws.on('message', (d) => onFrame(String(d)));
      resolve(ws);
    });
  });
}

interface Pending {
  t0: number;
  acked: boolean;
  receivedAt: number;
  done(err?: string): void;
}

/** One setup: each pair subscribes, then `messages` go through each variant, `window` in flight. */
async function measure(setup: string, ports: [number, number], pids: number[], backend: Awaited<ReturnType<typeof startBackend>>): Promise<void> {
  const pending = new Map<string, Pending>();
  let seq = 0;
  const settle = (key: string, field: 'ack' | 'receipt', err?: string) => {
    const p = pending.get(key);
    if (!p) return;
    if (err !== undefined) return p.done(err);
    if (field === 'ack') p.acked = true;
    else p.receivedAt = performance.now();
    if (p.acked && p.receivedAt > 0) p.done();
  };
  let joined = 0;
  const refused: string[] = [];
  const onJoin = (raw: string) => {
    if (!/"id":"j\d+"/.test(raw)) return false;
    if (raw.startsWith('{"type":"ack"')) joined++;
    else refused.push(raw.slice(0, 200));
    return true;
  };
  const onSender = (raw: string) => {
    if (onJoin(raw)) return;
    const id = /"id":"(m\d+)"/.exec(raw)?.[1];
    if (id === undefined) return;
    settle(id, 'ack', raw.startsWith('{"type":"error"') ? raw.slice(0, 200) : undefined);
  };
  const onReceiver = (raw: string) => {
    if (onJoin(raw)) return;
    const id = /"clientMsgId":"(m\d+)"|"seq":"(m\d+)"/.exec(raw);
    if (id) settle((id[1] ?? id[2])!, 'receipt');
  };
  const senders: WebSocket[] = [];
  const receivers: WebSocket[] = [];
  for (let i = 0; i < opts.pairs; i++) {
    senders.push(await open(ports[0], `s${i}`, onSender));
    receivers.push(await open(ports[1], `r${i}`, onReceiver));
  }
  const join = (ws: WebSocket, topic: string) => ws.send(JSON.stringify({ type: 'subscribe', id: `j${++seq}`, data: { topic } }));
  for (const v of Object.keys(NS) as Variant[]) {
    for (let i = 0; i < opts.pairs; i++) for (const ws of [senders[i]!, receivers[i]!]) join(ws, `${NS[v]}:c${i}`);
  }
  const joins = 2 * opts.pairs * Object.keys(NS).length;
  await until(async () => {
    if (refused.length > 0) throw new Error(`a subscribe was refused: ${refused[0]}`);
    return joined === joins;
  }, 'every subscribe acked');

  const send = (v: Variant, pair: number): Promise<number> => {
    const key = `m${++seq}`;
    const channel = `${NS[v]}:c${pair}`;
    const frame =
      v === 'publish'
        ? { type: 'publish', id: key, data: { channel, data: { text: 'hello from the bench', seq: key } } }
        : { type: 'chat:send', id: key, data: { channel, clientMsgId: key, text: 'hello from the bench' } };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => pending.get(key)?.done(`no ack and receipt within ${TIMEOUT_MS} ms`), TIMEOUT_MS);
      const p: Pending = {
        t0: performance.now(),
        acked: false,
        receivedAt: 0,
        done: (err) => {
          clearTimeout(timer);
          pending.delete(key);
          if (err === undefined) resolve(p.receivedAt - p.t0);
          else reject(new Error(err));
        },
      };
      pending.set(key, p);
      senders[pair]!.send(JSON.stringify(frame));
    });
  };
  for (const v of Object.keys(NS) as Variant[]) {
    const run = async (count: number, latency?: Histogram) => {
      const errors: Record<string, number> = {};
      let next = 0;
      let done = 0;
      const lane = async () => {
        while (next < count) {
          const i = next++;
          try {
            const ms = await send(v, i % opts.pairs);
            latency?.record(ms * 1000);
            done++;
          } catch (err) {
            const k = (err as Error).message.replace(/"id":"m\d+",?/, '').slice(0, 160);
            errors[k] = (errors[k] ?? 0) + 1;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(opts.window, count) }, lane));
      return { done, errors };
    };
    await run(Math.min(2000, opts.messages)); // warm-up, not measured
    const latency = new Histogram();
    const b0 = await backend.publishes();
    const cpu0 = pids.map(cpuSeconds);
    const bcpu0 = cpuSeconds(backend.child.pid!);
    const t0 = performance.now();
    const r = await run(opts.messages, latency);
    const secs = (performance.now() - t0) / 1000;
    const serverCpuS = pids.reduce((s, pid, i) => s + cpuSeconds(pid) - cpu0[i]!, 0);
    const backendCpuS = cpuSeconds(backend.child.pid!) - bcpu0;
    const backendRequests = (await backend.publishes()) - b0;
    const errors = Object.entries(r.errors).map(([m, n]) => `${n} message(s) failed: ${m}`);
    const expected = v === 'chat+proxy' ? opts.messages : 0;
    if (backendRequests !== expected) errors.push(`the backend answered ${backendRequests} publish request(s), expected ${expected}`);
    const ms = (us: number) => Math.round(us) / 1000;
    emit({
      bench: 'chat',
      scenario: setup,
      variant: v,
      server: underTest,
      params: { messages: opts.messages, pairs: opts.pairs, window: opts.window, history: HISTORY.size },
      messages: r.done,
      failed: opts.messages - r.done,
      messagesPerSec: Math.round(r.done / secs),
      p50Ms: ms(latency.quantile(0.5)),
      p99Ms: ms(latency.quantile(0.99)),
      maxMs: ms(latency.max),
      serverCpuUsPerMessage: Math.round((serverCpuS * 1e6) / Math.max(1, r.done)),
      backendCpuUsPerMessage: Math.round((backendCpuS * 1e6) / Math.max(1, r.done)),
      backendRequests,
      processes: pids.length,
      ok: errors.length === 0,
      errors,
      machine,
    });
  }
  for (const ws of [...senders, ...receivers]) ws.terminate();
}

if (spawnSync('redis-server', ['--version']).error) {
  process.stderr.write('bench chat: redis-server is not on the PATH (Debian: apt-get install redis-server)\n');
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'storywire-bench-chat-'));
const children: ChildProcess[] = [];
let failed = false;
try {
  const backend = await startBackend();
  children.push(backend.child);
  const env = { CHANNELS_FILE: channelsFile(dir, backend.url) };
  const [p1, p2, rp] = [await freePort(), await freePort(), await freePort()];
  const single = await node(p1, env);
  children.push(single);
  await measure('1 node', [p1, p1], [single.pid!], backend);
  await stopChild(single);

  const redis = track(spawn('redis-server', ['--port', String(rp), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }));
  children.push(redis);
  const cluster = { ...env, REDIS_URL: `redis://127.0.0.1:${rp}`, REDIS_PREFIX: `benchchat${Date.now()}:` };
  await until(() => redisPing(rp), 'redis-server');
  const a = await node(p1, { ...cluster, NODE_ID: 'a' });
  const b = await node(p2, { ...cluster, NODE_ID: 'b' });
  children.push(a, b);
  await measure('2 nodes + Redis (senders on node a, receivers on node b)', [p1, p2], [a.pid!, b.pid!, redis.pid!], backend);
} catch (err) {
  failed = true;
  process.stderr.write(`bench chat: ${err instanceof Error ? err.stack : String(err)}\n`);
} finally {
  await Promise.all(children.map((c) => stopChild(c)));
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
