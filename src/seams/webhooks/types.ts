// The webhook-queue seam: events waiting to be sent to one destination (an endpoint of the app's backend),
// each handed to one sender at a time, cluster-wide, until it is acknowledged.
//
// Contract (every implementation; test/webhook-queue.test.ts runs it against each):
// - enqueue() adds an event at the tail; it resolves false, adding nothing, when `maxDepth` events are
//   already queued (the caller counts and logs it: never dropped silently).
// - take(n) hands out up to n events nobody holds, oldest first; the caller now holds them. An event is
//   held until ack() (sent, or given up: it leaves the queue); a failed attempt leaves it held by the
//   caller, who calls take() no more for it and retries it itself after its back-off.
// - A held event whose holder stopped renewing it (its node died: cluster) for `claimIdleMs` is handed out
//   again by take() of another consumer, with `attempts` as recorded by failed() so far.
// - failed(id) records one failed attempt (persisted in a cluster, so a takeover continues the count) and
//   resolves the number of attempts made so far.
// - depth() counts events queued, held or not.
// - The memory implementation holds everything in this process; the Redis one is a Stream with a consumer
//   group (one consumer per node), so each event goes to one node and a dead node's events to another.

export interface WebhookEvent {
  /** Stable across retries and takeovers: the receiver drops duplicates by it (`webhook-id`). */
  readonly id: string;
  /** `user.online`, `user.offline`, `notification.unread`, ... */
  readonly type: string;
  /** When the event happened, ms since the epoch (the body's `timestamp`). */
  readonly ts: number;
  readonly data: Readonly<Record<string, unknown>>;
}

export interface HeldEvent {
  readonly event: WebhookEvent;
  /** Failed attempts made before this hand-out (0 for a new event). */
  readonly attempts: number;
}

export interface WebhookQueueOptions {
  /** WEBHOOK_QUEUE_MAX: events queued at most. */
  readonly maxDepth: number;
  /** WEBHOOK_CLAIM_IDLE_MS: a held event not renewed for this long is handed to another consumer. */
  readonly claimIdleMs: number;
}

export interface WebhookQueue {
  /** The destination this queue feeds (`app`, `push`). */
  readonly name: string;
  enqueue(event: WebhookEvent): Promise<boolean>;
  take(n: number): Promise<HeldEvent[]>;
  ack(id: string): Promise<void>;
  /** Records one failed attempt; resolves the attempts made so far. */
  failed(id: string): Promise<number>;
  depth(): Promise<number>;
  /** Stops renewing what this consumer holds (cluster: left for another node after claimIdleMs). */
  close(): Promise<void>;
}

/** A cluster's queue (its stream in Redis), which also takes an event already in its documented JSON. */
export interface ClusterWebhookQueue extends WebhookQueue {
  /** enqueue() of the event's JSON, `{"id","type","ts","data"}` (the push store's, made in Lua). */
  enqueueJson(json: string): Promise<boolean>;
}
