// The uWS app: upgrade (auth) -> open (join topics, presence) -> message (parse, dispatch) -> close.
import { randomBytes } from 'node:crypto';
import pino, { type Logger } from 'pino';
import { createVerifier, extractToken, signDevToken, type Principal } from './auth.js';
import type { Config } from './config.js';
import { CloseCode, ErrorCode, WireError } from './errors.js';
import { FrameError, parseFrame, type JsonObject, type Limits, type NotificationInput, type StoryInput, type ChapterInput } from './protocol.js';
import { PubSub } from './pubsub.js';
import { connectedFrame, errorFrame, heartbeatFrame } from './serialize.js';
import { dispatch, type Conn, type Ctx, type Socket } from './dispatch.js';
import { uws, type UWS } from './uws.js';
import type { Backplane } from './backplane/types.js';
import { MemoryBackplane } from './backplane/memory.js';
import { Presence } from './features/presence.js';
import { Typing } from './features/typing.js';
import { sendNotification, type SendResult } from './features/notifications.js';
import { broadcastNewChapter, broadcastNewStory, broadcastStoryUpdated, type BroadcastResult } from './features/stories.js';
import { HEARTBEAT, PRESENCE_ALL, STORIES, userTopic } from './features/topics.js';
import { registerDemo } from './demo.js';

export interface ServerOptions {
  logger?: Logger;
  backplane?: Backplane;
}

export interface StorywireServer {
  readonly config: Config;
  readonly log: Logger;
  readonly nodeId: string;
  /** The port actually listened on (after listen()). */
  readonly port: number;
  /** True when no JWT key was configured and a random dev secret is in use. */
  readonly devMode: boolean;
  listen(): Promise<number>;
  close(): Promise<void>;
  /** Dev mode only: a token for `userId` signed with the dev secret. */
  signDevToken(userId: string, roles?: readonly string[], ttlS?: number): Promise<string>;
  sendNotificationToUser(userIds: string | readonly string[], notification: NotificationInput, from?: string | null): SendResult;
  broadcastNewStory(story: StoryInput, authorId?: string | null): BroadcastResult;
  broadcastStoryUpdated(story: JsonObject & { id: string }, authorId?: string | null): BroadcastResult;
  broadcastNewChapter(chapter: ChapterInput, authorId?: string | null): BroadcastResult;
  isOnline(userId: string): Promise<boolean>;
  /** Open connections of a user on this node. */
  connectionsOf(userId: string): number;
}

function reject(res: UWS.HttpResponse, err: WireError): void {
  const status = err.status === 403 ? '403 Forbidden' : err.status === 503 ? '503 Service Unavailable' : err.status === 429 ? '429 Too Many Requests' : '401 Unauthorized';
  res
    .writeStatus(status)
    .writeHeader('content-type', 'application/json')
    .end(JSON.stringify({ error: { code: err.code, message: err.message } }), true);
}

