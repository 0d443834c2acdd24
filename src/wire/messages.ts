// One spec per client message type: how its data is parsed and bounded, the rate bucket and the permission
// it needs, and what it does. Adding a message type is one entry here (or in channel-messages.ts for the
// channel messages, chat-messages.ts for chat), its member of ClientMessage (protocol.ts) and its section of protocol.md.
import { hasPermission } from '../edge/auth.js';
import { connOf, type Conn, type Socket } from '../edge/conn.js';
import type { BucketKind, ConnectionRates, Payer } from '../edge/rates.js';
import { sendNotificationNow } from '../features/notifications.js';
import { broadcastNewChapter, broadcastNewStory, profileUpdated } from '../features/stories.js';
import { CloseCode, ErrorCode, WireError } from './codes.js';
import { ackFrame, ackFrameJson, errorFrame, pongFrame } from './frames.js';
import {
  FrameError,
  capped,
  id,
  invalid,
  isObject,
  object,
  parseChapter,
  parseNotification,
  parseStory,
  parseUserIds,
  requestId,
  string,
  type ClientMessage,
  type ClientType,
  type Limits,
  type RequestId,
} from './protocol.js';
import { STORIES, storyTopic } from './topics.js';
import { CHANNEL_MESSAGES } from './channel-messages.js';
import { CHAT_MESSAGES } from './chat-messages.js';
import { ack, type Ctx, type Message, type Spec } from './spec.js';

export type { Ctx } from './spec.js';

/** Throws FORBIDDEN unless the connection may publish on the channel (its namespace's publish rule). */
async function mayPublish(ctx: Ctx, conn: Conn, topic: string): Promise<void> {
  const checked = ctx.access.publish(conn, topic, ctx.channels.parse(topic), undefined);
  if (checked instanceof Promise) await checked;
}

const target = (d: unknown) => ({ target: string(object(d, 'data')['target'], 'data.target', 140) });

// Publishing handlers acknowledge once the other nodes have the event too: an ack means "delivered
// everywhere it can be"; a backplane failure is an UNAVAILABLE error (PartialDelivery).
/** Offsets in one `notifications:received` (protocol.md section 8). */
export const MAX_RECEIPTS = 100;

/**
 * A client's notification, once allowed. A recipient the notify proxy approved, or one online now (a connection
 * is a verified token), is real: the notification may begin their history. A made-up id is neither: live only,
 * nothing kept. Settled in the turn when the node can tell (no promise: the hot path of a single node).
 */
function notifyFrom(ctx: Ctx, ws: Socket, msg: Message<'send:notification'>, from: string): Promise<void> | undefined {
  const to = msg.data.userId;
  if (ctx.notify.policy === 'proxy' || ctx.localConnections(to) > 0) return notifyNow(ctx, ws, msg, from, true);
  return ctx.presence
    .isOnline(to)
    .catch(() => false)
    .then((real) => notifyNow(ctx, ws, msg, from, real));
}

function notifyNow(ctx: Ctx, ws: Socket, msg: Message<'send:notification'>, from: string, real: boolean): Promise<void> | undefined {
  const r = sendNotificationNow(ctx.pubsub, [msg.data.userId], msg.data.notification, from, { origin: 'user', mayBeginHistory: real, onStored: ctx.push?.stored });
  // Not how many devices got it: that would tell a stranger how many the recipient has online.
  if (typeof r.delivered !== 'number') return r.delivered.then(() => ack(ctx, ws, msg.id, { id: r.notification.id }));
  if (msg.id !== undefined) ack(ctx, ws, msg.id, { id: r.notification.id });
  return undefined;
}

