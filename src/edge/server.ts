// Composition of one node: config, metrics, the backplane and history seams, pubsub, the features, the
// WebSocket lifecycle (lifecycle.ts), the HTTP API (api/), listen and shutdown. Wiring only.
import pino, { type Logger } from 'pino';
import { ConfigError, userShareOf, type Config } from '../config.js';
import { createFacade, type Facade } from '../api/facade.js';
import { registerDemo } from '../api/demo.js';
import { registerAdminView } from '../admin/routes.js';
import { Reply } from '../api/http.js';
import { registerApi, registerOperations, type ApiDeps } from '../api/routes.js';
import { ChannelPresence } from '../features/channel-presence.js';
import { Inbox } from '../features/inbox.js';
import { Chat } from '../features/chat.js';
import { ChatReads } from '../features/chat-reads.js';
import { Presence } from '../features/presence.js';
import { Typing } from '../features/typing.js';
import { Metrics } from '../metrics.js';
import { IdempotencyStore } from '../pubsub/idempotency.js';
import { PubSub } from '../pubsub/pubsub.js';
import { MemoryBackplane } from '../seams/backplane/memory.js';
import type { Backplane } from '../seams/backplane/types.js';
import { MemoryHistory } from '../seams/history/memory.js';
import type { HistoryStore } from '../seams/history/types.js';
import { topology } from '../seams/topology.js';
import { MemoryPresence } from '../seams/presence/memory.js';
import type { PresenceStore } from '../seams/presence/types.js';
import { MemoryChannelPresence } from '../seams/channel-presence/memory.js';
import type { ChannelPresenceStore } from '../seams/channel-presence/types.js';
import { MemoryChatReads } from '../seams/chat-reads/memory.js';
import type { ChatReadStore } from '../seams/chat-reads/types.js';
import { MemoryReadState } from '../seams/readstate/memory.js';
import type { ReadStateStore } from '../seams/readstate/types.js';
import { CloseCode, ErrorCode, WireError } from '../wire/codes.js';
import { heartbeatFrame } from '../wire/frames.js';
import type { Ctx } from '../wire/messages.js';
import { limitsOf } from '../wire/protocol.js';
import { loadChannels, userTopic, type Channels } from '../wire/topics.js';
import { Access } from '../policy/access.js';
import type { Socket } from './conn.js';
import { NotifyPolicy } from '../policy/notify.js';
import { ProxyMetrics } from '../policy/proxy.js';
import { TokenSubscriptions } from '../policy/expiry.js';
import { decisionKey } from '../policy/proxy.js';
import { checkRefresh, createVerifier, signDevToken } from './auth.js';
import { Connections } from './connections.js';
import { Lifecycle } from './lifecycle.js';
import { createUpgrades } from './upgrade.js';
import { withProxies } from './descriptors.js';
import { uws, type UWS } from '../uws.js';
import { NodeWebhooks, plannedDestinations } from '../webhooks/compose.js';
import type { Webhooks } from '../webhooks/events.js';

export interface ServerOptions {
  logger?: Logger;
  backplane?: Backplane;
  /** The seams below default to the cluster backplane's shared stores, or to memory ones for a single node. */
  history?: HistoryStore;
  presence?: PresenceStore;
  readState?: ReadStateStore;
  channelPresence?: ChannelPresenceStore;
  chatReads?: ChatReadStore;
}

export interface StorywireServer extends Facade {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly nodeId: string;
  /** The WebSocket port actually listened on (after listen()). */
  readonly port: number;
  /** The admin port actually listened on, when ADMIN_PORT is set. */
  readonly adminPort: number | undefined;
  /** What webhook events are signed with (WEBHOOK_SECRET, or dev mode's generated one; empty without webhooks). */
  readonly webhookSecrets: readonly string[];
  /** True when no JWT key was configured and a random dev secret is in use. */
  readonly devMode: boolean;
  /** False before listen() and from the start of a shutdown. */
  readonly ready: boolean;
  listen(): Promise<number>;
  /**
   * Graceful stop: readiness off, listen socket closed, open connections closed with 4000 in batches spread
   * over `drainMs` (default DRAIN_MS), then everything else. Resolves when done.
   */
  shutdown(drainMs?: number): Promise<void>;
  /** shutdown(0). */
  close(): Promise<void>;
  /** Dev mode only: a token for `userId` signed with the dev secret, with `claims` added (a subscription token's `channel`). */
  signDevToken(userId: string, roles?: readonly string[], ttlS?: number, claims?: Record<string, unknown>): Promise<string>;
}