export function createServer(config: Config, options: ServerOptions = {}): StorywireServer {
  const log = options.logger ?? pino({ level: config.logLevel });
  const nodeId = randomBytes(4).toString('hex');
  const verifier = createVerifier(config);
  const backplane = options.backplane ?? new MemoryBackplane();
  const app = uws.App();
  const pubsub = new PubSub(app, backplane);
  const presence = new Presence(backplane.presence, pubsub, { graceMs: config.presenceGraceMs, broadcast: config.presenceBroadcast }, log);
  const typing = new Typing(pubsub, config.typingTimeoutMs);
  const limits: Limits = { maxNotificationBytes: config.maxNotificationBytes, maxStoryBytes: config.maxStoryBytes, maxPresenceIds: config.maxPresenceIds };
  const byUser = new Map<string, Set<Socket>>();
  let connCounter = 0;
  let listenSocket: UWS.us_listen_socket | undefined;
  let port = -1;

  const ctx: Ctx = {
    config,
    log,
    pubsub,
    presence,
    typing,
    send(ws, frame) {
      if (!ws.getUserData().closed) ws.send(frame);
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
      ctx.send(ws, errorFrame(id, err.code, err.message));
      return;
    }
    log.error({ err, userId: ws.getUserData().principal.userId }, 'handler failed');
    ctx.send(ws, errorFrame(id, ErrorCode.INTERNAL, 'internal error'));
  }

  const decoder = new TextDecoder('utf-8', { fatal: true });

  app.ws<Conn>(config.wsPath, {
    maxPayloadLength: config.maxPayloadBytes,
    idleTimeout: config.idleTimeoutS,
    sendPingsAutomatically: true,
    maxBackpressure: 1024 * 1024,
    compression: uws.DISABLED,

    upgrade(res, req, context) {
      const secKey = req.getHeader('sec-websocket-key');
      const secExtensions = req.getHeader('sec-websocket-extensions');
      const source = extractToken(req.getHeader('authorization'), req.getHeader('sec-websocket-protocol'), req.getQuery('token') ?? '');
      const ip = Buffer.from(res.getRemoteAddressAsText()).toString();
      if (!source.token) {
        log.info({ ip, reason: ErrorCode.TOKEN_MISSING }, 'upgrade rejected');
        reject(res, new WireError(ErrorCode.TOKEN_MISSING, 'no token: send Authorization: Bearer <jwt>, ?token=<jwt> or the bearer.<jwt> subprotocol', 401));
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
          log.info({ ip, reason: wire.code }, 'upgrade rejected');
          res.cork(() => reject(res, wire));
        },
      );
    },

    open(ws) {
      const conn = ws.getUserData();
      const userId = conn.principal.userId;
      let mine = byUser.get(userId);
      if (!mine) byUser.set(userId, (mine = new Set()));
      mine.add(ws);
      ws.subscribe(userTopic(userId));
      ws.subscribe(HEARTBEAT);
      if (config.autoSubscribeStories) ws.subscribe(STORIES);
      if (config.presenceBroadcast) ws.subscribe(PRESENCE_ALL);
      ws.send(
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
      log.info({ userId, connectionId: conn.id, ip: conn.ip }, 'connection open');
      presence.open(userId, conn.id).catch((err: unknown) => log.error({ err, userId }, 'presence open failed'));
    },

    message(ws, message, isBinary) {
      if (isBinary) {
        ctx.send(ws, errorFrame(undefined, ErrorCode.BINARY_NOT_SUPPORTED, 'binary frames are not supported: send JSON text frames'));
        return;
      }
      let text: string;
      try {
        text = decoder.decode(message);
      } catch {
        // uWS already rejects invalid UTF-8 in text frames; this is the second line of defence.
        ctx.send(ws, errorFrame(undefined, ErrorCode.BAD_JSON, 'frame is not valid UTF-8'));
        return;
      }
      let msg;
      try {
        msg = parseFrame(text, limits);
      } catch (err) {
        reply(ws, err, err instanceof FrameError ? err.requestId : undefined);
        return;
      }
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
      typing.closed(ws);
      log.info({ userId, connectionId: conn.id, code, durationMs: Date.now() - conn.openedAt }, 'connection closed');
      presence.close(userId, conn.id).catch((err: unknown) => log.error({ err, userId }, 'presence close failed'));
    },
  });

  registerDemo(app, config, log, () => server);

  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').writeHeader('content-type', 'application/json').end(JSON.stringify({ error: { code: ErrorCode.NOT_FOUND, message: 'not found' } }));
  });

  let heartbeat: NodeJS.Timeout | undefined;

  const server: StorywireServer = {
    config,
    log,
    nodeId,
    get port() {
      return port;
    },
    devMode: verifier.devSecret !== undefined,

    listen() {
      return new Promise((resolve, reject) => {
        app.listen(config.host, config.port, (ls) => {
          if (!ls) {
            reject(new Error(`could not listen on ${config.host}:${config.port}`));
            return;
          }
          listenSocket = ls;
          port = uws.us_socket_local_port(ls as unknown as UWS.us_socket);
          heartbeat = setInterval(() => pubsub.publishLocal(HEARTBEAT, heartbeatFrame()), config.heartbeatIntervalMs);
          resolve(port);
        });
      });
    },

    async close() {
      if (heartbeat) clearInterval(heartbeat);
      if (listenSocket) uws.us_listen_socket_close(listenSocket);
      listenSocket = undefined;
      // Closing the listen socket leaves open WebSockets alone: end them here.
      for (const sockets of [...byUser.values()]) for (const ws of [...sockets]) ws.end(CloseCode.SHUTDOWN, 'server shutting down');
      typing.stopAll();
      presence.stop();
      await backplane.close();
    },

    async signDevToken(userId, roles = [], ttlS) {
      if (!verifier.devSecret) throw new Error('signDevToken is only available in dev mode (no JWT key configured)');
      return signDevToken(verifier.devSecret, userId, roles, ttlS, config);
    },

    sendNotificationToUser(userIds, notification, from = null) {
      return sendNotification(pubsub, typeof userIds === 'string' ? [userIds] : userIds, notification, from);
    },
    broadcastNewStory: (story, authorId = null) => broadcastNewStory(pubsub, story, authorId),
    broadcastStoryUpdated: (story, authorId = null) => broadcastStoryUpdated(pubsub, story, authorId),
    broadcastNewChapter: (chapter, authorId = null) => broadcastNewChapter(pubsub, chapter, authorId),
    isOnline: (userId) => presence.isOnline(userId),
    connectionsOf: (userId) => byUser.get(userId)?.size ?? 0,
  };
  return server;
}
