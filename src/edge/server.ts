// The uWS app: upgrade (upgrade.ts) -> open (join topics, presence) -> message (parse, dispatch) -> close; plus HTTP.
import pino, { type Logger } from 'pino';
import { createVerifier, signDevToken } from './auth.js';
import type { Config } from '../config.js';
import { CloseCode, ErrorCode, WireError } from '../wire/codes.js';
import { FrameError, parseFrame, type ChapterInput, type JsonObject, type Limits, type NotificationInput, type StoryInput } from '../wire/protocol.js';
import { PubSub, type JoinResult } from '../pubsub/pubsub.js';
import { connectedFrameTemplate, errorFrame, heartbeatFrame, rawEventFrame } from '../wire/frames.js';
import { dispatch, personalPosition, setPersonalPosition, type Conn, type Ctx, type Held, type Socket } from './dispatch.js';
import { uws, type UWS } from './uws.js';
import { Metrics } from '../metrics.js';
import { registerApi, registerOperations } from '../api/routes.js';
import { Reply } from '../api/http.js';
import { ConnectionRates } from './rates.js';
import { Connections } from './connections.js';
import type { Backplane } from '../seams/backplane/types.js';
import { MemoryBackplane } from '../seams/backplane/memory.js';
import { Presence } from '../features/presence.js';
import { Typing } from '../features/typing.js';
import { sendNotification, type Notification } from '../features/notifications.js';
import { Inbox } from '../features/inbox.js';
import type { HistoryStore } from '../seams/history/types.js';
import { MemoryHistory } from '../seams/history/memory.js';
import { broadcastNewChapter, broadcastNewStory, broadcastStoryUpdated, type BroadcastResult } from '../features/stories.js';
import { PRESENCE_ALL, STORIES, userTopic } from '../wire/topics.js';
import { registerDemo } from '../api/demo.js';
import { createUpgrades } from './upgrade.js';
import { IdempotencyStore, keyedFrom, type KeyedPublish, type PublishOptions } from '../pubsub/idempotency.js';

export interface ServerOptions {
  logger?: Logger;
  backplane?: Backplane;
  history?: HistoryStore;
}

export interface StorywireServer {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly nodeId: string;
  /** The WebSocket port actually listened on (after listen()). */
  readonly port: number;
  /** The admin port actually listened on, when ADMIN_PORT is set. */
  readonly adminPort: number | undefined;
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
  /** Dev mode only: a token for `userId` signed with the dev secret. */
  signDevToken(userId: string, roles?: readonly string[], ttlS?: number): Promise<string>;
  /**
   * Publishing operations resolve with the number of connections on this node handed the event, once the
   * other nodes have it too; they reject with a PartialDelivery (UNAVAILABLE, `.delivered`) otherwise.
   */
  /**
   * `options.idempotencyKey` (or a KeyedPublish, whose `duplicate` tells afterwards): a retry with the same
   * key within IDEMPOTENCY_TTL_S stores and delivers nothing new and resolves with 0 delivered.
   */
  sendNotificationToUser(userIds: string | readonly string[], notification: NotificationInput, from?: string | null, options?: PublishOptions | KeyedPublish): { notification: Notification; delivered: Promise<number> };
  broadcastNewStory(story: StoryInput, authorId?: string | null, options?: PublishOptions | KeyedPublish): BroadcastResult;
  broadcastStoryUpdated(story: JsonObject & { id: string }, authorId?: string | null, options?: PublishOptions | KeyedPublish): BroadcastResult;
  broadcastNewChapter(chapter: ChapterInput, authorId?: string | null, options?: PublishOptions | KeyedPublish): BroadcastResult;
  /** A backend-defined event on any topic (no schema; `data` passed through). */
  publish(topic: string, type: string, data: object, options?: PublishOptions | KeyedPublish): BroadcastResult;
  isOnline(userId: string): Promise<boolean>;
  onlineUsers(userIds: readonly string[]): Promise<string[]>;
  /** Closes every connection of the user with `code`, on every node; resolves with how many were closed. */
  disconnectUser(userId: string, code?: number, reason?: string): Promise<number>;
  /** Open connections of a user on this node. */
  connectionsOf(userId: string): number;
}