const MESSAGES: { [K in ClientType]: Spec<K> } = {
  ping: {
    parse: () => undefined,
    handle: (ctx, ws, msg) => ctx.send(ws, pongFrame(msg.id)),
  },

  auth: {
    parse: (d) => ({ token: string(object(d, 'data')['token'], 'data.token', 8192) }),
    handle: async (ctx, ws, msg) => {
      const { exp } = await ctx.refresh(ws, msg.data.token);
      ack(ctx, ws, msg.id, exp === undefined ? {} : { exp });
    },
  },

  'send:notification': {
    parse: (d, l, b) => {
      const o = object(d, 'data');
      return { userId: id(o['userId'], 'data.userId'), notification: parseNotification(o['notification'], 'data.notification', l, b) };
    },
    sized: true,
    bucket: 'notify',
    handle: (ctx, ws, msg) => {
      const conn = connOf(ws);
      // NOTIFY_POLICY and NOTIFY_TYPES; decided in this turn unless the notify proxy is asked.
      const checked = ctx.notify.checkNotify(conn, msg.data.userId, msg.data.notification.type);
      if (checked !== undefined) return checked.then(() => notifyFrom(ctx, ws, msg, conn.userId));
      return notifyFrom(ctx, ws, msg, conn.userId);
    },
  },

  'typing:start': {
    parse: target,
    handle: (ctx, ws, msg) => {
      const conn = connOf(ws);
      const topic = msg.data.target;
      const t = ctx.channels.checkTypingTarget(topic);
      const checked = ctx.notify.checkTyping(conn, t, topic, ws.isSubscribed(topic) || conn.subscriptions?.has(topic) === true);
      const start = () => ack(ctx, ws, msg.id, { relayed: ctx.typing.start(ws, conn.userId, topic) });
      if (checked === undefined) return start();
      return checked.then(() => {
        if (!conn.closed) start();
      });
    },
  },

  'typing:stop': {
    parse: target,
    handle: (ctx, ws, msg) => {
      ctx.channels.checkTypingTarget(msg.data.target);
      ack(ctx, ws, msg.id, { relayed: ctx.typing.stop(ws, connOf(ws).userId, msg.data.target) });
    },
  },

  'story:published': {
    parse: (d, l, b) => parseStory(d, 'data', l, b),
    sized: true,
    bucket: 'publish',
    handle: async (ctx, ws, msg) => {
      const conn = connOf(ws);
      // Announced on `stories` (its namespace's rule) and the author's own `author:<id>`: signed by the sender.
      await mayPublish(ctx, conn, STORIES);
      const delivered = await broadcastNewStory(ctx.pubsub, msg.data, conn.userId);
      ack(ctx, ws, msg.id, { id: msg.data.id, delivered });
    },
  },

  'chapter:published': {
    parse: (d, l, b) => parseChapter(d, 'data', l, b),
    sized: true,
    bucket: 'publish',
    handle: async (ctx, ws, msg) => {
      const conn = connOf(ws);
      await mayPublish(ctx, conn, storyTopic(String(msg.data.storyId)));
      const delivered = await broadcastNewChapter(ctx.pubsub, msg.data, conn.userId);
      ack(ctx, ws, msg.id, { id: msg.data.id, delivered });
    },
  },

  'profile:updated': {
    parse: (d, l, b) => capped(object(d, 'data'), 'data', l.maxStoryBytes, b),
    sized: true,
    bucket: 'publish',
    handle: async (ctx, ws, msg) => {
      const delivered = await profileUpdated(ctx.pubsub, connOf(ws).userId, msg.data, ws);
      ack(ctx, ws, msg.id, { delivered });
    },
  },

  ...CHANNEL_MESSAGES,

  ...CHAT_MESSAGES,

  'presence:query': {
    parse: (d, l) => ({ userIds: parseUserIds(object(d, 'data')['userIds'], 'data.userIds', l) }),
    handle: async (ctx, ws, msg) => {
      // Only ids the user may watch are looked up; the others are named in `forbidden`, their state never told.
      const { allowed, forbidden } = await ctx.notify.watchable(connOf(ws), msg.data.userIds);
      const online = allowed.length === 0 ? [] : await ctx.presence.online(allowed);
      ctx.send(ws, ackFrame(msg.id, { online, forbidden }));
    },
  },

  // Who is subscribed to a channel now, on every node: its namespace's presence option says whether counts or
  // members are told, its presenceRule who may ask (by default its subscribers).
  'notifications:list': {
    parse: (d) => {
      const o = d === undefined ? {} : object(d, 'data');
      if (o['limit'] !== undefined && !(typeof o['limit'] === 'number' && Number.isSafeInteger(o['limit']) && o['limit'] >= 1 && o['limit'] <= 1000)) {
        throw invalid('data.limit must be an integer from 1 to 1000');
      }
      return { limit: o['limit'] };
    },
    readsHistory: () => true,
    handle: async (ctx, ws, msg) => {
      const conn = connOf(ws);
      // The page served last when nothing in it changed since (no parse, no serialization); charged by size.
      const page = await ctx.inbox.listJson(conn.userId, msg.data.limit);
      const frame = ackFrameJson(msg.id, page.json);
      ctx.send(ws, frame);
      conn.rates?.chargeRead(page.bytes + frame.length - page.json.length);
    },
  },

  'notifications:read': {
    parse: (d) => {
      const o = object(d, 'data');
      if (o['all'] === true) return { all: true };
      if (o['id'] === undefined) throw invalid('data must be {"id": "<notification id>"} or {"all": true}');
      return { id: string(o['id'], 'data.id', 64) };
    },
    handle: async (ctx, ws, msg) => {
      const unreadCount = await ctx.inbox.markRead(connOf(ws).userId, msg.data, ws);
      ack(ctx, ws, msg.id, { unreadCount });
    },
  },

  // Delivery receipts: these notifications of the personal topic reached this device (no push for them).
  'notifications:received': {
    parse: (d) => {
      const o = object(d, 'data');
      const epoch = string(o['epoch'], 'data.epoch', 64);
      const offsets = o['offsets'];
      if (!Array.isArray(offsets) || offsets.length === 0 || offsets.length > MAX_RECEIPTS) throw invalid(`data.offsets must be an array of 1 to ${MAX_RECEIPTS} offsets`);
      for (const n of offsets) if (!(typeof n === 'number' && Number.isSafeInteger(n) && n >= 1)) throw invalid('data.offsets must hold positive integers');
      return { epoch, offsets: offsets as number[] };
    },
    handle: async (ctx, ws, msg) => {
      if (ctx.push !== undefined) await ctx.push.received(connOf(ws).userId, msg.data.epoch, msg.data.offsets);
      ack(ctx, ws, msg.id, {});
    },
  },
};

