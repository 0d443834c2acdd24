// Sends one destination's queued webhook events to the app's backend: signed (Standard Webhooks), retried
// with full-jitter exponential backoff, at most `concurrency` at a time.
//
// Request: POST <url>, `content-type: application/json`, `user-agent: storywire-webhooks`, the three
// `webhook-*` headers (signing.ts), body `{"type","timestamp":"<ISO-8601 of the event's ts>","data"}`.
// Answer: 2xx -> sent (acked). 429, 5xx, a timeout (timeoutMs) or a network error -> failed(); retried after
// min(retryMaxMs, retryBaseMs * 2^(attempts-1)) * random, or Retry-After seconds on 429/503 (at most
// retryMaxMs), until maxAttempts, then given up (acked, logged at error level with the event: exhausted).
// Any other status (3xx: redirects are not followed; 4xx) -> rejected: acked, logged, not retried.
// An event held here (in a request or waiting to retry) takes one of the `concurrency` slots.
// stop() takes nothing more, waits for requests in flight at most timeoutMs and leaves what is not sent in
// the queue: in Redis another node takes it over after claimIdleMs; in memory it is lost with the process.
//
// node:http(s) with a keep-alive Agent, not fetch: measured here at about a third of fetch's CPU per request.
import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import type { HeldEvent, WebhookEvent, WebhookQueue } from '../seams/webhooks/types.js';
import type { AttemptResult, WebhookMetrics } from './metrics.js';
import { Signer } from './signing.js';

export interface WebhookSenderOptions {
  /** The destination (metrics label, logs). */
  readonly name: string;
  readonly url: string;
  /** `whsec_...`; several during a rotation (each signs every request). */
  readonly secrets: readonly string[];
  readonly queue: WebhookQueue;
  readonly log: Logger;
  readonly metrics: WebhookMetrics;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  readonly concurrency: number;
  /** How often the queue is polled when this sender has free slots. */
  readonly pollMs: number;
  /** Fills in an event before it is sent (once per event in this process; its retries reuse the result). */
  readonly prepare?: (event: WebhookEvent) => Promise<WebhookEvent>;
}

type Attempt = { result: AttemptResult; status?: number; retryAfterS?: number };

const USER_AGENT = 'storywire-webhooks';

/** Retry-After in seconds (the HTTP-date form is ignored: the backoff applies). */
function retryAfterS(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v !== undefined && /^\d{1,9}$/.test(v.trim()) ? Number(v.trim()) : undefined;
}

export class WebhookSender {
  private readonly signer: Signer;
  private readonly target: URL;
  private readonly agent: http.Agent;
  /** Held by this sender: in a request or waiting to retry. */
  private readonly held = new Set<string>();
  private readonly requests = new Set<{ done: Promise<void>; abort: () => void }>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private pollTimer: NodeJS.Timeout | undefined;
  private running = false;
  private polling = false;
  private pollAgain = false;

