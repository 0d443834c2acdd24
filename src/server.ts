// The uWS app: upgrade (auth) -> open (join topics, presence) -> message (parse, dispatch) -> close; plus HTTP.
import pino, { type Logger } from 'pino';
import { createVerifier, extractToken, signDevToken, type Principal } from './auth.js';
import type { Config } from './config.js';
import { CloseCode, ErrorCode, WireError } from './errors.js';
import { FrameError, parseFrame, parseSinceParam, type ChapterInput, type JsonObject, type Limits, type NotificationInput, type StoryInput } from './protocol.js';
import type { Position } from './history/types.js';
import { PubSub, type JoinResult } from './pubsub.js';
import { connectedFrameTemplate, errorFrame, heartbeatFrame, rawEventFrame } from './serialize.js';
import { dispatch, type Conn, type Ctx, type Socket } from './dispatch.js';
import { uws, type UWS } from './uws.js';
import { Metrics, type ConnectOutcome } from './metrics.js';
import { registerApi, registerOperations } from './http-api.js';
import { Reply, statusLine } from './http.js';
import { ConnectionRates, Counts, clientAddress } from './limits.js';
import { Connections } from './connections.js';
import type { Backplane } from './backplane/types.js';
import { MemoryBackplane } from './backplane/memory.js';
import { Presence } from './features/presence.js';
import { Typing } from './features/typing.js';
import { sendNotification, type Notification } from './features/notifications.js';
import { Inbox } from './features/inbox.js';
import type { HistoryStore } from './history/types.js';
import { MemoryHistory } from './history/memory.js';
import { broadcastNewChapter, broadcastNewStory, broadcastStoryUpdated, type BroadcastResult } from './features/stories.js';
import { PRESENCE_ALL, STORIES, userTopic } from './features/topics.js';
import { registerDemo } from './demo.js';

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
  sendNotificationToUser(userIds: string | readonly string[], notification: NotificationInput, from?: string | null): { notification: Notification; delivered: Promise<number> };
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
  });
  const presence = new Presence(backplane.presence, pubsub, { graceMs: config.presenceGraceMs, broadcast: config.presenceBroadcast }, log);
  const typing = new Typing(pubsub, config.typingTimeoutMs);
  const inbox = new Inbox(history, pubsub, config.historySize);
  const limits: Limits = { maxNotificationBytes: config.maxNotificationBytes, maxStoryBytes: config.maxStoryBytes, maxPresenceIds: config.maxPresenceIds };
  const byAddress = connections.byAddress;
  const pendingByUser = new Counts();
  const rateSpecs = {
    all: { ratePerS: config.rateLimitPerS, burst: config.rateLimitBurst },
    notify: { ratePerS: config.notifyRatePerS, burst: config.notifyBurst },
    publish: { ratePerS: config.publishRatePerS, burst: config.publishBurst },
  };
  const allowedOrigins = config.allowedOrigins && !config.allowedOrigins.includes('*') ? new Set(config.allowedOrigins) : undefined;
  const proxyHeader = config.trustProxyHeader?.toLowerCase();
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
  // Single node with a shared-secret key: an upgrade is decided and made in the handler itself, with no
  // promise, timer or abort handler (a third of a handshake's server CPU, profiled).
  const verifyNow = backplane.single ? verifier.verifyNow : undefined;
  const startedAt = Date.now();
  let connCounter = 0;
  let pendingUpgrades = 0;
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
    log.error({ err, userId: ws.getUserData().principal.userId }, 'handler failed');
    ctx.send(ws, errorFrame(id, ErrorCode.INTERNAL, 'internal error'));
  }

  function refuseUpgrade(res: UWS.HttpResponse, err: WireError, ip: string): void {
    metrics.connection(String(err.status) as ConnectOutcome);
    log.info({ ip, reason: err.code }, 'upgrade rejected');
    res.writeStatus(statusLine(err.status));
    res.writeHeader('content-type', 'application/json').end(JSON.stringify({ error: { code: err.code, message: err.message } }), true);
  }

  function rateLimited(ws: Socket, rates: ConnectionRates, id: FrameError['requestId'], what: string): void {
    const conn = ws.getUserData();
    metrics.rejectedFor(ErrorCode.RATE_LIMITED);
    if (++rates.strikes >= config.rateLimitCloseAfter) {
      log.info({ userId: conn.principal.userId, connectionId: conn.id }, 'closing a connection that kept sending past its rate limit');
      ws.end(CloseCode.RATE_LIMITED, 'rate limit exceeded: back off');
      return;
    }
    ctx.send(ws, errorFrame(id, ErrorCode.RATE_LIMITED, `${what}: slow down`));
  }

  /** Verification bounded in time: a slow JWKS cannot hold an upgrade open. */
  function verifyWithin(token: string): Promise<Principal> {
    // A timer per upgrade cost ~10 us of a ~60 us handshake (profiled); only a JWKS fetch can be slow.
    if (verifier.local) return verifier.verify(token);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new WireError(ErrorCode.TIMEOUT, 'token verification timed out', 503)), config.upgradeTimeoutMs);
      verifier.verify(token).then(
        (p) => (clearTimeout(timer), resolve(p)),
        (err: unknown) => (clearTimeout(timer), reject(err)),
      );
    });
  }

  const asAuthError = (err: unknown): WireError => (err instanceof WireError ? err : new WireError(ErrorCode.TOKEN_INVALID, 'token invalid', 401));
  const tooManyForUser = () => new WireError(ErrorCode.CONNECTION_LIMIT, `at most ${config.maxConnectionsPerUser} connections per user`, 429);

  /** A connection's state; uWS copies its properties onto the socket, so it holds as few as it can. */
  function newConn(principal: Principal, ip: string, resumeFrom: Position | undefined): Conn {
    return {
      id: `${nodeId}-${(++connCounter).toString(36)}`,
      principal,
      ip,
      openedS: ((Date.now() - startedAt) / 1000) | 0,
      subscriptions: undefined,
      personal: resumeFrom,
      rates: undefined,
      slowStrikes: 0,
      typing: undefined,
      closed: false,
    };
  }

  const decoder = new TextDecoder('utf-8', { fatal: true });

  app.ws<Conn>(config.wsPath, {
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

    upgrade(res, req, context) {
      const secKey = req.getHeader('sec-websocket-key');
      const secExtensions = req.getHeader('sec-websocket-extensions');
      const origin = req.getHeader('origin');
      const source = extractToken(req.getHeader('authorization'), req.getHeader('sec-websocket-protocol'), req.getQuery('token') ?? '');
      const sinceParam = req.getQuery('since') ?? '';
      const ip = clientAddress(Buffer.from(res.getRemoteAddressAsText()).toString(), proxyHeader ? req.getHeader(proxyHeader) : '');
      // Cheap refusals first: none of these costs a signature check.
      if (shutdownPromise) {
        refuseUpgrade(res, new WireError(ErrorCode.UNAVAILABLE, 'server shutting down: connect to another node', 503), ip);
        return;
      }
      if (allowedOrigins && origin && !allowedOrigins.has(origin)) {
        refuseUpgrade(res, new WireError(ErrorCode.ORIGIN_FORBIDDEN, `origin ${origin.slice(0, 200)} is not allowed`, 403), ip);
        return;
      }
      if (connections.size + pendingUpgrades >= config.maxConnections) {
        refuseUpgrade(res, new WireError(ErrorCode.CONNECTION_LIMIT, 'server full: try another node or later', 503), ip);
        return;
      }
      if (byAddress.get(ip) >= config.maxConnectionsPerIp) {
        refuseUpgrade(res, new WireError(ErrorCode.CONNECTION_LIMIT, `too many connections from ${ip}`, 429), ip);
        return;
      }
      let resumeFrom;
      try {
        resumeFrom = parseSinceParam(sinceParam);
      } catch (err) {
        refuseUpgrade(res, err as WireError, ip);
        return;
      }
      if (!source.token) {
        refuseUpgrade(res, new WireError(ErrorCode.TOKEN_MISSING, 'no token: send Authorization: Bearer <jwt>, ?token=<jwt> or the bearer.<jwt> subprotocol', 401), ip);
        return;
      }
      if (verifyNow) {
        let principal;
        try {
          principal = verifyNow(source.token);
        } catch (err) {
          refuseUpgrade(res, asAuthError(err), ip);
          return;
        }
        // One node: its own connections are all the user's connections.
        if (connections.of(principal.userId) >= config.maxConnectionsPerUser) {
          refuseUpgrade(res, tooManyForUser(), ip);
          return;
        }
        byAddress.inc(ip);
        res.upgrade(newConn(principal, ip, resumeFrom), secKey, source.protocol, secExtensions, context);
        return;
      }
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      pendingUpgrades++;
      byAddress.inc(ip);
      let userId: string | undefined;
      const upgrade = async (): Promise<void> => {
        const principal = await verifyWithin(source.token!);
        const user = (userId = principal.userId);
        pendingByUser.inc(user);
        // Cluster-wide count; while Redis is unreachable, this node's own count (new connections are still
        // accepted then: a node keeps serving, and the limit still holds on the node).
        const others = await backplane.presence.count(user).catch(() => connections.of(user));
        if (others + pendingByUser.get(user) - 1 >= config.maxConnectionsPerUser) throw tooManyForUser();
        if (aborted) {
          byAddress.dec(ip);
          return;
        }
        // open() runs inside upgrade(), so the address stays counted without a gap.
        res.cork(() => res.upgrade(newConn(principal, ip, resumeFrom), secKey, source.protocol, secExtensions, context));
      };
      upgrade()
        .catch((err: unknown) => {
          byAddress.dec(ip);
          if (aborted) return;
          res.cork(() => refuseUpgrade(res, asAuthError(err), ip));
        })
        .finally(() => {
          pendingUpgrades--;
          if (userId !== undefined) pendingByUser.dec(userId);
        });
    },

    open(ws) {
      const conn = ws.getUserData();
      const userId = conn.principal.userId;
      connections.add(ws);
      metrics.connection('accepted');
      const personal = userTopic(userId);
      // The personal topic is joined through the history (resuming from ?since= when given), and the
      // `connected` frame goes first in the same cork: connected, then what was missed, then live.
      const resumeFrom = conn.personal;
      const welcome = (r: JoinResult | undefined) => {
        conn.personal = r && { epoch: r.epoch, offset: r.offset };
        const principal = conn.principal;
        const permissions = principal.permissions.size === 0 ? [] : [...principal.permissions];
        // No position while the history store is unreachable (cluster without Redis).
        const position = r && { epoch: r.epoch, offset: r.offset, ...(resumeFrom ? { recovered: r.recovered === true, replayed: r.replayed } : {}) };
        ctx.send(ws, connectedFrame({ userId, connectionId: conn.id, permissions, exp: principal.exp }, personal, position));
      };
      const joined = pubsub.join(ws, personal, resumeFrom, { prelude: welcome, alongWith });
      if (joined instanceof Promise) {
        joined.catch((err: unknown) => {
          log.error({ err, userId }, 'joining the personal topic failed');
          if (!conn.closed) ws.end(CloseCode.RECONNECT, 'could not load history: reconnect');
        });
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
      const conn = ws.getUserData();
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
      if (log.isLevelEnabled('debug')) log.debug({ userId: conn.principal.userId, type: msg.type }, 'message');
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
      connections.remove(ws, code);
      metrics.closed(code);
      typing.closed(ws);
      if (log.isLevelEnabled('info')) log.info({ userId, connectionId: conn.id, code, durationS: ((Date.now() - startedAt) / 1000 - conn.openedS) | 0 }, 'connection closed');
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

    sendNotificationToUser: (userIds, notification, from = null) => sendNotification(pubsub, typeof userIds === 'string' ? [userIds] : userIds, notification, from),
    broadcastNewStory: (story, authorId = null) => broadcastNewStory(pubsub, story, authorId),
    broadcastStoryUpdated: (story, authorId = null) => broadcastStoryUpdated(pubsub, story, authorId),
    broadcastNewChapter: (chapter, authorId = null) => broadcastNewChapter(pubsub, chapter, authorId),
    publish: (topic, type, data) => pubsub.emit(type, topic, rawEventFrame(type, topic, data)),
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
