// The read-state seam: which notifications of a user's inbox (the history of `user:<id>`) are read.
//
// Contract (every implementation; test/readstate.test.ts runs it against each):
// - get(userId) answers what mark() recorded: every offset at or below `allUpTo` is read, and the ids
//   marked one by one above it. A user never marked has { allUpTo: 0, ids: {} }.
// - mark(userId, { allUpTo }) never lowers `allUpTo` and forgets the ids marked one by one (they are
//   covered); mark(userId, { id }) adds one id.
// - Read state belongs to the current epoch of `user:<id>`: when that topic gets a new epoch, `allUpTo`
//   starts at 0 again (offsets restart at 1, so an old `allUpTo` would mark new notifications read). Ids
//   marked in an older epoch may still be listed: ids are unique, they never name a newer notification.
// - Kept as long as the history it refers to, and no longer: a mark while `user:<id>` has no history stores
//   nothing (there is nothing to read), and read state goes when that history goes (memory: with the topic
//   evicted at HISTORY_MAX_TOPICS; Redis: it expires after the personal topic's history TTL, the user
//   namespace's own when CHANNELS_FILE sets one). So a notification still held never comes back unread, and
//   read state nobody can see takes no room from read state someone can.
// - Bounded (memory: users and ids per user; Redis: by that TTL); a store that cannot be reached rejects
//   with UNAVAILABLE.

export interface ReadState {
  /** Every notification at or below this offset is read. */
  allUpTo: number;
  /** Notification ids read one by one (above allUpTo). */
  ids: ReadonlySet<string>;
}

/** One notification read, or everything up to an offset. */
export type ReadChange = { id: string } | { allUpTo: number };

export interface ReadStateStore {
  get(userId: string): Promise<ReadState>;
  mark(userId: string, change: ReadChange): Promise<void>;
}
