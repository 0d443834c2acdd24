// The uWS app: upgrade (auth) -> open (join topics, presence) -> message (parse, dispatch) -> close; plus HTTP.
import pino, { type Logger } from 'pino';
import { createVerifier, extractToken, signDevToken, type Principal } from './auth.js';
import type { Config } from './config.js';
import { CloseCode, ErrorCode, WireError } from './errors.js';
import { FrameError, parseFrame, type ChapterInput, type JsonObject, type Limits, type NotificationInput, type StoryInput } from './protocol.js';
import { PubSub, type PublishResult } from './pubsub.js';
import { connectedFrame, errorFrame, heartbeatFrame, rawEventFrame } from './serialize.js';
import { dispatch, type Conn, type Ctx, type Socket } from './dispatch.js';
import { uws, type UWS } from './uws.js';
import { Metrics, type ConnectOutcome } from './metrics.js';
import { registerApi, registerOperations } from './http-api.js';
import { Reply } from './http.js';
import type { Backplane } from './backplane/types.js';
import { MemoryBackplane } from './backplane/memory.js';
import { Presence } from './features/presence.js';
import { Typing } from './features/typing.js';
import { sendNotification, type SendResult } from './features/notifications.js';
import { broadcastNewChapter, broadcastNewStory, broadcastStoryUpdated, type BroadcastResult } from './features/stories.js';
import { HEARTBEAT, PRESENCE_ALL, STORIES, userTopic } from './features/topics.js';

export interface ServerOptions {
  logger?: Logger;
  backplane?: Backplane;
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
  sendNotificationToUser(userIds: string | readonly string[], notification: NotificationInput, from?: string | null): SendResult;
  broadcastNewStory(story: StoryInput, authorId?: string | null): BroadcastResult;
  broadcastStoryUpdated(story: JsonObject & { id: string }, authorId?: string | null): BroadcastResult;
  broadcastNewChapter(chapter: ChapterInput, authorId?: string | null): BroadcastResult;
  /** A backend-defined event on any topic (no schema; `data` passed through). */
  publish(topic: string, type: string, data: object): BroadcastResult;
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
  const backplane = options.backplane ?? new MemoryBackplane(config.nodeId);
  const nodeId = backplane.nodeId;
  const metrics = new Metrics();
  metrics.backplaneUp.set(backplane.up ? 1 : 0);
  backplane.onStateChange((up) => metrics.backplaneUp.set(up ? 1 : 0));
  const app = uws.App();
  const adminApp = config.adminPort === undefined ? undefined : uws.App();
  const pubsub = new PubSub(app, backplane, metrics);
  const presence = new Presence(backplane.presence, pubsub, { graceMs: config.presenceGraceMs, broadcast: config.presenceBroadcast }, log);
  const typing = new Typing(pubsub, config.typingTimeoutMs);
  const limits: Limits = { maxNotificationBytes: config.maxNotificationBytes, maxStoryBytes: config.maxStoryBytes, maxPresenceIds: config.maxPresenceIds };
  const byUser = new Map<string, Set<Socket>>();
  let connCounter = 0;
  let openCount = 0;
  let listenSocket: UWS.us_listen_socket | undefined;
  let adminSocket: UWS.us_listen_socket | undefined;
  let port = -1;
  let adminPort: number | undefined;
  let ready = false;
  let draining = false;
  let heartbeat: NodeJS.Timeout | undefined;
  let shutdownPromise: Promise<void> | undefined;

