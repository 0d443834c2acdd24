// The chat messages (protocol.md section 14): their parsers and handlers; what they do is features/chat.ts.
// Byte limits (MAX_CHAT_BYTES) and the per-conversation rate (CHAT_RATE_PER_S) are the feature's: they hold
// for a proxy's rewritten message too.
import { connOf } from '../edge/conn.js';
import { invalid, object, string, type JsonObject } from './protocol.js';
import { ackFrame } from './frames.js';
import { ack, type Spec } from './spec.js';

export type ChatType = 'chat:send' | 'chat:edit' | 'chat:delete' | 'chat:read' | 'chat:unread';

/** A message id: a derived UUID, or a backend's (1-128 visible ASCII characters but `"` and `\\`). */
const MESSAGE_ID = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/;

const messageId = (v: unknown): string => {
  if (typeof v !== 'string' || !MESSAGE_ID.test(v)) throw invalid('data.messageId must be a message id (1-128 visible ASCII characters)');
  return v;
};

/** A clientMsgId: 1-64 characters [A-Za-z0-9_-] (the SDK sends a UUID). */
const CLIENT_MSG_ID = /^[A-Za-z0-9_-]{1,64}$/;

const channel = (o: JsonObject): string => string(o['channel'], 'data.channel', 140);

/** A message's text: a non-empty string (its byte limit is the feature's). */
const text = (v: unknown): string => {
  if (typeof v !== 'string' || v.length === 0) throw invalid('data.text must be a non-empty string');
  return v;
};

const extra = (v: unknown): JsonObject | undefined => (v === undefined || v === null ? undefined : object(v, 'data.data'));

export const CHAT_MESSAGES: { [K in ChatType]: Spec<K> } = {
  'chat:send': {
    parse: (d) => {
      const o = object(d, 'data');
      const id = o['clientMsgId'];
      if (typeof id !== 'string' || !CLIENT_MSG_ID.test(id)) throw invalid('data.clientMsgId must be 1-64 characters [A-Za-z0-9_-] (a UUID)');
      return { channel: channel(o), clientMsgId: id, text: text(o['text']), data: extra(o['data']) };
    },
    handle: async (ctx, ws, msg) => {
      const sent = await ctx.chat.send(connOf(ws), msg.data);
      ack(ctx, ws, msg.id, sent);
    },
  },

  'chat:edit': {
    parse: (d) => {
      const o = object(d, 'data');
      return { channel: channel(o), messageId: messageId(o['messageId']), text: text(o['text']), data: extra(o['data']) };
    },
    handle: async (ctx, ws, msg) => {
      ack(ctx, ws, msg.id, await ctx.chat.edit(connOf(ws), msg.data));
    },
  },

  'chat:delete': {
    parse: (d) => {
      const o = object(d, 'data');
      return { channel: channel(o), messageId: messageId(o['messageId']) };
    },
    handle: async (ctx, ws, msg) => {
      ack(ctx, ws, msg.id, await ctx.chat.remove(connOf(ws), msg.data.channel, msg.data.messageId));
    },
  },

  'chat:read': {
    parse: (d) => {
      const o = object(d, 'data');
      const offset = o['offset'];
      if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw invalid('data.offset must be a non-negative integer');
      return { channel: channel(o), offset };
    },
    handle: async (ctx, ws, msg) => {
      ack(ctx, ws, msg.id, await ctx.chatReads.read(connOf(ws), ws, msg.data.channel, msg.data.offset));
    },
  },

  // Always answered (like presence:query): the counts are what it asks for.
  'chat:unread': {
    parse: (d) => {
      const list = object(d, 'data')['channels'];
      // The count limit is MAX_UNREAD_CHANNELS (the feature's); a frame cannot hold more than this many anyway.
      if (!Array.isArray(list) || list.length > 10000) throw invalid('data.channels must be an array of channel names');
      return { channels: list.map((c, i) => string(c, `data.channels[${i}]`, 140)) };
    },
    // Counting reads the history above each read position: paid from the history-read budget, like a replay.
    readsHistory: () => true,
    handle: async (ctx, ws, msg) => {
      const conn = connOf(ws);
      const { counts, forbidden, readBytes } = await ctx.chatReads.unread(conn, msg.data.channels);
      ctx.send(ws, ackFrame(msg.id, { counts, forbidden }));
      conn.rates?.chargeRead(readBytes);
    },
  },
};
