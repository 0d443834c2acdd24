// The socket lifecycle: attempts, token per attempt, `connected` handshake, heartbeat watchdog, close-code policy, backoff.
import { backoffDelay, nowDelay, type ResolvedReconnect } from './backoff.js';
import { ClientErrorCode, CloseCode, httpRefusalPolicy, isApplicationCloseCode, reconnectPolicy, StorywireError } from './codes.js';
import type { Emitter } from './emitter.js';
import type { ServerFrame } from './requests.js';
import { obtainToken } from './token.js';
import type {
  ClientEvents,
  Clock,
  CloseReason,
  ConnectedInfo,
  ConnectionState,
  TokenProvider,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';

export interface ConnectionOptions {
  url: string;
  token: string | TokenProvider;
  tokenTransport: 'protocol' | 'query';
  WebSocket: WebSocketConstructor;
  reconnect: ResolvedReconnect | false;
  connectTimeoutMs: number;
  /** undefined: twice the server's heartbeat interval plus 1 s; false: no watchdog. */
  heartbeatTimeoutMs: number | false | undefined;
  clock: Clock;
  /** `?since=<epoch>:<offset>` of an attempt with this token: where to resume the personal topic from. */
  since?: (token: string) => string | undefined;
}

export interface ConnectionHooks {
  /** The `connected` frame arrived: the connection is usable. */
  opened(info: ConnectedInfo, token: string): void;
  /** Every frame after `connected`. */
  frame(frame: ServerFrame): void;
  /** A usable connection was lost (before any reconnect is scheduled). */
  lost(reason: CloseReason): void;
  /** The client will not reconnect any more. */
  ended(reason: CloseReason): void;
}

const SUBPROTOCOL = 'storywire.v1';
/** Asks the server to tell a refused upgrade with a close code: browsers cannot read its HTTP status. */
const REFUSAL_SUBPROTOCOL = 'storywire.close-on-refusal';
const OPEN = 1;

export class Connection {
  private ws: WebSocketLike | undefined;
  private st: ConnectionState = { status: 'idle', attempt: 0 };
  private attempt = 0;
  /** Bumped for every attempt and on stop: callbacks of an older socket compare it and do nothing. */
  private generation = 0;
  private retryTimer: unknown;
  private connectTimer: unknown;
  private watchdog: unknown;
  private heartbeatTimeout = 0;
  private lastFrameAt = 0;
  private openedAt = 0;
  /** A stop-range close was answered by fetching a new token; a second one before a stable connection ends the client. */
  private stopStrike = false;
  private lastReason: CloseReason | undefined;
  private onlineListener: (() => void) | undefined;

  constructor(
    private readonly o: ConnectionOptions,
    private readonly events: Emitter<ClientEvents>,
    private readonly hooks: ConnectionHooks,
  ) {}

  get state(): ConnectionState {
    return this.st;
  }

  /** Starts connecting unless already started; after a final close it starts afresh. */
  start(): void {
    if (this.st.status !== 'idle' && this.st.status !== 'closed') return;
    this.attempt = 0;
    this.stopStrike = false;
    this.listenOnline(true);
    void this.connect('connect');
  }

  /** Closes for good: no reconnect until start() is called again. */
  stop(reason = 'client closed'): void {
    if (this.st.status === 'idle' || this.st.status === 'closed') return;
    const why: CloseReason = { code: CloseCode.NORMAL, reason, kind: 'client', policy: 'standard' };
    const wasOpen = this.st.status === 'open';
    this.teardown(CloseCode.NORMAL, reason);
    if (wasOpen) {
      this.hooks.lost(why);
      this.events.emit('disconnected', why);
    }
    this.end(why);
  }

  /** Drops the current connection (if any) and connects again at once, keeping the attempt count. */
  reconnectNow(reason: string): void {
    const s = this.st.status;
    if (s === 'idle' || s === 'closed') return;
    if (s === 'open' || s === 'connecting') {
      const why: CloseReason = { code: CloseCode.NORMAL, reason, kind: 'client', policy: 'now' };
      this.teardown(CloseCode.NORMAL, reason);
      if (s === 'open') this.hooks.lost(why);
      this.events.emit('disconnected', why);
      this.lastReason = why;
    }
    void this.connect('reconnect');
  }

  /** Writes a frame when the connection is usable; false otherwise. */
  write(text: string): boolean {
    if (this.st.status !== 'open' || !this.ws || this.ws.readyState !== OPEN) return false;
    this.ws.send(text);
    return true;
  }

  private setState(next: ConnectionState): void {
    const prev = this.st;
    this.st = Object.freeze(next);
    this.events.emit('state', this.st, prev);
  }

  private async connect(kind: 'connect' | 'reconnect'): Promise<void> {
    const gen = ++this.generation;
    this.clearTimers();
    this.setState({ status: 'connecting', attempt: this.attempt, ...(this.lastReason ? { reason: this.lastReason } : {}) });
    this.events.emit('connecting', { attempt: this.attempt });
    // Covers the token provider too: a provider that never settles is one more failed attempt.
    this.connectTimer = this.o.clock.setTimeout(() => {
      if (gen !== this.generation || this.st.status === 'open') return;
      this.teardown(CloseCode.NORMAL, 'connect timeout');
      this.failed({ code: CloseCode.ABNORMAL, reason: `no "connected" frame within ${this.o.connectTimeoutMs} ms`, kind: 'timeout', policy: 'standard' });
    }, this.o.connectTimeoutMs);
    let token: string;
    try {
      token = await obtainToken(this.o.token, this.lastReason ? { reason: kind, lastReason: this.lastReason } : { reason: kind });
    } catch (err) {
      if (gen !== this.generation) return;
      this.events.emit('error', err as StorywireError);
      this.failed({ code: CloseCode.ABNORMAL, reason: (err as Error).message, kind: 'token', policy: 'backoff' });
      return;
    }
    if (gen !== this.generation) return;

    let ws: WebSocketLike;
    try {
      const since = this.o.since?.(token);
      const query = [...(since ? [`since=${since}`] : []), ...(this.o.tokenTransport === 'query' ? [`token=${encodeURIComponent(token)}`] : [])];
      const url = query.length ? `${this.o.url}${this.o.url.includes('?') ? '&' : '?'}${query.join('&')}` : this.o.url;
      const protocols = this.o.tokenTransport === 'protocol' ? [SUBPROTOCOL, REFUSAL_SUBPROTOCOL, `bearer.${token}`] : [SUBPROTOCOL, REFUSAL_SUBPROTOCOL];
      ws = new this.o.WebSocket(url, protocols);
    } catch (err) {
      this.failed({ code: CloseCode.ABNORMAL, reason: `cannot open a WebSocket: ${(err as Error).message}`, kind: 'network', policy: 'standard' });
      return;
    }
    this.ws = ws;
    let handshakeError: string | undefined;
    ws.onerror = (ev: { message?: string; error?: { message?: string } }) => {
      handshakeError = ev?.message ?? ev?.error?.message;
    };
    ws.onclose = (ev: { code?: number; reason?: string }) => {
      if (gen === this.generation) this.socketClosed(ev.code ?? CloseCode.ABNORMAL, ev.reason ?? '', handshakeError);
    };
    ws.onmessage = (ev: { data: unknown }) => {
      if (gen === this.generation) this.message(ev.data, token);
    };
  }

  private message(data: unknown, token: string): void {
    this.lastFrameAt = this.o.clock.now();
    if (typeof data !== 'string') {
      this.events.emit('error', new StorywireError(ClientErrorCode.BAD_FRAME, 'the server sent a binary frame', false, false));
      return;
    }
    let frame: ServerFrame;
    try {
      frame = JSON.parse(data) as ServerFrame;
      if (typeof frame !== 'object' || frame === null || typeof frame.type !== 'string') throw new Error('not an envelope');
    } catch {
      this.events.emit('error', new StorywireError(ClientErrorCode.BAD_FRAME, `the server sent a frame that is not a JSON envelope: ${data.slice(0, 80)}`, false, false));
      return;
    }
    if (this.st.status === 'open') this.hooks.frame(frame);
    else if (frame.type === 'connected') this.opened(frame.data as ConnectedInfo, token);
  }

  private opened(info: ConnectedInfo, token: string): void {
    this.o.clock.clearTimeout(this.connectTimer);
    this.openedAt = this.o.clock.now();
    this.lastReason = undefined;
    this.setState({ status: 'open', attempt: this.attempt, info });
    const hb = this.o.heartbeatTimeoutMs;
    if (hb !== false) {
      this.heartbeatTimeout = hb ?? 2 * info.heartbeatIntervalMs + 1000;
      this.armWatchdog(this.heartbeatTimeout);
    }
    this.hooks.opened(info, token);
    this.events.emit('open', info);
  }

  private armWatchdog(ms: number): void {
    const gen = this.generation;
    this.watchdog = this.o.clock.setTimeout(() => {
      if (gen !== this.generation || this.st.status !== 'open') return;
      const silent = this.o.clock.now() - this.lastFrameAt;
      if (silent < this.heartbeatTimeout) {
        this.armWatchdog(this.heartbeatTimeout - silent);
        return;
      }
      // A dead peer never completes a closing handshake: drop the socket without waiting for one.
      this.teardown(CloseCode.NORMAL, 'heartbeat timeout');
      this.failed({ code: CloseCode.ABNORMAL, reason: `no frame from the server for ${Math.round(silent)} ms (heartbeat timeout)`, kind: 'heartbeat', policy: 'standard' });
    }, ms);
  }

  private socketClosed(code: number, reason: string, handshakeError: string | undefined): void {
    const wasOpen = this.st.status === 'open';
    this.detach();
    let why: CloseReason;
    const http = !wasOpen && handshakeError ? /Unexpected server response: (\d{3})/.exec(handshakeError) : null;
    if (http) {
      // Only Node's `ws` reveals the HTTP status of a refused upgrade; browsers report a bare 1006.
      const status = Number(http[1]);
      why = { code, reason: handshakeError!, kind: 'handshake', httpStatus: status, policy: httpRefusalPolicy(status) };
    } else if (!wasOpen && isApplicationCloseCode(code)) {
      // Refused before `connected`, told with a close code (the server does so for clients that offer
      // storywire.close-on-refusal, as this SDK does); the reason starts with the error code.
      why = { code, reason, kind: 'handshake', policy: reconnectPolicy(code) };
    } else if (code === CloseCode.ABNORMAL || code === CloseCode.NO_STATUS) {
      why = { code, reason: reason || (wasOpen ? 'connection lost' : (handshakeError ?? 'could not connect')), kind: 'network', policy: 'standard' };
    } else {
      why = { code, reason, kind: 'server', policy: reconnectPolicy(code) };
    }
    this.failed(why);
  }

  /** A connection or an attempt is over: tell, then reconnect as the policy says or end. */
  private failed(why: CloseReason): void {
    const wasOpen = this.st.status === 'open';
    this.clearTimers();
    this.ws = undefined;
    this.lastReason = why;
    if (wasOpen) this.hooks.lost(why);
    this.events.emit('disconnected', why);
    const r = this.o.reconnect;
    if (!r) {
      this.end(why);
      return;
    }
    if (wasOpen && this.o.clock.now() - this.openedAt >= r.stableAfterMs) {
      this.attempt = 0;
      this.stopStrike = false;
    }

    let delay: number;
    if (why.policy === 'stop') {
      // "Not with the same credentials": a provider may have a new token; a fixed token cannot change.
      if (typeof this.o.token === 'string' || this.stopStrike) {
        this.end(why);
        return;
      }
      this.stopStrike = true;
      delay = backoffDelay(this.attempt++, r, this.o.clock.random);
    } else if (why.policy === 'now' && wasOpen) {
      delay = nowDelay(r, this.o.clock.random);
    } else {
      delay = backoffDelay(this.attempt++, r, this.o.clock.random);
    }
    if (this.attempt > r.maxAttempts) {
      this.end({ ...why, kind: 'attempts', reason: `gave up after ${r.maxAttempts} attempts; last: ${why.reason}` });
      return;
    }
    this.setState({ status: 'reconnecting', attempt: this.attempt, reason: why, retryInMs: delay });
    this.events.emit('reconnecting', { attempt: this.attempt, delayMs: delay, reason: why });
    this.retryTimer = this.o.clock.setTimeout(() => void this.connect('reconnect'), delay);
  }

  private end(why: CloseReason): void {
    this.generation++;
    this.clearTimers();
    this.listenOnline(false);
    this.setState({ status: 'closed', attempt: this.attempt, reason: why });
    this.hooks.ended(why);
    this.events.emit('closed', why);
  }

  /** Drops the current socket without waiting for its close event. */
  private teardown(code: number, reason: string): void {
    this.generation++;
    this.clearTimers();
    const ws = this.ws;
    this.detach();
    if (!ws) return;
    try {
      const terminate = (ws as { terminate?: () => void }).terminate;
      if (typeof terminate === 'function') terminate.call(ws);
      else ws.close(code, reason);
    } catch {
      // Already closing or closed: nothing left to release.
    }
  }

  private detach(): void {
    const ws = this.ws;
    this.ws = undefined;
    if (!ws) return;
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    // Keep a no-op: `ws` throws an error event that nobody listens to.
    ws.onerror = () => {};
  }

  private clearTimers(): void {
    const c = this.o.clock;
    c.clearTimeout(this.retryTimer);
    c.clearTimeout(this.connectTimer);
    c.clearTimeout(this.watchdog);
  }

  /** In browsers, coming back online skips the rest of the backoff delay. */
  private listenOnline(on: boolean): void {
    const g = globalThis as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void; document?: unknown };
    if (!g.document || typeof g.addEventListener !== 'function') return;
    if (on && !this.onlineListener) {
      this.onlineListener = () => {
        if (this.st.status === 'reconnecting') void this.connect('reconnect');
      };
      g.addEventListener('online', this.onlineListener);
    } else if (!on && this.onlineListener) {
      g.removeEventListener?.('online', this.onlineListener);
      this.onlineListener = undefined;
    }
  }
}