  const ctx: Ctx = {
    config,
    log,
    pubsub,
    presence,
    typing,
    send(ws, frame) {
      if (ws.getUserData().closed) return;
      ws.send(frame);
      metrics.messagesOut.inc();
    },
    async refresh(ws, token) {
      const next = await verifier.verify(token);
      const conn = ws.getUserData();
      if (next.userId !== conn.principal.userId) {
        throw new WireError(ErrorCode.TOKEN_SUBJECT_MISMATCH, 'the new token is for another user');
      }
      if (!conn.closed) conn.principal = next;
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
    log.error({ err, userId: ws.getUserData().principal.userId }, 'handler failed');
    ctx.send(ws, errorFrame(id, ErrorCode.INTERNAL, 'internal error'));
  }

  function refuseUpgrade(res: UWS.HttpResponse, err: WireError, ip: string): void {
    const outcome = String(err.status) as ConnectOutcome;
    metrics.connection(['401', '403', '429', '503'].includes(outcome) ? outcome : '401');
    log.info({ ip, reason: err.code }, 'upgrade rejected');
    res.writeStatus(err.status === 403 ? '403 Forbidden' : err.status === 503 ? '503 Service Unavailable' : err.status === 429 ? '429 Too Many Requests' : '401 Unauthorized');
    res.writeHeader('content-type', 'application/json').end(JSON.stringify({ error: { code: err.code, message: err.message } }), true);
  }

  const decoder = new TextDecoder('utf-8', { fatal: true });

  app.ws<Conn>(config.wsPath, {
    // uWS drops frames over its own limit with an abrupt close (the client sees 1006). Frames between
    // MAX_PAYLOAD_BYTES and 4x that are read and closed cleanly with 1009 so the client learns why.
    maxPayloadLength: config.maxPayloadBytes * 4,
    idleTimeout: config.idleTimeoutS,
    sendPingsAutomatically: true,
    maxBackpressure: 1024 * 1024,
    compression: uws.DISABLED,

    // Other nodes send this one a topic's frames only while it has local subscribers (`sys:*` stay local).
    subscription(_ws, topicBuf, newCount, oldCount) {
      if (newCount > 0 && oldCount > 0) return;
      const topic = Buffer.from(topicBuf).toString();
      if (!topic.startsWith('sys:')) backplane.interest(topic, newCount > 0);
    },

    upgrade(res, req, context) {
      const secKey = req.getHeader('sec-websocket-key');
      const secExtensions = req.getHeader('sec-websocket-extensions');
      const source = extractToken(req.getHeader('authorization'), req.getHeader('sec-websocket-protocol'), req.getQuery('token') ?? '');
      const ip = Buffer.from(res.getRemoteAddressAsText()).toString();
      if (draining) {
        refuseUpgrade(res, new WireError(ErrorCode.UNAVAILABLE, 'server shutting down: connect to another node', 503), ip);
        return;
      }
      if (!source.token) {
        refuseUpgrade(res, new WireError(ErrorCode.TOKEN_MISSING, 'no token: send Authorization: Bearer <jwt>, ?token=<jwt> or the bearer.<jwt> subprotocol', 401), ip);
        return;
      }
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      verifier.verify(source.token).then(
        (principal: Principal) => {
          if (aborted) return;
          const conn: Conn = {
            id: `${nodeId}-${(++connCounter).toString(36)}`,
            principal,
            ip,
            openedAt: Date.now(),
            subscriptions: new Set(),
            typing: undefined,
            closed: false,
          };
          res.cork(() => res.upgrade(conn, secKey, source.protocol, secExtensions, context));
        },
        (err: unknown) => {
          if (aborted) return;
          const wire = err instanceof WireError ? err : new WireError(ErrorCode.TOKEN_INVALID, 'token invalid', 401);
          res.cork(() => refuseUpgrade(res, wire, ip));
        },
      );
    },

    open(ws) {
      const conn = ws.getUserData();
      const userId = conn.principal.userId;
      let mine = byUser.get(userId);
      if (!mine) byUser.set(userId, (mine = new Set()));
      mine.add(ws);
      openCount++;
      metrics.connection('accepted');
      metrics.connectionsOpen.set(openCount);
      metrics.presenceOnline.set(byUser.size);
      const topics = [userTopic(userId)];
      if (config.autoSubscribeStories) topics.push(STORIES);
      if (config.presenceBroadcast) topics.push(PRESENCE_ALL);
      for (const topic of topics) ws.subscribe(topic);
      ws.subscribe(HEARTBEAT);
      // ctx.send skips a connection that closed meanwhile.
      const sendConnected = () =>
        ctx.send(
          ws,
          connectedFrame({
            userId,
            connectionId: conn.id,
            permissions: [...conn.principal.permissions],
            heartbeatIntervalMs: config.heartbeatIntervalMs,
            idleTimeoutS: config.idleTimeoutS,
            limits: {
              maxPayloadBytes: config.maxPayloadBytes,
              maxSubscriptions: config.maxSubscriptions,
              maxPresenceIds: config.maxPresenceIds,
              maxNotificationBytes: config.maxNotificationBytes,
              maxStoryBytes: config.maxStoryBytes,
            },
          }),
        );
      // In a cluster, `connected` waits until the other nodes send this node the connection's topics.
      const listening = backplane.whenListening(topics);
      if (listening) listening.then(sendConnected, sendConnected);
      else sendConnected();
      log.info({ userId, connectionId: conn.id, ip: conn.ip }, 'connection open');
      presence.open(userId, conn.id).catch((err: unknown) => log.error({ err, userId }, 'presence open failed'));
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
      let msg;
      try {
        msg = parseFrame(decoder.decode(message), limits);
      } catch (err) {
        // A TypeError from the fatal decoder: uWS already refuses invalid UTF-8 in text frames, this is the second line.
        reply(ws, err instanceof TypeError ? new WireError(ErrorCode.BAD_JSON, 'frame is not valid UTF-8') : err, err instanceof FrameError ? err.requestId : undefined);
        return;
      }
      metrics.messageIn(msg.type);
      if (log.isLevelEnabled('debug')) log.debug({ userId: ws.getUserData().principal.userId, type: msg.type }, 'message');
      try {
        const pending = dispatch(ctx, ws, msg);
        if (pending) pending.catch((err: unknown) => reply(ws, err, msg.id));
      } catch (err) {
        reply(ws, err, msg.id);
      }
    },

    close(ws, code) {
      const conn = ws.getUserData();
      conn.closed = true;
      const userId = conn.principal.userId;
      const mine = byUser.get(userId);
      if (mine) {
        mine.delete(ws);
        if (mine.size === 0) byUser.delete(userId);
      }
      openCount--;
      metrics.connectionsOpen.set(openCount);
      metrics.presenceOnline.set(byUser.size);
      metrics.closed(code);
      typing.closed(ws);
      log.info({ userId, connectionId: conn.id, code, durationMs: Date.now() - conn.openedAt }, 'connection closed');
      presence.close(userId, conn.id).catch((err: unknown) => log.error({ err, userId }, 'presence close failed'));
    },
  });

  function listenOn(target: UWS.TemplatedApp, p: number): Promise<UWS.us_listen_socket> {
    return new Promise((resolve, reject) => {
      target.listen(config.host, p, (ls) => (ls ? resolve(ls) : reject(new Error(`could not listen on ${config.host}:${p}`))));
    });
  }

  function allSockets(): Socket[] {
    const out: Socket[] = [];
    for (const sockets of byUser.values()) for (const ws of sockets) out.push(ws);
    return out;
  }

  /** Closes sockets with SHUTDOWN in batches, every 50 ms, so that all clients do not reconnect at once. */
  function drainSockets(drainMs: number): Promise<void> {
    const sockets = allSockets();
    const steps = Math.max(1, Math.floor(drainMs / 50));
    const perStep = Math.ceil(sockets.length / steps);
    return new Promise((resolve) => {
      const step = () => {
        for (const ws of sockets.splice(0, perStep)) if (!ws.getUserData().closed) ws.end(CloseCode.SHUTDOWN, 'server shutting down');
        if (sockets.length === 0) resolve();
        else setTimeout(step, 50).unref();
      };
      step();
    });
  }

  function disconnectLocal(userId: string, code: number, reason: string): number {
    const sockets = [...(byUser.get(userId) ?? [])];
    for (const ws of sockets) ws.end(code, reason);
    if (sockets.length > 0) log.info({ userId, code, closed: sockets.length }, 'user disconnected by the backend');
    return sockets.length;
  }
  backplane.onDisconnect(disconnectLocal);

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
      return ready;
    },
    devMode: verifier.devSecret !== undefined,

