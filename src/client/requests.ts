// Requests with an id: the pending table settled by ack/error/pong, timeouts, and the bounded offline queue.
import { ClientErrorCode, StorywireError } from './codes.js';
import type { Clock, OfflinePolicy, RequestId } from './types.js';

/** One frame from the server, as parsed; the SDK reads only these fields. */
export interface ServerFrame {
  type: string;
  id?: RequestId;
  topic?: string;
  /** Position of an event on a recoverable topic. */
  epoch?: string;
  offset?: number;
  data?: unknown;
  error?: { code: string; message: string };
  ts?: number;
}

export interface Reply {
  frame: ServerFrame;
  /** clock.now() when the frame was written to the socket, and when its reply arrived. */
  sentAt: number;
  receivedAt: number;
}

interface Pending {
  id: string;
  type: string;
  text: string;
  sent: boolean;
  sentAt: number;
  timer: unknown;
  resolve(r: Reply): void;
  reject(e: StorywireError): void;
}

export interface RequestSpec {
  type: string;
  data: unknown;
  timeoutMs: number;
  offline: OfflinePolicy;
}

export class Requests {
  private readonly pending = new Map<string, Pending>();
  private queue: Pending[] = [];
  private seq = 0;

  constructor(
    private readonly clock: Clock,
    private readonly maxQueue: number,
    /** Writes a frame on the open socket; returns false when there is none. */
    private readonly write: (text: string) => boolean,
  ) {}

  get queued(): number {
    return this.queue.length;
  }

  get inFlight(): number {
    return this.pending.size - this.queue.length;
  }

  /** Sends now when connected, else queues or rejects as spec.offline says; settles on the reply or the timeout. */
  send(spec: RequestSpec, closed: boolean): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      if (closed) {
        reject(new StorywireError(ClientErrorCode.CLOSED, `${spec.type}: the client is closed`, false, false));
        return;
      }
      const id = `c${++this.seq}`;
      const text = JSON.stringify(spec.data === undefined ? { type: spec.type, id } : { type: spec.type, id, data: spec.data });
      const p: Pending = { id, type: spec.type, text, sent: false, sentAt: 0, timer: undefined, resolve, reject };
      if (!this.transmit(p)) {
        if (spec.offline === 'reject') {
          reject(new StorywireError(ClientErrorCode.NOT_CONNECTED, `${spec.type}: not connected`, false, false));
          return;
        }
        if (this.queue.length >= this.maxQueue) {
          reject(new StorywireError(ClientErrorCode.QUEUE_FULL, `${spec.type}: not connected and the offline queue holds ${this.maxQueue} requests already`, false, false));
          return;
        }
        this.queue.push(p);
      }
      this.pending.set(id, p);
      p.timer = this.clock.setTimeout(() => this.expire(p, spec.timeoutMs), spec.timeoutMs);
    });
  }

  /** Settles the request a reply belongs to; false when the frame is not a reply we wait for. */
  settle(frame: ServerFrame): boolean {
    if (frame.id === undefined || (frame.type !== 'ack' && frame.type !== 'error' && frame.type !== 'pong')) return false;
    const p = this.pending.get(String(frame.id));
    if (!p?.sent) return false;
    this.finish(p);
    if (frame.type === 'error') {
      const e = frame.error ?? { code: 'INTERNAL', message: 'error without detail' };
      p.reject(new StorywireError(e.code, `${p.type}: ${e.message}`, true, true));
    } else {
      p.resolve({ frame, sentAt: p.sentAt, receivedAt: this.clock.now() });
    }
    return true;
  }

  /** Writes the queued requests, oldest first, on a fresh connection. */
  flush(): void {
    const queue = this.queue;
    this.queue = [];
    for (let i = 0; i < queue.length; i++) {
      if (!this.transmit(queue[i]!)) {
        // The socket went away mid-flush: keep the rest, in order, for the next connection.
        this.queue = queue.slice(i).concat(this.queue);
        return;
      }
    }
  }

  /** The connection dropped: requests already written cannot be answered any more; queued ones wait. */
  connectionLost(): void {
    for (const p of [...this.pending.values()]) {
      if (!p.sent) continue;
      this.finish(p);
      p.reject(new StorywireError(ClientErrorCode.DISCONNECTED, `${p.type}: the connection dropped before the reply; it may or may not have been applied`, false, true));
    }
  }

  /** The client is closed for good: everything outstanding is rejected. */
  rejectAll(why: string): void {
    for (const p of [...this.pending.values()]) {
      this.finish(p);
      p.reject(new StorywireError(ClientErrorCode.CLOSED, `${p.type}: ${why}`, false, p.sent));
    }
    this.queue = [];
  }

  private transmit(p: Pending): boolean {
    if (!this.write(p.text)) return false;
    p.sent = true;
    p.sentAt = this.clock.now();
    return true;
  }

  private expire(p: Pending, timeoutMs: number): void {
    if (!this.pending.has(p.id)) return;
    this.finish(p);
    const what = p.sent ? 'no reply' : 'still not connected, so it was not sent';
    p.reject(new StorywireError(ClientErrorCode.TIMEOUT, `${p.type}: ${what} within ${timeoutMs} ms`, false, p.sent));
  }

  private finish(p: Pending): void {
    this.pending.delete(p.id);
    this.clock.clearTimeout(p.timer);
    const i = this.queue.indexOf(p);
    if (i >= 0) this.queue.splice(i, 1);
  }
}
