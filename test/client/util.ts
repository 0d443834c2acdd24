// Helpers for the SDK tests: clients wired to `ws`, waits with deadlines, a manual clock, a scripted fake server, a freezable TCP proxy, cut sockets, gated tokens.
import net from 'node:net';
import { WAIT_MS } from '../wait.js';
import WebSocket, { WebSocketServer } from 'ws';
import { StorywireClient, type ClientOptions, type ClientEventName, type ClientEvents, type Clock, type WebSocketConstructor } from '../../src/client/index.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A client using the `ws` package (Node 20 has no global WebSocket), closed at teardown. */
export function client(t: Teardown, opts: Omit<ClientOptions, 'WebSocket'> & Partial<Pick<ClientOptions, 'WebSocket'>>): StorywireClient {
  const c = new StorywireClient({ WebSocket, ...opts });
  t.teardown(() => c.close());
  return c;
}

/** Resolves with the arguments of the next `name` event matching pred; rejects after timeoutMs. */
export function next<K extends ClientEventName>(
  c: StorywireClient,
  name: K,
  pred: (...args: ClientEvents[K]) => boolean = () => true,
  timeoutMs = 5000,
): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no "${String(name)}" event within ${timeoutMs} ms (state ${JSON.stringify(c.state)})`));
    }, timeoutMs);
    const off = c.on(name, ((...args: ClientEvents[K]) => {
      if (!pred(...args)) return;
      off();
      clearTimeout(timer);
      resolve(args);
    }) as never);
  });
}

/** Polls pred every 10 ms until it holds; `timeoutMs` below WAIT_MS is raised to it (a deadline bounds a hang, it is not what a test asserts). */
export async function until(pred: () => boolean, timeoutMs = WAIT_MS, what = 'condition'): Promise<void> {
  timeoutMs = Math.max(timeoutMs, WAIT_MS);
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A clock whose time moves only with advance(); random() returns a fixed value. */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  constructor(private readonly r = 0.5) {}
  now = (): number => this.t;
  random = (): number => this.r;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  };
  clearTimeout = (h: unknown): void => {
    this.timers.delete(h as number);
  };
  /** Delays of the pending timers, soonest first. */
  pending(): number[] {
    return [...this.timers.values()].map((x) => x.at - this.t).sort((a, b) => a - b);
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!first || e[1].at < first[1].at)) first = e;
      if (!first) break;
      this.timers.delete(first[0]);
      this.t = first[1].at;
      first[1].fn();
    }
    this.t = end;
  }
}

/**
 * A port that was free a moment ago. A server that must be restarted on the same port has to start on an
 * explicit port: uWS sets SO_REUSEADDR/SO_REUSEPORT only when the port is not 0, and without them the
 * server-side TIME_WAIT sockets left by a graceful close block a new listen on that port for about 60 s.
 */
export async function reservePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A scripted stand-in for the server: sends `connected`, then does what the test says with each socket. */
export async function fakeServer(t: Teardown, onConnection: (ws: WebSocket, url: string) => void, hello = true): Promise<{ url: string; connections: number }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => (p.has('storywire.v1') ? 'storywire.v1' : false) });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const state = { url: `ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}/ws`, connections: 0 };
  wss.on('connection', (ws, req) => {
    state.connections++;
    if (hello) {
      ws.send(JSON.stringify({ type: 'connected', data: { userId: 'u', connectionId: `c${state.connections}`, permissions: [], heartbeatIntervalMs: 25000, idleTimeoutS: 40, limits: {} }, ts: Date.now() }));
    }
    onConnection(ws, req.url ?? '');
  });
  t.teardown(() => {
    for (const c of wss.clients) c.terminate();
    return new Promise<void>((r) => wss.close(() => r()));
  });
  return state;
}

/** A TCP proxy to a port; freeze() stops every byte on the live pipes (a dead peer that never closes). */
export async function proxy(t: Teardown, targetPort: number): Promise<{ port: number; freeze(): void; pipes: number }> {
  const sockets: net.Socket[] = [];
  const state = { port: 0, pipes: 0, freeze() {} };
  const frozen: net.Socket[] = [];
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, '127.0.0.1');
    state.pipes++;
    sockets.push(inbound, outbound);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    const kill = () => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('error', kill);
    outbound.on('error', kill);
  });
  state.freeze = () => {
    for (const s of sockets) {
      s.unpipe();
      s.pause();
      frozen.push(s);
    }
    sockets.length = 0;
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.port = (server.address() as net.AddressInfo).port;
  t.teardown(() => {
    for (const s of [...sockets, ...frozen]) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return state;
}

/** The `ws` class, recording every socket and URL it opens, so a test can cut a connection (terminate: 1006, no close frame). */
export function tapped(): { WebSocket: WebSocketConstructor; sockets: WebSocket[]; urls: string[]; cut(): void } {
  const sockets: WebSocket[] = [];
  const urls: string[] = [];
  class Tapped extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
      urls.push(url);
    }
  }
  return { WebSocket: Tapped, sockets, urls, cut: () => sockets[sockets.length - 1]?.terminate() };
}

/** A gate for token providers: while closed, reconnect attempts wait in the provider (the client stays away). */
export function gate(): { close(): void; open(): void; wait(): Promise<void> } {
  let opened: Promise<void> = Promise.resolve();
  let release = () => {};
  return {
    close() {
      opened = new Promise((r) => (release = r));
    },
    open() {
      release();
    },
    wait: () => opened,
  };
}

/** A notification input for the inbox tests. */
export const note = (title: string) => ({ title, message: 'm', type: 'like', data: undefined });

/** Resolves at the store's next `synced` change (the inbox reply); the deadline only guards against a hang (the suite runs files in parallel on two cores). */
export const synced = (c: StorywireClient, timeoutMs = 10_000) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('no inbox sync'));
    }, timeoutMs);
    const off = c.notifications.onChange((ch) => {
      if (ch.kind !== 'synced') return;
      off();
      clearTimeout(timer);
      resolve();
    });
  });
