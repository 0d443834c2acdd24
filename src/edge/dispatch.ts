// The handler table over the client message union: every ClientType has exactly one handler.
import type { Logger } from 'pino';
import { hasPermission, type Principal } from './auth.js';
import type { Config } from '../config.js';
import { ErrorCode, WireError } from '../wire/codes.js';
import type { ClientMessage, ClientType, RequestId } from '../wire/protocol.js';
import type { PubSub } from '../pubsub/pubsub.js';
import type { UWS } from './uws.js';
import { ackFrame, pongFrame } from '../wire/frames.js';
import { sendNotification } from '../features/notifications.js';
import type { Presence } from '../features/presence.js';
import { broadcastNewChapter, broadcastNewStory, profileUpdated } from '../features/stories.js';
import { checkSubscribe } from '../wire/topics.js';
import { checkTypingTarget, type Typing, type TypingOwner } from '../features/typing.js';
import type { ConnectionRates } from './rates.js';
import type { Position } from '../seams/history/types.js';
import type { Inbox } from '../features/inbox.js';

/**
 * Per-connection state, held by uWS behind one property (see Held). Every connection keeps it for its whole
 * life, so it is flat: the principal's fields and the personal topic's position are fields here rather
 * than objects of their own (~90 bytes less per connection, measured with heap snapshots).
 */
export interface Conn extends Principal, TypingOwner {
  /** The principal's, replaced by a token refresh (`auth`); userId never changes. */
  permissions: ReadonlySet<string>;
  exp: number | undefined;
  /** `<node id>-<sequence in base 36>`: told to the client, and the key of the connection in presence. */
  readonly id: string;
  readonly ip: string;
  /** Seconds since the server started: a small integer, so no number box per connection. */
  readonly openedS: number;
  /**
   * Topics joined by request (the automatic ones are not counted), with the position at which the connection
   * joined when the topic is recoverable (null otherwise, and while the join reads the history). Created on
   * the first, as most connections make none.
   */
  subscriptions: Map<string, Position | null> | undefined;
  /**
   * The personal topic: until it is joined, where to resume it from (`?since=`); then the position at which
   * the connection joined it. The epoch is unset when there is none (no `?since=`, or the history was
   * unreachable). See personalPosition.
   */
  personalEpoch: string | undefined;
  personalOffset: number;
  /** Token buckets, created on the first message: most connections only listen. */
  rates: ConnectionRates | undefined;
  /** Sweeps in a row that found the outgoing buffer over half the budget (0: under it at the last one). */
  slowStrikes: number;
  closed: boolean;
}

/** The personal topic's position of a connection (resume point before the join, joined position after). */
export const personalPosition = (conn: Conn): Position | undefined =>
  conn.personalEpoch === undefined ? undefined : { epoch: conn.personalEpoch, offset: conn.personalOffset };

/** Sets the personal topic's position (undefined: none). */
export function setPersonalPosition(conn: Conn, p: Position | undefined): void {
  conn.personalEpoch = p?.epoch;
  conn.personalOffset = p?.offset ?? 0;
}

/**
 * What uWS holds for a socket: the state behind one property. uWS copies every property of the user data
 * onto its socket object at the upgrade (~0.3 us each, measured), so ten flat properties cost ~3 us per
 * handshake where one costs ~0.3.
 */
export interface Held<T> {
  readonly c: T;
  /**
   * Set (and `c` unset) only on a refused upgrade made into a socket for a client that offered
   * `storywire.close-on-refusal`: open() closes it at once with this code and reason. Such a socket is
   * never registered, subscribed or handed to any other handler.
   */
  readonly refusal?: { readonly code: number; readonly reason: string };
}

export type Socket = UWS.WebSocket<Held<Conn>>;

export interface Ctx {
  readonly config: Config;
  readonly log: Logger;
  readonly pubsub: PubSub;
  readonly presence: Presence;
  readonly typing: Typing;
  readonly inbox: Inbox;
  /** Sends one frame if the socket is still open. */
  send(ws: Socket, frame: string): void;
  /** Re-verifies a token for a live connection (auth refresh). */
  refresh(ws: Socket, token: string): Promise<{ exp: number | undefined }>;
}

type Handler<K extends ClientType> = (ctx: Ctx, ws: Socket, msg: Extract<ClientMessage, { type: K }>) => void | Promise<void>;

function ack(ctx: Ctx, ws: Socket, id: RequestId | undefined, data?: object): void {
  if (id !== undefined) ctx.send(ws, ackFrame(id, data));
}

function requirePublish(ctx: Ctx, ws: Socket): string {
  const conn = ws.getUserData().c;
  if (!hasPermission(conn, ctx.config.publishPermission)) {
    throw new WireError(ErrorCode.FORBIDDEN, `publishing needs the "${ctx.config.publishPermission}" permission`);
  }
  return conn.userId;
}