export const CLIENT_TYPES = Object.keys(MESSAGES) as ClientType[];

// A number written with an exponent is the only JSON text that re-serializes longer than it was written
// (1e20 becomes 21 digits); everything else comes back as long or shorter (whitespace, escapes such as
// \u00e9 or \/, duplicate keys, trailing zeros and long digit strings all shrink).
const EXPONENT = /\d[eE]/;

/**
 * Parses one text frame into a ClientMessage, or throws a FrameError saying exactly what is wrong.
 * `bytes`: the frame's size in UTF-8, when the caller has it; a frame with no exponent bounds the JSON
 * size of every value in it, so the size limits need no re-serialization.
 */
export function parseFrame(text: string, limits: Limits, bytes?: number): ClientMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new FrameError(new WireError(ErrorCode.BAD_JSON, 'frame is not valid JSON'), undefined);
  }
  if (!isObject(raw)) throw new FrameError(new WireError(ErrorCode.BAD_MESSAGE, 'frame must be a JSON object'), undefined);
  let reqId: RequestId | undefined;
  try {
    reqId = requestId(raw['id']);
  } catch (err) {
    throw new FrameError(err as WireError, undefined);
  }
  const type = raw['type'];
  if (typeof type !== 'string') throw new FrameError(new WireError(ErrorCode.BAD_MESSAGE, 'type must be a string'), reqId);
  const spec = Object.hasOwn(MESSAGES, type) ? (MESSAGES[type as ClientType] as Spec<ClientType>) : undefined;
  if (!spec) throw new FrameError(new WireError(ErrorCode.UNKNOWN_TYPE, `unknown type "${type.slice(0, 64)}"`), reqId);
  try {
    const bound = bytes !== undefined && spec.sized && !EXPONENT.test(text) ? bytes : Infinity;
    return { type, id: reqId, data: spec.parse(raw['data'], limits, bound) } as ClientMessage;
  } catch (err) {
    if (err instanceof WireError) throw new FrameError(err, reqId);
    throw err;
  }
}

