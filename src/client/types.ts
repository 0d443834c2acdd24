// Wire shapes the SDK reads and writes, the typed event map, and the public option and state types.
import type { ReconnectPolicy, StorywireError } from './codes.js';
import type { ChatDeleted, ChatEdited, ChatMessage, ChatReadSync, ChatReceipt } from './chat-types.js';

export type * from './chat-types.js';

export type RequestId = string | number;

/**
 * An event handler property of a WebSocketLike. Its event is `any`, not `unknown`: the browser's, Node's and `ws`'s
 * handlers each take their own event type, and a property (unlike a method) is checked contravariantly.
 */
// biome-ignore lint/suspicious/noExplicitAny: with `unknown` no real WebSocket class would be a WebSocketLike (see above)
type Handler = ((ev: any) => void) | null;

/** The minimal standard WebSocket surface the SDK uses: the browser's, Node 22's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler;
  onmessage: Handler;
  onclose: Handler;
  onerror: Handler;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

// ---- server -> client payloads (src/wire/frames.ts EVENT_SCHEMAS) ----

export interface Notification {
  id: string;
  title: string;
  message: string;
  type: string;
  data?: Record<string, unknown>;
  /** Sender's user id; null when the backend sent it. */
  from: string | null;
  /** `system`: sent by the app's backend; `user`: sent by another user (`from`). Absent from older servers. */
  origin?: 'user' | 'system';
  ts: number;
}
export interface StoryEvent {
  id: string;
  title: string;
  authorId: string | null;
  [field: string]: unknown;
}
export interface StoryUpdatedEvent {
  id: string;
  authorId: string | null;
  [field: string]: unknown;
}
export interface ChapterEvent {
  storyId: string;
  id: string;
  title: string;
  number?: number;
  authorId: string | null;
  [field: string]: unknown;
}
export interface UserOnlineEvent {
  userId: string;
}
export interface UserOfflineEvent {
  userId: string;
  /** ms since epoch. */
  lastSeen: number;
}
export interface TypingEvent {
  userId: string;
  /** `user:<id>` (a direct conversation) or `story:<id>`. */
  target: string;
}
export interface ProfileEvent {
  userId: string;
  [field: string]: unknown;
}

/** Another device of this user read notifications: `ids`, or everything up to offset `allUpTo`. */
export interface NotificationsReadEvent {
  ids?: string[];
  allUpTo?: number;
  /** The user's unread count after the change. */
  unreadCount: number;
}

// ---- chat: chat-types.ts ----

/** Every topic event, by the seed's names. */
export interface ServerEvents {
  'notification:received': Notification;
  'user:online': UserOnlineEvent;
  'user:offline': UserOfflineEvent;
  'story:new': StoryEvent;
  'story:updated': StoryUpdatedEvent;
  'chapter:new': ChapterEvent;
  'user:typing': TypingEvent;
  'user:stopped_typing': TypingEvent;
  'profile:updated': ProfileEvent;
  'notifications:read': NotificationsReadEvent;
  /** A client's `publish` on a channel (as the publish proxy answered it), with its sender. */
  publication: { senderId: string; [key: string]: unknown };
  /** The server ended a subscription: revoked by the backend, or its subscription token expired. */
  unsubscribed: { topic: string; code: string; reason: string };
  /** Chat events (Conversation gives them per conversation, deduplicated and applied to its messages). */
  'chat:message': Omit<ChatMessage, 'epoch' | 'offset'>;
  'chat:edited': ChatEdited;
  'chat:deleted': ChatDeleted;
  'chat:receipt': ChatReceipt;
  'chat:read': ChatReadSync;
}
export type ServerEventType = keyof ServerEvents;

/** Where and when an event was published. */
export interface EventMeta {
  topic: string;
  ts: number;
  /** On recoverable topics (`user:<id>`, `story:<id>`, `conversation:<id>`, ...): the topic's history epoch and the event's offset in it. */
  epoch?: string;
  offset?: number;
}

// ---- resume (protocol.md section 9) ----

/** A place in a recoverable topic's history: meaningful only with its epoch. */
export interface Position {
  epoch: string;
  offset: number;
}
/** The position per recoverable topic (`user:<me>`, subscribed `story:<id>`, conversations): what `positions` gives and `resumeFrom` takes. */
export type Positions = Record<string, Position>;

