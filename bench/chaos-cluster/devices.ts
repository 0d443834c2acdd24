// The devices of the chaos run: SDK clients (StorywireClient) and raw `ws` clients that follow protocol.md by
// hand, both recording what the app is handed; and the presence watcher. Times are performance.now() ms.
import WebSocket from 'ws';
import { StorywireClient, type WebSocketConstructor } from '../../src/client/index.js';

export interface Position {
  epoch: string;
  offset: number;
}

/** One connection of a device, as the harness saw it. */
export interface ConnRecord {
  openAt: number;
  closeAt?: number;
  closeCode?: number;
  connectionId: string;
  /** The position asked for in `?since=`, if any, and the server's answer for `user:<id>` (absent: none given). */
  since?: Position;
  joined?: { epoch: string; offset: number; recovered?: boolean; replayed?: number };
}

/** A `recovered: false` (SDK: a `resync` event): the app was told to refetch everything up to `at`. */
export interface Refetch {
  at: number;
  reason: string;
  from?: Position;
  to: Position;
}

export interface Received {
  at: number;
  id: string;
  key: string;
  epoch?: string;
  offset?: number;
}

/** What one device handed to its app, and how its connections went. */
export class Device {
  readonly received: Received[] = [];
  readonly byId = new Map<string, number>();
  readonly byKey = new Map<string, Set<string>>();
  readonly keyCount = new Map<string, number>();
  readonly refetches: Refetch[] = [];
  readonly conns: ConnRecord[] = [];
  /** An event of user:<id> whose offset is lower than one already handed over in the same epoch. */
  outOfOrder: { at: number; epoch: string; offset: number; after: number }[] = [];
  /** Offsets skipped on a live connection within one epoch (a hole in what arrived: diagnostic). */
  gaps = 0;
  /** Live events of user:<id> that arrived in another epoch than the one held, without `recovered: false`. */
  epochChanges: { at: number; from: Position; to: Position }[] = [];
  /** `connected` without a position for user:<id> (Redis was down). */
  noPosition = 0;
  lastEpoch = '';
  lastOffset = 0;

  constructor(readonly kind: 'sdk' | 'raw', readonly user: string, readonly name: string) {}

  get connected(): boolean {
    const last = this.conns[this.conns.length - 1];
    return last !== undefined && last.closeAt === undefined;
  }

  /** The app was handed notification `n` (its data.key names the logical notification). */
  hand(n: { id: string; data?: { key?: unknown } }, epoch: string | undefined, offset: number | undefined): void {
    const key = typeof n.data?.key === 'string' ? n.data.key : `?${n.id}`;
    const at = performance.now();
    const again = this.byId.has(n.id);
    this.received.push({ at, id: n.id, key, ...(epoch === undefined ? {} : { epoch }), ...(offset === undefined ? {} : { offset }) });
    this.byId.set(n.id, (this.byId.get(n.id) ?? 0) + 1);
    if (!this.byKey.has(key)) this.byKey.set(key, new Set());
    this.byKey.get(key)!.add(n.id);
    this.keyCount.set(key, (this.keyCount.get(key) ?? 0) + 1);
    if (epoch !== undefined && offset !== undefined) {
      // A redelivered id counts as a duplicate only, not also as out of order.
      if (!again && epoch === this.lastEpoch && offset < this.lastOffset) this.outOfOrder.push({ at, epoch, offset, after: this.lastOffset });
      if (epoch !== this.lastEpoch || offset > this.lastOffset) {
        this.lastEpoch = epoch;
        this.lastOffset = offset;
      }
    }
  }

  opened(connectionId: string, since: Position | undefined, joined: ConnRecord['joined']): void {
    const last = this.conns[this.conns.length - 1];
    if (last && last.closeAt === undefined) last.closeAt = performance.now();
    this.conns.push({ openAt: performance.now(), connectionId, ...(since ? { since } : {}), ...(joined ? { joined } : {}) });
    if (!joined) this.noPosition++;
  }

