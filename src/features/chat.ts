// Chat (protocol.md section 14): messages sent into the channels of a chat namespace, numbered and kept in the
// channel's history, with no duplicates (a retry of one clientMsgId acks the stored message), through the
// publish proxy when the namespace names one; edits and deletions replace the stored message in place.
// Read positions and unread counts are chat-reads.ts.
import type { Conn } from '../edge/conn.js';
import { BucketStore } from '../edge/rates.js';
import type { Access } from '../policy/access.js';
import { fingerprint, idFromKey } from '../pubsub/idempotency.js';
import type { PubSub, StoreOption } from '../pubsub/pubsub.js';
import type { Idempotency } from '../seams/backplane/types.js';
import type { Appended, HistoryReads, Position, Replacement } from '../seams/history/types.js';
import { ErrorCode, WireError } from '../wire/codes.js';
import { numberedFrame } from '../wire/position.js';
import { isObject, type ChatEditInput, type ChatSendInput, type JsonObject } from '../wire/protocol.js';
import type { Channels, ParsedTopic } from '../wire/topics.js';

/** A chat message as stored and sent (`chat:message` data), in its latest state. */
export interface ChatMessage {
  id: string;
  clientMsgId: string;
  senderId: string;
  text?: string;
  data?: JsonObject;
  sentAt: number;
  editedAt?: number;
  deleted?: true;
  deletedAt?: number;
}

/** The ack of `chat:edit` and `chat:delete`: the message, and where its event is. */
export interface ChangeAck extends Position {
  channel: string;
  id: string;
}

/** A message found in the history: its entry (the frame as read), the message, and its frame's ts. */
interface Found {
  entry: Appended;
  message: ChatMessage;
  ts: number;
}

/** The ack of `chat:send`: the stored message, where it is, and whether this request was a retry. */
export interface SendAck extends ChatMessage, Position {
  channel: string;
  duplicate: boolean;
}

export interface ChatLimits {
  /** MAX_CHAT_BYTES: UTF-8 bytes of a text, JSON bytes of its data. */
  readonly maxChatBytes: number;
  /** CHAT_RATE_PER_S (burst twice that) per user per channel. */
  readonly chatRatePerS: number;
  /** MAX_CONVERSATIONS: chat channels one connection may be subscribed to. */
  readonly maxConversations: number;
  readonly rateBudgetMaxKeys: number;
}

/** A backend's own message id: 1-128 visible ASCII characters but `"` and `\\` (stored frames are read by their head). */
const BACKEND_ID = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/;

/** A numbered chat event as the history keeps it: `{"type","topic","data","ts"}` (the position is spliced in). */
export const chatFrame = (type: string, topic: string, data: object, ts: number): string => JSON.stringify({ type, topic, data, ts });

/** The key a message is published under: the sender's own clientMsgId, so that two users never collide. */
export const idempotencyKeyOf = (userId: string, clientMsgId: string): string => `${userId}:${clientMsgId}`;

export class Chat {
  /** Messages per user per channel (edits and deletions too), on this node. */
  private readonly rates: BucketStore;
  /** Sends in progress on this node by (channel, user, clientMsgId): a retry that overtakes its first joins it. */
  private readonly flights = new Map<string, { print: string; ack: Promise<SendAck> }>();

  constructor(
    private readonly pubsub: PubSub,
    private readonly history: HistoryReads,
    private readonly channels: Channels,
    private readonly access: Access,
    private readonly limits: ChatLimits,
  ) {
    this.rates = new BucketStore({ ratePerS: limits.chatRatePerS, burst: limits.chatRatePerS * 2 }, limits.rateBudgetMaxKeys);
  }

  /**
   * A channel of a chat namespace that the connection is subscribed to (let in by its subscribe rule), else
   * INVALID_TOPIC (no chat there) or FORBIDDEN (not a member on this connection).
   */
  member(conn: Conn, channel: string, what = 'send on'): ParsedTopic {
    const t = this.channels.parse(channel);
    if (t.ns.chat === false) throw new WireError(ErrorCode.INVALID_TOPIC, `${t.ns.name} channels take no chat messages (the namespace's "chat" is off)`);
    if (conn.subscriptions?.has(channel) !== true) throw new WireError(ErrorCode.FORBIDDEN, `not allowed to ${what} ${channel}: subscribe to it first`);
    return t;
  }

