// The channel presence seam: which users are subscribed to a channel now, on every node (presence:channel).
//
// Contract (every implementation; test/channel-presence-store.test.ts runs it against each):
// - add(channel, userId, connectionId) counts one connection of a user in a channel; remove() uncounts it.
//   Both are idempotent per connection: adding twice counts once, removing an unknown connection changes nothing.
// - read(channel, max) resolves with `count`, the distinct users with at least one counted connection (a user
//   with two devices counts once), and `members`, at most `max` of those users (none for max 0), each once.
//   When count > max the members are some `max` of them, no order promised.
// - The channels of one node are its own: a node's connections are counted until it removes them, or, when it
//   dies, until the cluster sweeps its share (with the user presence store's lease and sweep).
// - add() and remove() never fail because the store is down: the change is applied when it is back. read()
//   rejects then (the caller answers UNAVAILABLE).

export interface ChannelMembers {
  readonly count: number;
  readonly members: readonly string[];
}

export interface ChannelPresenceStore {
  add(channel: string, userId: string, connectionId: string): void | Promise<void>;
  remove(channel: string, userId: string, connectionId: string): void | Promise<void>;
  read(channel: string, max: number): Promise<ChannelMembers>;
}
