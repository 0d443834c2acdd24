// StorywireClient: the public API over one Connection: typed events, requests, topics, typing, resume, the inbox-backed store.
import { resolveReconnect, systemClock } from './backoff.js';
import { ClientErrorCode, ServerErrorCode, StorywireError } from './codes.js';
import { ChannelTokens } from './channel-tokens.js';
import type { Conversation } from './conversation.js';
import { Conversations } from './conversations.js';
import { Subscriber } from './subscriber.js';
import { nextOpen } from './when-open.js';
import { Connection } from './connection.js';
import { Emitter } from './emitter.js';
import { InboxSync } from './inbox.js';
import { Receipts } from './receipts.js';
import { Resume } from './resume.js';
import { Requests, type ServerFrame } from './requests.js';
import { NotificationStore } from './store.js';
import { Topics } from './topics.js';
import { TokenRefresh } from './refresh.js';
import { TypingSender } from './typing.js';
import type {
  ChapterInput, ClientEventName, ClientEvents, ClientOptions, Clock, ConnectedInfo, ConnectionState, ConnectionStatus, ConversationOptions, Delivery,
  EventMeta, Id, NotificationInput, OfflinePolicy, Positions, RequestOptions, ServerEventType, ServerEvents, StoryInput,
  WebSocketConstructor,
} from './types.js';

export type { ClientOptions } from './types.js';

type Listener<K extends ClientEventName> = (...args: ClientEvents[K]) => void;

const SERVER_EVENTS: ReadonlySet<string> = new Set<ServerEventType>([
  'notification:received', 'user:online', 'user:offline', 'story:new', 'story:updated', 'chapter:new', 'user:typing',
  'user:stopped_typing', 'profile:updated', 'notifications:read', 'publication', 'unsubscribed', 'chat:message', 'chat:edited',
  'chat:deleted', 'chat:receipt', 'chat:read',
]);

export class StorywireClient {
  /** The last `maxNotifications` notifications received, newest first, with read state. */
  readonly notifications: NotificationStore;
  private readonly events = new Emitter<ClientEvents>();
  private readonly conn: Connection;
  private readonly requests: Requests;
  private readonly clock: Clock;
  private readonly topics: Topics;
  private readonly resume: Resume;
  private readonly inbox: InboxSync;
  private readonly typing: TypingSender;
  private readonly chats: Conversations;
  private readonly o: { requestTimeoutMs: number; offline: OfflinePolicy };
  private readonly refresh: TokenRefresh;
  private readonly channelTokens: ChannelTokens;
  private readonly subscriber: Subscriber;
  private readonly receipts: Receipts | undefined;