  /** SUBSCRIPTION_LIMIT when the connection already holds MAX_CONVERSATIONS channels of chat namespaces. */
  checkJoin(conn: Conn, t: ParsedTopic): void {
    if (t.ns.chat === false || conn.subscriptions === undefined) return;
    let held = 0;
    for (const topic of conn.subscriptions.keys()) if (this.channels.chatOf(topic) !== false) held++;
    if (held >= this.limits.maxConversations) throw new WireError(ErrorCode.SUBSCRIPTION_LIMIT, `at most ${this.limits.maxConversations} conversations per connection`);
  }

  /** PAYLOAD_TOO_LARGE past MAX_CHAT_BYTES (the text's UTF-8 bytes, the data's JSON bytes). */
  checkSize(text: string, data: JsonObject | undefined, what = 'data'): void {
    const max = this.limits.maxChatBytes;
    // A UTF-8 character is at most 3 bytes per UTF-16 unit: short texts need no count.
    if (text.length * 3 > max && Buffer.byteLength(text) > max) throw new WireError(ErrorCode.PAYLOAD_TOO_LARGE, `${what}.text is ${Buffer.byteLength(text)} bytes, the limit is ${max}`, 400);
    if (data !== undefined) {
      const bytes = Buffer.byteLength(JSON.stringify(data));
      if (bytes > max) throw new WireError(ErrorCode.PAYLOAD_TOO_LARGE, `${what}.data is ${bytes} bytes, the limit is ${max}`, 400);
    }
  }

  /** RATE_LIMITED past CHAT_RATE_PER_S for this user in this channel: an error reply, never a silent drop. */
  take(userId: string, channel: string): void {
    if (!this.rates.get(`${userId}\n${channel}`).take()) {
      throw new WireError(ErrorCode.RATE_LIMITED, `at most ${this.limits.chatRatePerS} chat messages per second per user in one conversation: slow down`);
    }
  }

  /**
   * Sends a message: the publish rule (its proxy may refuse, rewrite it, or name its id), then numbered, kept and
   * sent to every subscriber of the channel in one step. A retry of the same clientMsgId within the channel's
   * history TTL, on any node, publishes nothing and acks the message first stored (`duplicate: true`).
   */
  async send(conn: Conn, input: ChatSendInput): Promise<SendAck> {
    const t = this.member(conn, input.channel);
    this.checkSize(input.text, input.data);
    this.take(conn.userId, input.channel);
    const print = fingerprint('chat:send', input.text, JSON.stringify(input.data ?? null));
    const flight = `${input.channel}\n${conn.userId}\n${input.clientMsgId}`;
    const pending = this.flights.get(flight);
    if (pending !== undefined) {
      if (pending.print !== print) throw reused(input.clientMsgId);
      return { ...(await pending.ack), duplicate: true };
    }
    const ack = this.sendOnce(conn, t, input, print);
    this.flights.set(flight, { print, ack });
    try {
      return await ack;
    } finally {
      this.flights.delete(flight);
    }
  }

  private async sendOnce(conn: Conn, t: ParsedTopic, input: ChatSendInput, print: string): Promise<SendAck> {
    const { channel, clientMsgId } = input;
    const key = idempotencyKeyOf(conn.userId, clientMsgId);
    const asked = this.access.publish(conn, channel, t, input.data === undefined ? { text: input.text } : { text: input.text, data: input.data }, {
      chat: { op: 'send', clientMsgId, idempotencyKey: key },
    });
    const answer = asked instanceof Promise ? await asked : undefined;
    const { text, data, id } = answer === undefined ? { text: input.text, data: input.data, id: undefined } : this.rewritten(answer, input.text, input.data);
    const sentAt = Date.now();
    const message: ChatMessage = { id: id ?? idFromKey('chat', `${channel}\n${key}`), clientMsgId, senderId: conn.userId, text, ...(data === undefined ? {} : { data }), sentAt };
    const idem: Idempotency = { key, fingerprint: print, ttlMs: t.ns.history!.ttlS * 1000, duplicate: false };
    // Kept under its id: edits and deletions find it there.
    const store: StoreOption = { ifStreamExists: false, key: message.id, stored: undefined };
    try {
      await this.pubsub.emit('chat:message', channel, chatFrame('chat:message', channel, message, sentAt), undefined, idem, store);
    } catch (err) {
      if (err instanceof WireError && err.code === ErrorCode.IDEMPOTENCY_CONFLICT) throw reused(clientMsgId);
      throw err;
    }
    if (idem.duplicate) return this.original(channel, idem.original, message);
    if (store.at === undefined) throw new WireError(ErrorCode.UNAVAILABLE, `the message was not stored in ${channel}'s history: send it again`, 503);
    return { channel, ...message, ...store.at, duplicate: false };
  }

