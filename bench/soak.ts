// Soak: N clients with mixed traffic against a production-mode storywire for a bounded duration,
// sampling server RSS and heap so that a leak shows as a slope. One JSON line per sample and a summary.
//   npm run bench -- soak [--clients 500] [--duration 60] [--sample 10]   (after npm run build)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { cliOptions, jsonLines } from './lib/args.js';
import { track } from './lib/children.js';
import { machineInfo } from './lib/machine.js';
import { freePort, serverVersion, startFlags, STORYWIRE_LOAD_ENV } from './lib/servers.js';
/** The checkout whose `npm start` flags storywire runs with. */
const ROOT_DIR = new URL('..', import.meta.url).pathname;

const opts = cliOptions('npm run bench -- soak', {
  clients: { default: 500, int: true, doc: 'connected clients, with mixed traffic and churn' },
  duration: { default: 60, min: 0.1, doc: 'seconds of traffic' },
  sample: { default: 10, min: 0.1, doc: 'seconds between samples of server RSS and heap' },
});
const CLIENTS = opts.clients;
const DURATION_S = opts.duration;
const SAMPLE_S = opts.sample;
const emit = jsonLines(opts.out);
const SECRET = 'soak-secret-soak-secret-soak-secret-0123';
const API_KEY = 'soak-api-key-0123456789';
const machine = machineInfo();
const underTest = { kind: 'storywire', name: 'storywire', version: serverVersion('storywire') };

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function heapUsed(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).text();
  const m = /^storywire_nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

// Publishers own the stories they write chapters into (`stories` claim: story:0 .. story:99, the ones the
// traffic below picks); without it every chapter:published would be refused (FORBIDDEN) and cost nothing.
const STORY_IDS = Array.from({ length: 100 }, (_, i) => String(i));
const token = (sub: string, roles: string[] = []) =>
  new SignJWT(roles.length > 0 ? { roles, stories: STORY_IDS } : { roles }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('2h').sign(new TextEncoder().encode(SECRET));

async function main(): Promise<void> {
  const port = await freePort();
  const server = track(spawn(process.execPath, [...startFlags(ROOT_DIR), new URL('../dist/main.js', import.meta.url).pathname], {
    env: { ...process.env, NODE_ENV: 'production', ...STORYWIRE_LOAD_ENV, JWT_SECRET: SECRET, API_KEY, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', MAX_CONNECTIONS_PER_IP: String(CLIENTS * 2) },
    stdio: ['ignore', 'pipe', 'inherit'],
  }));
  const stop = () => server.pid && !server.killed && server.kill('SIGKILL');
  let out = '';
  server.stdout!.on('data', (d) => (out += d));
  const deadline = Date.now() + 15000;
  while (!(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false))) {
    if (Date.now() > deadline) throw new Error(`server did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  const sockets: WebSocket[] = [];
  const open = async (i: number) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${await token(`u${i}`, i % 50 === 0 ? ['stories:publish'] : [])}`);
    ws.on('error', () => {});
    await new Promise((r) => ws.once('open', r));
    sockets[i] = ws;
  };
  for (let i = 0; i < CLIENTS; i += 50) await Promise.all(Array.from({ length: Math.min(50, CLIENTS - i) }, (_, k) => open(i + k)));

  let sent = 0;
  let received = 0;
  for (const ws of sockets) ws.on('message', () => received++);
  const rnd = (n: number) => Math.floor(Math.random() * n);
  const traffic = setInterval(() => {
    for (let k = 0; k < 20; k++) {
      const i = rnd(CLIENTS);
      const ws = sockets[i];
      if (!ws || ws.readyState !== WebSocket.OPEN) continue;
      const r = rnd(10);
      const msg =
        r < 3 ? { type: 'ping', id: sent } :
        r < 5 ? { type: 'send:notification', data: { userId: `u${rnd(CLIENTS)}`, notification: { title: 'like', message: 'x'.repeat(rnd(200)) } } } :
        r < 6 ? { type: 'subscribe', data: { topic: `story:${rnd(100)}` } } :
        r < 7 ? { type: 'unsubscribe', data: { topic: `story:${rnd(100)}` } } :
        r < 8 ? { type: 'typing:start', data: { target: `user:u${rnd(CLIENTS)}` } } :
        r < 9 ? { type: 'presence:query', data: { userIds: [`u${rnd(CLIENTS)}`, `u${rnd(CLIENTS)}`] } } :
        i % 50 === 0 ? { type: 'chapter:published', data: { storyId: rnd(100), id: sent, title: 'c' } } : { type: 'ping' };
      ws.send(JSON.stringify(msg));
      sent++;
    }
    // Connection churn: one client in 200 per tick drops and comes back.
    const j = rnd(CLIENTS);
    if (rnd(10) === 0 && sockets[j]?.readyState === WebSocket.OPEN) {
      sockets[j]!.terminate();
      open(j).then(() => sockets[j]!.on('message', () => received++)).catch(() => {});
    }
  }, 10);

  const samples: { t: number; rssKiB: number; heapUsed: number }[] = [];
  const started = Date.now();
  while (Date.now() - started < DURATION_S * 1000) {
    await new Promise((r) => setTimeout(r, Math.min(SAMPLE_S * 1000, DURATION_S * 1000 - (Date.now() - started))));
    const s = { t: Math.round((Date.now() - started) / 1000), rssKiB: rssKiB(server.pid!), heapUsed: await heapUsed(port) };
    samples.push(s);
    emit({ bench: 'soak', server: underTest, params: { clients: CLIENTS, durationS: DURATION_S, sampleS: SAMPLE_S }, machine, sample: s, sent, received });
  }
  clearInterval(traffic);
  for (const ws of sockets) ws?.terminate();
  const half = samples.slice(Math.floor(samples.length / 2));
  const first = half[0]!;
  const last = samples[samples.length - 1]!;
  emit({
    bench: 'soak',
    server: underTest,
    params: { clients: CLIENTS, durationS: DURATION_S, sampleS: SAMPLE_S },
    machine,
    sent,
    received,
    rssKiB: { min: Math.min(...samples.map((s) => s.rssKiB)), max: Math.max(...samples.map((s) => s.rssKiB)), last: last.rssKiB },
    heapUsedMiB: { min: +(Math.min(...samples.map((s) => s.heapUsed)) / 2 ** 20).toFixed(1), max: +(Math.max(...samples.map((s) => s.heapUsed)) / 2 ** 20).toFixed(1) },
    secondHalfRssGrowthKiB: last.rssKiB - first.rssKiB,
  });
  stop();
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
