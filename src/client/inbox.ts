// Keeps the notification store in step with the server's inbox: refilled on every connection (and retried while
// the server cannot answer), reads kept until the server acknowledges them, other devices' reads applied.
import { backoffDelay, type ResolvedReconnect } from './backoff.js';
import { ClientErrorCode, ServerErrorCode, type StorywireError } from './codes.js';
import type { InboxPage, NotificationStore, ReadOverrides } from './store.js';
import type { Clock, NotificationsReadEvent, RequestOptions } from './types.js';

type Request = <T>(type: string, data: unknown, opts: RequestOptions) => Promise<T>;
type ReadChange = { id: string } | { all: true };

/** Failures that mean "not now, try again": retried with backoff while connected, and on the next connection. */
const RETRY: ReadonlySet<string> = new Set([ServerErrorCode.UNAVAILABLE, ServerErrorCode.RATE_LIMITED, ClientErrorCode.TIMEOUT]);
/** The connection is gone: the next one refills and sends again. */
const GONE: ReadonlySet<string> = new Set([ClientErrorCode.NOT_CONNECTED, ClientErrorCode.DISCONNECTED, ClientErrorCode.CLOSED]);

/** Delays between retries of a refill or of reads while connected: full jitter, capped. */
export const INBOX_RETRY: ResolvedReconnect = Object.freeze({
  minDelayMs: 250,
  maxDelayMs: 10_000,
  factor: 2,
  maxAttempts: Number.POSITIVE_INFINITY,
  stableAfterMs: 0,
});

const ALL = '\u0000all';

/** What was acknowledged or heard while a `notifications:list` was on its way: its answer may predate it. */
interface Seen {
  ids: Set<string>;
  all: boolean;
  upTo: number | undefined;
}

export class InboxSync {
  /** Reads not yet acknowledged by the server (unsent or in flight), by id or ALL: re-applied over every refill. */
  private readonly pending = new Set<string>();
  /** Requests on their way per read (a read may be sent again while a retry is still out). */
  private readonly inFlight = new Map<string, number>();
  private seen: Seen | undefined;
  /** The epoch of the last page merged; an event of another epoch means the server's history was renewed. */
  private epoch: string | undefined;
  private refillingFor: string | undefined;
  private historySize: number | undefined;
  /** false once the server answered UNKNOWN_TYPE to `notifications:list`: the store is local only. */
  private supported = true;
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private refillTimer: unknown;
  private refillAttempt = 0;
  private readTimer: unknown;
  private readAttempt = 0;

  constructor(
    private readonly store: NotificationStore,
    private readonly request: Request,
    private readonly isConnected: () => boolean,
    /** Failures nobody awaits (the automatic refill, reads made through the store). */
    private readonly report: (err: StorywireError) => void,
    private readonly clock: Clock,
    private readonly retry: ResolvedReconnect = INBOX_RETRY,
  ) {
    store.bindSync((change) => {
      this.send(change).catch((err: StorywireError) => this.report(err));
    });
  }

  /** Reads the server has not acknowledged yet (tests, harnesses): they are kept and sent again until it does. */
  get unacknowledged(): number {
    return this.pending.size;
  }

  /** A refill is on its way or waiting for its retry. */
  get refilling(): boolean {
    return this.running !== undefined || this.refillTimer !== undefined;
  }

  /** A connection opened: refill, and send every read still waiting (both retried while the server cannot answer). */
  opened(historySize: unknown): void {
    this.historySize = typeof historySize === 'number' && historySize > 0 ? historySize : undefined;
    this.store.serverKeeps(this.historySize);
    this.cancelTimers();
    this.refillAttempt = 0;
    this.readAttempt = 0;
    this.autoLoad();
    this.flushReads();
  }

  /** The connection dropped or the client closed: nothing is retried until the next connection. */
  lost(): void {
    this.cancelTimers();
  }

  /** load(), with failures retried (UNAVAILABLE, TIMEOUT, RATE_LIMITED) or reported; a lost connection is neither. */
  autoLoad(): void {
    this.load().then(
      () => (this.refillAttempt = 0),
      (err: StorywireError) => {
        if (RETRY.has(err.code)) this.scheduleRefill();
        else if (!GONE.has(err.code)) this.report(err);
      },
    );
  }

  /**
   * Refills the store from `notifications:list`. Called while a refill is on its way, it runs one more after
   * it (the reason for calling may postdate the first answer). A server without an inbox (`UNKNOWN_TYPE`)
   * leaves the store as it is: local only, as with the seed.
   */
  load(): Promise<void> {
    if (!this.running) return this.start();
    this.queued ??= this.running.then(noop, noop).then(() => {
      this.queued = undefined;
      return this.start();
    });
    return this.queued;
  }

  /**
   * Tells the server (already applied to the store). Resolves with the unread count: the server's, or the
   * store's when the read waits (offline, or the server cannot take it now: it is sent again) or the server
   * has no inbox.
   */
  send(change: ReadChange): Promise<number> {
    const key = 'all' in change ? ALL : change.id;
    this.pending.add(key);
    if (!this.isConnected()) return Promise.resolve(this.store.unreadCount);
    return this.transmit(key);
  }

  /** Another device read notifications. */
  remote(e: NotificationsReadEvent): void {
    if (this.seen) {
      for (const id of e.ids ?? []) this.seen.ids.add(id);
      if (typeof e.allUpTo === 'number') this.seen.upTo = Math.max(this.seen.upTo ?? 0, e.allUpTo);
    }
    this.check(this.store.applyRemoteRead(e));
  }

