// The handler table over the client message union: every ClientType has exactly one handler.
import type { Logger } from 'pino';
import { hasPermission, type Principal } from './auth.js';
import type { Config } from './config.js';
import { ErrorCode, WireError } from './errors.js';
import type { ClientMessage, ClientType, RequestId } from './protocol.js';
import type { PubSub } from './pubsub.js';
import type { UWS } from './uws.js';
import { ackFrame, pongFrame } from './serialize.js';
import { sendNotification } from './features/notifications.js';
import type { Presence } from './features/presence.js';
import { broadcastNewChapter, broadcastNewStory, profileUpdated } from './features/stories.js';
import { checkSubscribe } from './features/topics.js';
import { checkTypingTarget, type Typing, type TypingOwner } from './features/typing.js';

/** Per-connection state, kept as the uWS user data. */
export interface Conn extends TypingOwner {
  readonly id: string;
  principal: Principal;
  readonly ip: string;
  readonly openedAt: number;
  /** Topics joined by request (the automatic ones are not counted). */
  readonly subscriptions: Set<string>;
  closed: boolean;
}

export type Socket = UWS.WebSocket<Conn>;

export interface Ctx {
  readonly config: Config;
  readonly log: Logger;
  readonly pubsub: PubSub;
  readonly presence: Presence;
  readonly typing: Typing;
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
  const { principal } = ws.getUserData();
  if (!hasPermission(principal, ctx.config.publishPermission)) {
    throw new WireError(ErrorCode.FORBIDDEN, `publishing needs the "${ctx.config.publishPermission}" permission`);
  }
  return principal.userId;
}

/** Waits for the other nodes before acknowledging, so an ack means "delivered everywhere it can be". */
async function ackWhenRemote(ctx: Ctx, ws: Socket, id: RequestId | undefined, remote: Promise<void>, data: object): Promise<void> {
  try {
    await remote;
  } catch {
    throw new WireError(ErrorCode.UNAVAILABLE, 'delivered on this node only: the other nodes could not be reached');
  }
  ack(ctx, ws, id, data);
}

export const HANDLERS: { [K in ClientType]: Handler<K> } = {
  ping: (ctx, ws, msg) => ctx.send(ws, pongFrame(msg.id)),

  auth: async (ctx, ws, msg) => {
    const { exp } = await ctx.refresh(ws, msg.data.token);
    ack(ctx, ws, msg.id, exp === undefined ? {} : { exp });
  },

  'send:notification': (ctx, ws, msg) => {
    const from = ws.getUserData().principal.userId;
    const r = sendNotification(ctx.pubsub, [msg.data.userId], msg.data.notification, from);
    return ackWhenRemote(ctx, ws, msg.id, r.remote, { id: r.notification.id, delivered: r.delivered });
  },

  'typing:start': (ctx, ws, msg) => {
    const relayed = ctx.typing.start(ws, ws.getUserData().principal.userId, checkTypingTarget(msg.data.target));
    ack(ctx, ws, msg.id, { relayed });
  },

  'typing:stop': (ctx, ws, msg) => {
    const relayed = ctx.typing.stop(ws, ws.getUserData().principal.userId, checkTypingTarget(msg.data.target));
    ack(ctx, ws, msg.id, { relayed });
  },

  'story:published': (ctx, ws, msg) => {
    const r = broadcastNewStory(ctx.pubsub, msg.data, requirePublish(ctx, ws));
    return ackWhenRemote(ctx, ws, msg.id, r.remote, { id: msg.data.id, delivered: r.delivered });
  },

  'chapter:published': (ctx, ws, msg) => {
    const r = broadcastNewChapter(ctx.pubsub, msg.data, requirePublish(ctx, ws));
    return ackWhenRemote(ctx, ws, msg.id, r.remote, { id: msg.data.id, delivered: r.delivered });
  },

  'profile:updated': (ctx, ws, msg) => {
    const r = profileUpdated(ctx.pubsub, ws.getUserData().principal.userId, msg.data, ws);
    return ackWhenRemote(ctx, ws, msg.id, r.remote, { delivered: r.delivered });
  },

  subscribe: (ctx, ws, msg) => {
    const conn = ws.getUserData();
    const topic = msg.data.topic;
    checkSubscribe(topic, conn.principal.userId);
    if (!ws.isSubscribed(topic)) {
      if (conn.subscriptions.size >= ctx.config.maxSubscriptions) {
        throw new WireError(ErrorCode.SUBSCRIPTION_LIMIT, `at most ${ctx.config.maxSubscriptions} subscriptions per connection`);
      }
      conn.subscriptions.add(topic);
      ws.subscribe(topic);
    }
    // In a cluster the ack waits until the other nodes send this node the topic (or cannot be reached).
    const listening = ctx.pubsub.whenListening([topic]);
    if (!listening) return ack(ctx, ws, msg.id, { topic });
    const done = () => ack(ctx, ws, msg.id, { topic });
    return listening.then(done, done);
  },

  unsubscribe: (ctx, ws, msg) => {
    const conn = ws.getUserData();
    const topic = msg.data.topic;
    const parsed = checkSubscribe(topic, conn.principal.userId);
    if (parsed.kind === 'user') throw new WireError(ErrorCode.TOPIC_FORBIDDEN, 'the personal topic cannot be left');
    conn.subscriptions.delete(topic);
    ws.unsubscribe(topic);
    ack(ctx, ws, msg.id, { topic });
  },

  'presence:query': async (ctx, ws, msg) => {
    const online = await ctx.presence.online(msg.data.userIds);
    ctx.send(ws, ackFrame(msg.id, { online }));
  },
};

export function dispatch(ctx: Ctx, ws: Socket, msg: ClientMessage): void | Promise<void> {
  return (HANDLERS[msg.type] as Handler<ClientType>)(ctx, ws, msg);
}