export function createServer(config: Config, options: ServerOptions = {}): StorywireServer {
  const log = options.logger ?? pino({ level: config.logLevel });
  const metrics = new Metrics();
  const { channels, verifier, access, notify } = policiesOf(config, metrics, log);
  const backplane: Backplane = options.backplane ?? new MemoryBackplane(config.nodeId);
  const nodeId = backplane.nodeId;
  const maxConnections = connectionCap(config, channels, !backplane.single, log);
  metrics.backplaneUp.set(backplane.up ? 1 : 0);
  backplane.onStateChange((up) => metrics.backplaneUp.set(up ? 1 : 0));
  metrics.backplanePartial.set(backplane.partial ? 1 : 0);
  backplane.onPartialChange((partial) => metrics.backplanePartial.set(partial ? 1 : 0));
  const app = uws.App();
  const adminApp = config.adminPort === undefined ? undefined : uws.App();
  const { history, presenceStore, readState, channelPresenceStore } = storesOf(config, options, backplane, channels);
  const connections = new Connections(config, metrics, log);
  const pubsub = new PubSub(app, topology(backplane, history), metrics, Math.max(4096, config.maxBackpressureBytes / 4), {
    checkAll: () => connections.checkBackpressure(),
    checkUser: (userId) => connections.checkOverBudget(userId),
  }, new IdempotencyStore(config.idempotencyTtlS * 1000, config.idempotencyMaxKeys), channels);
  // Subscribers who missed events the history no longer holds resume, and are told `recovered: false`.
  backplane.onHistoryLost((topic) => connections.closeSubscribers(topic, CloseCode.RECONNECT, 'history lost: reconnect to resume (recovered: false)'));
  // Webhooks and the push fallback: their unread counts and presence are read when a push is first sent.
  const hooks = new NodeWebhooks({
    config,
    log,
    nodeId,
    registry: metrics.registry,
    cluster: backplane.single ? undefined : backplane.stores,
    unreadCount: (userId) => inbox.list(userId, 1).then((p) => p.unreadCount),
    online: (userId) => presence.isOnline(userId),
  });
  const presence = new Presence(presenceStore, pubsub, { graceMs: config.presenceGraceMs, broadcast: config.presenceBroadcast, onTransition: presenceHook(hooks.webhooks) }, log);
  // A dead node's connections, swept by this one: the connection.closed webhooks it could not send.
  presenceStore.onConnectionsLost((nodeId, connections) => hooks.webhooks.connectionsLost(nodeId, connections));
  const typing = new Typing(pubsub, config.typingTimeoutMs);
  const inbox = new Inbox(history, readState, pubsub, { historySize: channels.namespace('user')?.history?.size ?? config.historySize, userShare: userShareOf(config), cacheBytes: config.inboxCacheBytes, onRead: hooks.push?.read.bind(hooks.push) });
  const channelPresence = new ChannelPresence(channelPresenceStore, config.maxPresenceMembers, log);
  // A subscription ended (unsubscribe, revocation, its token's expiry): what rests on it goes with it.
  const chat = new Chat(pubsub, history, channels, access, config);
  const chatReadStore = options.chatReads ?? (backplane.single ? new MemoryChatReads(config.historyMaxTopics * 10) : backplane.stores.chatReads);
  const chatReads = new ChatReads(pubsub, history, channels, access, chatReadStore, chat, config.maxUnreadChannels);
  const left = (ws: Socket, topic: string): void => {
    const conn = ws.getUserData().conn;
    tokenSubscriptions.forget(ws, topic);
    channelPresence.left(conn, topic);
    // Its typing indicator there too (subscribing was what let it type): the others see it stop now.
    typing.stop(ws, conn.userId, topic);
    if (hooks.webhooks.wants('channel.unsubscribed')) hooks.webhooks.emit('channel.unsubscribed', { userId: conn.userId, connectionId: conn.id, channel: topic });
  };
  const tokenSubscriptions = new TokenSubscriptions((ws, frame) => ctx.send(ws, frame), 1000, left);
  const ctx = handlerContext(config, log, metrics, { pubsub, presence, typing, inbox, channels, access, tokenSubscriptions, notify, channelPresence, chat, chatReads, left, push: hooks.push, webhooks: hooks.webhooks }, verifier, connections);

  const sockets = new Listening(
    config,
    app,
    adminApp,
    connections,
    () => {
      typing.stopAll();
      presence.stop();
      tokenSubscriptions.stop();
      access.close();
      verifier.stop();
    },
    async () => {
      // Senders stop taking (what they hold stays queued: another node takes it over), then the cluster is left.
      await hooks.stop();
      await backplane.close();
    },
  );
  const upgrades = createUpgrades({ config, maxConnections, log, metrics, verifier, backplane, presence: presenceStore, connections, shuttingDown: () => sockets.shuttingDown });
  app.ws(config.wsPath, new Lifecycle({ config, log, metrics, ctx, connections, pubsub, presence, typing, upgrades, single: backplane.single }).behavior());

  backplane.onDisconnect((userId, code, reason) => connections.disconnect(userId, code, reason));
  // A revocation on this node: the subscriptions end, and no proxy keeps the decision that granted them.
  const revoke = (userId: string, channel: string, reason: string): number => {
    for (const proxy of access.proxies.values()) proxy.forget(decisionKey('subscribe', userId, channel));
    return connections.unsubscribe(userId, channel, reason, left);
  };
  backplane.onUnsubscribe(revoke);

  const server: StorywireServer = {
    ...createFacade(pubsub, presence, connections, backplane, revoke, hooks.push?.stored),
    webhookSecrets: hooks.secrets,
    config,
    log,
    metrics,
    nodeId,
    get port() {
      return sockets.port;
    },
    get adminPort() {
      return sockets.adminPort;
    },
    get ready() {
      return sockets.ready;
    },
    devMode: verifier.devSecret !== undefined,
    listen: () => {
      // The JWKS is fetched from now on; /readyz stays 503 until it was (an upgrade before then gets UNAVAILABLE).
      verifier.start();
      return sockets.listen().then((port) => {
        hooks.start(port);
        return port;
      });
    },
    shutdown: (drainMs = config.drainMs) => sockets.shutdown(drainMs),

    close() {
      return server.shutdown(0);
    },
    async signDevToken(userId, roles = [], ttlS, claims) {
      if (!verifier.devSecret) throw new Error('signDevToken is only available in dev mode (no JWT key configured)');
      return signDevToken(verifier.devSecret, userId, roles, ttlS, config, claims);
    },
  };

  registerHttp(app, adminApp, server, { config, log, metrics, server, channels, limits: limitsOf(config), isReady: () => server.ready, keysReady: () => verifier.ready, backplaneUp: () => backplane.up, backplanePartial: () => backplane.partial });
  registerAdminView(app, adminApp, {
    config,
    log,
    metrics,
    nodeId,
    backplane,
    connections,
    onlineUsers: (userIds) => server.onlineUsers(userIds),
    disconnectUser: (userId, code, reason) => server.disconnectUser(userId, code, reason),
    durationS: (conn) => upgrades.durationS(conn),
  });
  return server;
}

