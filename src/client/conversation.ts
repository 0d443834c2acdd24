// A conversation (protocol.md section 14, "Chat"): its messages held once each in history order, sends retried
// with one clientMsgId until acknowledged, edits, deletes, read position and unread count, receipts, typing.
import { resolveReconnect, backoffDelay } from './backoff.js';
import { ChatLog, toMessage, type LogChange } from './chat-log.js';
import { ClientErrorCode, ServerErrorCode, StorywireError } from './codes.js';
import { Emitter } from './emitter.js';
import type { ServerFrame } from './requests.js';
import type { TypingSender } from './typing.js';
import { Waits } from './waits.js';
import type {
  ChatDeleted, ChatEdited, ChatMessage, ChatReadSync, ChatReceipt, ChatTyping, Clock, ConversationOptions, JoinPosition, Position, RequestOptions,
} from './types.js';

/** What a Conversation needs of the client that made it. */
export interface ConversationHost {
  readonly clock: Clock;
  readonly requestTimeoutMs: number;
  readonly typing: TypingSender;
  userId(): string | undefined;
  /** The channel's resume position: the newest event processed. */
  position(channel: string): Position | undefined;
  request<T>(type: string, data: unknown, opts: RequestOptions): Promise<T>;
  /** Joins the channel now and on every later connection (with its subscription token when it has one). */
  subscribe(channel: string, token: true | string | undefined): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** Asks again, on the live subscription, for what the history holds after `since` (frames come before the ack). */
  replay(channel: string, since: Position): Promise<unknown>;
  /** The conversation was closed: the client stops routing frames to it. */
  detach(channel: string): void;
}

type Events = {
  message: [m: ChatMessage];
  edit: [m: ChatMessage];
  delete: [m: ChatMessage];
  receipt: [r: ChatReceipt];
  typing: [t: ChatTyping];
  unread: [count: number];
};

/** A send not acknowledged yet. */
export interface PendingMessage {
  clientMsgId: string;
  text: string;
  data?: Record<string, unknown>;
}


/** Sends waiting for their ack, per conversation: past it, send() rejects with QUEUE_FULL. */
const MAX_PENDING = 100;
/** Backoff of a send the server asked to retry later (UNAVAILABLE, RATE_LIMITED). */
const RETRY = resolveReconnect({ minDelayMs: 250, maxDelayMs: 10_000 });
const RETRYABLE: ReadonlySet<string> = new Set([ClientErrorCode.TIMEOUT, ClientErrorCode.DISCONNECTED, ClientErrorCode.NOT_CONNECTED]);
const LATER: ReadonlySet<string> = new Set([ServerErrorCode.UNAVAILABLE, ServerErrorCode.RATE_LIMITED]);

