// The webhook sender (src/webhooks/sender.ts) against a real node:http receiver: signatures, retries, what is
// not retried, a receiver away then back, timeouts, redirects, the concurrency bound, Retry-After, stop().
import t, { type Test } from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Registry } from 'prom-client';
import { MemoryWebhookQueue } from '../src/seams/webhooks/memory.js';
import type { WebhookEvent, WebhookQueue } from '../src/seams/webhooks/types.js';
import { WebhookMetrics } from '../src/webhooks/metrics.js';
import { WebhookSender, type WebhookSenderOptions } from '../src/webhooks/sender.js';
import { generateSecret, verify } from '../src/webhooks/signing.js';
import { Redis } from 'ioredis';
import { RedisWebhookQueue } from '../src/seams/webhooks/redis.js';
import { skipReason, startRedis } from './cluster/redis.js';
import { until } from './wait.js';

const SECRET = generateSecret();

interface Received {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
}
type Handler = (req: Received, res: http.ServerResponse, n: number) => void;

interface Receiver {
  url: string;
  port: number;
  got: Received[];
  /** Requests being answered now, and the most at once. */
  active: number;
  maxActive: number;
}

async function receiver(t: Test, handler: Handler, port = 0): Promise<Receiver> {
  const r: Receiver = { url: '', port: 0, got: [], active: 0, maxActive: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const got = { url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString(), at: Date.now() };
      r.got.push(got);
      r.active++;
      r.maxActive = Math.max(r.maxActive, r.active);
      res.on('close', () => r.active--);
      handler(got, res, r.got.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  r.port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${r.port}/hooks`;
  return r;
}

const answer = (status: number, headers: Record<string, string> = {}) => (_req: Received, res: http.ServerResponse) => {
  res.writeHead(status, headers);
  res.end();
};

let seq = 0;
const ev = (): WebhookEvent => ({ id: `msg_${++seq}`, type: 'user.online', ts: Date.UTC(2026, 0, 2, 3, 4, 5, 6), data: { userId: `u${seq}` } });

interface Rig {
  sender: WebhookSender;
  queue: WebhookQueue;
  logs: { level: number; msg: string; [k: string]: unknown }[];
  /** A counter's value for these labels (destination `app`). */
  count(name: 'storywire_webhook_sends_total' | 'storywire_webhook_attempts_total', label: string): Promise<number>;
  registry: Registry;
}

function rig(t: Test, url: string, o: Partial<WebhookSenderOptions> = {}): Rig {
  const registry = new Registry();
  const logs: Rig['logs'] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s)) });
  const queue = o.queue ?? new MemoryWebhookQueue('app', { maxDepth: 100, claimIdleMs: 1000 });
  const sender = new WebhookSender({
    name: 'app',
    url,
    secrets: [SECRET],
    queue,
    log,
    metrics: new WebhookMetrics(registry),
    timeoutMs: 2000,
    maxAttempts: 5,
    retryBaseMs: 20,
    retryMaxMs: 200,
    concurrency: 4,
    pollMs: 20,
    ...o,
  });
  t.teardown(() => sender.stop());
  const count: Rig['count'] = async (name, label) => {
    const key = name === 'storywire_webhook_sends_total' ? 'outcome' : 'result';
    const m = await registry.getSingleMetric(name)!.get();
    return m.values.find((v) => v.labels['destination'] === 'app' && v.labels[key] === label)?.value ?? 0;
  };
  return { sender, queue, logs, count, registry };
}

t.test('delivered, signed: the body, the headers, a valid Standard Webhooks signature', async (t) => {
  const r = await receiver(t, answer(204));
  const { sender, queue, count } = rig(t, r.url);
  const e = ev();
  await queue.enqueue(e);
  sender.start();
  await until(async () => (await count('storywire_webhook_sends_total', 'sent')) === 1, 'the delivery');
  t.equal(r.got.length, 1);
  const [got] = r.got;
  t.same(JSON.parse(got!.body), { type: 'user.online', timestamp: '2026-01-02T03:04:05.006Z', data: e.data });
  t.equal(got!.headers['content-type'], 'application/json');
  t.equal(got!.headers['user-agent'], 'storywire-webhooks');
  t.equal(got!.headers['webhook-id'], e.id);
  t.same(verify(SECRET, got!.headers, got!.body), { ok: true });
  t.equal(await queue.depth(), 0, 'acked');
  t.equal(await count('storywire_webhook_attempts_total', '2xx'), 1);
});

t.test('503 then 200: one delivery, the same webhook-id on both attempts, prepare once', async (t) => {
  const r = await receiver(t, (req, res, n) => answer(n === 1 ? 503 : 200)(req, res));
  let prepared = 0;
  const { sender, queue, count } = rig(t, r.url, {
    prepare: async (e) => {
      prepared++;
      return { ...e, data: { ...e.data, filled: true } };
    },
  });
  const e = ev();
  await queue.enqueue(e);
  sender.start();
  await until(async () => (await count('storywire_webhook_sends_total', 'sent')) === 1, 'the delivery');
  t.equal(r.got.length, 2);
  t.same(r.got.map((g) => g.headers['webhook-id']), [e.id, e.id]);
  t.same(r.got.map((g) => JSON.parse(g.body).data.filled), [true, true], 'the prepared event on both attempts');
  t.equal(prepared, 1);
  for (const g of r.got) t.same(verify(SECRET, g.headers, g.body), { ok: true });
  t.equal(await count('storywire_webhook_attempts_total', '5xx'), 1);
  t.equal(await count('storywire_webhook_attempts_total', '2xx'), 1);
  t.equal(await count('storywire_webhook_sends_total', 'retried'), 1);
  t.equal(await queue.depth(), 0);
});

t.test('400: not retried, counted rejected, logged, acked', async (t) => {
  const r = await receiver(t, answer(400));
  const { sender, queue, count, logs } = rig(t, r.url);
  const e = ev();
  await queue.enqueue(e);
  sender.start();
  await until(async () => (await count('storywire_webhook_sends_total', 'rejected')) === 1, 'the rejection');
  await until(async () => (await queue.depth()) === 0, 'the ack');
  t.equal(r.got.length, 1, 'one request only');
  t.equal(await count('storywire_webhook_attempts_total', '4xx'), 1);
  t.equal(await count('storywire_webhook_sends_total', 'retried'), 0);
  t.ok(logs.some((l) => l.level === 50 && (l['event'] as WebhookEvent | undefined)?.id === e.id && l['status'] === 400));
});

async function freePort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

t.test('a receiver down for a while, then back: delivered after, nothing lost', async (t) => {
  const port = await freePort();
  const { sender, queue, count } = rig(t, `http://127.0.0.1:${port}/hooks`, { maxAttempts: 1000, retryMaxMs: 50 });
  const es = [ev(), ev(), ev()];
  for (const e of es) await queue.enqueue(e);
  sender.start();
  await until(async () => (await count('storywire_webhook_attempts_total', 'network')) >= 6, 'refused connections');
  t.equal(await queue.depth(), 3, 'still queued');
  const r = await receiver(t, answer(200), port);
  await until(async () => (await count('storywire_webhook_sends_total', 'sent')) === 3, 'the deliveries');
  t.same(r.got.map((g) => g.headers['webhook-id']).sort(), es.map((e) => e.id).sort(), 'each event once');
  t.equal(await queue.depth(), 0);
});

t.test('maxAttempts exhausted: counted, logged with the event, the queue empty', async (t) => {
  const r = await receiver(t, answer(500));
  const { sender, queue, count, logs } = rig(t, r.url, { maxAttempts: 3 });
  const e = ev();
  await queue.enqueue(e);
  sender.start();
  await until(async () => (await count('storywire_webhook_sends_total', 'exhausted')) === 1, 'giving up');
  await until(async () => (await queue.depth()) === 0, 'the ack');
  t.equal(r.got.length, 3, 'maxAttempts requests');
  t.equal(await count('storywire_webhook_sends_total', 'retried'), 2);
  const line = logs.find((l) => l.level === 50 && l.msg.includes('given up'));
  t.same(line?.['event'], e, 'the whole event in the error log');
  t.equal(line?.['attempts'], 3);
});

t.test('a receiver that never answers: a timeout, retried', async (t) => {
  const r = await receiver(t, (req, res, n) => {
    if (n > 1) answer(200)(req, res);
    // the first request is left hanging
  });
  const { sender, queue, count } = rig(t, r.url, { timeoutMs: 200 });
  await queue.enqueue(ev());
  sender.start();
  await until(async () => (await count('storywire_webhook_sends_total', 'sent')) === 1, 'the delivery');
  t.equal(await count('storywire_webhook_attempts_total', 'timeout'), 1);
  t.equal(r.got.length, 2);
});

t.test('302: the redirect is not followed, counted rejected', async (t) => {
  const r = await receiver(t, (req, res) => (req.url === '/hooks' ? answer(302, { location: '/elsewhere' })(req, res) : answer(200)(req, res)));
  const { sender, queue, count } = rig(t, r.url);
  await queue.enqueue(ev());
  sender.start();
  await until(async () => (await count('storywire_webhook_sends_total', 'rejected')) === 1, 'the rejection');
  t.same(r.got.map((g) => g.url), ['/hooks'], 'nothing sent to the Location');
  t.equal(await count('storywire_webhook_attempts_total', '3xx'), 1);
  t.equal(await queue.depth(), 0);
});

t.test('the concurrency bound: at most `concurrency` requests at once', async (t) => {
  const r = await receiver(t, (req, res) => setTimeout(() => answer(200)(req, res), 30));
  const { sender, queue, count } = rig(t, r.url, { concurrency: 3 });
  for (let i = 0; i < 12; i++) await queue.enqueue(ev());
  sender.start();
  await until(async () => (await count('storywire_webhook_sends_total', 'sent')) === 12, 'the deliveries');
  t.equal(r.maxActive, 3, 'the bound reached, never passed');
});

t.test('Retry-After on 429 is honoured, capped at retryMaxMs', async (t) => {
  const r = await receiver(t, (req, res, n) => answer(n === 1 ? 429 : 200, n === 1 ? { 'retry-after': '3600' } : {})(req, res));
  const { sender, queue, count } = rig(t, r.url, { retryBaseMs: 5, retryMaxMs: 800 });
  await queue.enqueue(ev());
  sender.start();
  await until(async () => (await count('storywire_webhook_sends_total', 'sent')) === 1, 'the delivery');
  const gap = r.got[1]!.at - r.got[0]!.at;
  // Without Retry-After the backoff would be below retryBaseMs (5 ms); with it uncapped, an hour.
  t.ok(gap >= 750, `waited about retryMaxMs (${gap} ms)`);
  t.equal(await count('storywire_webhook_attempts_total', '4xx'), 1);
});

t.test('the queue unreachable: logged at debug, tried again next poll', async (t) => {
  const r = await receiver(t, answer(200));
  const inner = new MemoryWebhookQueue('app', { maxDepth: 10, claimIdleMs: 1000 });
  let refusals = 3;
  const queue: WebhookQueue = Object.assign(Object.create(inner) as WebhookQueue, {
    take: (n: number) => (refusals-- > 0 ? Promise.reject(new Error('Connection is closed.')) : inner.take(n)),
  });
  const { sender, count, logs } = rig(t, r.url, { queue });
  await inner.enqueue(ev());
  sender.start();
  await until(async () => (await count('storywire_webhook_sends_total', 'sent')) === 1, 'the delivery');
  t.equal(logs.filter((l) => l.level === 20 && l.msg.includes('unavailable')).length, 3);
});

t.test('stop(): waits for the request in flight at most timeoutMs, leaves the unsent queued', async (t) => {
  const r = await receiver(t, () => {}); // never answers
  const { sender, queue } = rig(t, r.url, { timeoutMs: 300, concurrency: 1 });
  await queue.enqueue(ev());
  await queue.enqueue(ev());
  sender.start();
  await until(() => r.got.length === 1, 'the first request');
  const started = Date.now();
  await sender.stop();
  t.ok(Date.now() - started < 300 + 1000, 'bounded by timeoutMs');
  t.equal(await queue.depth(), 2, 'nothing acked');
  t.equal(r.got.length, 1, 'nothing more sent');
});

t.test('bad options are refused', async (t) => {
  t.throws(() => rig(t, 'ftp://example.com/'), /url must be http/);
  t.throws(() => rig(t, 'http://127.0.0.1/', { concurrency: 0 }), /concurrency must be a positive integer/);
  t.throws(() => rig(t, 'http://127.0.0.1/', { secrets: ['whsec_short'] }), /webhook secret/);
});

t.test('metrics: the depth gauge reads the queue at scrape time, its last value while the queue is away; dropped()', async (t) => {
  const registry = new Registry();
  const metrics = new WebhookMetrics(registry);
  const inner = new MemoryWebhookQueue('app', { maxDepth: 10, claimIdleMs: 1000 });
  let down = false;
  const queue: WebhookQueue = Object.assign(Object.create(inner) as WebhookQueue, {
    depth: () => (down ? Promise.reject(new Error('Connection is closed.')) : inner.depth()),
  });
  metrics.watch('app', queue);
  const depth = async () => (await registry.getSingleMetric('storywire_webhook_queue_depth')!.get()).values.find((v) => v.labels['destination'] === 'app')?.value;
  await inner.enqueue(ev());
  await inner.enqueue(ev());
  t.equal(await depth(), 2);
  down = true;
  await inner.enqueue(ev());
  t.equal(await depth(), 2, 'the last known value');
  down = false;
  t.equal(await depth(), 3);
  metrics.dropped('app');
  const text = await registry.metrics();
  t.match(text, /storywire_webhook_sends_total\{destination="app",outcome="dropped"\} 1/);
  t.match(text, /storywire_webhook_queue_depth\{destination="app"\} 3/);
});

t.test('cluster: a node dies with an event in flight; another node sends it, same webhook-id, attempts continued', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const conn = () => {
    const c = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    c.on('error', () => {});
    t.teardown(() => c.disconnect());
    return c;
  };
  const [ca, cb] = [conn(), conn()];
  await until(() => ca.status === 'ready' && cb.status === 'ready', 'the Redis connections');
  const options = { maxDepth: 10, claimIdleMs: 300 };
  const qa = new RedisWebhookQueue(ca, (n) => redis.prefix + n, 'node-a', 'app', options);
  const qb = new RedisWebhookQueue(cb, (n) => redis.prefix + n, 'node-b', 'app', options);
  t.teardown(() => qb.close());
  // Node A's first attempt fails (503), its retry hangs: A dies during it.
  const r = await receiver(t, (req, res, n) => (n === 1 ? answer(503)(req, res) : n === 2 ? undefined : answer(200)(req, res)));
  const a = rig(t, r.url, { queue: qa, timeoutMs: 2000 });
  const e = ev();
  await qa.enqueue(e);
  a.sender.start();
  await until(() => r.got.length === 2, "node A's retry");
  // Node A is gone: it takes and retries nothing more (its request is cut after timeoutMs), renews nothing.
  const stopped = a.sender.stop();
  await qa.close();
  t.equal(await cb.hget(`${redis.prefix}wha:app`, e.id), '1', "A's failed attempt is recorded for the next node");
  const b = rig(t, r.url, { queue: qb });
  b.sender.start();
  await until(async () => (await b.count('storywire_webhook_sends_total', 'sent')) === 1, "node B's delivery");
  t.same(r.got.map((g) => g.headers['webhook-id']), [e.id, e.id, e.id]);
  t.equal(await qb.depth(), 0);
  t.equal(await cb.hlen(`${redis.prefix}wha:app`), 0, 'the attempts record is deleted on ack');
  await stopped;
  t.equal(r.got.length, 3, 'node A sent nothing more');
});
