// A real webhook receiver for the e2e and cluster suites: node:http on a loopback port, every request's
// Standard Webhooks signature checked with verify() (a bad one fails the test at once, is recorded and
// answered 401), every body recorded with its webhook-id, answers chosen by the test.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { verify } from '../src/webhooks/signing.js';
import { until } from './wait.js';

export interface Delivery {
  /** `webhook-id`: the same on every retry of one event. */
  id: string;
  type: string;
  timestamp: string;
  data: any;
  /** The status this receiver answered. */
  status: number;
  at: number;
}

/** What to answer one request: a status, or 'hang' (never answer; the sender times out or dies). */
export type Answer = number | 'hang';

interface Tap {
  teardown(fn: () => unknown): void;
  fail(message: string): void;
}

export class Receiver {
  /** Every verified request, in arrival order (retries included). */
  readonly requests: Delivery[] = [];
  /** Requests whose signature did not verify (with why). */
  readonly bad: string[] = [];
  answer: (d: Delivery) => Answer = () => 200;
  private server: http.Server | undefined;
  private readonly hanging = new Set<http.ServerResponse>();
  port = 0;

  constructor(
    private readonly secret: string,
    private readonly onBad: (why: string) => void = () => {},
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks`;
  }

  /** Listens on `port` (0: a free one); again on the same port after close(). */
  async listen(port = this.port): Promise<void> {
    const server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Closes the port and every connection (kept-alive ones too): the senders see network errors. */
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s === undefined) return;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  /** Answers 200 to every request left hanging. */
  release(): void {
    for (const res of this.hanging) if (!res.writableEnded) res.writeHead(200).end();
    this.hanging.clear();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const v = verify(this.secret, req.headers, body);
      if (!v.ok || req.method !== 'POST' || req.headers['content-type'] !== 'application/json') {
        const why = `${req.method} ${req.url}: ${v.ok ? req.headers['content-type'] : v.reason}: ${body.slice(0, 200)}`;
        this.bad.push(why);
        this.onBad(why);
        res.writeHead(401).end();
        return;
      }
      const parsed = JSON.parse(body) as { type: string; timestamp: string; data: unknown };
      const d: Delivery = { id: String(req.headers['webhook-id']), type: parsed.type, timestamp: parsed.timestamp, data: parsed.data, status: 0, at: Date.now() };
      const a = this.answer(d);
      if (a === 'hang') {
        d.status = -1;
        this.requests.push(d);
        this.hanging.add(res);
        return;
      }
      d.status = a;
      this.requests.push(d);
      res.writeHead(a, { 'content-type': 'text/plain' }).end('ok');
    });
  }

  /** Deliveries answered 2xx (one per event unless a 2xx answer got lost), optionally of one type. */
  delivered(type?: string): Delivery[] {
    return this.requests.filter((d) => d.status >= 200 && d.status < 300 && (type === undefined || d.type === type));
  }

  /** Waits (bounded by WAIT_MS) for a delivered event matching pred and returns it. */
  async wait(pred: (d: Delivery) => boolean, what: string): Promise<Delivery> {
    let found: Delivery | undefined;
    await until(() => {
      found = this.delivered().find(pred);
      return found !== undefined;
    }, what);
    return found!;
  }
}

/** A receiver listening on a free port, closed when `t` ends; a request signed wrong fails `t`. */
export async function startReceiver(t: Tap, secret: string): Promise<Receiver> {
  let open = true;
  t.teardown(() => {
    open = false;
  });
  const rx = new Receiver(secret, (why) => {
    if (open) t.fail(`a webhook request that does not verify: ${why}`);
  });
  await rx.listen(0);
  t.teardown(() => rx.close());
  return rx;
}