  constructor(options: ClientOptions) {
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError('storywire: no global WebSocket; in Node 20 pass { WebSocket } from the "ws" package');
    if (!/^(wss?|https?):\/\//.test(options.url)) throw new TypeError(`storywire: url must be ws:// or wss://, got "${options.url}"`);
    this.clock = { ...systemClock, ...options.clock };
    this.o = {
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      offline: options.offline ?? 'queue',
    };
    this.topics = new Topics(this.clock);
    this.channelTokens = new ChannelTokens(options.subscriptionToken, this.clock, options.refreshLeadMs ?? 60_000);
    this.notifications = new NotificationStore(options.maxNotifications ?? 50);
    for (const t of options.topics ?? []) this.topics.add(t);
    this.resume = new Resume(options.resumeFrom, options.resume !== false, (t) => this.topics.has(t), (info) => this.events.emit('resync', info));
    this.requests = new Requests(this.clock, options.maxQueue ?? 100, (text) => this.conn.write(text));
    const report = (err: StorywireError) => this.events.emit('error', err);
    const request = <T>(type: string, data: unknown, opts: RequestOptions) => this.request<T>(type, data, opts);
    this.typing = new TypingSender(this.clock, options.typingThrottleMs ?? 2_000, request);
    this.subscriber = new Subscriber({
      topics: this.topics,
      resume: this.resume,
      tokens: this.channelTokens,
      request,
      isConnected: () => this.isConnected,
      report,
      joined: (topic, ack, asked) => this.chats.joined(topic, ack, asked),
    });
    this.chats = new Conversations({
      clock: this.clock,
      requestTimeoutMs: this.o.requestTimeoutMs,
      typing: this.typing,
      userId: () => this.conn.state.info?.userId,
      position: (channel) => this.resume.positions[channel],
      request,
      subscribe: (channel, token) => this.subscribe(channel, token === undefined ? {} : { token }),
      unsubscribe: (channel) => this.unsubscribe(channel),
      replay: (channel, since) => this.subscriber.replay(channel, since),
    });
    this.receipts = options.receipts === false ? undefined : new Receipts(this.clock, (text) => this.conn.write(text));
    this.inbox = new InboxSync(this.notifications, request, () => this.isConnected, report, this.clock);
    this.refresh = new TokenRefresh({
      source: options.token,
      clock: this.clock,
      leadMs: options.refreshLeadMs ?? 60_000,
      isConnected: () => this.isConnected,
      auth: (token) => this.request<{ exp?: number }>('auth', { token }, { offline: 'reject' }),
      reconnectNow: (reason) => this.conn.reconnectNow(reason),
      refreshed: (exp) => this.events.emit('token:refreshed', { exp }),
      report,
    });
    this.conn = new Connection(
      {
        url: options.url.replace(/^http/, 'ws'),
        token: options.token,
        tokenTransport: options.tokenTransport ?? 'protocol',
        WebSocket: WS,
        reconnect: options.reconnect === false ? false : resolveReconnect(options.reconnect),
        connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
        heartbeatTimeoutMs: options.heartbeatTimeoutMs,
        clock: this.clock,
        since: (token) => this.resume.sinceParam(token),
      },
      this.events,
      {
        opened: (info, token) => this.opened(info, token),
        frame: (f) => this.frame(f),
        lost: () => this.lost(),
        ended: (why) => this.ended(why.reason),
      },
    );
    if (options.autoConnect !== false) queueMicrotask(() => this.connect());
  }

  // ---- lifecycle and state ----

  /** Starts connecting (again, after close()). */
  connect(): void {
    this.conn.start();
  }

  /** Closes for good: pending and queued requests are rejected with CLOSED. connect() starts over. */
  close(): void {
    this.conn.stop();
  }

  get state(): ConnectionState {
    return this.conn.state;
  }
  get status(): ConnectionStatus {
    return this.conn.state.status;
  }
  /** True when the connection is open: what an "En ligne / Hors ligne" indicator shows. */
  get isConnected(): boolean {
    return this.conn.state.status === 'open';
  }
  /** The server's `connected` data of the open connection. */
  get user(): ConnectedInfo | undefined {
    return this.conn.state.info;
  }
  get subscriptions(): readonly string[] {
    return this.topics.list;
  }
  /**
   * The position (epoch + highest offset processed) of each recoverable topic: `user:<me>` and the subscribed
   * `story:<id>`. A plain object: persist it and pass it back as `resumeFrom` to resume after a restart.
   */
  get positions(): Positions {
    return this.resume.positions;
  }
  /** Requests waiting in the offline queue. */
  get queued(): number {
    return this.requests.queued;
  }

  /** Observable state: fn runs now with the current state, then on every change. Returns the unsubscribe. */
  watchState(fn: (state: ConnectionState) => void): () => void {
    const off = this.events.on('state', (s) => fn(s));
    fn(this.conn.state);
    return off;
  }

  /** Resolves with the `connected` data once open; rejects when the client closes or after timeoutMs. */
  whenOpen(timeoutMs = 30_000): Promise<ConnectedInfo> {
    const info = this.conn.state.info;
    if (this.isConnected && info) return Promise.resolve(info);
    if (this.status === 'closed') return Promise.reject(new StorywireError(ClientErrorCode.CLOSED, `closed: ${this.state.reason?.reason ?? 'close() was called'}`, false, false));
    return nextOpen(this.events, this.clock, timeoutMs);
  }

  // ---- events ----

  on<K extends ClientEventName>(name: K, fn: Listener<K>): () => void {
    return this.events.on(name, fn);
  }
  once<K extends ClientEventName>(name: K, fn: Listener<K>): () => void {
    return this.events.once(name, fn);
  }
  off<K extends ClientEventName>(name: K, fn: Listener<K>): void {
    this.events.off(name, fn);
  }

  // The seed's names, one line each.
  onNewStory(fn: (s: ServerEvents['story:new'], meta: EventMeta) => void): () => void { return this.on('story:new', fn); }
  onStoryUpdated(fn: (s: ServerEvents['story:updated'], meta: EventMeta) => void): () => void { return this.on('story:updated', fn); }
  onNewChapter(fn: (c: ServerEvents['chapter:new'], meta: EventMeta) => void): () => void { return this.on('chapter:new', fn); }
  onNotification(fn: (n: ServerEvents['notification:received'], meta: EventMeta) => void): () => void { return this.on('notification:received', fn); }
  onUserOnline(fn: (u: ServerEvents['user:online'], meta: EventMeta) => void): () => void { return this.on('user:online', fn); }
  onUserOffline(fn: (u: ServerEvents['user:offline'], meta: EventMeta) => void): () => void { return this.on('user:offline', fn); }
  onUserTyping(fn: (t: ServerEvents['user:typing'], meta: EventMeta) => void): () => void { return this.on('user:typing', fn); }
  onUserStoppedTyping(fn: (t: ServerEvents['user:stopped_typing'], meta: EventMeta) => void): () => void { return this.on('user:stopped_typing', fn); }
  onProfileUpdated(fn: (p: ServerEvents['profile:updated'], meta: EventMeta) => void): () => void { return this.on('profile:updated', fn); }

  // ---- requests ----

  /** Sends `{type, id, data}` and resolves with the ack's data, or rejects with the server's error or a client error. */
  async request<T = unknown>(type: string, data?: unknown, opts: RequestOptions = {}): Promise<T> {
    const reply = await this.requests.send(
      { type, data, timeoutMs: opts.timeoutMs ?? this.o.requestTimeoutMs, offline: opts.offline ?? this.o.offline },
      this.conn.state.status === 'closed',
    );
    return reply.frame.data as T;
  }

  /** Round trip to the server, in ms. Rejects at once when offline unless opts.offline is 'queue'. */
  async ping(opts: RequestOptions = {}): Promise<number> {
    const reply = await this.requests.send(
      { type: 'ping', data: undefined, timeoutMs: opts.timeoutMs ?? this.o.requestTimeoutMs, offline: opts.offline ?? 'reject' },
      this.conn.state.status === 'closed',
    );
    return reply.receivedAt - reply.sentAt;
  }
  /** The seed's name for ping(). */
  sendPing(opts?: RequestOptions): Promise<number> {
    return this.ping(opts);
  }

  /**
   * A notification to every connection of one user (if the server's NOTIFY_POLICY lets this user notify that
   * one: FORBIDDEN otherwise); resolves with its server id.
   */
  sendNotificationToUser(userId: Id, notification: NotificationInput, opts?: RequestOptions): Promise<{ id: string }> {
    return this.request('send:notification', { userId, notification }, opts);
  }

  /** `story:new` to everyone on `stories` and the author's followers (needs the publish permission). */
  broadcastStoryPublished(story: StoryInput, opts?: RequestOptions): Promise<Delivery> {
    return this.request('story:published', story, opts);
  }

  /** `chapter:new` to the story's readers and the author's followers (needs the publish permission). */
  broadcastChapterPublished(chapter: ChapterInput, opts?: RequestOptions): Promise<Delivery> {
    return this.request('chapter:published', chapter, opts);
  }

  /** `profile:updated` to this user's followers and other devices. */
  updateProfile(profile: Record<string, unknown>, opts?: RequestOptions): Promise<{ delivered: number }> {
    return this.request('profile:updated', profile, opts);
  }

  /**
   * Marks a notification read in the store and on the server, which tells the user's other devices. Resolves
   * with the unread count: the server's, or the store's while offline (the read is sent on the next connection).
   */
  markAsRead(id: string): Promise<number> {
    this.notifications.setRead(id, 'local');
    return this.inbox.send({ id });
  }

  /** Marks every notification read, here and on the server (everything it holds up to now). */
  markAllAsRead(): Promise<number> {
    this.notifications.setAllRead('local');
    return this.inbox.send({ all: true });
  }

  /**
   * Where the store stands with the server's inbox: reads not acknowledged yet (kept and sent again until they
   * are) and whether a refill is on its way or waiting to be retried. Both 0/false: the store is settled.
   */
  get inboxState(): { unacknowledgedReads: number; refilling: boolean } {
    return { unacknowledgedReads: this.inbox.unacknowledged, refilling: this.inbox.refilling };
  }

  /** Refills `notifications` from the server's inbox now (done by itself on every connection); rejects when offline. */
  refreshNotifications(): Promise<void> {
    return this.inbox.load();
  }

  /** Which of userIds have a connection now. */
  async queryPresence(userIds: readonly Id[], opts?: RequestOptions): Promise<string[]> {
    return (await this.request<{ online: string[] }>('presence:query', { userIds }, opts)).online;
  }

  /** Typing in `user:<id>`, `story:<id>` or a conversation; throttled per target. Resolves true when a frame was sent. */
  startTyping(target: string, opts?: RequestOptions): Promise<boolean> {
    return this.typing.start(target, opts);
  }

  /** Ends a typing indicator started by startTyping(); resolves false when none was running. */
  stopTyping(target: string, opts?: RequestOptions): Promise<boolean> {
    return this.typing.stop(target, opts);
  }

  /**
   * A conversation (a channel whose namespace has chat on, e.g. `conversation:c1`): joined now and on every later
   * connection, its messages held in order and once each. The same channel twice gives the same object.
   */
  conversation(channel: string, options: ConversationOptions = {}): Conversation {
    return this.chats.open(channel, options);
  }

  /** Unread counts of conversations, one request (at most the server's MAX_UNREAD_CHANNELS); the forbidden ones are left out. */
  async unreadCounts(channels: readonly string[], opts?: RequestOptions): Promise<Record<string, number>> {
    return (await this.request<{ counts: Record<string, number> }>('chat:unread', { channels }, opts)).counts;
  }

  /**
   * Joins a topic now and on every later connection. Resolves when the server acknowledges it (on the next
   * connection when offline); a server refusal rejects and forgets the topic. A TIMEOUT leaves it remembered.
   * `token: true`: a channel the app gates with subscription tokens, asked from the `subscriptionToken` option;
   * a string: that subscription token (not renewed: the subscription ends when it expires).
   */
  subscribe(topic: string, opts: { timeoutMs?: number; token?: boolean | string } = {}): Promise<void> {
    if (this.conn.state.status === 'closed') return Promise.reject(new StorywireError(ClientErrorCode.CLOSED, 'subscribe: the client is closed', false, false));
    if (opts.token) this.channelTokens.gate(topic, typeof opts.token === 'string' ? opts.token : undefined);
    this.topics.add(topic);
    const timeoutMs = opts.timeoutMs ?? this.o.requestTimeoutMs;
    const p = this.topics.wait(topic, timeoutMs, () =>
      new StorywireError(ClientErrorCode.TIMEOUT, `subscribe ${topic}: no answer within ${timeoutMs} ms (still remembered)`, false, this.isConnected),
    );
    if (this.isConnected) this.subscriber.send(topic);
    return p;
  }

  /** Leaves a topic and forgets it (and its position). */
  async unsubscribe(topic: string, opts: RequestOptions = {}): Promise<void> {
    this.subscriber.forget(topic);
    if (this.isConnected) await this.request('unsubscribe', { topic }, { ...opts, offline: 'reject' });
  }

  /** Subscribes to `presence:<id>` for each user: `user:online` / `user:offline` events follow. */
  async watchPresence(userIds: readonly Id[]): Promise<void> {
    await Promise.all(userIds.map((id) => this.subscribe(`presence:${id}`)));
  }
  async unwatchPresence(userIds: readonly Id[]): Promise<void> {
    await Promise.all(userIds.map((id) => this.unsubscribe(`presence:${id}`)));
  }

  /**
   * Gets a new token from the provider and hands it to the live connection (`auth`); runs by itself before
   * expiry. A server without `auth`, or a token for another user, is answered by reconnecting with it instead.
   */
  refreshToken(): Promise<void> {
    return this.refresh.refresh();
  }

  // ---- connection hooks ----

  private opened(info: ConnectedInfo, token: string): void {
    this.resume.opened(info.userId, info.topics);
    for (const topic of this.topics) this.subscriber.send(topic);
    this.requests.flush();
    this.receipts?.opened(info.receipts === true);
    // After the flush: requests queued offline go first. The refill and the reads still waiting are sent now.
    this.inbox.opened(info.limits?.['historySize']);
    this.refresh.opened(token);
  }

  private frame(f: ServerFrame): void {
    if (this.requests.settle(f)) return;
    if (f.type === 'heartbeat') {
      this.events.emit('heartbeat', f.ts ?? Date.now());
    } else if (f.topic !== undefined) {
      const verdict = this.resume.event(f.topic, f.epoch, f.offset);
      // Before duplicates are dropped: a conversation takes a replay it asked for, applied once by message id.
      this.chats.frame(f, this.conn.state.info && `user:${this.conn.state.info.userId}`);
      if (verdict === 'duplicate') return;
      if (typeof f.epoch === 'string' && typeof f.offset === 'number' && f.topic === `user:${this.conn.state.info?.userId}`) {
        this.inbox.position(f.epoch, f.offset);
        if (f.type === 'notification:received') this.receipts?.add(f.epoch, f.offset);
      }
      const meta: EventMeta = typeof f.offset === 'number' && typeof f.epoch === 'string'
        ? { topic: f.topic, ts: f.ts ?? Date.now(), epoch: f.epoch, offset: f.offset }
        : { topic: f.topic, ts: f.ts ?? Date.now() };
      if (f.type === 'notification:received') this.notifications.add(f.data as ServerEvents['notification:received'], f.offset, f.epoch);
      else if (f.type === 'notifications:read') this.inbox.remote(f.data as ServerEvents['notifications:read']);
      // The server ended this subscription (revoked by the backend): not joined again on reconnect.
      else if (f.type === 'unsubscribed') {
        this.topics.delete(f.topic);
        this.channelTokens.forget(f.topic);
      }
      if (SERVER_EVENTS.has(f.type)) (this.events.emit as (n: string, d: unknown, m: EventMeta) => void)(f.type, f.data, meta);
      this.events.emit('event', f.type, f.data, meta);
    } else if (f.type === 'error') {
      const e = f.error ?? { code: ServerErrorCode.INTERNAL, message: 'error without detail' };
      this.events.emit('error', new StorywireError(e.code, e.message, true, false));
    }
  }

  private lost(): void {
    this.refresh.stop();
    this.receipts?.lost();
    this.channelTokens.lost();
    this.inbox.lost();
    this.typing.lost();
    this.chats.lost();
    this.requests.connectionLost();
  }

  private ended(reason: string): void {
    this.lost();
    this.receipts?.clear();
    this.requests.rejectAll(`the client closed (${reason})`);
    this.chats.clientClosed(reason);
    this.topics.settleAll((topic) => new StorywireError(ClientErrorCode.CLOSED, `subscribe ${topic}: the client closed (${reason})`, false, false));
  }
}
