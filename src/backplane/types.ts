// The seam between one node and the others: frame transport and presence counts.
//
// Contract (every implementation; test/backplane.test.ts runs it against each):
// - publish(topic, frame) hands a serialized frame to every *other* node that has local interest in
//   the topic; the node that publishes delivers locally itself, so no node delivers its own publish twice.
//   It rejects when the frame cannot be handed over (the caller reports failure, never success).
// - interest(topic, true|false) is called when a topic's local subscriber count goes 0->1 or 1->0.
// - presence counts connections per user across all nodes: add() resolves true exactly when the user's
//   first connection anywhere registers, remove() true exactly when the last one anywhere leaves.

export type FrameHandler = (topic: string, frame: string) => void;

export interface PresenceStore {
  add(userId: string, connectionId: string): Promise<boolean>;
  remove(userId: string, connectionId: string): Promise<boolean>;
  /** The subset of userIds with at least one connection. */
  online(userIds: readonly string[]): Promise<string[]>;
  /** Open connections of one user, on every node. */
  count(userId: string): Promise<number>;
}

export interface Backplane {
  readonly kind: string;
  readonly presence: PresenceStore;
  publish(topic: string, frame: string): Promise<void>;
  interest(topic: string, on: boolean): void;
  onFrame(handler: FrameHandler): void;
  close(): Promise<void>;
}
