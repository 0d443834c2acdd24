// Delivery receipts: every notification of the personal topic is acknowledged with `notifications:received`
// (protocol.md section 15), batched per epoch, so that the server's push fallback does not push what a device got.
import type { Clock } from './types.js';

/** Offsets in one `notifications:received` (the server's MAX_RECEIPTS). */
export const RECEIPT_BATCH = 100;
/** How long offsets are gathered before they are sent: a replay of many notifications becomes a few frames. */
export const RECEIPT_DELAY_MS = 50;
/** Offsets kept while offline (sent on the next connection); past it the oldest epochs go first. */
const KEPT_MAX = 1000;

export class Receipts {
  /** Offsets not sent yet, by epoch, in arrival order. */
  private readonly pending = new Map<string, number[]>();
  private size = 0;
  private timer: unknown;
  /** The current connection's server asked for receipts (`connected.receipts`). */
  private wanted = true;

  constructor(
    private readonly clock: Clock,
    /** Writes one frame; false when the socket is not open (the offsets stay pending). */
    private readonly write: (text: string) => boolean,
  ) {}

  /**
   * A connection opened. Only a server with a push fallback asks for receipts; others, older ones included,
   * never see one, and what was kept for them is dropped.
   */
  opened(wanted: boolean): void {
    this.wanted = wanted;
    if (wanted) this.flush();
    else this.clear();
  }

  /** A notification was received at this position of the personal topic. */
  add(epoch: string, offset: number): void {
    if (!this.wanted) return;
    const list = this.pending.get(epoch) ?? [];
    if (list.length === 0) this.pending.set(epoch, list);
    list.push(offset);
    this.size++;
    if (this.size > KEPT_MAX) this.dropOldest();
    if (list.length >= RECEIPT_BATCH) this.send(epoch);
    else this.timer ??= this.clock.setTimeout(() => this.flush(), RECEIPT_DELAY_MS);
  }

  /** Sends every pending batch (called by the timer and on each new connection). No request id: nothing waits for the ack. */
  flush(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    for (const epoch of [...this.pending.keys()]) if (!this.send(epoch)) return;
  }

  /**
   * The socket is gone: the timer stops, the offsets stay for the next connection. A resume does not
   * deliver them again (the client's position is past them), so dropping them would let them be pushed.
   */
  lost(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The client closed for good. */
  clear(): void {
    this.lost();
    this.pending.clear();
    this.size = 0;
  }

  /** Offsets waiting to be sent. */
  get waiting(): number {
    return this.size;
  }

  private send(epoch: string): boolean {
    const list = this.pending.get(epoch);
    if (list === undefined) return true;
    while (list.length > 0) {
      const offsets = list.slice(0, RECEIPT_BATCH);
      if (!this.write(JSON.stringify({ type: 'notifications:received', data: { epoch, offsets } }))) return false;
      list.splice(0, offsets.length);
      this.size -= offsets.length;
    }
    this.pending.delete(epoch);
    return true;
  }

  private dropOldest(): void {
    const [epoch, list] = this.pending.entries().next().value as [string, number[]];
    list.shift();
    this.size--;
    if (list.length === 0) this.pending.delete(epoch);
  }
}