/** An error reply: the WireError's code, or INTERNAL (logged) for anything else. */
export function replyError(ctx: Ctx, ws: Socket, err: unknown, reqId: RequestId | undefined): void {
  if (err instanceof WireError) {
    ctx.metrics.rejectedFor(err.code);
    ctx.send(ws, errorFrame(reqId, err.code, err.message));
    return;
  }
  ctx.metrics.rejectedFor(ErrorCode.INTERNAL);
  ctx.log.error({ err, userId: connOf(ws).userId }, 'handler failed');
  ctx.send(ws, errorFrame(reqId, ErrorCode.INTERNAL, 'internal error'));
}

/** RATE_LIMITED, or a 4100 close for a connection that keeps sending past its limits. */
export function rateLimited(ctx: Ctx, ws: Socket, rates: ConnectionRates, reqId: RequestId | undefined, what: string): void {
  const conn = connOf(ws);
  ctx.metrics.rejectedFor(ErrorCode.RATE_LIMITED);
  if (++rates.strikes >= ctx.config.rateLimitCloseAfter) {
    ctx.log.info({ userId: conn.userId, connectionId: conn.id }, 'closing a connection that kept sending past its rate limit');
    ws.end(CloseCode.RATE_LIMITED, 'rate limit exceeded: back off');
    return;
  }
  ctx.send(ws, errorFrame(reqId, ErrorCode.RATE_LIMITED, `${what}: slow down`));
}

/** The refusal's wording, built only when a message is refused (not on every message of the type). */
export function limitOf(ctx: Ctx, bucket: BucketKind, payer: Payer): string {
  const c = ctx.config;
  const ip = payer === 'address';
  if (bucket === 'all') return `at most ${ip ? c.rateLimitPerSPerIp : c.rateLimitPerS} messages per second ${ip ? 'from this address' : 'per user'}`;
  if (bucket === 'notify') return `at most ${ip ? c.notifyRatePerSPerIp : c.notifyRatePerS} notifications per second ${ip ? 'from this address' : 'per user'}`;
  return `at most ${ip ? c.publishRatePerSPerIp : c.publishRatePerS} publications per second ${ip ? 'from this address' : 'per user'}`;
}

/** The refusal's wording for a message that reads history past the user's budget. */
function readLimitOf(ctx: Ctx): string {
  return `at most ${ctx.config.historyReadBytesPerS} bytes of history per second per user (notifications:list, replays)`;
}

/** Runs a parsed message through its spec: its bucket, its permission, its handler; errors become replies. */
export function dispatch(ctx: Ctx, ws: Socket, msg: ClientMessage, rates: ConnectionRates): void {
  const spec = MESSAGES[msg.type] as Spec<ClientType>;
  if (spec.bucket !== undefined) {
    const refusedBy = rates.take(spec.bucket);
    if (refusedBy !== undefined) {
      rateLimited(ctx, ws, rates, msg.id, limitOf(ctx, spec.bucket, refusedBy));
      return;
    }
  }
  if (spec.readsHistory?.(msg) === true && !rates.mayRead()) {
    rateLimited(ctx, ws, rates, msg.id, readLimitOf(ctx));
    return;
  }
  rates.strikes = 0;
  ctx.metrics.messageIn(msg.type);
  const conn = connOf(ws);
  if (ctx.log.isLevelEnabled('debug')) ctx.log.debug({ userId: conn.userId, type: msg.type }, 'message');
  try {
    if (spec.needsPublish && !hasPermission(conn, ctx.config.publishPermission)) {
      throw new WireError(ErrorCode.FORBIDDEN, `publishing needs the "${ctx.config.publishPermission}" permission`);
    }
    const pending = spec.handle(ctx, ws, msg);
    if (pending) pending.catch((err: unknown) => replyError(ctx, ws, err, msg.id));
  } catch (err) {
    replyError(ctx, ws, err, msg.id);
  }
}
