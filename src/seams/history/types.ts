// The history seam: bounded, offset-numbered history of recoverable topics.
//
// Contract (test/history-memory.test.ts checks the memory store; test/cluster/ the Redis one):
// - append(topic, head, tail) gives the next offset of the topic (1, 2, 3, ... within one epoch), stores
//   the frame `head + ',"epoch":"<epoch>","offset":<offset>' + tail` and returns it; offsets of one topic
//   are assigned in the order appends are made and never reused within an epoch.
// - A topic's epoch changes whenever its history may have been lost (a new in-memory process, a topic
//   evicted, a Redis key expired). A client position from another epoch can never be recovered.
// - since(topic, epoch, offset, upTo) returns the stored frames with offset in (offset, upTo], in order,
//   when the epoch matches and none of them has been trimmed; otherwise `recovered: false`.
// - History is bounded by a count and an age per topic; what falls out is gone for good.
// Read state of the notifications in `user:<id>`'s history is its own seam (seams/readstate).

export interface Position {
  epoch: string;
  offset: number;
}

export interface Appended extends Position {
  frame: string;
}

export interface Replay {
  recovered: boolean;
  /** Frames in (since, upTo] when recovered, oldest first; empty otherwise. */
  frames: string[];
  /** The topic's position now (the epoch a client should keep). */
  position: Position;
}

export interface HistoryStore {
  readonly kind: string;
  /**
   * Synchronous when the store can (memory): the frame is then delivered in the same turn as its offset
   * is taken, which is what lets a join read a position without racing local deliveries.
   */
  append(topic: string, head: string, tail: string): Appended | Promise<Appended>;
  /** The topic's current position (offset 0 for a topic with nothing yet). */
  position(topic: string): Promise<Position>;
  since(topic: string, epoch: string, offset: number, upTo: number): Promise<Replay>;
  /**
   * The same two answers at once, for stores that hold the history in this process: a join then reads,
   * replays and subscribes in one turn, with no buffering of what is published meanwhile.
   */
  readonly now?: {
    position(topic: string): Position;
    since(topic: string, epoch: string, offset: number, upTo: number): Replay;
  };
  /** The newest `limit` stored frames of a topic, newest first. */
  latest(topic: string, limit: number): Promise<string[]>;
  close(): Promise<void>;
}
