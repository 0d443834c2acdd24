// The history seam: bounded, offset-numbered history of recoverable topics.
//
// Contract (every implementation; test/history.test.ts runs it against each):
// - An append to a topic gives it the next offset (1, 2, 3, ... within one epoch), stores the frame
//   `head + ',"epoch":"<epoch>","offset":<offset>' + tail` (wire/position.ts) and returns it; offsets of one
//   topic are assigned in the order appends are made and never reused within an epoch. With
//   `ifStreamExists`, an append to a topic that has no history yet stores nothing (and creates nothing).
//   Reads (position, since, latest) never create a topic's history. Who appends is
//   declared: a local history numbers in this process (`append`); a cluster history is appended to by its
//   backplane, in the same atomic step as the publication (ClusterBackplane.publishRecorded).
// - A topic's epoch changes whenever its history may have been lost (a new in-memory process, a topic
//   evicted, a Redis key expired). A client position from another epoch can never be recovered, except
//   offset 0 of the epoch a topic with no history was told in, which recovers the history that began after
//   it (from its first event, while that is held; Redis: when it began in the same HISTORY_TTL period).
//   A topic with nothing yet has offset 0.
// - since(topic, epoch, offset, upTo) returns the stored frames with offset in (offset, upTo], in order,
//   when the epoch matches and none of them has been trimmed; otherwise `recovered: false`.
// - History is bounded by a count and an age per topic, by a share of the count for user-sent events
//   (RecordOptions.user: past it the topic's oldest user-sent one goes, never another), and by
//   HISTORY_MAX_BYTES over every topic (the oldest user-sent event anywhere first, then the oldest of any);
//   what falls out is gone for good, and a resume from before it, or across it, is not recovered.
// - An entry appended with a key is found by entry(topic, key) while it is held (not trimmed, not expired), in
//   its latest state: an append with `replace` swaps a held entry's frame for a new one in the same step (same
//   offset; since and latest answer the new frame), only if the entry is still the frame that was read; if not,
//   nothing is appended and `replace.done` is false. A history of the same process (memory) and the cluster's
//   (Redis) both keep keys and replace; one numbered here but read through a round trip need not.
// Read state of the notifications in `user:<id>`'s history is its own seam (seams/readstate).

export interface Position {
  epoch: string;
  offset: number;
}

export interface Appended extends Position {
  frame: string;
}

/** An append that asks to be stored only into a topic that already has a history (a stream). */
export interface RecordOptions {
  readonly ifStreamExists?: boolean;
  /**
   * A user-sent event (a client's notification): a topic holds at most its history's user share of them, the
   * oldest user-sent one dropped first, so that user-sent events never push out the others.
   */
  readonly user?: boolean;
  /** The entry's key (a chat message's id): entry() finds it by that key while the history holds it. */
  readonly key?: string;
  /** An entry replaced in the same step (a chat edit or deletion): when it cannot be, nothing is appended. */
  readonly replace?: Replacement;
}

/**
 * A held entry to replace when an event is appended: found by its key, it must still be what was read (a
 * concurrent change, or its trim, makes the replacement fail and the append with it).
 */
export interface Replacement {
  readonly key: string;
  /** The entry's frame as entry() answered it. */
  readonly expect: string;
  /** Its new frame: same epoch and offset (the position is part of the frame). */
  readonly frame: string;
  /** Set by the append: true when replaced (and the event appended), false when nothing was done. */
  done?: boolean;
}

/** What a cluster's publishRecorded answers when `ifStreamExists` found no history: nothing stored or sent. */
export const NO_STREAM = 'no-stream' as const;
export type NoStream = typeof NO_STREAM;

export interface Replay {
  recovered: boolean;
  /** Frames in (since, upTo] when recovered, oldest first; empty otherwise. */
  frames: string[];
  /** The topic's position now (the epoch a client should keep). */
  position: Position;
}

/** What every history answers, asynchronously (a store may be a round trip away). */
export interface HistoryReads {
  /** For logs. */
  readonly kind: string;
  /** The topic's current position (offset 0 for a topic with nothing yet). */
  position(topic: string): Promise<Position>;
  since(topic: string, epoch: string, offset: number, upTo: number): Promise<Replay>;
  /** The newest `limit` stored frames of a topic, newest first. */
  latest(topic: string, limit: number): Promise<string[]>;
  /** The entry stored under a key (RecordOptions.key), in its latest state, while the history holds it. */
  entry(topic: string, key: string): Promise<Appended | undefined>;
  close(): Promise<void>;
}

/** The same two answers in the same turn, from a history held in this process. */
export interface InTurnReads {
  position(topic: string): Position;
  since(topic: string, epoch: string, offset: number, upTo: number): Replay;
}

/**
 * A history in this process (memory): a frame is numbered and delivered in the same turn, and `now` reads it
 * in the same turn too, so a join reads, replays and subscribes in one turn with nothing to buffer.
 */
export interface InTurnHistory extends HistoryReads {
  readonly appends: 'local';
  readonly sync: true;
  append(topic: string, head: string, tail: string): Appended;
  /** Undefined when `ifStreamExists` found no history for the topic (nothing stored). */
  append(topic: string, head: string, tail: string, options: RecordOptions): Appended | undefined;
  readonly now: InTurnReads;
}

/** A history this node numbers by itself but reads through a round trip: a join buffers meanwhile. */
export interface AsyncLocalHistory extends HistoryReads {
  readonly appends: 'local';
  readonly sync: false;
  /** Has no `ifStreamExists`: PubSub delivers such an event live only (it cannot tell a stream exists). */
  append(topic: string, head: string, tail: string): Appended | Promise<Appended>;
}

/** The history of a single node: this node numbers every frame. */
export type LocalHistory = InTurnHistory | AsyncLocalHistory;

/** The history the nodes of a cluster share: appended to only by the backplane (publishRecorded). */
export interface ClusterHistory extends HistoryReads {
  readonly appends: 'backplane';
}

export type HistoryStore = LocalHistory | ClusterHistory;