/** The server's answer to a join: where the connection starts, and whether the missed events could be replayed. */
export interface JoinPosition extends Position {
  /** Present when the join asked to resume: false means nothing was replayed (see `resync`). */
  recovered?: boolean;
  replayed?: number;
}

/** A gap the server could not fill: the app should refetch what it shows for `topic` from its REST API. */
export interface ResyncInfo {
  topic: string;
  /** epoch: the history was lost (server restart, topic evicted); gap: more was missed than the server keeps. */
  reason: 'epoch' | 'gap';
  /** The position the client asked to resume from. */
  from: Position;
  /** The position adopted: live events continue from here. */
  to: Position;
}

/** The `connected` frame's data: who the server thinks we are and its limits. */
export interface ConnectedInfo {
  userId: string;
  connectionId: string;
  permissions: string[];
  /** Token expiry, seconds since the epoch; absent when the token has none. */
  exp?: number;
  heartbeatIntervalMs: number;
  idleTimeoutS: number;
  limits: Record<string, number>;
  /** true when the server wants delivery receipts (a push fallback is on); the SDK sends them only then. */
  receipts?: boolean;
  /** Recoverable topics joined automatically (`user:<me>`), with the position joined at (servers with history). */
  topics?: Record<string, JoinPosition>;
}

// ---- client -> server inputs (src/wire/protocol.ts) ----

export type Id = string | number;
export interface NotificationInput {
  title: string;
  message: string;
  type?: string;
  data?: Record<string, unknown>;
}
export interface StoryInput {
  id: Id;
  title: string;
  [field: string]: unknown;
}
export interface ChapterInput {
  storyId: Id;
  id: Id;
  title: string;
  number?: number;
  [field: string]: unknown;
}
/** What the server answers to a publish: the id and how many connections on its node got it. */
export interface Delivery {
  id: string;
  delivered: number;
}

// ---- connection state ----

export type ConnectionStatus = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Why a connection ended, or why an attempt failed. */
export interface CloseReason {
  /** The WebSocket close code (1006 for network failures, dead servers and failed handshakes). */
  code: number;
  /** The server's close reason text, or the SDK's explanation. */
  reason: string;
  /**
   * server: the server closed with this code; network: the socket failed or never opened;
   * heartbeat: no frame within the heartbeat timeout; timeout: no `connected` frame in time;
   * handshake: the upgrade was refused: with an HTTP status (`httpStatus`; Node only, browsers hide it), or
   * with a close code before `connected` (browsers too; `reason` starts with the error code, e.g.
   * `TOKEN_EXPIRED: ...`);
   * token: the token provider failed; client: close() was called; attempts: maxAttempts reached.
   */
  kind: 'server' | 'network' | 'heartbeat' | 'timeout' | 'handshake' | 'token' | 'client' | 'attempts';
  policy: ReconnectPolicy;
  /** The upgrade's HTTP status, when kind is handshake and the refusal came as an HTTP response. */
  httpStatus?: number;
}

export interface ConnectionState {
  status: ConnectionStatus;
  /** Consecutive failed attempts since the last stable connection. */
  attempt: number;
  /** Why the last connection ended (absent before the first one). */
  reason?: CloseReason;
  /** When status is reconnecting: the delay before the next attempt. */
  retryInMs?: number;
  /** When status is open: the server's `connected` data. */
  info?: ConnectedInfo;
}

/** Every event `on()` accepts, with its listener arguments. */
export type ClientEvents = { [K in ServerEventType]: [data: ServerEvents[K], meta: EventMeta] } & {
  /** Any topic event, including types this SDK version does not know. */
  event: [type: string, data: unknown, meta: EventMeta];
  state: [state: ConnectionState, previous: ConnectionState];
  connecting: [info: { attempt: number }];
  open: [info: ConnectedInfo];
  reconnecting: [info: { attempt: number; delayMs: number; reason: CloseReason }];
  /** Final: the client will not reconnect (close() was called, or the server said stop). */
  closed: [reason: CloseReason];
  /** Every lost connection or failed attempt, whether or not a reconnect follows. */
  disconnected: [reason: CloseReason];
  /** Errors no request is waiting for: unsolicited server errors, failed token refreshes. */
  error: [error: StorywireError];
  heartbeat: [ts: number];
  /** The live connection's token was replaced through `auth`. */
  'token:refreshed': [info: { exp: number | undefined }];
  /** A resume could not be filled (`recovered: false`): refetch `topic` from the app's REST API. */
  resync: [info: ResyncInfo];
};
export type ClientEventName = keyof ClientEvents;

