// Read positions in conversations (protocol.md section 14): `chat:read` moves a member's position forward, syncs
// it to the member's other connections and, where the namespace keeps receipts on, tells the other members;
// `chat:unread` counts, per conversation, the messages of others above the position that the history holds.
import type { Conn } from '../edge/conn.js';
import type { Access } from '../policy/access.js';
import type { PubSub } from '../pubsub/pubsub.js';
import type { ChatReadStore } from '../seams/chat-reads/types.js';
import type { HistoryReads, Position } from '../seams/history/types.js';
import type { UWS } from '../uws.js';
import { ErrorCode, WireError } from '../wire/codes.js';
import { framePosition } from '../wire/position.js';
import { userTopic, type Channels, type ParsedTopic } from '../wire/topics.js';
import { chatFrame, type Chat } from './chat.js';

export interface ReadAck {
  channel: string;
  /** The member's read position now (a lower one asked changes nothing). */
  offset: number;
  unread: number;
}

export interface UnreadAck {
  counts: Record<string, number>;
  forbidden: string[];
}

const MESSAGE_HEAD = '{"type":"chat:message",';
const SENDER = '"senderId":"';

/**
 * Whether a stored frame is a chat message of someone else that is not deleted, read off its head: the frame is
 * chatFrame()'s, its data begins with id, clientMsgId and senderId (none of which can hold a quote), and a deleted
 * message has `sentAt` then `deleted` right after its sender.
 */
export function unreadFor(frame: string, userId: string): boolean {
  if (!frame.startsWith(MESSAGE_HEAD)) return false;
  const at = frame.indexOf(SENDER);
  if (at < 0) return false;
  const start = at + SENDER.length;
  const end = frame.indexOf('"', start);
  if (frame.slice(start, end) === userId) return false;
  const after = frame.slice(end + 1, end + 40);
  return !/^,"sentAt":\d+,"deleted":true/.test(after);
}

export class ChatReads {
  constructor(
    private readonly pubsub: PubSub,
    private readonly history: HistoryReads,
    private readonly channels: Channels,
    private readonly access: Access,
    private readonly store: ChatReadStore,
    private readonly chat: Chat,
    /** MAX_UNREAD_CHANNELS. */
    private readonly maxChannels: number,
  ) {}

  /**
   * Marks the channel read up to `offset` (0 to its current offset). A position that moved is sent to the
   * user's other connections (`chat:read` on `user:<id>`) and, with receipts on, to the channel's other
   * subscribers (`chat:receipt`): both ephemeral, best effort (the position itself is stored first).
   */
  async read(conn: Conn, ws: UWS.WebSocket<unknown>, channel: string, offset: number): Promise<ReadAck> {
    const t = this.chat.member(conn, channel, 'mark read');
    const now = await this.history.position(channel);
    if (offset > now.offset) throw new WireError(ErrorCode.INVALID_PAYLOAD, `data.offset ${offset} is past ${channel}'s last offset (${now.offset})`);
    const advanced = await this.store.advance(conn.userId, channel, now.epoch, offset, t.ns.history!.ttlS * 1000);
    const { n: unread } = await this.count(conn.userId, channel, now, advanced.offset);
    if (advanced.moved) {
      const ts = Date.now();
      const mine = userTopic(conn.userId);
      this.pubsub.emit('chat:read', mine, chatFrame('chat:read', mine, { channel, offset: advanced.offset, unread }, ts), ws).catch(() => {});
      if (t.ns.chat !== false && t.ns.chat.receipts) {
        this.pubsub.emit('chat:receipt', channel, chatFrame('chat:receipt', channel, { userId: conn.userId, offset: advanced.offset }, ts), ws).catch(() => {});
      }
    }
    return { channel, offset: advanced.offset, unread };
  }

  /**
   * The unread count of each channel the user may read: subscribed on this connection, or let in by its
   * namespace's subscribe rule without a token (a proxy's cached or fresh decision). The others are `forbidden`.
   */
  async unread(conn: Conn, channels: readonly string[]): Promise<UnreadAck & { readBytes: number }> {
    if (channels.length > this.maxChannels) throw new WireError(ErrorCode.TOO_MANY_IDS, `data.channels has ${channels.length} channels, the limit is ${this.maxChannels}`);
    const asked = [...new Set(channels)];
    const parsed = asked.map((channel) => {
      const t = this.channels.parse(channel);
      if (t.ns.chat === false) throw new WireError(ErrorCode.INVALID_TOPIC, `${t.ns.name} channels take no chat messages (the namespace's "chat" is off)`);
      return t;
    });
    const allowed = await Promise.all(asked.map((channel, i) => this.mayRead(conn, channel, parsed[i]!)));
    const readable = asked.filter((_, i) => allowed[i]);
    const positions = await Promise.all(readable.map((channel) => this.history.position(channel)));
    const reads = await this.store.get(
      conn.userId,
      readable.map((channel, i) => ({ channel, epoch: positions[i]!.epoch })),
    );
    const counts = await Promise.all(readable.map((channel, i) => this.count(conn.userId, channel, positions[i]!, reads[i]!)));
    return {
      counts: Object.fromEntries(readable.map((channel, i) => [channel, counts[i]!.n])),
      forbidden: asked.filter((_, i) => !allowed[i]),
      readBytes: counts.reduce((sum, c) => sum + c.bytes, 0),
    };
  }

  private async mayRead(conn: Conn, channel: string, t: ParsedTopic): Promise<boolean> {
    if (conn.subscriptions?.has(channel) === true) return true;
    const v = this.access.verdict(t.ns.subscribe, conn, t);
    if (typeof v === 'boolean') return v;
    const d = this.access.ask(v, 'subscribe', conn, channel);
    return (d instanceof Promise ? await d : d).allow;
  }

  /**
   * Messages of others above `readUpTo` that the channel's history holds now (deleted ones left out), and the
   * bytes of history read to count them (charged to the user's history-read budget like a replay).
   */
  private async count(userId: string, channel: string, now: Position, readUpTo: number): Promise<{ n: number; bytes: number }> {
    if (readUpTo >= now.offset) return { n: 0, bytes: 0 };
    const r = await this.history.since(channel, now.epoch, readUpTo, now.offset);
    // The read position is older than what the history holds: every held message above it.
    const frames = r.recovered ? r.frames : (await this.history.latest(channel, now.offset - readUpTo)).filter((f) => (framePosition(f)?.offset ?? 0) > readUpTo);
    let n = 0;
    let bytes = 0;
    for (const f of frames) {
      bytes += f.length;
      if (unreadFor(f, userId)) n++;
    }
    return { n, bytes };
  }
}
