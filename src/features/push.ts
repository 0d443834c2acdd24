// The push fallback (protocol.md section 15): every stored notification is tracked until a device says it
// received it (`notifications:received`) or the user reads it; one that no device received within
// PUSH_DELAY_MS (or read within PUSH_UNREAD_DELAY_MS) becomes, with the others of that user due by then, one
// `notification.unread` event for the push sender. The store decides, cluster-wide, which node makes it.
import type { Logger } from 'pino';
import type { Position } from '../seams/history/types.js';
import type { PushRead, PushStore, PushTarget } from '../seams/pushes/types.js';
import type { Notification } from './notifications.js';

export interface PushOptions {
  /** PUSH_DELAY_MS */
  delayMs: number;
  /** PUSH_UNREAD_DELAY_MS (0: off) */
  unreadDelayMs: number;
  /** How often due pushes are looked for (their lateness at most). */
  pollMs: number;
  /** Users whose pushes one poll makes at most (the rest at the next poll). */
  batch: number;
}

export interface PushCounters {
  /** A tracking, receipt or read write that failed (the store is down): that notification may be pushed or not. */
  failed(op: 'track' | 'received' | 'read' | 'flush'): void;
  made(events: number): void;
}

export class Push {
  private timer: NodeJS.Timeout | undefined;
  private flushing = false;

  constructor(
    private readonly store: PushStore,
    private readonly target: PushTarget,
    private readonly options: PushOptions,
    private readonly counters: PushCounters,
    private readonly log: Logger,
  ) {}

  /** sendNotification's onStored: the notification is pending from now on (an arrow: handed around as is). */
  readonly stored = (userId: string, at: Position, n: Notification): void => {
    const tracked = { epoch: at.epoch, offset: at.offset, id: n.id, json: JSON.stringify(n) };
    this.store.track(userId, tracked, n.ts + this.options.delayMs).catch((err: unknown) => this.failed('track', userId, err));
  };

  /** A device received these notifications of the user's personal topic. */
  async received(userId: string, epoch: string, offsets: readonly number[]): Promise<void> {
    const now = Date.now();
    // Pushed as unread later (a reminder) only when that delay is on; measured from the receipt, so that a
    // notification received late is not pushed at once.
    const unreadDueAt = this.options.unreadDelayMs === 0 ? undefined : now + this.options.unreadDelayMs;
    await this.store.received(userId, epoch, offsets, now, unreadDueAt).catch((err: unknown) => this.failed('received', userId, err));
  }

  /** The user read one notification, or everything up to an offset of an epoch. */
  read(userId: string, change: PushRead): void {
    this.store.read(userId, change).catch((err: unknown) => this.failed('read', userId, err));
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.options.pollMs);
    this.timer.unref();
  }

  /** Makes the pushes due now; one flush at a time per node. */
  async flush(now = Date.now()): Promise<number> {
    if (this.flushing) return 0;
    this.flushing = true;
    try {
      let made = 0;
      // A full batch may leave more due users: go on while batches come back full.
      for (;;) {
        const n = await this.store.flushDue(now, this.options.batch, this.target);
        made += n;
        if (n < this.options.batch) break;
      }
      if (made > 0) this.counters.made(made);
      return made;
    } catch (err) {
      this.failed('flush', undefined, err);
      return 0;
    } finally {
      this.flushing = false;
    }
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private failed(op: 'track' | 'received' | 'read' | 'flush', userId: string | undefined, err: unknown): void {
    this.counters.failed(op);
    this.log.warn({ err, userId, op }, 'push tracking: the store could not be written');
  }
}