/**
 * Who may do what: the channel registry first (a bad CHANNELS_FILE is a ConfigError before anything listens),
 * the token verifier (it keeps the claims the rules read), the rules, and the notification policy (NOTIFY_PROXY
 * names a proxy of CHANNELS_FILE: an unknown one is a ConfigError too).
 */
function policiesOf(config: Config, metrics: Metrics, log: Logger) {
  const channels = loadChannels(config);
  const verifier = createVerifier(config, channels.claims, log);
  const access = new Access(channels, verifier, channels.proxies.size > 0 ? new ProxyMetrics(metrics.registry) : undefined);
  return { channels, verifier, access, notify: new NotifyPolicy(config, access, channels) };
}

/** Presence transitions as `user.online` / `user.offline` webhooks (once per transition, cluster-wide). */
function presenceHook(webhooks: Webhooks) {
  return (type: 'user:online' | 'user:offline', userId: string, at: number): void => {
    if (type === 'user:online') webhooks.emit('user.online', { userId }, at);
    else webhooks.emit('user.offline', { userId, lastSeen: at }, at);
  };
}

/**
 * MAX_CONNECTIONS once the backend proxies are known (their sockets join the open-files reserve), before
 * anything listens: one the limit cannot hold stops the start. Logged when it follows the limit.
 */