  /** The backend's answer to a publish: its `text`, `data` and `id`, each replacing the client's when given. */
  private rewritten(answer: unknown, text: string, data: JsonObject | undefined): { text: string; data: JsonObject | undefined; id: string | undefined } {
    if (!isObject(answer)) throw new WireError(ErrorCode.UNAVAILABLE, 'the publish proxy answered data that is not an object', 503);
    const out = { text, data, id: undefined as string | undefined };
    if (answer['text'] !== undefined) {
      if (typeof answer['text'] !== 'string' || answer['text'].length === 0) throw new WireError(ErrorCode.UNAVAILABLE, 'the publish proxy answered a text that is not a non-empty string', 503);
      out.text = answer['text'];
    }
    if (answer['data'] !== undefined) {
      if (!isObject(answer['data'])) throw new WireError(ErrorCode.UNAVAILABLE, 'the publish proxy answered a data that is not an object', 503);
      out.data = answer['data'];
    }
    if (answer['id'] !== undefined) {
      if (typeof answer['id'] !== 'string' || !BACKEND_ID.test(answer['id'])) throw new WireError(ErrorCode.UNAVAILABLE, 'the publish proxy answered an id that is not 1-128 visible ASCII characters (no quote, no backslash)', 503);
      out.id = answer['id'];
    }
    try {
      this.checkSize(out.text, out.data, 'the publish proxy\'s answer');
    } catch {
      throw new WireError(ErrorCode.UNAVAILABLE, `the publish proxy answered a message over MAX_CHAT_BYTES (${this.limits.maxChatBytes})`, 503);
    }
    return out;
  }

  /**
   * The ack of a retry: the message stored under the key, as the history holds it now (edited or deleted since,
   * perhaps); when the history no longer holds it, the message as this retry built it, at the original position.
   */
  private async original(channel: string, at: Position | undefined, built: ChatMessage): Promise<SendAck> {
    if (at !== undefined) {
      const stored = await this.storedAt(channel, at);
      if (stored !== undefined) return { channel, ...stored, ...at, duplicate: true };
      return { channel, ...built, ...at, duplicate: true };
    }
    throw new WireError(ErrorCode.UNAVAILABLE, `this clientMsgId was sent before but its position in ${channel} is not known yet: send it again`, 503);
  }

  /**
   * Edits one's own message: through the publish rule (its proxy may refuse or rewrite the text), then the stored
   * message is replaced in place by its latest state and `chat:edited` is numbered and sent, in one step.
   */
  async edit(conn: Conn, input: ChatEditInput): Promise<ChangeAck> {
    const t = this.member(conn, input.channel, 'edit in');
    this.checkSize(input.text, input.data);
    this.take(conn.userId, input.channel);
    const found = await this.own(conn, input.channel, input.messageId, 'edit');
    const asked = this.access.publish(conn, input.channel, t, input.data === undefined ? { text: input.text } : { text: input.text, data: input.data }, {
      chat: { op: 'edit', messageId: input.messageId },
    });
    const answer = asked instanceof Promise ? await asked : undefined;
    const rewritten = answer === undefined ? input : this.rewritten(answer, input.text, input.data);
    const { text } = rewritten;
    // No data given: the message keeps its own (its attachments, mentions).
    const data = rewritten.data ?? found.message.data;
    const editedAt = Date.now();
    const event = { id: input.messageId, senderId: conn.userId, text, ...(data === undefined ? {} : { data }), editedAt };
    return this.change(conn, input.channel, found, 'chat:edited', event, (m) => ({ id: m.id, clientMsgId: m.clientMsgId, senderId: m.senderId, text, ...(data === undefined ? {} : { data }), sentAt: m.sentAt, editedAt }));
  }

