// The webhook queue in this process (one node): a FIFO bounded by maxDepth and the set of events handed out.
// There is no other consumer to take over, so claimIdleMs is unused; what is queued or held is lost with the
// process.
import type { HeldEvent, WebhookEvent, WebhookQueue, WebhookQueueOptions } from './types.js';

export class MemoryWebhookQueue implements WebhookQueue {
  /** Not handed out yet, oldest first from `head` (shifting an array per take is O(n)). */
  private waiting: WebhookEvent[] = [];
  private head = 0;
  /** Handed out, until ack(): event id -> attempts recorded. */
  private readonly held = new Map<string, { event: WebhookEvent; attempts: number }>();

  constructor(
    readonly name: string,
    private readonly options: WebhookQueueOptions,
  ) {}

  private get waitingCount(): number {
    return this.waiting.length - this.head;
  }

  async enqueue(event: WebhookEvent): Promise<boolean> {
    return this.offer(event);
  }

  /** There is room for one more event (the push store checks every destination before it takes anything). */
  hasRoom(): boolean {
    return this.waitingCount + this.held.size < this.options.maxDepth;
  }

  /** enqueue() in the turn: false, adding nothing, when full. */
  offer(event: WebhookEvent): boolean {
    if (!this.hasRoom()) return false;
    this.waiting.push(event);
    return true;
  }

  async take(n: number): Promise<HeldEvent[]> {
    const out: HeldEvent[] = [];
    while (out.length < n && this.head < this.waiting.length) {
      const event = this.waiting[this.head++]!;
      const h = { event, attempts: 0 };
      this.held.set(event.id, h);
      out.push(h);
    }
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  async ack(id: string): Promise<void> {
    if (this.held.delete(id)) return;
    // Acked before it was taken (not what a sender does): it leaves the queue all the same.
    const i = this.waiting.findIndex((e, j) => j >= this.head && e.id === id);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  async failed(id: string): Promise<number> {
    const h = this.held.get(id);
    if (h === undefined) return 0;
    h.attempts++;
    return h.attempts;
  }

  async depth(): Promise<number> {
    return this.waitingCount + this.held.size;
  }

  async close(): Promise<void> {}
}
