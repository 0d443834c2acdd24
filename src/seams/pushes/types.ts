// The push-tracking seam: per user, the stored notifications no device has received (or read) yet, each with
// the time its push falls due; receipts and reads take them out, and due ones leave as one
// `notification.unread` webhook event per user (a digest), once cluster-wide.
//
// Contract (every implementation; test/pushes.test.ts runs it against each):
// - track(userId, n, dueAt) makes n pending, due at dueAt, unless a receipt for its epoch/offset or a read of
//   it was recorded first (a receipt may reach another node before the publishing node tracks it) or the
//   user already has `maxPerUser` pending (the oldest is dropped: counted as `dropped`).
// - received(userId, epoch, offsets, unreadDueAt): each matching pending notification is no longer pending,
//   or, with unreadDueAt (PUSH_UNREAD_DELAY_MS), stays pending until then marked `received: true`. A receipt
//   for one not tracked yet is remembered for `receiptMemoryMs` so that a late track() skips it.
// - read(userId, change): `{id}` takes that notification out; `{epoch, allUpTo}` every one of that epoch at
//   or below allUpTo and every one of another epoch (the user saw everything). A read is remembered like a
//   receipt (an id; the latest {epoch, allUpTo} per user) so that a late track() of one it covers skips it.
// - flushDue(now, max, target): for up to `max` users whose push is due (the due time of their oldest
//   pending notification plus `coalesceMs`), every one of their notifications due by `now` is taken out and
//   handed to the target as one WebhookEvent (pushEvent() below) in the same atomic step (cluster on one
//   Redis: XADD into each destination's stream in the same script; on Redis Cluster: into the partition's
//   outbox in the same script, then into each destination's queue, again after a crash: at least once, same
//   id), so that each is made once, cluster-wide. Resolves how many events reached the target (on Redis
//   Cluster: made now, or taken again from the outbox). A destination queue that is full leaves the user's
//   notifications pending.
import type { WebhookEvent } from '../webhooks/types.js';

/** A stored notification as the push needs it. */
export interface TrackedNotification {
  readonly epoch: string;
  readonly offset: number;
  /** The notification's id (notifications:read {id}). */
  readonly id: string;
  /** The notification as delivered (the frame's `data`), JSON. */
  readonly json: string;
}

export type PushRead = { readonly id: string } | { readonly epoch: string; readonly allUpTo: number };

/** Where due pushes go: the destinations' queues. */
export interface PushTarget {
  /** Destination names (their queues' names): a cluster store on one Redis adds to their streams itself. */
  readonly destinations: readonly string[];
  /** An in-process store hands each event here; false: a queue is full (the notifications stay pending). */
  enqueue(event: WebhookEvent): boolean;
  /**
   * The destinations' cluster queues: a store on Redis Cluster (their streams are on other shards) hands each
   * event (its documented JSON) to every one of them itself.
   */
  readonly queues?: readonly { depth(): Promise<number>; enqueueJson(json: string): Promise<boolean> }[];
}

export interface PushStoreOptions {
  /** PUSH_COALESCE_MS: a user's push waits this long after its oldest notification fell due, gathering the others. */
  readonly coalesceMs: number;
  /** Pending notifications kept per user; past it the oldest is dropped. */
  readonly maxPerUser: number;
  /** How long a receipt or read for a notification not tracked yet is remembered. */
  readonly receiptMemoryMs: number;
}

export interface PushStore {
  /** `now` (default Date.now()): what a remembered receipt's or read's expiry is compared with. */
  track(userId: string, n: TrackedNotification, dueAt: number, now?: number): Promise<void>;
  received(userId: string, epoch: string, offsets: readonly number[], now: number, unreadDueAt?: number): Promise<void>;
  /** `now` (default Date.now()): when a read of a notification not tracked yet is forgotten. */
  read(userId: string, change: PushRead, now?: number): Promise<void>;
  flushDue(now: number, max: number, target: PushTarget): Promise<number>;
  /** Notifications pending over all users (metrics; memory: exact, Redis: an estimate is fine). */
  pending(): Promise<number>;
}

/** The most notifications a push lists in full; `count` says how many there were. */
export const PUSH_MAX_LISTED = 10;

/**
 * The event a due push becomes (both stores build the same; the Redis script mirrors it byte for byte):
 * `{userId, count, notifications: [{epoch, offset, received, notification}]}` newest first, at most
 * PUSH_MAX_LISTED listed. The sender adds `unreadCount` and `online` when it first sends it.
 */
export interface PushItem {
  readonly epoch: string;
  readonly offset: number;
  readonly received: boolean;
  readonly json: string;
}

/**
 * The push event for `items` (newest first, already cut to PUSH_MAX_LISTED) out of `count` taken. Its
 * JSON.stringify is what the Redis store's script writes, byte for byte (the stored JSON is re-parsed here:
 * it was made by JSON.stringify, so it stringifies back to the same bytes).
 */
export function pushEvent(id: string, now: number, userId: string, count: number, items: readonly PushItem[]): WebhookEvent {
  const notifications = items.map((i) => ({ epoch: i.epoch, offset: i.offset, received: i.received, notification: JSON.parse(i.json) as unknown }));
  return { id, type: 'notification.unread', ts: now, data: { userId, count, notifications } };
}