  constructor(private readonly o: WebhookSenderOptions) {
    this.signer = new Signer(o.secrets);
    this.target = new URL(o.url);
    if (this.target.protocol !== 'http:' && this.target.protocol !== 'https:') throw new Error(`webhook ${o.name}: url must be http(s), got ${this.target.protocol}`);
    for (const [k, v] of Object.entries({ timeoutMs: o.timeoutMs, maxAttempts: o.maxAttempts, retryBaseMs: o.retryBaseMs, retryMaxMs: o.retryMaxMs, concurrency: o.concurrency, pollMs: o.pollMs })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`webhook ${o.name}: ${k} must be a positive integer, got ${v}`);
    }
    const Agent = this.target.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
    o.metrics.watch(o.name, o.queue);
  }

  /** Events held by this sender now (in a request or waiting for a retry). */
  get inFlight(): number {
    return this.held.size;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedulePoll(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.pollTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const pending = [...this.requests];
    if (pending.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((r) => (timer = setTimeout(r, this.o.timeoutMs)));
      await Promise.race([Promise.allSettled(pending.map((p) => p.done)), bound]);
      clearTimeout(timer);
      for (const p of this.requests) p.abort();
    }
    this.held.clear();
    this.agent.destroy();
  }

  private schedulePoll(ms: number): void {
    if (!this.running) return;
    if (this.polling) {
      // One take at a time: two would both count the same free slots.
      this.pollAgain = true;
      return;
    }
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => void this.poll(), ms);
  }

  private async poll(): Promise<void> {
    this.polling = true;
    this.pollAgain = false;
    const free = this.o.concurrency - this.held.size;
    let got: HeldEvent[] = [];
    if (free > 0) {
      try {
        got = await this.o.queue.take(free);
      } catch (err) {
        this.o.log.debug({ err, destination: this.o.name }, 'webhook queue unavailable; trying again');
      }
    }
    this.polling = false;
    if (!this.running) return; // stopped during take: what it returned stays queued (held: taken over in Redis)
    for (const h of got) void this.deliver(h);
    // A full batch, or a slot freed during the take: there may be more right away.
    this.schedulePoll(this.pollAgain || (got.length > 0 && got.length === free) ? 0 : this.o.pollMs);
  }

  private async deliver(h: HeldEvent): Promise<void> {
    const id = h.event.id;
    this.held.add(id);
    let attempts = h.attempts;
    let body: string | undefined;
    while (this.running) {
      let a: Attempt;
      try {
        if (body === undefined) {
          const e = this.o.prepare ? await this.o.prepare(h.event) : h.event;
          body = JSON.stringify({ type: e.type, timestamp: new Date(e.ts).toISOString(), data: e.data });
        }
        a = await this.post(id, body);
      } catch (err) {
        // prepare() failed: a failed attempt like a network error, retried the same way.
        this.o.log.warn({ err, destination: this.o.name, id }, 'webhook prepare failed');
        a = { result: 'network' };
      }
      if (!this.running) return;
      if (a.result === '2xx') return this.finish(id, 'sent');
      if (a.result === '3xx' || a.result === '4xx') {
        if (a.status !== 429) {
          this.o.log.error({ destination: this.o.name, status: a.status, event: h.event }, 'webhook rejected by the receiver; not retried');
          return this.finish(id, 'rejected');
        }
      }
      attempts = Math.max(attempts + 1, await this.o.queue.failed(id).catch(() => attempts + 1));
      if (attempts >= this.o.maxAttempts) {
        this.o.log.error({ destination: this.o.name, attempts, last: a.status ?? a.result, event: h.event }, 'webhook given up after maxAttempts');
        return this.finish(id, 'exhausted');
      }
      this.o.metrics.outcome(this.o.name, 'retried');
      await this.wait(this.backoff(attempts, a));
    }
  }

  private backoff(attempts: number, a: Attempt): number {
    if (a.retryAfterS !== undefined && (a.status === 429 || a.status === 503)) return Math.min(this.o.retryMaxMs, a.retryAfterS * 1000);
    return Math.min(this.o.retryMaxMs, this.o.retryBaseMs * 2 ** (attempts - 1)) * Math.random();
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  /** Acks (retrying while the queue is unreachable), counts, frees the slot. */
  private async finish(id: string, outcome: 'sent' | 'rejected' | 'exhausted'): Promise<void> {
    this.o.metrics.outcome(this.o.name, outcome);
    for (let delay = this.o.pollMs; this.running; delay = Math.min(delay * 2, this.o.retryMaxMs)) {
      try {
        await this.o.queue.ack(id);
        break;
      } catch (err) {
        this.o.log.debug({ err, destination: this.o.name, id }, 'webhook ack failed; trying again');
        await this.wait(delay);
      }
    }
    this.held.delete(id);
    if (this.running) this.schedulePoll(0);
  }

  /** One HTTP attempt, never rejecting. */
  private post(id: string, body: string): Promise<Attempt> {
    const started = process.hrtime.bigint();
    const mod = this.target.protocol === 'https:' ? https : http;
    let abort = () => {};
    const done = new Promise<Attempt>((resolve) => {
      let settled = false;
      const settle = (a: Attempt) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.o.metrics.attempt(this.o.name, a.result, Number(process.hrtime.bigint() - started) / 1e9);
        resolve(a);
      };
      const req = mod.request(this.target, {
        method: 'POST',
        agent: this.agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': USER_AGENT, ...this.signer.headers(id, body) },
      });
      const timer = setTimeout(() => {
        req.destroy();
        settle({ result: 'timeout' });
      }, this.o.timeoutMs);
      abort = () => req.destroy();
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const retry = retryAfterS(res.headers['retry-after']);
        // Read (and drop) the answer so that the socket goes back to the pool.
        res.resume();
        res.on('error', () => {});
        const result: AttemptResult = status >= 200 && status < 300 ? '2xx' : status >= 500 ? '5xx' : status >= 400 ? '4xx' : '3xx';
        settle({ result, status, ...(retry === undefined ? {} : { retryAfterS: retry }) });
      });
      req.on('error', () => settle({ result: 'network' }));
      req.end(body);
    });
    const entry = { done: done.then(() => {}), abort: () => abort() };
    this.requests.add(entry);
    void entry.done.then(() => this.requests.delete(entry));
    return done;
  }
}
