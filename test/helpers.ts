// Test helpers: a real server on an ephemeral loopback port, real `ws` clients, and waits with deadlines.
import { SignJWT } from 'jose';
import pino from 'pino';
import WebSocket from 'ws';
import { loadConfig, type Config } from '../src/config.js';
import { createServer, type ServerOptions, type StorywireServer } from '../src/edge/server.js';
import { WAIT_MS } from './wait.js';

export { until, WAIT_MS } from './wait.js';

export const SECRET = 'test-secret-test-secret-test-secret-0123456789';
const KEY = new TextEncoder().encode(SECRET);

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface Harness {
  server: StorywireServer;
  port: number;
  url: string;
  token(sub: string, claims?: Record<string, unknown>, opts?: { expS?: number; alg?: string }): Promise<string>;
  connect(sub: string, claims?: Record<string, unknown>): Promise<Client>;
}

export async function sign(sub: string | undefined, claims: Record<string, unknown> = {}, expS = 3600, key: Uint8Array = KEY): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + expS);
  if (sub !== undefined) jwt.setSubject(sub);
  return jwt.sign(key);
}

/** A server in dev mode with a key (the relaxed defaults most tests use); env `{ STORYWIRE_DEV: '0' }` gives the production ones. */
export async function startServer(t: Teardown, overrides: Partial<Config> = {}, env: Record<string, string> = {}, options: ServerOptions = {}): Promise<Harness> {
  const config = loadConfig({ JWT_SECRET: SECRET, HOST: '127.0.0.1', PORT: '0', STORYWIRE_DEV: '1', ...env }, [], overrides);
  const server = createServer(config, { logger: pino({ level: process.env['TEST_LOG'] ?? 'silent' }), ...options });
  const port = await server.listen();
  t.teardown(() => server.close());
  const url = `ws://127.0.0.1:${port}${config.wsPath}`;
  const h: Harness = {
    server,
    port,
    url,
    token: (sub, claims = {}, opts = {}) => sign(sub, claims, opts.expS ?? 3600),
    async connect(sub, claims = {}) {
      const c = await Client.open(`${url}?token=${await sign(sub, claims)}`);
      t.teardown(() => c.close());
      return c;
    },
  };
  return h;
}

export type Frame = { type: string; id?: string | number; topic?: string; data?: any; error?: { code: string; message: string }; ts: number };

/** A `ws` client that queues every frame and lets a test await the next one matching a predicate. */
export class Client {
  /** Deadline of next()/request() when none is given. */
  static defaultTimeoutMs = WAIT_MS;
  readonly frames: Frame[] = [];
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private nextId = 1;
  closed: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (raw, isBinary) => {
      const frame = JSON.parse(raw.toString()) as Frame;
      if (isBinary) throw new Error('server sent a binary frame');
      const i = this.waiters.findIndex((w) => w.pred(frame));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(frame);
      else this.frames.push(frame);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static open(url: string, opts: WebSocket.ClientOptions = {}, protocols?: string[]): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, opts);
      const c = new Client(ws);
      ws.once('open', () => resolve(c));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d));
        res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body: JSON.parse(body || '{}') })));
      });
    });
  }

  /** Resolves with the first queued or future frame matching pred; rejects after timeoutMs. */
  next(pred: (f: Frame) => boolean = () => true, timeoutMs = Client.defaultTimeoutMs): Promise<Frame> {
    const i = this.frames.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (f: Frame) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no matching frame within ${timeoutMs} ms; queued: ${JSON.stringify(this.frames).slice(0, 500)}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  type(type: string, timeoutMs?: number): Promise<Frame> {
    return this.next((f) => f.type === type, timeoutMs);
  }

  /** Asserts that no frame matching pred arrives within ms. */
  async none(pred: (f: Frame) => boolean, ms = 300): Promise<boolean> {
    try {
      await this.next(pred, ms);
      return false;
    } catch {
      return true;
    }
  }

  send(obj: unknown): void {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  /** Sends {type, data, id} and resolves with the ack/error/pong carrying the same id. */
  request(type: string, data?: unknown, timeoutMs?: number): Promise<Frame> {
    const id = `r${this.nextId++}`;
    this.send(data === undefined ? { type, id } : { type, data, id });
    return this.next((f) => f.id === id, timeoutMs);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

export async function expectReject(p: Promise<unknown>): Promise<{ status: number; body: any }> {
  try {
    await p;
  } catch (err) {
    return err as { status: number; body: any };
  }
  throw new Error('expected the connection to be refused');
}