  closed(code: number): void {
    const last = this.conns[this.conns.length - 1];
    if (last && last.closeAt === undefined) {
      last.closeAt = performance.now();
      last.closeCode = code;
    }
  }
}

export interface DeviceOptions {
  /** ws:// URL of the load balancer's WebSocket path. */
  url: string;
  token(user: string): string;
}

/** An SDK device: StorywireClient resuming with its positions; marks some notifications read. */
export class SdkDevice extends Device {
  readonly client: StorywireClient;
  readsSent = 0;
  readErrors: { at: number; id: string; code: string }[] = [];
  /** Share of received notifications the app marks read (0..1), a random moment after it got them. */
  readShare = 0;

  constructor(user: string, o: DeviceOptions) {
    super('sdk', user, `sdk:${user}`);
    let asked: Position | undefined;
    this.client = new StorywireClient({
      url: o.url,
      token: () => {
        asked = this.client.positions[`user:${user}`];
        return o.token(user);
      },
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      reconnect: { minDelayMs: 300, maxDelayMs: 1500 },
      autoConnect: false,
    });
    this.client.on('open', (info) => {
      const joined = info.topics?.[`user:${user}`];
      this.opened(info.connectionId, asked, joined);
    });
    this.client.on('disconnected', (why) => this.closed(why.code));
    this.client.on('resync', (r) => this.refetches.push({ at: performance.now(), reason: r.reason, from: r.from, to: r.to }));
    this.client.on('error', () => {});
    this.client.onNotification((n, meta) => {
      this.hand(n as { id: string; data?: { key?: unknown } }, meta.epoch, meta.offset);
      if (this.readShare > 0 && Math.random() < this.readShare) {
        setTimeout(() => {
          if (this.readShare === 0) return;
          this.readsSent++;
          this.client.markAsRead(n.id).catch((err: Error) => this.readErrors.push({ at: performance.now(), id: n.id, code: String((err as { code?: string }).code ?? err.message) }));
        }, Math.random() * 300);
      }
    });
  }

  connect(): void {
    this.client.connect();
  }
  close(): void {
    this.client.close();
  }
}

/** Section 7 of protocol.md: what a close code tells a client to do. */
function policy(code: number): 'now' | 'backoff' | 'stop' {
  if (code >= 4000 && code <= 4099) return 'now';
  if (code >= 4400 && code <= 4499) return 'stop';
  return 'backoff';
}

/**
 * A raw client written from protocol.md alone: keeps `{epoch, offset}` of `user:<id>`, connects with
 * `?since=epoch:offset`, takes `recovered: false` as "refetch" (and the new position), keeps its old
 * position when `connected` gives none (Redis down), and reconnects as section 7 says.
 */
export class RawDevice extends Device {
  private ws: WebSocket | undefined;
  private pos: Position | undefined;
  private attempt = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  stoppedBy: number | undefined;

  constructor(user: string, private readonly o: DeviceOptions) {
    super('raw', user, `raw:${user}`);
  }