export function createServer(config: Config, options: ServerOptions = {}): StorywireServer {
  const log = options.logger ?? pino({ level: config.logLevel });
  const verifier = createVerifier(config);
  const backplane: Backplane = options.backplane ?? new MemoryBackplane(config.nodeId);
  const nodeId = backplane.nodeId;
  const metrics = new Metrics();
  metrics.backplaneUp.set(backplane.up ? 1 : 0);
  backplane.onStateChange((up) => metrics.backplaneUp.set(up ? 1 : 0));
  const app = uws.App();
  const adminApp = config.adminPort === undefined ? undefined : uws.App();
  const history = options.history ?? backplane.history ?? new MemoryHistory({ size: config.historySize, ttlMs: config.historyTtlS * 1000, maxTopics: config.historyMaxTopics });
  const connections = new Connections(config, metrics, log);
  const pubsub = new PubSub(app, backplane, history, metrics, Math.max(4096, config.maxBackpressureBytes / 4), {
    checkAll: () => connections.checkBackpressure(),
    checkUser: (userId) => connections.checkOverBudget(userId),
  }, new IdempotencyStore(config.idempotencyTtlS * 1000, config.idempotencyMaxKeys));
  // Subscribers who missed events the history no longer holds resume, and are told `recovered: false`.
  backplane.onHistoryLost((topic) => connections.closeSubscribers(topic, CloseCode.RECONNECT, 'history lost: reconnect to resume (recovered: false)'));
  const presence = new Presence(backplane.presence, pubsub, { graceMs: config.presenceGraceMs, broadcast: config.presenceBroadcast }, log);
  const typing = new Typing(pubsub, config.typingTimeoutMs);
  const inbox = new Inbox(history, pubsub, config.historySize);
  const limits: Limits = { maxNotificationBytes: config.maxNotificationBytes, maxStoryBytes: config.maxStoryBytes, maxPresenceIds: config.maxPresenceIds };
  const rateSpecs = {
    all: { ratePerS: config.rateLimitPerS, burst: config.rateLimitBurst },
    notify: { ratePerS: config.notifyRatePerS, burst: config.notifyBurst },
    publish: { ratePerS: config.publishRatePerS, burst: config.publishBurst },
  };
  // Fixed for the server's life: built once, not per connection.
  const alongWith = [...(config.autoSubscribeStories ? [STORIES] : []), ...(config.presenceBroadcast ? [PRESENCE_ALL] : [])];
  const connectedFrame = connectedFrameTemplate({
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    idleTimeoutS: config.idleTimeoutS,
    limits: {
      maxPayloadBytes: config.maxPayloadBytes,
      maxSubscriptions: config.maxSubscriptions,
      maxPresenceIds: config.maxPresenceIds,
      maxNotificationBytes: config.maxNotificationBytes,
      maxStoryBytes: config.maxStoryBytes,
      historySize: config.historySize,
    },
  });
  let listenSocket: UWS.us_listen_socket | undefined;
  let adminSocket: UWS.us_listen_socket | undefined;
  let port = -1;
  let adminPort: number | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let housekeeping: NodeJS.Timeout | undefined;
  let shutdownPromise: Promise<void> | undefined;

  const ctx: Ctx = {
    config,
    log,
    pubsub,
    presence,
    typing,
    inbox,
    send(ws, frame) {
      if (ws.getUserData().c.closed) return;
      ws.send(frame);
      metrics.messagesOut.inc();
    },
    async refresh(ws, token) {
      const next = await verifier.verify(token);
      const conn = ws.getUserData().c;
      if (next.userId !== conn.userId) {
        throw new WireError(ErrorCode.TOKEN_SUBJECT_MISMATCH, 'the new token is for another user');
      }
      if (!conn.closed) connections.refresh(ws, next);
      return { exp: next.exp };
    },
  };

  function reply(ws: Socket, err: unknown, id: FrameError['requestId']): void {
    if (err instanceof WireError) {
      metrics.rejectedFor(err.code);
      ctx.send(ws, errorFrame(id, err.code, err.message));
      return;
    }
    metrics.rejectedFor(ErrorCode.INTERNAL);
    log.error({ err, userId: ws.getUserData().c.userId }, 'handler failed');
    ctx.send(ws, errorFrame(id, ErrorCode.INTERNAL, 'internal error'));
  }

  function rateLimited(ws: Socket, rates: ConnectionRates, id: FrameError['requestId'], what: string): void {
    const conn = ws.getUserData().c;
    metrics.rejectedFor(ErrorCode.RATE_LIMITED);
    if (++rates.strikes >= config.rateLimitCloseAfter) {
      log.info({ userId: conn.userId, connectionId: conn.id }, 'closing a connection that kept sending past its rate limit');
      ws.end(CloseCode.RATE_LIMITED, 'rate limit exceeded: back off');
      return;
    }
    ctx.send(ws, errorFrame(id, ErrorCode.RATE_LIMITED, `${what}: slow down`));
  }

  const upgrades = createUpgrades({ config, log, metrics, verifier, backplane, connections, shuttingDown: () => shutdownPromise !== undefined });
  const decoder = new TextDecoder('utf-8', { fatal: true });

  app.ws<Held<Conn>>(config.wsPath, {
    // uWS drops frames over its own limit with an abrupt close (the client sees 1006). Frames between
    // MAX_PAYLOAD_BYTES and 4x that are read and closed cleanly with 1009 so the client learns why.
    maxPayloadLength: config.maxPayloadBytes * 4,
    idleTimeout: config.idleTimeoutS,
    sendPingsAutomatically: true,
    // Connections.checkBackpressure() closes connections over MAX_BACKPRESSURE_BYTES with 4101; uWS drops (1006) those
    // that reach 4x that between two checks, so that no message is ever silently skipped for a slow reader.
    maxBackpressure: config.maxBackpressureBytes * 4,
    closeOnBackpressureLimit: true as unknown as number,
    compression: uws.DISABLED,

    // Other nodes send this one a topic's frames only while it has local subscribers.
    // A single node has nobody to tell: no handler, no call into JS per subscription.
    ...(backplane.single
      ? {}
      : {
          subscription(_ws: Socket, topicBuf: ArrayBuffer, newCount: number, oldCount: number) {
            if (newCount > 0 && oldCount > 0) return;
            pubsub.localInterest(Buffer.from(topicBuf).toString(), newCount > 0);
          },
        }),

    upgrade: upgrades.handle,

    open(ws) {
      const held = ws.getUserData();
      if (held.refusal !== undefined) {
        // A refused upgrade, told in band (see upgrades.refuse): nothing to register.
        ws.end(held.refusal.code, held.refusal.reason);
        return;
      }
      const conn = held.c;
      const userId = conn.userId;
      connections.add(ws);
      metrics.connection('accepted');
      const personal = userTopic(userId);
      // The personal topic is joined through the history (resuming from ?since= when given), and the
      // `connected` frame goes first in the same cork: connected, then what was missed, then live.
      const resumeFrom = personalPosition(conn);
      const welcome = (r: JoinResult | undefined) => {
        setPersonalPosition(conn, r);
        const permissions = conn.permissions.size === 0 ? [] : [...conn.permissions];
        // No position while the history store is unreachable (cluster without Redis).
        const position = r && { epoch: r.epoch, offset: r.offset, ...(resumeFrom ? { recovered: r.recovered === true, replayed: r.replayed } : {}) };
        ctx.send(ws, connectedFrame({ userId, connectionId: conn.id, permissions, exp: conn.exp }, personal, position));
      };
      const failed = (err: unknown) => {
        log.error({ err, userId }, 'joining the personal topic failed');
        if (!conn.closed) ws.end(CloseCode.RECONNECT, 'could not load history: reconnect');
      };
      try {
        const joined = pubsub.join(ws, personal, resumeFrom, { prelude: welcome, alongWith });
        if (joined instanceof Promise) joined.catch(failed);
      } catch (err) {
        // A synchronous join that threw: an exception must not leave a uWS handler. The close has run by
        // now (ws.end calls it), so presence is not registered for a connection that is gone.
        failed(err);
        return;
      }
      if (log.isLevelEnabled('info')) log.info({ userId, connectionId: conn.id, ip: conn.ip }, 'connection open');
      presence.open(userId, conn.id)?.catch((err: unknown) => log.error({ err, userId }, 'presence open failed'));
    },

    message(ws, message, isBinary) {
      if (message.byteLength > config.maxPayloadBytes) {
        metrics.rejectedFor(ErrorCode.PAYLOAD_TOO_LARGE);
        ws.end(CloseCode.MESSAGE_TOO_BIG, `message too big: limit is ${config.maxPayloadBytes} bytes`);
        return;
      }
      if (isBinary) {
        reply(ws, new WireError(ErrorCode.BINARY_NOT_SUPPORTED, 'binary frames are not supported: send JSON text frames'), undefined);
        return;
      }
      const conn = ws.getUserData().c;
      // Created on the first message: a bucket made now is full, as one made at connect time would still be.
      const rates = (conn.rates ??= new ConnectionRates(rateSpecs));
      const allowed = rates.all.take();
      let msg;
      try {
        msg = parseFrame(decoder.decode(message), limits, message.byteLength);
      } catch (err) {
        if (!allowed) {
          rateLimited(ws, rates, undefined, `at most ${config.rateLimitPerS} messages per second`);
          return;
        }
        // A TypeError from the fatal decoder: uWS already refuses invalid UTF-8 in text frames, this is the second line.
        reply(ws, err instanceof TypeError ? new WireError(ErrorCode.BAD_JSON, 'frame is not valid UTF-8') : err, err instanceof FrameError ? err.requestId : undefined);
        return;
      }
      if (!allowed) {
        rateLimited(ws, rates, msg.id, `at most ${config.rateLimitPerS} messages per second`);
        return;
      }
      if (msg.type === 'send:notification' && !rates.notifyBucket().take()) {
        rateLimited(ws, rates, msg.id, `at most ${config.notifyRatePerS} notifications per second`);
        return;
      }
      if ((msg.type === 'story:published' || msg.type === 'chapter:published' || msg.type === 'profile:updated') && !rates.publishBucket().take()) {
        rateLimited(ws, rates, msg.id, `at most ${config.publishRatePerS} publications per second`);
        return;
      }
      rates.strikes = 0;
      metrics.messageIn(msg.type);
      if (log.isLevelEnabled('debug')) log.debug({ userId: conn.userId, type: msg.type }, 'message');
      try {
        const pending = dispatch(ctx, ws, msg);
        if (pending) pending.catch((err: unknown) => reply(ws, err, msg.id));
      } catch (err) {
        reply(ws, err, msg.id);
      }
    },

    close(ws, code) {
      const held = ws.getUserData();
      if (held.refusal !== undefined) return;
      const conn = held.c;
      conn.closed = true;
      const userId = conn.userId;
      connections.remove(ws, code);
      metrics.closed(code);
      typing.closed(ws);
      if (log.isLevelEnabled('info')) log.info({ userId, connectionId: conn.id, code, durationS: upgrades.durationS(conn) }, 'connection closed');
      presence.close(userId, conn.id)?.catch((err: unknown) => log.error({ err, userId }, 'presence close failed'));
    },
  });

  function listenOn(target: UWS.TemplatedApp, p: number): Promise<UWS.us_listen_socket> {
    return new Promise((resolve, reject) => {
      target.listen(config.host, p, (ls) => (ls ? resolve(ls) : reject(new Error(`could not listen on ${config.host}:${p}`))));
    });
  }

  backplane.onDisconnect((userId, code, reason) => connections.disconnect(userId, code, reason));

  const server: StorywireServer = {
    config,
    log,
    metrics,
    nodeId,
    get port() {
      return port;
    },
    get adminPort() {
      return adminPort;
    },
    get ready() {
      // Listening, and not shutting down (shutdown closes the listen socket first).
      return listenSocket !== undefined;
    },
    devMode: verifier.devSecret !== undefined,

    async listen() {
      listenSocket = await listenOn(app, config.port);
      port = uws.us_socket_local_port(listenSocket as unknown as UWS.us_socket);
      if (adminApp) {
        adminSocket = await listenOn(adminApp, config.adminPort!);
        adminPort = uws.us_socket_local_port(adminSocket as unknown as UWS.us_socket);
      }
      heartbeat = setInterval(() => connections.sendAll(heartbeatFrame()), config.heartbeatIntervalMs);
      housekeeping = setInterval(() => connections.sweep(), 500);
      return port;
    },

    shutdown(drainMs = config.drainMs) {
      shutdownPromise ??= (async () => {
        if (listenSocket) uws.us_listen_socket_close(listenSocket);
        listenSocket = undefined;
        // Closing the listen socket leaves open WebSockets alone: end them here.
        await connections.drain(drainMs);
        if (heartbeat) clearInterval(heartbeat);
        if (housekeeping) clearInterval(housekeeping);
        typing.stopAll();
        presence.stop();
        if (adminSocket) uws.us_listen_socket_close(adminSocket);
        adminSocket = undefined;
        await backplane.close();
      })();
      return shutdownPromise;
    },

    close() {
      return server.shutdown(0);
    },

    async signDevToken(userId, roles = [], ttlS) {
      if (!verifier.devSecret) throw new Error('signDevToken is only available in dev mode (no JWT key configured)');
      return signDevToken(verifier.devSecret, userId, roles, ttlS, config);
    },

    sendNotificationToUser(userIds, notification, from = null, options) {
      const ids = typeof userIds === 'string' ? [userIds] : userIds;
      return sendNotification(pubsub, ids, notification, from, keyedFrom(options, 'notification', [ids, notification, from]));
    },
    broadcastNewStory: (story, authorId = null, options) => broadcastNewStory(pubsub, story, authorId, keyedFrom(options, 'story:new', [story, authorId])),
    broadcastStoryUpdated: (story, authorId = null, options) => broadcastStoryUpdated(pubsub, story, authorId, keyedFrom(options, 'story:updated', [story, authorId])),
    broadcastNewChapter: (chapter, authorId = null, options) => broadcastNewChapter(pubsub, chapter, authorId, keyedFrom(options, 'chapter:new', [chapter, authorId])),
    publish(topic, type, data, options) {
      const keyed = keyedFrom(options, 'publish', [topic, type, data]);
      return pubsub.emit(type, topic, rawEventFrame(type, topic, data), undefined, keyed?.part());
    },
    isOnline: (userId) => presence.isOnline(userId),
    onlineUsers: (userIds) => presence.online(userIds),
    async disconnectUser(userId, code = CloseCode.TOKEN_REVOKED, reason = 'disconnected by the server') {
      const local = connections.disconnect(userId, code, reason);
      try {
        return local + (await backplane.disconnectUser(userId, code, reason));
      } catch {
        throw new WireError(ErrorCode.UNAVAILABLE, `closed ${local} connection(s) on this node; the other nodes could not be reached`, 503);
      }
    },
    connectionsOf: (userId) => connections.of(userId),
  };

  const apiDeps = { config, log, metrics, server, limits, isReady: () => server.ready, backplaneUp: () => backplane.up };
  const apiApp = adminApp ?? app;
  registerOperations(app, apiDeps, adminApp === undefined);
  if (adminApp) registerOperations(adminApp, apiDeps, true);
  if (config.apiKey === undefined) log.warn('API_KEY is not set: the backend HTTP API answers 503 (and /metrics needs ADMIN_PORT)');
  registerApi(apiApp, apiDeps);
  registerDemo(app, config, log, () => server);
  for (const target of adminApp ? [app, adminApp] : [app]) {
    target.any('/*', (res) => new Reply(res).json(404, { error: { code: ErrorCode.NOT_FOUND, message: 'not found' } }));
  }
  return server;
}
