// What a client message's spec is (its parser, limits, bucket and handler) and what its handler may use.
// The specs themselves: messages.ts (the table, and the messages of the features), channel-messages.ts.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Socket } from '../edge/conn.js';
import type { ChannelPresence } from '../features/channel-presence.js';
import type { Chat } from '../features/chat.js';
import type { ChatReads } from '../features/chat-reads.js';
import type { Inbox } from '../features/inbox.js';
import type { Presence } from '../features/presence.js';
import type { Push } from '../features/push.js';
import type { Webhooks } from '../webhooks/events.js';
import type { Typing } from '../features/typing.js';
import type { Metrics } from '../metrics.js';
import type { Access } from '../policy/access.js';
import type { TokenSubscriptions } from '../policy/expiry.js';
import type { NotifyPolicy } from '../policy/notify.js';
import type { PubSub } from '../pubsub/pubsub.js';
import { ackFrame } from './frames.js';
import type { ClientMessage, ClientType, Limits, RequestId } from './protocol.js';
import type { Channels } from './topics.js';

/** What a handler may use: the features, and the replies to its connection. */
export interface Ctx {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly pubsub: PubSub;
  readonly presence: Presence;
  readonly typing: Typing;
  readonly inbox: Inbox;
  /** The push fallback, when a destination takes `notification.unread` (receipts are accepted and ignored otherwise). */
  readonly push: Push | undefined;
  /** The backend's webhook events (connection and subscription ones are emitted by the lifecycle and subscribe). */
  readonly webhooks: Webhooks;
  /** The channel registry, and the rules applied to a connection. */
  readonly channels: Channels;
  readonly access: Access;
  readonly tokenSubscriptions: TokenSubscriptions;
  /** Who is subscribed to a channel of a namespace with presence on. */
  readonly channelPresence: ChannelPresence;
  /** Chat messages in the channels of chat namespaces (protocol.md section 14). */
  readonly chat: Chat;
  /** Read positions and unread counts in those channels. */
  readonly chatReads: ChatReads;
  /** Who may notify whom, the notification types a client may choose, who may watch whose presence. */
  readonly notify: NotifyPolicy;
  /** A subscription of the socket ended (unsubscribe, revocation, token expiry): what rests on it is dropped. */
  left(ws: Socket, topic: string): void;
  /** Connections of the user open on this node (no lookup beyond it). */
  localConnections(userId: string): number;
  /** Sends one frame if the socket is still open. */
  send(ws: Socket, frame: string): void;
  /** Re-verifies a token for a live connection (auth refresh). */
  refresh(ws: Socket, token: string): Promise<{ exp: number | undefined }>;
}

export type Message<K extends ClientType> = Extract<ClientMessage, { type: K }>;
export type Handler<K extends ClientType> = (ctx: Ctx, ws: Socket, msg: Message<K>) => void | Promise<void>;

export interface Spec<K extends ClientType> {
  /** Validates `data`; `bound` is an upper bound on the JSON size of anything in the frame (Infinity: unknown). */
  parse(data: unknown, limits: Limits, bound: number): unknown;
  /** Its data has byte limits: parseFrame can bound them by the frame's own size. */
  sized?: true;
  /** The bucket it draws from, on top of the general one every frame draws from. */
  bucket?: 'notify' | 'publish';
  /** The permission it needs: PUBLISH_PERMISSION. */
  needsPublish?: true;
  /**
   * The message (by what it asks) sends the sender history: it is answered only while the user's history-read
   * budget is above zero (else RATE_LIMITED), and the handler charges what it sent (protocol.md section 8).
   */
  readsHistory?: (msg: Message<K>) => boolean;
  handle: Handler<K>;
}

export function ack(ctx: Ctx, ws: Socket, reqId: RequestId | undefined, data?: object): void {
  if (reqId !== undefined) ctx.send(ws, ackFrame(reqId, data));
}