/** 128 random bits as 32 hex digits (getRandomValues exists where randomUUID does not: pages served over plain http). */
function randomId(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class Conversation {
  private readonly log: ChatLog;
  private readonly events = new Emitter<Events>();
  private readonly o: { history: number; typingIdleMs: number; timeoutMs: number };
  /** Where this connection joined the channel's history; undefined while not joined. */
  private joinedAt: Position | undefined;
  private ended: StorywireError | undefined;
  private unread = 0;
  private readonly pendingSends = new Map<string, PendingMessage>();
  private readonly typists = new Set<string>();
  /** Each other member's announced read position, with the epoch it was announced in. */
  private readonly read = new Map<string, Position>();
  private typingTimer: unknown;
  private readonly waits: Waits;

  constructor(
    private readonly host: ConversationHost,
    /** The full channel name, e.g. `conversation:c1`. */
    readonly channel: string,
    options: ConversationOptions = {},
  ) {
    this.log = new ChatLog(options.maxMessages ?? 1000);
    this.waits = new Waits(host.clock);
    this.o = { history: options.history ?? 50, typingIdleMs: options.typingIdleMs ?? 3000, timeoutMs: options.timeoutMs ?? host.requestTimeoutMs };
    host.subscribe(channel, options.token).catch((err: StorywireError) => {
      // The server's refusal (not a member, a bad token) ends the conversation. The app's token provider failing
      // fails what waits for the join, and the next connection asks it again; a TIMEOUT leaves it joining.
      if (err.fromServer) void this.end(err);
      else if (err.code === ClientErrorCode.TOKEN_PROVIDER) this.waits.fail(err);
    });
  }

  // ---- state ----

  /** The messages held, oldest first, each once and in its latest state (a new array after each change). */
  get messages(): readonly ChatMessage[] {
    return this.log.messages;
  }
  /** The other members' messages after this user's read position (the server's count, kept current from events). */
  get unreadCount(): number {
    return this.unread;
  }
  /** Sends not acknowledged yet, oldest first (they are retried with the same clientMsgId until they are). */
  get pending(): readonly PendingMessage[] {
    return [...this.pendingSends.values()];
  }
  /** The other members typing now. */
  get typingUsers(): readonly string[] {
    return [...this.typists];
  }
  /** The read position each other member announced (`chat:receipt`), by user id. */
  get receipts(): Readonly<Record<string, number>> {
    return Object.fromEntries([...this.read].map(([userId, p]) => [userId, p.offset]));
  }
  /** The other members whose announced read position covers `m` (a receipt counts in the epoch it came in). */
  readBy(m: ChatMessage): string[] {
    return [...this.read].filter(([, p]) => p.epoch === m.epoch && p.offset >= m.offset).map(([userId]) => userId);
  }
  /** True while the channel is joined on the live connection. */
  get isJoined(): boolean {
    return this.joinedAt !== undefined;
  }
  /** Why the conversation ended (close(), a refused subscribe, a revocation), if it did. */
  get endedBy(): StorywireError | undefined {
    return this.ended;
  }

  onMessage(fn: (m: ChatMessage) => void): () => void {
    return this.events.on('message', fn);
  }
  onEdit(fn: (m: ChatMessage) => void): () => void {
    return this.events.on('edit', fn);
  }
  onDelete(fn: (m: ChatMessage) => void): () => void {
    return this.events.on('delete', fn);
  }
  onReceipt(fn: (r: ChatReceipt) => void): () => void {
    return this.events.on('receipt', fn);
  }
  onTyping(fn: (t: ChatTyping) => void): () => void {
    return this.events.on('typing', fn);
  }
  onUnread(fn: (count: number) => void): () => void {
    return this.events.on('unread', fn);
  }

  // ---- requests ----

  /**
   * Sends a message; resolves with it as stored (id, epoch, offset). Timeouts, dropped connections and server
   * restarts are retried with the same clientMsgId until the server acknowledges it, which publishes it once;
   * UNAVAILABLE and RATE_LIMITED after a backoff. Any other refusal rejects; so do close() and the client's close().
   */
  async send(text: string, data?: Record<string, unknown>): Promise<ChatMessage> {
    if (this.ended) throw this.ended;
    if (this.pendingSends.size >= MAX_PENDING) throw new StorywireError(ClientErrorCode.QUEUE_FULL, `chat:send: ${MAX_PENDING} messages of ${this.channel} are waiting for their ack already`, false, false);
    const clientMsgId = randomId();
    this.pendingSends.set(clientMsgId, data === undefined ? { clientMsgId, text } : { clientMsgId, text, data });
    void this.stopTyping();
    const payload = { channel: this.channel, clientMsgId, text, ...(data === undefined ? {} : { data }) };
    try {
      for (let attempt = 0; ; attempt++) {
        await this.whenJoined();
        try {
          const reply = this.host.request<Record<string, unknown>>('chat:send', payload, { offline: 'reject', timeoutMs: this.o.timeoutMs });
          const ack = await Promise.race([reply, this.waits.ended]);
          const m = toMessage(ack, ack['epoch'], ack['offset']);
          if (!m) throw new StorywireError(ClientErrorCode.BAD_FRAME, 'chat:send: the ack is not a stored message', true, true);
          this.apply(this.log.add(m), false);
          return this.log.get(m.id) ?? m;
        } catch (err) {
          const e = err as StorywireError;
          if (this.ended) throw this.ended;
          // Not connected while still joined: the socket is closing (terminated, its close event not yet in).
          // Wait for the next join, or the retry would spin on microtasks and starve the close event itself.
          if (e.code === ClientErrorCode.NOT_CONNECTED) this.lost();
          if (RETRYABLE.has(e.code)) continue;
          if (!LATER.has(e.code)) throw e;
          await this.waits.pause(backoffDelay(attempt, RETRY, this.host.clock.random));
        }
      }
    } finally {
      this.pendingSends.delete(clientMsgId);
    }
  }

  /** Replaces the text (and data) of one of this user's messages; the edit reaches every member as `chat:edited`. */
  async edit(messageId: string, text: string, data?: Record<string, unknown>): Promise<{ id: string; epoch: string; offset: number }> {
    return this.once('chat:edit', { channel: this.channel, messageId, text, ...(data === undefined ? {} : { data }) });
  }

  /** Deletes one of this user's messages: it stays in place, without text or data, for every member. */
  async delete(messageId: string): Promise<{ id: string; epoch: string; offset: number }> {
    return this.once('chat:delete', { channel: this.channel, messageId });
  }

  /**
   * Marks the conversation read up to `offset` (default: its newest event); the user's other devices follow and,
   * when the conversation has receipts, the other members get a `chat:receipt`. Resolves with the unread count.
   */
  async markRead(offset?: number): Promise<number> {
    await this.whenJoined();
    const at = offset ?? this.newestOffset();
    const ack = await this.host.request<{ offset: number; unread: number }>('chat:read', { channel: this.channel, offset: at }, { offline: 'reject', timeoutMs: this.o.timeoutMs });
    this.setUnread(ack.unread);
    return ack.unread;
  }

  /** The members subscribed now, each once (`presence:channel`; at most the server's MAX_PRESENCE_MEMBERS). */
  async members(): Promise<string[]> {
    await this.whenJoined();
    const ack = await this.host.request<{ members?: string[] }>('presence:channel', { channel: this.channel }, { offline: 'reject', timeoutMs: this.o.timeoutMs });
    return ack.members ?? [];
  }

  /**
   * Tells the other members this user is typing: at most one `typing:start` per the client's typingThrottleMs,
   * and a `typing:stop` after typingIdleMs without a call. Resolves true when a frame was sent; never rejects.
   */
  async typing(): Promise<boolean> {
    if (this.ended || !this.joinedAt) return false;
    const clock = this.host.clock;
    clock.clearTimeout(this.typingTimer);
    this.typingTimer = clock.setTimeout(() => void this.stopTyping(), this.o.typingIdleMs);
    return this.host.typing.start(this.channel).catch(() => false);
  }

  /** Ends this user's typing indicator now (send() does it too). */
  async stopTyping(): Promise<void> {
    this.host.clock.clearTimeout(this.typingTimer);
    this.typingTimer = undefined;
    await this.host.typing.stop(this.channel).catch(() => false);
  }

  /** Leaves the conversation: unsubscribes, and rejects the sends still waiting (CANCELLED). */
  async close(): Promise<void> {
    if (this.ended) return;
    await this.stopTyping();
    await this.end(new StorywireError(ClientErrorCode.CANCELLED, `${this.channel}: the conversation was closed`, false, false));
  }

  // ---- from the client (the Conversations registry) ----

  /** The subscribe of this connection was acknowledged, with the position it asked to resume from (if any). */
  joined(ack: Partial<JoinPosition>, asked: Position | undefined): void {
    if (this.ended || typeof ack.epoch !== 'string' || typeof ack.offset !== 'number') return;
    this.joinedAt = { epoch: ack.epoch, offset: ack.offset };
    this.waits.joined();
    // Joined without a position, or the missed part could not be replayed: the last `history` events the server holds.
    const h = this.o.history;
    if (h > 0 && ack.offset > 0 && (asked === undefined || ack.recovered === false)) {
      this.host.replay(this.channel, { epoch: ack.epoch, offset: Math.max(0, ack.offset - h) }).catch(() => undefined);
    }
    this.host.request<{ counts?: Record<string, number> }>('chat:unread', { channels: [this.channel] }, { offline: 'reject', timeoutMs: this.o.timeoutMs }).then(
      (a) => {
        const n = a.counts?.[this.channel];
        if (typeof n === 'number') this.setUnread(n);
      },
      () => undefined,
    );
  }

  /** The connection dropped: not joined until the next subscribe ack; typing indicators are void. */
  lost(): void {
    this.joinedAt = undefined;
    for (const userId of [...this.typists]) this.typist(userId, false);
  }

  /** The client was closed: what waits for the next join is rejected (the conversation rejoins after connect()). */
  clientClosed(reason: string): void {
    this.lost();
    this.waits.fail(new StorywireError(ClientErrorCode.CLOSED, `${this.channel}: the client closed (${reason})`, false, false));
  }

  /** Another device of this user marked the conversation read. */
  readSynced(d: ChatReadSync): void {
    if (typeof d.unread === 'number') this.setUnread(d.unread);
  }

  /** A frame of the channel, duplicates included (applying one twice changes nothing). */
  frame(f: ServerFrame): void {
    const d = f.data as Record<string, unknown> | undefined;
    switch (f.type) {
      case 'chat:message': {
        const m = toMessage(d, f.epoch, f.offset);
        if (m) this.apply(this.log.add(m), this.isLive(m));
        return;
      }
      case 'chat:edited':
        if (typeof d?.['id'] === 'string' && typeof d['editedAt'] === 'number') this.apply(this.log.edit(d as unknown as ChatEdited), false);
        return;
      case 'chat:deleted':
        if (typeof d?.['id'] === 'string') {
          const deletedAt = typeof d['deletedAt'] === 'number' ? d['deletedAt'] : Date.now();
          this.apply(this.log.delete({ ...(d as unknown as ChatDeleted), deletedAt }), false);
        }
        return;
      case 'chat:receipt':
        // This user's own read position (from another device) is no receipt: unreadCount follows it instead.
        if (typeof d?.['userId'] === 'string' && typeof d['offset'] === 'number' && d['userId'] !== this.host.userId()) {
          const epoch = this.joinedAt?.epoch ?? this.host.position(this.channel)?.epoch ?? '';
          this.read.set(d['userId'], { epoch, offset: d['offset'] });
          this.events.emit('receipt', { userId: d['userId'], offset: d['offset'] });
        }
        return;
      case 'user:typing':
      case 'user:stopped_typing':
        if (typeof d?.['userId'] === 'string' && d['userId'] !== this.host.userId()) this.typist(d['userId'], f.type === 'user:typing');
        return;
      case 'unsubscribed':
        void this.end(new StorywireError(String(d?.['code'] ?? 'SUBSCRIPTION_REVOKED'), `${this.channel}: ${String(d?.['reason'] ?? 'subscription ended')}`, true, false));
        return;
    }
  }

  // ---- internals ----

  /** Edit and delete: one attempt once joined (a TIMEOUT or DISCONNECTED one may or may not have been applied). */
  private async once<T>(type: string, data: object): Promise<T> {
    await this.whenJoined();
    return this.host.request<T>(type, data, { offline: 'reject', timeoutMs: this.o.timeoutMs });
  }

  /** A message counts as unread when it arrived live (after this connection's join) from another member. */
  private isLive(m: ChatMessage): boolean {
    const j = this.joinedAt;
    return j !== undefined && m.epoch === j.epoch && m.offset > j.offset && m.senderId !== this.host.userId() && !m.deleted;
  }

  private apply(change: LogChange, live: boolean): void {
    if (change.kind === 'none') return;
    const m = change.message;
    if (change.kind === 'added') {
      this.events.emit('message', m);
      if (live) this.setUnread(this.unread + 1);
      return;
    }
    if (change.kind === 'deleted' && this.unread > 0 && this.joinedAt && m.epoch === this.joinedAt.epoch && m.offset > this.joinedAt.offset && m.senderId !== this.host.userId()) {
      this.setUnread(this.unread - 1);
    }
    this.events.emit(change.kind === 'edited' ? 'edit' : 'delete', m);
  }

  private setUnread(n: number): void {
    if (n === this.unread) return;
    this.unread = n;
    this.events.emit('unread', n);
  }

  private typist(userId: string, on: boolean): void {
    if (on === this.typists.has(userId)) return;
    if (on) this.typists.add(userId);
    else this.typists.delete(userId);
    this.events.emit('typing', { userId, typing: on });
  }

  /** The offset of the newest event processed in the joined epoch, else the join position. */
  private newestOffset(): number {
    const p = this.host.position(this.channel);
    const j = this.joinedAt!;
    return p && p.epoch === j.epoch ? Math.max(p.offset, j.offset) : j.offset;
  }

  private whenJoined(): Promise<void> {
    return this.waits.join(this.joinedAt !== undefined);
  }

  /** The conversation is over: nothing waits any more, and the client forgets the channel. */
  private end(err: StorywireError): Promise<void> {
    if (this.ended) return Promise.resolve();
    this.ended = err;
    const left = this.host.unsubscribe(this.channel).catch(() => undefined);
    this.lost();
    this.host.clock.clearTimeout(this.typingTimer);
    this.host.detach(this.channel);
    this.waits.end(err);
    return left;
  }
}