function connectionCap(config: Config, channels: Channels, redis: boolean, log: Logger): number {
  // Each webhook destination's requests in flight hold sockets too.
  const outbound = [...[...channels.proxies.values()].map((p) => p.maxInFlight), ...plannedDestinations(config).map(() => config.webhookConcurrency)];
  const budget = withProxies(config.maxConnections, config.openFiles, redis, outbound);
  if (budget.problem !== undefined) throw new ConfigError([budget.problem]);
  const { limit, derived } = config.openFiles;
  if (limit === undefined) log.info({ maxConnections: budget.maxConnections, platform: process.platform }, 'open-files limit not readable here: MAX_CONNECTIONS is not checked against it');
  else if (derived) log.info({ maxConnections: budget.maxConnections, openFilesLimit: limit }, 'MAX_CONNECTIONS derived from the open-files limit');
  return budget.maxConnections;
}

/** The HTTP side: health and metrics, the backend API (on ADMIN_PORT when set), the demo page, 404s. */
function registerHttp(app: UWS.TemplatedApp, adminApp: UWS.TemplatedApp | undefined, server: StorywireServer, apiDeps: ApiDeps): void {
  const { config, log } = apiDeps;
  registerOperations(app, apiDeps, adminApp === undefined);
  if (adminApp) registerOperations(adminApp, apiDeps, true);
  if (config.apiKey === undefined) log.warn('API_KEY is not set: the backend HTTP API answers 503 (and /metrics needs ADMIN_PORT)');
  registerApi(adminApp ?? app, apiDeps);
  registerDemo(app, config, log, () => server);
  for (const target of adminApp ? [app, adminApp] : [app]) {
    target.any('/*', (res) => new Reply(res).fail(ErrorCode.NOT_FOUND, 'not found'));
  }
}


/** The stores of one node: those given, else the ones a cluster backplane shares, else in memory. */
function storesOf(
  config: Config,
  options: ServerOptions,
  backplane: Backplane,
  channels: Channels,
): { history: HistoryStore; presenceStore: PresenceStore; readState: ReadStateStore; channelPresenceStore: ChannelPresenceStore } {
  const shared = backplane.single ? undefined : backplane.stores;
  const history = options.history ?? shared?.history ?? new MemoryHistory({ size: config.historySize, ttlMs: config.historyTtlS * 1000, maxTopics: config.historyMaxTopics, maxBytes: config.historyMaxBytes, userSize: userShareOf(config), perTopic: channels.historyLimits });
  const presenceStore = options.presence ?? shared?.presence ?? new MemoryPresence();
  const readState = options.readState ?? shared?.readState ?? memoryReadState(config, history);
  const channelPresenceStore = options.channelPresence ?? shared?.channelPresence ?? new MemoryChannelPresence();
  return { history, presenceStore, readState, channelPresenceStore };
}