  /** Deletes one's own message: the stored one keeps only who sent it and when, and `chat:deleted` is sent. */
  async remove(conn: Conn, channel: string, messageId: string): Promise<ChangeAck> {
    const t = this.member(conn, channel, 'delete in');
    this.take(conn.userId, channel);
    const found = await this.own(conn, channel, messageId, 'delete');
    const asked = this.access.publish(conn, channel, t, {}, { chat: { op: 'delete', messageId } });
    if (asked instanceof Promise) await asked;
    const deletedAt = Date.now();
    const event = { id: messageId, senderId: conn.userId, deletedAt };
    return this.change(conn, channel, found, 'chat:deleted', event, (m) => ({ id: m.id, clientMsgId: m.clientMsgId, senderId: m.senderId, sentAt: m.sentAt, deleted: true, deletedAt }));
  }

  /** A message of the channel's history by id: MESSAGE_NOT_FOUND (also deleted), FORBIDDEN when another's. */
  private async own(conn: Conn, channel: string, messageId: string, what: string): Promise<Found> {
    const entry = await this.history.entry(channel, messageId);
    const parsed = entry && (JSON.parse(entry.frame) as { type: string; data: ChatMessage; ts: number });
    if (entry === undefined || parsed === undefined || parsed.type !== 'chat:message' || parsed.data.deleted === true) {
      throw new WireError(ErrorCode.MESSAGE_NOT_FOUND, `no message ${messageId.slice(0, 128)} in ${channel}'s history (unknown, deleted, or older than it keeps)`, 404);
    }
    if (parsed.data.senderId !== conn.userId) throw new WireError(ErrorCode.FORBIDDEN, `only its sender may ${what} message ${messageId.slice(0, 128)}`);
    return { entry, message: parsed.data, ts: parsed.ts };
  }

  /**
   * Numbers and sends the event while replacing the stored message in the same step, if the stored message is
   * still what was read; a concurrent change (another edit, a deletion) is read again, a few times at most.
   */
  private async change(conn: Conn, channel: string, first: Found, type: 'chat:edited' | 'chat:deleted', event: object, latest: (m: ChatMessage) => ChatMessage): Promise<ChangeAck> {
    let found = first;
    const eventTs = Date.now();
    for (let attempt = 1; ; attempt++) {
      const { entry, message, ts } = found;
      const stored = chatFrame('chat:message', channel, latest(message), ts);
      const head = stored.indexOf(',"data":');
      const replace: Replacement = { key: message.id, expect: entry.frame, frame: numberedFrame(stored.slice(0, head), entry.epoch, entry.offset, stored.slice(head)) };
      const store: StoreOption = { ifStreamExists: false, replace, stored: undefined };
      await this.pubsub.emit(type, channel, chatFrame(type, channel, event, eventTs), undefined, undefined, store);
      if (replace.done === true && store.at !== undefined) return { channel, id: message.id, ...store.at };
      if (attempt === 3) throw new WireError(ErrorCode.UNAVAILABLE, `message ${message.id} kept changing meanwhile: try again`, 503);
      found = await this.own(conn, channel, message.id, type === 'chat:edited' ? 'edit' : 'delete');
    }
  }

  /** The chat message stored at a position of the channel, or undefined when the history no longer holds it. */
  async storedAt(channel: string, at: Position): Promise<ChatMessage | undefined> {
    const r = await this.history.since(channel, at.epoch, at.offset - 1, at.offset);
    const frame = r.recovered ? r.frames[0] : undefined;
    if (frame === undefined) return undefined;
    const parsed = JSON.parse(frame) as { type: string; data: ChatMessage };
    return parsed.type === 'chat:message' ? parsed.data : undefined;
  }
}

function reused(clientMsgId: string): WireError {
  return new WireError(ErrorCode.IDEMPOTENCY_CONFLICT, `clientMsgId "${clientMsgId}" was already used for another message in this conversation`, 422);
}
