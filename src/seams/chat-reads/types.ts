// The chat-reads seam: how far each member has read each conversation (`chat:read`), counted in the epoch of the
// channel's history it was marked in.
//
// Contract (every implementation; test/chat-reads.test.ts runs it against each):
// - advance(user, channel, epoch, offset) moves the user's read position in the channel forward, never back,
//   and answers the position now and whether it moved. A position kept from another epoch of the channel counts
//   for nothing (offsets restart at 1 in a new epoch): the new one replaces it. Offset 0 stores nothing.
// - get(user, channels) answers, in the order asked, each channel's read position in the epoch given with it:
//   0 for a channel never marked, or marked in another epoch.
// - Users and channels are apart: one user's positions are never another's, one channel's never another's.
// - Bounded (memory: the positions kept, the least recently marked forgotten first; Redis: one hash per user,
//   kept the longest history TTL of the channels it was written for after its last write). A store that cannot
//   be reached rejects with UNAVAILABLE.

export interface ReadPosition {
  readonly channel: string;
  /** The channel's epoch now (its history's): a position of another epoch reads as 0. */
  readonly epoch: string;
}

export interface Advanced {
  /** The read position now (at least what was asked). */
  readonly offset: number;
  /** False when the position was already at or past the one asked (nothing changed). */
  readonly moved: boolean;
}

export interface ChatReadStore {
  /** `ttlMs`: how long the position is kept after this write (the channel's history TTL). */
  advance(userId: string, channel: string, epoch: string, offset: number, ttlMs: number): Promise<Advanced>;
  get(userId: string, channels: readonly ReadPosition[]): Promise<number[]>;
}
