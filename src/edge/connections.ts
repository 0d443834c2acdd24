// The open connections of this node: by user and by address, token expiry, slow-consumer checks, drain.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { CloseCode, ErrorCode } from '../wire/codes.js';
import { eventFrame } from '../wire/frames.js';
import type { Socket } from './conn.js';
import type { Principal } from './auth.js';
import { Counts, ExpiryWheel } from './rates.js';
import type { Metrics } from '../metrics.js';
import { UserIndex } from './user-index.js';

export class Connections {
  private readonly byUser = new UserIndex<Socket>();
  /** Open connections plus upgrades in progress, per client address. */
  readonly byAddress = new Counts();
  private readonly expiries = new ExpiryWheel<Socket>();
  private open = 0;
  private tick = 0;
  /** checkBackpressure() runs so far (a connection's slowCheck is one of them). */
  private checks = 0;
  /** Topics whose subscribers closeSubscribers() closes at the end of this turn. */
  private closing: Set<string> | undefined;

  constructor(
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    metrics.readGaugesFrom({ open: () => this.open, online: () => this.byUser.size });
  }

  get size(): number {
    return this.open;
  }

  of(userId: string): number {
    return this.byUser.count(userId);
  }

  /** A user's open sockets on this node (a copy: the admin view's user lookup). */
  socketsOf(userId: string): Socket[] {
    return this.byUser.of(userId);
  }

  /** Calls `fn` for every open socket of this node (the admin view's topic counts). */
  forEachSocket(fn: (ws: Socket) => void): void {
    this.byUser.forEach(fn);
  }

  /** The second at which a connection's token stops being valid (tolerance included, as at upgrade). */
  private expiryOf(ws: Socket): number | undefined {
    const exp = ws.getUserData().conn.exp;
    return exp === undefined ? undefined : exp + this.config.jwtClockToleranceS;
  }

  add(ws: Socket): void {
    const userId = ws.getUserData().conn.userId;
    this.byUser.add(userId, ws);
    this.open++;
    this.expiries.add(ws, this.expiryOf(ws));
  }

  /** A fresher token for an open connection: its deadline moves. */
  refresh(ws: Socket, principal: Principal): void {
    this.expiries.remove(ws, this.expiryOf(ws));
    const conn = ws.getUserData().conn;
    conn.permissions = principal.permissions;
    conn.exp = principal.exp;
    conn.claims = principal.claims;
    this.expiries.add(ws, this.expiryOf(ws));
  }

  remove(ws: Socket, code: number): void {
    const conn = ws.getUserData().conn;
    this.byUser.delete(conn.userId, ws);
    this.open--;
    this.byAddress.dec(conn.ip);
    this.expiries.remove(ws, this.expiryOf(ws));
    // uWS drops a connection past the hard backpressure cap with 1006 and no way to ask why; the last
    // check's reading tells a slow reader from a lost network.
    if (code === CloseCode.ABNORMAL && conn.slowCheck === this.checks && conn.slowStrikes > 0) this.metrics.backpressureCloses.inc();
  }

  /** Every half second: close expired tokens (at one-second resolution) and check outgoing buffers. */
  sweep(): void {
    if (++this.tick % 2 === 0) {
      for (const ws of this.expiries.due(Math.floor(Date.now() / 1000))) {
        if (!ws.getUserData().conn.closed) ws.end(CloseCode.TOKEN_EXPIRED, 'token expired: reconnect with a fresh token');
      }
    }
    this.checkBackpressure();
  }

  /**
   * Runs on the sweep and after every MAX_BACKPRESSURE_BYTES/4 of published frames. A connection over
   * budget, or over half of it for four checks in a row, is not keeping up: it is closed with 4101, the
   * close frame queued behind its backlog so that a client still reading learns why.
   */
  checkBackpressure(): void {
    const budget = this.config.maxBackpressureBytes;
    const check = ++this.checks;
    // One native call per connection (the registry holds open sockets only): its state, a second call, only for
    // a buffer over half the budget. forEach tolerates the removals that a synchronous close makes while it iterates.
    this.byUser.forEach((ws) => {
      const buffered = ws.getBufferedAmount();
      if (buffered <= budget / 2) return;
      const conn = ws.getUserData().conn;
      if (conn.closed) return;
      // Over half at the check before too: one more in a row; else the first (under half in between resets).
      conn.slowStrikes = conn.slowCheck === check - 1 ? conn.slowStrikes + 1 : 1;
      conn.slowCheck = check;
      if (conn.slowStrikes >= 4 || buffered > budget) this.closeSlow(ws, buffered);
    });
  }

