// The seam between one node and the others: frame transport, node-to-node control, health.
//
// Contract (every implementation; test/backplane.test.ts runs it against each):
//
// Frames
// - publish(topic, frame) hands a serialized frame to every *other* node that has local interest in the
//   topic, exactly once each. The publishing node delivers locally itself, so no node delivers its own
//   publish twice (a node never gets its own frames back through onFrame).
// - publish resolves only when every other node that declared interest in the topic was listening when
//   the frame went out. It rejects, quickly (within about two seconds, never by queueing the frame for
//   later), when that is not known to be true: the shared store is unreachable, an interested node is
//   not listening (reconnecting, or crashed and its lease not yet expired), or the cluster is rebuilding
//   its state after the store lost it. A rejection means "maybe not delivered everywhere", never "not
//   delivered anywhere": the caller reports failure (HTTP 503, error UNAVAILABLE), never success.
// - interest(topic, true|false) is called when a topic's local subscriber count goes 0->1 or 1->0.
//   whenListening(topics) resolves once frames published anywhere on those
//   topics reach this node (at once when that is already so), or rejects when the store is unreachable;
//   it returns undefined when nothing needs waiting for, so a single node stays synchronous.
// - After an outage the implementation restores, by itself, everything the other nodes need to know about
//   this node: its listening topics, its interests, its lease and (through its presence store) its
//   presence registrations.
//
// Kinds, declared by `single` (never by probing for a method)
// - A single-node backplane (memory) is the whole deployment: it has no other node to send to, ask or
//   sweep; the node numbers its own history (a LocalHistory) and delivers in the turn it publishes.
// - A cluster backplane (Redis) also numbers and publishes recoverable frames in one step
//   (publishRecorded, delivered back to every listening node, the publisher included, in offset order),
//   offers the join barrier, and brings the stores its nodes share (`stores`: the ClusterHistory that
//   publishRecorded appends to, presence and read state; presence shares its lease and sweep).
// Presence and read state are seams of their own (seams/presence, seams/readstate), with their own contracts.
//
// Control and health
// - disconnectUser() asks every other node holding connections of the user to close them and resolves
//   with how many they closed; it rejects when they cannot be reached. onDisconnect registers the handler
//   a node runs when asked (it returns how many it closed).
// - unsubscribeUser() asks the same nodes to end the user's subscriptions to one topic (a revocation), the
//   same way: it resolves with how many connections they unsubscribed, or rejects; onUnsubscribe registers
//   the handler a node runs when asked.
// - up is false while the node cannot reach the other nodes; onStateChange is called on each transition.
//   partial is true while it is up but part of the cluster's topics are not heard here (a Redis Cluster
//   shard's subscriber lost, until it is back or NODE_LEASE_MS took the node down); onPartialChange likewise.
// - A cluster backplane also tells what the shared store holds for the admin view (nodes(), userConnections()):
//   read-only, and UNAVAILABLE while the store is unreachable.

import type { PushStore, PushStoreOptions } from '../pushes/types.js';
import type { ClusterWebhookQueue, WebhookQueueOptions } from '../webhooks/types.js';
import { ErrorCode, WireError } from '../../wire/codes.js';
import type { Appended, ClusterHistory, NoStream, Position, RecordOptions } from '../history/types.js';
import type { PresenceStore } from '../presence/types.js';
import type { ChannelPresenceStore } from '../channel-presence/types.js';
import type { ReadStateStore } from '../readstate/types.js';
import type { ChatReadStore } from '../chat-reads/types.js';

/**
 * `exceptToken`: set on numbered frames this node published with a connection to leave out.
 * `keyed`: set on live-only frames a backend published with an idempotency key (a node delivers each once).
 */
export type FrameHandler = (topic: string, frame: string, exceptToken?: string, keyed?: { key: string; fingerprint: string }) => void;

/** The idempotency of one publish on one topic: the backend's key and a fingerprint of its request. */
export interface Idempotency {
  readonly key: string;
  readonly fingerprint: string;
  /** Set by the publish: the key was already used for this request, nothing new was stored or sent. */
  duplicate: boolean;
  /** How long the key is remembered, ms; unset: IDEMPOTENCY_TTL_S (a chat channel's is its history's TTL). */
  readonly ttlMs?: number;
  /** Set with `duplicate` on a recoverable topic, when known: where the first publish under the key was stored. */
  original?: Position | undefined;
}

/**
 * A publish the cluster could not confirm on every node that listens. `stored` says whether an event of a
 * recoverable topic is in the history (and so reaches every subscriber, now or when it resumes): true, false,
 * or null when that is not known (Redis took the command but its answer was lost).
 */
export class Unconfirmed extends WireError {
  constructor(
    message: string,
    readonly stored: boolean | null,
  ) {
    super(ErrorCode.UNAVAILABLE, message, 503);
  }
}
export type DisconnectHandler = (userId: string, code: number, reason: string) => number;
/** Ends the user's subscriptions to `topic` on this node; returns how many connections were subscribed. */
export type UnsubscribeHandler = (userId: string, topic: string, reason: string) => number;

