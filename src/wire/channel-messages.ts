// The channel messages: subscribe / unsubscribe (the namespace's rule, a subscription token or the subscribe
// proxy; the history join), publish (its rule or the publish proxy) and a channel's presence.
import { connOf, personalPosition } from '../edge/conn.js';
import { publishAs } from '../features/stories.js';
import { ErrorCode, WireError } from './codes.js';
import { ackFrame } from './frames.js';
import { capped, isObject, object, parsePosition, string, type JsonObject } from './protocol.js';
import { ack, type Spec } from './spec.js';

export type ChannelType = 'publish' | 'subscribe' | 'unsubscribe' | 'presence:channel';

// Publishing handlers acknowledge once the other nodes have the event too (see messages.ts).
export const CHANNEL_MESSAGES: { [K in ChannelType]: Spec<K> } = {
  // Any channel whose namespace lets the sender publish: its rule, or the publish proxy (which may refuse, or
  // answer the data to broadcast instead). Delivered as a `publication` event with the sender stamped on it.
  publish: {
    parse: (d, l, b) => {
      const o = object(d, 'data');
      return { channel: string(o['channel'], 'data.channel', 140), data: capped(object(o['data'], 'data.data'), 'data.data', l.maxStoryBytes, b) };
    },
    sized: true,
    bucket: 'publish',
    handle: async (ctx, ws, msg) => {
      const conn = connOf(ws);
      const { channel } = msg.data;
      const parsed = ctx.channels.parse(channel);
      // A chat channel's messages are chat:send's: numbered once per clientMsgId, within the chat limits.
      if (ctx.channels.chatOf(channel) !== false) throw new WireError(ErrorCode.FORBIDDEN, `not allowed to publish on ${channel}: a chat channel takes chat:send, chat:edit and chat:delete, not publish`);
      const checked = ctx.access.publish(conn, channel, parsed, msg.data.data);
      const rewritten = checked instanceof Promise ? await checked : undefined;
      let data: JsonObject = msg.data.data;
      if (rewritten !== undefined) {
        if (!isObject(rewritten)) throw new WireError(ErrorCode.UNAVAILABLE, 'the publish proxy answered data that is not an object');
        data = capped(rewritten, 'the publish proxy\'s data', ctx.config.maxStoryBytes);
      }
      // No count in the ack: how many devices listen is not the sender's to know.
      await publishAs(ctx.pubsub, channel, conn.userId, data);
      ack(ctx, ws, msg.id, { channel });
    },
  },

  subscribe: {
    parse: (d) => {
      const o = object(d, 'data');
      return {
        topic: string(o['topic'], 'data.topic', 140),
        since: o['since'] === undefined ? undefined : parsePosition(o['since'], 'data.since'),
        token: o['token'] === undefined ? undefined : string(o['token'], 'data.token', 8192),
      };
    },
    // A resume replays what was missed: the user's history-read budget pays for it.
    readsHistory: (msg) => msg.data.since !== undefined,
    handle: async (ctx, ws, msg) => {
      const conn = connOf(ws);
      const { topic, since, token } = msg.data;
      const parsed = ctx.channels.parse(topic);
      const personal = parsed.ns.name === 'user' && parsed.id === conn.userId;
      if (!personal) {
        const pending = ctx.access.subscribe(conn, topic, parsed, token);
        const grant = pending instanceof Promise ? await pending : pending;
        if (conn.closed) return;
        // Granted by a subscription token: it lasts as long as the token (a fresher one sent later extends it).
        // Tracked before the join: an expiry during the history read ends the subscription it makes.
        if (grant.exp !== undefined) {
          if (grant.exp <= Date.now() / 1000) throw new WireError(ErrorCode.SUBSCRIPTION_TOKEN_INVALID, 'subscription token expired');
          ctx.tokenSubscriptions.track(ws, topic, grant.exp);
        } else ctx.tokenSubscriptions.forget(ws, topic);
      }
      const joinedAt = personal ? personalPosition(conn) : conn.subscriptions?.get(topic);
      if (joinedAt) {
        // Already live on this recoverable topic: only the missed part, if asked.
        const r = since ? await ctx.pubsub.replay(ws, topic, since, joinedAt) : undefined;
        if (r) conn.rates?.chargeRead(r.replayedBytes);
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
      ctx.chat.checkJoin(conn, parsed);
      conn.subscriptions ??= new Map();
      conn.subscriptions.set(topic, null);
      const r = await ctx.pubsub.join(ws, topic, since);
      if (r) conn.rates?.chargeRead(r.replayedBytes);
      // An unsubscribe handled while the history was read already answered: the join must not subscribe after it.
      if (conn.subscriptions?.has(topic) !== true) {
        if (!conn.closed) ws.unsubscribe(topic);
        ack(ctx, ws, msg.id, { topic });
        return;
      }
      ctx.channelPresence.joined(conn, topic, parsed.ns);
      if (ctx.webhooks.wants('channel.subscribed')) ctx.webhooks.emit('channel.subscribed', { userId: conn.userId, connectionId: conn.id, channel: topic });
      if (!r) {
        ack(ctx, ws, msg.id, { topic });
        return;
      }
      conn.subscriptions.set(topic, { epoch: r.epoch, offset: r.offset });
      ack(ctx, ws, msg.id, { topic, epoch: r.epoch, offset: r.offset, ...(since ? { recovered: r.recovered, replayed: r.replayed } : {}) });
    },
  },

  unsubscribe: {
    parse: (d) => ({ topic: string(object(d, 'data')['topic'], 'data.topic', 140) }),
    handle: (ctx, ws, msg) => {
      const conn = connOf(ws);
      const topic = msg.data.topic;
      const parsed = ctx.channels.parse(topic);
      if (parsed.ns.name === 'user' && parsed.id === conn.userId) throw new WireError(ErrorCode.TOPIC_FORBIDDEN, 'the personal topic cannot be left');
      conn.subscriptions?.delete(topic);
      ctx.left(ws, topic);
      ws.unsubscribe(topic);
      ack(ctx, ws, msg.id, { topic });
    },
  },

  'presence:channel': {
    parse: (d) => ({ channel: string(object(d, 'data')['channel'], 'data.channel', 140) }),
    handle: async (ctx, ws, msg) => {
      const { channel } = msg.data;
      const t = ctx.channels.parse(channel);
      if (t.ns.presence !== 'off') {
        const checked = ctx.access.presence(connOf(ws), channel, t);
        if (checked !== undefined) await checked;
      }
      ctx.send(ws, ackFrame(msg.id, await ctx.channelPresence.query(channel, t)));
    },
  },
};