  connect(): void {
    if (this.stopped) return;
    const since = this.pos && { ...this.pos };
    const q = since ? `&since=${since.epoch}:${since.offset}` : '';
    const ws = new WebSocket(`${this.o.url}?token=${this.o.token(this.user)}${q}`);
    this.ws = ws;
    let open = false;
    ws.on('error', () => {});
    ws.on('message', (raw) => {
      const f = JSON.parse(raw.toString()) as { type: string; topic?: string; epoch?: string; offset?: number; data?: any };
      if (f.type === 'connected') {
        open = true;
        this.attempt = 0;
        const joined = f.data?.topics?.[`user:${this.user}`] as ConnRecord['joined'] | undefined;
        this.opened(String(f.data?.connectionId), since, joined);
        if (!joined) return; // no position given: keep ours, resume from it next time
        const to = { epoch: joined.epoch, offset: joined.offset };
        if (since && joined.recovered === false) {
          this.refetches.push({ at: performance.now(), reason: since.epoch === joined.epoch ? 'gap' : 'epoch', from: since, to });
          this.pos = to;
        } else if (!since || joined.recovered === undefined) {
          if (!this.pos || this.pos.epoch !== to.epoch || this.pos.offset < to.offset) this.pos = to;
        }
        return;
      }
      if (f.type !== 'notification:received' || f.topic !== `user:${this.user}`) return;
      if (typeof f.epoch === 'string' && typeof f.offset === 'number') {
        if (this.pos && this.pos.epoch === f.epoch) {
          if (f.offset > this.pos.offset + 1) this.gaps += f.offset - this.pos.offset - 1;
          if (f.offset > this.pos.offset) this.pos.offset = f.offset;
        } else {
          if (this.pos) this.epochChanges.push({ at: performance.now(), from: { ...this.pos }, to: { epoch: f.epoch, offset: f.offset } });
          this.pos = { epoch: f.epoch, offset: f.offset };
        }
      }
      this.hand(f.data, f.epoch, f.offset);
    });
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      if (open) this.closed(code);
      if (this.stopped) return;
      const p = policy(code);
      if (p === 'stop') {
        this.stoppedBy = code;
        return;
      }
      const delay = p === 'now' ? Math.random() * 200 : Math.random() * Math.min(1500, 300 * 2 ** this.attempt);
      this.attempt++;
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  get position(): Position | undefined {
    return this.pos && { ...this.pos };
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      this.closed(1000);
      ws.terminate();
    }
  }
}

/**
 * A presence watcher: a raw client subscribed to `presence:<id>` of every user, straight to one node (not
 * through the proxy: resets do not hit it), reconnecting to that node only. The run has one per node: a
 * presence event reaches the publishing node's own connections even when no other node listens (a node
 * that sweeps another as dead removes the swept node's interests first), so each event is seen by one.
 */
export class Watcher {
  readonly offline: { at: number; user: string; lastSeen: number; watcher: number }[] = [];
  readonly online: { at: number; user: string }[] = [];
  /** Periods the watcher had no subscribed connection (events then are not seen). */
  readonly away: { from: number; to?: number }[] = [];
  private ws: WebSocket | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;

  /** `home`: the index of the node it watches from. */
  constructor(
    private readonly ports: () => readonly number[],
    private readonly token: string,
    private readonly users: readonly string[],
    readonly home: number,
  ) {}

  /** Resolves once every presence topic is subscribed on the first connection. */
  start(): Promise<void> {
    return new Promise((resolve) => this.connect(resolve));
  }

  private connect(ready?: () => void): void {
    if (this.stopped) return;
    const port = this.ports()[this.home]!;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${this.token}`);
    this.ws = ws;
    let pending = 0;
    ws.on('error', () => {});
    ws.on('message', (raw) => {
      const f = JSON.parse(raw.toString()) as { type: string; id?: string; data?: any };
      if (f.type === 'connected') {
        for (const u of this.users) {
          pending++;
          ws.send(JSON.stringify({ type: 'subscribe', id: `s:${u}`, data: { topic: `presence:${u}` } }));
        }
      } else if (f.type === 'ack' && typeof f.id === 'string' && f.id.startsWith('s:')) {
        if (--pending === 0) {
          const a = this.away[this.away.length - 1];
          if (a && a.to === undefined) a.to = performance.now();
          ready?.();
        }
      } else if (f.type === 'user:offline') {
        this.offline.push({ at: performance.now(), user: f.data.userId, lastSeen: f.data.lastSeen, watcher: this.home });
      } else if (f.type === 'user:online') {
        this.online.push({ at: performance.now(), user: f.data.userId });
      }
    });
    ws.on('close', () => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      if (this.stopped) return;
      const a = this.away[this.away.length - 1];
      if (!a || a.to !== undefined) this.away.push({ from: performance.now() });
      this.timer = setTimeout(() => this.connect(ready), 100 + Math.random() * 200);
    });
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.terminate();
    this.ws = undefined;
  }
}