    async listen() {
      listenSocket = await listenOn(app, config.port);
      port = uws.us_socket_local_port(listenSocket as unknown as UWS.us_socket);
      if (adminApp) {
        adminSocket = await listenOn(adminApp, config.adminPort!);
        adminPort = uws.us_socket_local_port(adminSocket as unknown as UWS.us_socket);
      }
      heartbeat = setInterval(() => pubsub.publishLocal(HEARTBEAT, heartbeatFrame()), config.heartbeatIntervalMs);
      ready = true;
      return port;
    },

    shutdown(drainMs = config.drainMs) {
      shutdownPromise ??= (async () => {
        ready = false;
        draining = true;
        if (listenSocket) uws.us_listen_socket_close(listenSocket);
        listenSocket = undefined;
        // Closing the listen socket leaves open WebSockets alone: end them here.
        await drainSockets(drainMs);
        if (heartbeat) clearInterval(heartbeat);
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

    sendNotificationToUser(userIds, notification, from = null) {
      const r = sendNotification(pubsub, typeof userIds === 'string' ? [userIds] : userIds, notification, from);
      metrics.notificationsDelivered.inc(r.delivered);
      return r;
    },
    broadcastNewStory: (story, authorId = null) => broadcastNewStory(pubsub, story, authorId),
    broadcastStoryUpdated: (story, authorId = null) => broadcastStoryUpdated(pubsub, story, authorId),
    broadcastNewChapter: (chapter, authorId = null) => broadcastNewChapter(pubsub, chapter, authorId),
    publish(topic, type, data) {
      const r: PublishResult = pubsub.publish(type, topic, rawEventFrame(type, topic, data));
      return { delivered: r.local, remote: r.remote };
    },
    isOnline: (userId) => presence.isOnline(userId),
    onlineUsers: (userIds) => presence.online(userIds),
    async disconnectUser(userId, code = CloseCode.TOKEN_REVOKED, reason = 'disconnected by the server') {
      const local = disconnectLocal(userId, code, reason);
      try {
        return local + (await backplane.disconnectUser(userId, code, reason));
      } catch {
        throw new WireError(ErrorCode.UNAVAILABLE, `closed ${local} connection(s) on this node; the other nodes could not be reached`, 503);
      }
    },
    connectionsOf: (userId) => byUser.get(userId)?.size ?? 0,
  };

  const apiDeps = { config, log, metrics, server, limits, isReady: () => ready, backplaneUp: () => backplane.up };
  const apiApp = adminApp ?? app;
  registerOperations(app, apiDeps, adminApp === undefined);
  if (adminApp) registerOperations(adminApp, apiDeps, true);
  if (config.apiKey === undefined) log.warn('API_KEY is not set: the backend HTTP API answers 503 (and /metrics needs ADMIN_PORT)');
  registerApi(apiApp, apiDeps);
  for (const target of adminApp ? [app, adminApp] : [app]) {
    target.any('/*', (res) => new Reply(res).json(404, { error: { code: ErrorCode.NOT_FOUND, message: 'not found' } }));
  }
  return server;
}