/** The stores the nodes of a cluster share, kept on the backplane's own store (one Redis). */
export interface ClusterStores {
  readonly history: ClusterHistory;
  readonly presence: PresenceStore;
  readonly readState: ReadStateStore;
  /** Who is subscribed to a channel with presence on, on every node (presence:channel). */
  readonly channelPresence: ChannelPresenceStore;
  /** How far each member has read each conversation (chat:read, chat:unread). */
  readonly chatReads: ChatReadStore;
  /** A destination's webhook queue, shared by every node (each event to one of them). */
  webhookQueue(name: string, options: WebhookQueueOptions): ClusterWebhookQueue;
  /** The push fallback's tracking, shared by every node (each push made by one of them). */
  pushes(options: PushStoreOptions & { readonly ttlMs: number; readonly maxDepth: number; readonly claimMs?: number }): PushStore;
}

/** A node of the cluster as the shared store has it (the admin view). */
export interface ClusterNode {
  readonly nodeId: string;
  /** Its lease is live (false: dead or cut off, not swept yet). */
  readonly alive: boolean;
  /** Connections it registered in presence. */
  readonly connections: number;
}

/** One connection of a user, somewhere in the cluster. */
export interface UserConnection {
  readonly connectionId: string;
  readonly nodeId: string;
}

/** What every backplane does. Which kind it is, and what comes with that, is declared by `single`. */
interface BackplaneCore {
  readonly kind: string;
  /** This node's id in the cluster (connection ids start with it). */
  readonly nodeId: string;
  readonly up: boolean;
  readonly partial: boolean;
  /** Rejects with Unconfirmed. With `keyed` ("<key> <fingerprint>") the frame carries it to the other nodes. */
  publish(topic: string, frame: string, keyed?: string): Promise<void>;
  interest(topic: string, on: boolean): void;
  whenListening(topics: readonly string[]): Promise<void> | undefined;
  onFrame(handler: FrameHandler): void;
  /**
   * Registers what to do when the local subscribers of a recoverable topic missed events that the history no
   * longer holds (Redis lost them, or more than it keeps were published while this node could not hear them).
   */
  onHistoryLost(handler: (topic: string) => void): void;
  disconnectUser(userId: string, code: number, reason: string): Promise<number>;
  onDisconnect(handler: DisconnectHandler): void;
  unsubscribeUser(userId: string, topic: string, reason: string): Promise<number>;
  onUnsubscribe(handler: UnsubscribeHandler): void;
  onStateChange(handler: (up: boolean) => void): void;
  onPartialChange(handler: (partial: boolean) => void): void;
  close(): Promise<void>;
}

/**
 * This node is the whole deployment (memory): nothing crosses to other nodes, presence counts are this
 * node's own, no topic interest needs declaring, and the node numbers its own history (a LocalHistory). The
 * server then upgrades, joins and announces presence synchronously.
 */
export interface SingleNodeBackplane extends BackplaneCore {
  readonly single: true;
}

/** Several nodes: the history of recoverable topics, presence and read state are the cluster's. */
export interface ClusterBackplane extends BackplaneCore {
  readonly single: false;
  /** The stores the nodes share; `stores.history` is appended to only through publishRecorded. */
  readonly stores: ClusterStores;
  /**
   * Numbered frames of recoverable topics are appended and published in one atomic step, and delivered
   * through onFrame on every listening node, the publishing node included, so that every node sees a
   * topic's frames in offset order. Rejects with UNAVAILABLE when an interested node may have missed it (an
   * Unconfirmed saying whether it was stored). With `idem`, a publish already stored under the key is not
   * stored nor sent again (`idem.duplicate` is set, undefined is returned), within the window. With
   * `ifStreamExists`, a topic with no history gets none: nothing is stored or sent, NO_STREAM is returned.
   */
  publishRecorded(topic: string, head: string, tail: string, exceptToken?: string, idem?: Idempotency): Promise<Appended | undefined>;
  publishRecorded(topic: string, head: string, tail: string, exceptToken: string | undefined, idem: Idempotency | undefined, options: RecordOptions): Promise<Appended | undefined | NoStream>;
  /**
   * Resolves once every frame published on the topic before the call has reached this node (for a node
   * listening to it). Joins use it to know that a history position they read has been delivered here;
   * from then on this node knows the topic is at `position` at least (what a later gap is measured from).
   */
  barrier(topic: string, position: Position): Promise<void>;
  /** The registered nodes, sorted by id (the admin view); rejects with UNAVAILABLE when the store is unreachable. */
  nodes(): Promise<ClusterNode[]>;
  /** A user's connections on every node, as presence has them; rejects with UNAVAILABLE when the store is unreachable. */
  userConnections(userId: string): Promise<UserConnection[]>;
}

export type Backplane = SingleNodeBackplane | ClusterBackplane;