  /** After a frame on a user's personal topic: closes that user's connections already over budget. */
  checkOverBudget(userId: string): void {
    const budget = this.config.maxBackpressureBytes;
    // The registry holds open sockets only (a close removes them at once): one native call per socket. No
    // closure: this runs for every frame delivered on a personal topic.
    const cur = this.byUser.get(userId);
    if (cur === undefined) return;
    if (!(cur instanceof Set)) {
      const buffered = cur.getBufferedAmount();
      if (buffered > budget) this.closeSlow(cur, buffered);
      return;
    }
    for (const ws of cur) {
      const buffered = ws.getBufferedAmount();
      if (buffered > budget) this.closeSlow(ws, buffered);
    }
  }

  private closeSlow(ws: Socket, buffered: number): void {
    const conn = ws.getUserData().conn;
    // Counted as a slow reader's close even if the network drops it first (remove() looks at the strikes).
    if (conn.slowCheck !== this.checks) {
      conn.slowStrikes = 1;
      conn.slowCheck = this.checks;
    }
    this.metrics.backpressureCloses.inc();
    this.log.info({ userId: conn.userId, connectionId: conn.id, buffered }, 'closing a slow consumer');
    ws.end(CloseCode.SLOW_CONSUMER, 'slow consumer: read faster or subscribe to less');
  }

  /**
   * One frame to every open connection (the heartbeat). A loop here rather than a topic every connection
   * joins: a uWS subscription costs memory per connection (~90 bytes) and a call per handshake.
   */
  sendAll(frame: string): void {
    this.byUser.forEach((ws) => {
      if (!ws.getUserData().conn.closed) ws.send(frame);
    });
  }

  /** Closes every connection of a user on this node; returns how many. */
  disconnect(userId: string, code: number, reason: string): number {
    const sockets = this.byUser.of(userId);
    for (const ws of sockets) ws.end(code, reason);
    if (sockets.length > 0) this.log.info({ userId, code, closed: sockets.length }, 'user disconnected by the backend');
    return sockets.length;
  }

  /**
   * Ends a user's subscription to a topic on this node (a revocation): each connection subscribed to it, or
   * joining it, is told `unsubscribed` (SUBSCRIPTION_REVOKED) and stops receiving it, in the same turn, so
   * that no event of the topic reaches it after the notice. Returns how many connections were subscribed.
   */
  unsubscribe(userId: string, topic: string, reason: string, left?: (ws: Socket, topic: string) => void): number {
    let frame: string | undefined;
    let n = 0;
    this.byUser.each(userId, (ws) => {
      const conn = ws.getUserData().conn;
      // A join in progress is in `subscriptions` before uWS subscribes it: it sees the topic gone and leaves.
      if (conn.closed || (conn.subscriptions?.has(topic) !== true && !ws.isSubscribed(topic))) return;
      frame ??= eventFrame('unsubscribed', topic, { topic, code: ErrorCode.SUBSCRIPTION_REVOKED, reason });
      ws.cork(() => {
        ws.send(frame!);
        conn.subscriptions?.delete(topic);
        ws.unsubscribe(topic);
      });
      left?.(ws, topic);
      n++;
    });
    if (n > 0) this.log.info({ userId, topic, unsubscribed: n }, 'subscription revoked by the backend');
    return n;
  }

  /**
   * Closes this node's subscribers of a topic: at once for a personal topic (its user's sockets), else in one
   * pass over every socket per event-loop turn, however many topics are closed in that turn.
   */
  closeSubscribers(topic: string, code: number, reason: string): void {
    if (topic.startsWith('user:')) {
      for (const ws of this.byUser.of(topic.slice(5))) ws.end(code, reason);
      return;
    }
    if (this.closing === undefined) {
      const topics = new Set<string>();
      this.closing = topics;
      setImmediate(() => {
        this.closing = undefined;
        this.byUser.forEach((ws) => {
          if (!ws.getUserData().conn.closed && ws.getTopics().some((t) => topics.has(t))) ws.end(code, reason);
        });
      });
    }
    this.closing.add(topic);
  }

  /** Closes everything with SHUTDOWN in batches, every 50 ms, so that all clients do not reconnect at once. */
  drain(drainMs: number): Promise<void> {
    const sockets: Socket[] = [];
    this.byUser.forEach((ws) => {
      sockets.push(ws);
    });
    const steps = Math.max(1, Math.floor(drainMs / 50));
    const perStep = Math.ceil(sockets.length / steps);
    return new Promise((resolve) => {
      const step = () => {
        for (const ws of sockets.splice(0, perStep)) if (!ws.getUserData().conn.closed) ws.end(CloseCode.SHUTDOWN, 'server shutting down');
        if (sockets.length === 0) resolve();
        else setTimeout(step, 50).unref();
      };
      step();
    });
  }
}