/** Timers and randomness, injectable so tests can drive them. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  random(): number;
}

export interface TokenContext {
  /** connect: first attempt; reconnect: a later attempt; refresh: before expiry, for `auth` on a live connection. */
  reason: 'connect' | 'reconnect' | 'refresh';
  /** Why the previous connection or attempt ended, on reconnects. */
  lastReason?: CloseReason;
}
export type TokenProvider = (ctx: TokenContext) => string | Promise<string>;

/** What to do with a request made while not connected. */
export type OfflinePolicy = 'queue' | 'reject';
export interface RequestOptions {
  /** ms from the call until the reply; a queued request still unsent then is dropped from the queue and rejected. */
  timeoutMs?: number;
  offline?: OfflinePolicy;
}

export interface ReconnectOptions {
  /** Base delay (the cap of the first attempt's full-jitter draw). Default 500 ms. */
  minDelayMs?: number;
  /** Cap of the exponential delay. Default 30 000 ms. */
  maxDelayMs?: number;
  /** Growth per failed attempt. Default 2. */
  factor?: number;
  /** Give up after this many consecutive failed attempts (state closed, kind attempts). Default Infinity. */
  maxAttempts?: number;
  /** A connection that stayed open this long resets the attempt count. Default 5 000 ms. */
  stableAfterMs?: number;
}

/** Returns a subscription token (a JWT the app's backend signed: sub, channel, exp) for one channel. */
export type SubscriptionTokenProvider = (ctx: { channel: string }) => string | Promise<string>;

export interface ClientOptions {
  /** ws:// or wss:// URL of the server's WebSocket path (http(s):// is accepted and converted). */
  url: string;
  /** A fixed token, or a provider called before every connection attempt and before expiry. */
  token: string | TokenProvider;
  /** The WebSocket class; default globalThis.WebSocket. In Node 20 pass the `ws` package's default export. */
  WebSocket?: WebSocketConstructor;
  /** protocol (default): the `bearer.<jwt>` subprotocol, which browsers can send; query: `?token=`. */
  tokenTransport?: 'protocol' | 'query';
  /** Connect on the next microtask (default true), so listeners added right after construction see every event. */
  autoConnect?: boolean;
  /** Backoff settings, or false to never reconnect. */
  reconnect?: ReconnectOptions | false;
  /** Time allowed from the start of an attempt to the `connected` frame. Default 10 000 ms. */
  connectTimeoutMs?: number;
  /** Silence after which the server is taken for dead; default 2 x its heartbeat interval + 1 s; false disables. */
  heartbeatTimeoutMs?: number | false;
  /** Default reply timeout of requests. Default 10 000 ms. */
  requestTimeoutMs?: number;
  /** Default for requests made while disconnected (ping and typing always default to reject). Default queue. */
  offline?: OfflinePolicy;
  /** Bound of the offline queue. Default 100. */
  maxQueue?: number;
  /** Notifications kept in `notifications`. Default 50. */
  maxNotifications?: number;
  /** At most one `typing:start` per target per this many ms. Default 2 000 (the server's default timeout is 5 000). */
  typingThrottleMs?: number;
  /** How long before the token's `exp` the provider is asked for a new one. Default 60 000 ms. */
  refreshLeadMs?: number;
  /**
   * Asked for a subscription token before each subscribe of a channel joined with `subscribe(topic, { token:
   * true })`, and again `refreshLeadMs` before that token expires (sent in band: the subscription goes on).
   */
  subscriptionToken?: SubscriptionTokenProvider;
  /** Topics to join on every connection, in addition to those given to subscribe(). */
  topics?: readonly string[];
  /** Positions saved from `client.positions` (e.g. before the app was closed): the first connection resumes from them. */
  resumeFrom?: Positions;
  /** Ask the server for missed events on reconnect (`?since=`, `subscribe.since`). Default true. */
  resume?: boolean;
  /**
   * Acknowledge each notification received (`notifications:received`, batched per 50 ms or 100 offsets), so
   * that the server's push fallback does not push it to this user's phone. Default true.
   */
  receipts?: boolean;
  /** Timers and randomness (tests). */
  clock?: Partial<Clock>;
}