/** Read state in this process: with a history in this process too, it goes with the topic evicted. */
function memoryReadState(config: Config, history: HistoryStore): MemoryReadState {
  const limits = { maxUsers: config.historyMaxTopics, maxIds: config.historySize * 2 };
  if (history instanceof MemoryHistory) return MemoryReadState.alongside(history, limits);
  return new MemoryReadState(limits, (userId) => history.position(userTopic(userId)));
}

/** The listen sockets, the node's timers (heartbeat, sweep) and the graceful stop. */
class Listening {
  private listenSocket: UWS.us_listen_socket | undefined;
  private adminSocket: UWS.us_listen_socket | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopping: Promise<void> | undefined;
  port = -1;
  adminPort: number | undefined;

  constructor(
    private readonly config: Config,
    private readonly app: UWS.TemplatedApp,
    private readonly adminApp: UWS.TemplatedApp | undefined,
    private readonly connections: Connections,
    /** After the connections are drained: the features' timers. */
    private readonly stopFeatures: () => void,
    /** Last: leave the cluster. */
    private readonly closeBackplane: () => Promise<void>,
  ) {}

  /** Listening, and not shutting down (shutdown closes the listen socket first). */
  get ready(): boolean {
    return this.listenSocket !== undefined;
  }

  get shuttingDown(): boolean {
    return this.stopping !== undefined;
  }

  private listenOn(target: UWS.TemplatedApp, p: number, host = this.config.host): Promise<UWS.us_listen_socket> {
    return new Promise((resolve, reject) => {
      target.listen(host, p, (ls) => (ls ? resolve(ls) : reject(new Error(`could not listen on ${host}:${p}`))));
    });
  }

  async listen(): Promise<number> {
    this.listenSocket = await this.listenOn(this.app, this.config.port);
    this.port = uws.us_socket_local_port(this.listenSocket as unknown as UWS.us_socket);
    if (this.adminApp) {
      this.adminSocket = await this.listenOn(this.adminApp, this.config.adminPort!, this.config.adminHost);
      this.adminPort = uws.us_socket_local_port(this.adminSocket as unknown as UWS.us_socket);
    }
    this.timers.push(
      setInterval(() => this.connections.sendAll(heartbeatFrame()), this.config.heartbeatIntervalMs),
      setInterval(() => this.connections.sweep(), 500),
    );
    return this.port;
  }

  shutdown(drainMs: number): Promise<void> {
    this.stopping ??= (async () => {
      if (this.listenSocket) uws.us_listen_socket_close(this.listenSocket);
      this.listenSocket = undefined;
      // Closing the listen socket leaves open WebSockets alone: end them here.
      await this.connections.drain(drainMs);
      for (const t of this.timers) clearInterval(t);
      this.stopFeatures();
      if (this.adminSocket) uws.us_listen_socket_close(this.adminSocket);
      this.adminSocket = undefined;
      await this.closeBackplane();
    })();
    return this.stopping;
  }
}

/** What the message handlers are given: the features, replies to a socket, and the token refresh. */
function handlerContext(
  config: Config,
  log: Logger,
  metrics: Metrics,
  features: Pick<Ctx, 'pubsub' | 'presence' | 'typing' | 'inbox' | 'channels' | 'access' | 'tokenSubscriptions' | 'left' | 'notify' | 'channelPresence' | 'chat' | 'chatReads' | 'push' | 'webhooks'>,
  verifier: ReturnType<typeof createVerifier>,
  connections: Connections,
): Ctx {
  return {
    config,
    log,
    metrics,
    ...features,
    localConnections: (userId) => connections.of(userId),
    send(ws, frame) {
      if (ws.getUserData().conn.closed) return;
      ws.send(frame);
      metrics.messagesOut.inc();
    },
    async refresh(ws, token) {
      const next = await verifier.verify(token);
      const conn = ws.getUserData().conn;
      if (next.userId !== conn.userId) {
        throw new WireError(ErrorCode.TOKEN_SUBJECT_MISMATCH, 'the new token is for another user');
      }
      checkRefresh(conn.exp, next);
      if (!conn.closed) connections.refresh(ws, next);
      return { exp: next.exp };
    },
  };
}
