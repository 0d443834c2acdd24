// The events a node hands to the backend's webhooks: built once, queued for every destination that takes
// their type. A queue that cannot be reached (Redis down) gets them again later from a bounded local buffer;
// one that is full, or a buffer that is, drops them logged and counted, never silently.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { CloseCode } from '../wire/codes.js';
import type { NodeConnection } from '../seams/presence/types.js';
import type { WebhookEvent, WebhookQueue } from '../seams/webhooks/types.js';
import type { WebhookEventType } from './options.js';

export interface Destination {
  readonly queue: WebhookQueue;
  readonly events: ReadonlySet<WebhookEventType>;
}

export interface DropCounter {
  dropped(destination: string, reason: 'full' | 'unavailable'): void;
}

/** `msg_` and 128 random bits, hex: the `webhook-id` receivers drop duplicates by. */
export const webhookId = (): string => `msg_${randomBytes(16).toString('hex')}`;

export class Webhooks {
  private readonly wanted = new Set<string>();
  /** Events whose queue rejected them (unreachable), with their destination, tried again every retryMs. */
  private readonly buffer: { queue: WebhookQueue; event: WebhookEvent }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Named in the connection events (a dead node's `connection.closed` names it, sent by the node that swept it). */
    private readonly nodeId: string,
    private readonly destinations: readonly Destination[],
    private readonly counter: DropCounter,
    private readonly log: Logger,
    private readonly bufferMax = 10_000,
    private readonly retryMs = 1000,
  ) {
    for (const d of destinations) for (const e of d.events) this.wanted.add(e);
  }

  /** Some destination takes this type: callers build nothing for an event nobody takes. */
  wants(type: WebhookEventType): boolean {
    return this.wanted.has(type);
  }

  emit(type: WebhookEventType, data: Record<string, unknown>, ts = Date.now()): void {
    if (!this.wanted.has(type)) return;
    const event: WebhookEvent = { id: webhookId(), type, ts, data };
    for (const d of this.destinations) if (d.events.has(type)) this.offer(d.queue, event);
  }

  /** `connection.opened` / `connection.closed`, with this node's id. */
  connection(type: 'connection.opened' | 'connection.closed', data: { userId: string; connectionId: string; code?: number }): void {
    if (this.wanted.has(type)) this.emit(type, { ...data, nodeId: this.nodeId });
  }

  /** The connections of a dead node, swept by this one: `connection.closed` with 1006 and the dead node's id. */
  connectionsLost(nodeId: string, connections: readonly NodeConnection[]): void {
    if (!this.wanted.has('connection.closed')) return;
    const at = Date.now();
    for (const c of connections) this.emit('connection.closed', { userId: c.userId, connectionId: c.connectionId, nodeId, code: CloseCode.ABNORMAL }, at);
  }

  private offer(queue: WebhookQueue, event: WebhookEvent): void {
    queue.enqueue(event).then(
      (added) => {
        if (added) return;
        this.counter.dropped(queue.name, 'full');
        this.log.error({ destination: queue.name, event }, 'webhook queue full (WEBHOOK_QUEUE_MAX): event dropped');
      },
      (err: unknown) => this.hold(queue, event, err),
    );
  }

  private hold(queue: WebhookQueue, event: WebhookEvent, err: unknown): void {
    if (this.buffer.length >= this.bufferMax) {
      this.counter.dropped(queue.name, 'unavailable');
      this.log.error({ destination: queue.name, event, err }, 'webhook queue unreachable and the local buffer full: event dropped');
      return;
    }
    this.buffer.push({ queue, event });
    this.timer ??= setTimeout(() => this.retry(), this.retryMs).unref();
  }

  private retry(): void {
    this.timer = undefined;
    for (const { queue, event } of this.buffer.splice(0)) this.offer(queue, event);
  }

  /** Events still held locally (a queue was unreachable). */
  get buffered(): number {
    return this.buffer.length;
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
