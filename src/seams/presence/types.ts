// The presence seam: connections per user across every node, and the online/offline transitions they make.
//
// Contract (every implementation; test/presence.test.ts runs it against each):
// - add() resolves true exactly when the user's first connection anywhere registers and the user was not
//   "leaving" (its last connection closed less than the grace period ago): the caller emits `user:online`.
// - remove() resolves true exactly when the user's last connection anywhere leaves: the user is now
//   "leaving" (still reported online) and the caller calls settle(userId, connectionId) after the grace.
//   Removing a connection that is not registered (twice, or never added) changes nothing.
// - settle() resolves true exactly once per leave, cluster-wide, when the user still has no connection and
//   no later leave replaced this one: the caller emits `user:offline`.
// - online() reports users with a connection or leaving; count() counts open connections on every node.
// - Transitions the store finds by itself (the connections of a crashed node removed by a surviving node,
//   a leave whose node died before settling it, a user re-registered after an outage) are reported once,
//   cluster-wide, through onChange; the node that receives them emits the events.
// - The connections of a crashed node, removed by a surviving node, are reported once, cluster-wide, through
//   onConnectionsLost (the `connection.closed` webhooks its node could not send). In one process: never.
// - add() and remove() never fail because the store is down: the change is applied when it is back.
//   online() and count() reject then (the caller answers UNAVAILABLE).

export type PresenceChange = (type: 'user:online' | 'user:offline', userId: string) => void;

/** One connection of a node, as presence registers it. */
export interface NodeConnection {
  readonly userId: string;
  readonly connectionId: string;
}

/** The connections a dead node left, removed from presence by the node that swept it. */
export type ConnectionsLost = (nodeId: string, connections: readonly NodeConnection[]) => void;

export interface PresenceStore {
  /** add() and remove() answer at once when the store is in this process (memory). */
  add(userId: string, connectionId: string): boolean | Promise<boolean>;
  remove(userId: string, connectionId: string): boolean | Promise<boolean>;
  settle(userId: string, connectionId: string): Promise<boolean>;
  /** The subset of userIds with at least one connection, or leaving, in no particular order. */
  online(userIds: readonly string[]): Promise<string[]>;
  /** Open connections of one user, on every node. */
  count(userId: string): Promise<number>;
  onChange(handler: PresenceChange): void;
  onConnectionsLost(handler: ConnectionsLost): void;
}