export const HANDLERS: { [K in ClientType]: Handler<K> } = {
  ping: (ctx, ws, msg) => ctx.send(ws, pongFrame(msg.id)),

  auth: async (ctx, ws, msg) => {
    const { exp } = await ctx.refresh(ws, msg.data.token);
    ack(ctx, ws, msg.id, exp === undefined ? {} : { exp });
  },

  // Publishing handlers acknowledge once the other nodes have the event too: an ack means "delivered
  // everywhere it can be"; a backplane failure is an UNAVAILABLE error (PartialDelivery).
  'send:notification': async (ctx, ws, msg) => {
    const from = ws.getUserData().c.userId;
    const r = sendNotification(ctx.pubsub, [msg.data.userId], msg.data.notification, from);
    ack(ctx, ws, msg.id, { id: r.notification.id, delivered: await r.delivered });
  },

  'typing:start': (ctx, ws, msg) => {
    const relayed = ctx.typing.start(ws, ws.getUserData().c.userId, checkTypingTarget(msg.data.target));
    ack(ctx, ws, msg.id, { relayed });
  },

  'typing:stop': (ctx, ws, msg) => {
    const relayed = ctx.typing.stop(ws, ws.getUserData().c.userId, checkTypingTarget(msg.data.target));
    ack(ctx, ws, msg.id, { relayed });
  },

  'story:published': async (ctx, ws, msg) => {
    const delivered = await broadcastNewStory(ctx.pubsub, msg.data, requirePublish(ctx, ws));
    ack(ctx, ws, msg.id, { id: msg.data.id, delivered });
  },

  'chapter:published': async (ctx, ws, msg) => {
    const delivered = await broadcastNewChapter(ctx.pubsub, msg.data, requirePublish(ctx, ws));
    ack(ctx, ws, msg.id, { id: msg.data.id, delivered });
  },

  'profile:updated': async (ctx, ws, msg) => {
    const delivered = await profileUpdated(ctx.pubsub, ws.getUserData().c.userId, msg.data, ws);
    ack(ctx, ws, msg.id, { delivered });
  },

  subscribe: async (ctx, ws, msg) => {
    const conn = ws.getUserData().c;
    const { topic, since } = msg.data;
    const parsed = checkSubscribe(topic, conn.userId);
    const joinedAt = parsed.kind === 'user' ? personalPosition(conn) : conn.subscriptions?.get(topic);
    if (joinedAt) {
      // Already live on this recoverable topic: only the missed part, if asked.
      const r = since ? await ctx.pubsub.replay(ws, topic, since, joinedAt) : undefined;
      ack(ctx, ws, msg.id, { topic, epoch: joinedAt.epoch, offset: joinedAt.offset, ...(r ? { recovered: r.recovered, replayed: r.replayed } : {}) });
      return;
    }
    if (ws.isSubscribed(topic) || conn.subscriptions?.has(topic) === true) {
      ack(ctx, ws, msg.id, { topic });
      return;
    }
    if ((conn.subscriptions?.size ?? 0) >= ctx.config.maxSubscriptions) {
      throw new WireError(ErrorCode.SUBSCRIPTION_LIMIT, `at most ${ctx.config.maxSubscriptions} subscriptions per connection`);
    }
    (conn.subscriptions ??= new Map()).set(topic, null);
    const r = await ctx.pubsub.join(ws, topic, since);
    // An unsubscribe handled while the history was read already answered: the join must not subscribe after it.
    if (conn.subscriptions?.has(topic) !== true) {
      if (!conn.closed) ws.unsubscribe(topic);
      ack(ctx, ws, msg.id, { topic });
      return;
    }
    if (!r) {
      ack(ctx, ws, msg.id, { topic });
      return;
    }
    conn.subscriptions.set(topic, { epoch: r.epoch, offset: r.offset });
    ack(ctx, ws, msg.id, { topic, epoch: r.epoch, offset: r.offset, ...(since ? { recovered: r.recovered, replayed: r.replayed } : {}) });
  },

  unsubscribe: (ctx, ws, msg) => {
    const conn = ws.getUserData().c;
    const topic = msg.data.topic;
    const parsed = checkSubscribe(topic, conn.userId);
    if (parsed.kind === 'user') throw new WireError(ErrorCode.TOPIC_FORBIDDEN, 'the personal topic cannot be left');
    conn.subscriptions?.delete(topic);
    ws.unsubscribe(topic);
    ack(ctx, ws, msg.id, { topic });
  },

  'notifications:list': async (ctx, ws, msg) => {
    const inbox = await ctx.inbox.list(ws.getUserData().c.userId, msg.data.limit);
    ctx.send(ws, ackFrame(msg.id, inbox));
  },

  'notifications:read': async (ctx, ws, msg) => {
    const unreadCount = await ctx.inbox.markRead(ws.getUserData().c.userId, msg.data, ws);
    ack(ctx, ws, msg.id, { unreadCount });
  },

  'presence:query': async (ctx, ws, msg) => {
    const online = await ctx.presence.online(msg.data.userIds);
    ctx.send(ws, ackFrame(msg.id, { online }));
  },
};

export function dispatch(ctx: Ctx, ws: Socket, msg: ClientMessage): void | Promise<void> {
  return (HANDLERS[msg.type] as Handler<ClientType>)(ctx, ws, msg);
}