  /** An event of the user's topic at (epoch, offset): a new epoch means the inbox was renewed (refill); old offsets fall out of it. */
  position(epoch: string, offset: number): void {
    if (!this.supported) return;
    if (this.epoch !== undefined && epoch !== this.epoch) {
      if (this.refillingFor !== epoch) {
        this.refillingFor = epoch;
        this.autoLoad();
      }
      return;
    }
    if (this.historySize !== undefined) this.store.trim(epoch, offset - this.historySize);
  }

  // ---- refill ----

  private start(): Promise<void> {
    const p = this.fetch().finally(() => {
      if (this.running === p) this.running = undefined;
    });
    this.running = p;
    return p;
  }

  private async fetch(): Promise<void> {
    const seen: Seen = { ids: new Set(), all: false, upTo: undefined };
    this.seen = seen;
    let page: InboxPage;
    try {
      page = await this.request<InboxPage>('notifications:list', { limit: inboxLimit(this.store.capacity, this.historySize) }, { offline: 'reject' });
    } catch (err) {
      if ((err as StorywireError).code === ServerErrorCode.UNKNOWN_TYPE) {
        this.supported = false;
        return;
      }
      throw err;
    } finally {
      if (this.seen === seen) this.seen = undefined;
    }
    const renewed = this.epoch !== undefined && page.epoch !== this.epoch;
    const overrides: ReadOverrides = {
      ids: [...this.pending, ...seen.ids].filter((k) => k !== ALL),
      all: this.pending.has(ALL) || seen.all,
      // Another device's "all up to" is an offset of the epoch it was sent in: meaningless across a renewal.
      ...(seen.upTo !== undefined && !renewed ? { upTo: seen.upTo } : {}),
    };
    this.store.merge(page, overrides);
    this.supported = true;
    if (typeof page.epoch === 'string') this.epoch = page.epoch;
    this.refillingFor = undefined;
    // A "mark all read" acknowledged while the page was on its way covers an offset the client does not know:
    // ask once more so that what arrived after it shows unread again.
    if (seen.all && !this.pending.has(ALL)) this.autoLoad();
  }

  private scheduleRefill(): void {
    if (this.refillTimer !== undefined || !this.isConnected()) return;
    this.refillTimer = this.clock.setTimeout(() => {
      this.refillTimer = undefined;
      if (this.isConnected()) this.autoLoad();
    }, backoffDelay(this.refillAttempt++, this.retry, this.clock.random));
  }

  // ---- reads ----

  private async transmit(key: string): Promise<number> {
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    let ack: { unreadCount: number };
    try {
      ack = await this.request<{ unreadCount: number }>('notifications:read', key === ALL ? { all: true } : { id: key }, { offline: 'reject' });
    } catch (err) {
      return this.failed(key, err as StorywireError);
    } finally {
      const n = (this.inFlight.get(key) ?? 1) - 1;
      if (n > 0) this.inFlight.set(key, n);
      else this.inFlight.delete(key);
    }
    this.pending.delete(key);
    this.readAttempt = 0;
    if (this.seen) {
      if (key === ALL) this.seen.all = true;
      else this.seen.ids.add(key);
    }
    this.check(this.store.serverUnread(ack.unreadCount));
    return ack.unreadCount;
  }

  private failed(key: string, err: StorywireError): number {
    if (RETRY.has(err.code)) {
      this.scheduleReads();
      return this.store.unreadCount;
    }
    // Lost with the connection: kept, sent again on the next one (after close(), on connect()).
    if (err.code === ClientErrorCode.DISCONNECTED || err.code === ClientErrorCode.NOT_CONNECTED) return this.store.unreadCount;
    if (err.code === ClientErrorCode.CLOSED) throw err;
    this.pending.delete(key);
    if (err.code === ServerErrorCode.UNKNOWN_TYPE) return this.store.unreadCount;
    // NOT_FOUND: the server no longer holds it (out of its history, or its history was lost): nothing to mark
    // there, and the store holds something the server does not: refill. Any other refusal (a bug, a
    // permission) was not applied: the refill shows the server's state again, and the error is the caller's.
    this.autoLoad();
    if (err.code === ServerErrorCode.NOT_FOUND) return this.store.unreadCount;
    throw err;
  }

  private scheduleReads(): void {
    if (this.readTimer !== undefined || !this.isConnected()) return;
    this.readTimer = this.clock.setTimeout(() => {
      this.readTimer = undefined;
      this.flushReads();
    }, backoffDelay(this.readAttempt++, this.retry, this.clock.random));
  }

  /** Sends every waiting read that is not on its way already. */
  private flushReads(): void {
    if (!this.isConnected()) return;
    for (const key of [...this.pending]) {
      if (this.inFlight.has(key)) continue;
      this.transmit(key).catch((e: StorywireError) => this.report(e));
    }
  }

  /** The server's count differed from the store's: refill, unless reads or a refill are still on their way (they settle it). */
  private check(consistent: boolean): void {
    if (consistent || this.pending.size > 0 || this.running) return;
    this.autoLoad();
  }

  private cancelTimers(): void {
    if (this.refillTimer !== undefined) this.clock.clearTimeout(this.refillTimer);
    if (this.readTimer !== undefined) this.clock.clearTimeout(this.readTimer);
    this.refillTimer = undefined;
    this.readTimer = undefined;
  }
}

function noop(): void {}

/**
 * The page to ask for: the whole inbox (the server keeps at most `historySize`) when that is more than the store
 * shows, so the unread ones beyond the store are known by id and offset and its count stays exact.
 */
export function inboxLimit(capacity: number, historySize: number | undefined): number {
  return Math.min(Math.max(capacity, historySize ?? 0), 1000);
}
