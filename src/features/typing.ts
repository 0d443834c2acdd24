// Typing indicators: relay start once per window, stop on request, on silence (one sweep timer) or on close.
import type { PubSub } from '../pubsub/pubsub.js';
import type { UWS } from '../uws.js';
import { eventFrame } from '../wire/frames.js';

interface Typist {
  userId: string;
  target: string;
  deadline: number;
  ws: UWS.WebSocket<{ conn: TypingOwner }>;
}

/** What typing needs to know of a connection: the keys it is typing under, to stop them at close. */
export interface TypingOwner {
  typing: Set<string> | undefined;
}

export class Typing {
  private readonly active = new Map<string, Typist>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly pubsub: PubSub,
    private readonly timeoutMs: number,
  ) {
    // One timer for all typists; a stop arrives between timeoutMs and timeoutMs + sweep period after the last start.
    this.sweeper = setInterval(() => this.sweep(Date.now()), Math.max(50, Math.min(1000, timeoutMs / 5)));
    this.sweeper.unref();
  }

  /** Returns true when the start was relayed, false when it only extended a running indicator. */
  start(ws: UWS.WebSocket<{ conn: TypingOwner }>, userId: string, target: string): boolean {
    const key = `${userId}\n${target}`;
    const deadline = Date.now() + this.timeoutMs;
    const existing = this.active.get(key);
    if (existing) {
      existing.deadline = deadline;
      if (existing.ws !== ws) this.move(existing, ws, key);
      return false;
    }
    this.active.set(key, { userId, target, deadline, ws });
    this.own(ws, key);
    this.relay('user:typing', userId, target, ws);
    return true;
  }

  stop(ws: UWS.WebSocket<{ conn: TypingOwner }>, userId: string, target: string): boolean {
    const key = `${userId}\n${target}`;
    const t = this.active.get(key);
    if (!t) return false;
    this.end(key, t, ws);
    return true;
  }

  /** The connection closed: stop everything it was typing. */
  closed(ws: UWS.WebSocket<{ conn: TypingOwner }>): void {
    const keys = ws.getUserData().conn.typing;
    if (!keys) return;
    for (const key of keys) {
      const t = this.active.get(key);
      if (t && t.ws === ws) {
        this.active.delete(key);
        this.relay('user:stopped_typing', t.userId, t.target, undefined);
      }
    }
    keys.clear();
  }

  /** Records on the connection that it is typing `key`, so that its close stops it. */
  private own(ws: UWS.WebSocket<{ conn: TypingOwner }>, key: string): void {
    const conn = ws.getUserData().conn;
    conn.typing ??= new Set();
    conn.typing.add(key);
  }

  private move(t: Typist, ws: UWS.WebSocket<{ conn: TypingOwner }>, key: string): void {
    t.ws.getUserData().conn.typing?.delete(key);
    t.ws = ws;
    this.own(ws, key);
  }

  private end(key: string, t: Typist, ws: UWS.WebSocket<{ conn: TypingOwner }> | undefined): void {
    this.active.delete(key);
    t.ws.getUserData().conn.typing?.delete(key);
    this.relay('user:stopped_typing', t.userId, t.target, ws);
  }

  private sweep(now: number): void {
    for (const [key, t] of this.active) if (t.deadline <= now) this.end(key, t, undefined);
  }

  private relay(type: 'user:typing' | 'user:stopped_typing', userId: string, target: string, from: UWS.WebSocket<{ conn: TypingOwner }> | undefined): void {
    // The typist's own connection is left out; its other devices hear it. Typing is best effort
    // across nodes, so a backplane failure is not reported to the typist.
    this.pubsub.emit(type, target, eventFrame(type, target, { userId, target }), from).catch(() => {});
  }

  stopAll(): void {
    clearInterval(this.sweeper);
    this.active.clear();
  }
}
