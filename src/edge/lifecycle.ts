// The WebSocket lifecycle: open (register, join the personal topic with `connected` first, presence),
// message (size, rate, parse, then the message's spec), close (unregister, typing, presence).
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Presence } from '../features/presence.js';
import type { Typing } from '../features/typing.js';
import type { Metrics } from '../metrics.js';
import type { JoinResult, PubSub } from '../pubsub/pubsub.js';
import { CloseCode, ErrorCode, WireError } from '../wire/codes.js';
import { connectedFrameTemplate } from '../wire/frames.js';
import { dispatch, parseFrame, rateLimited, replyError, type Ctx } from '../wire/messages.js';
import { FrameError, limitsOf, type ClientMessage } from '../wire/protocol.js';
import { PRESENCE_ALL, STORIES, userTopic } from '../wire/topics.js';
import { isRefused, personalPosition, setPersonalPosition, type AnySocket, type Held, type Refused, type Socket } from './conn.js';
import type { Connections } from './connections.js';
import { ConnectionRates } from './rates.js';
import type { Upgrades } from './upgrade.js';
import { uws, type UWS } from '../uws.js';

export interface LifecycleDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  ctx: Ctx;
  connections: Connections;
  pubsub: PubSub;
  presence: Presence;
  typing: Typing;
  upgrades: Upgrades;
  /** One node: no `subscription` handler (nobody to tell about topic interest). */
  single: boolean;
}

export function websocketBehavior(deps: LifecycleDeps): UWS.WebSocketBehavior<Held | Refused> {
  const { config, log, metrics, ctx, connections, pubsub, presence, typing, upgrades } = deps;
  const limits = limitsOf(config);
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
  const decoder = new TextDecoder('utf-8', { fatal: true });

  function open(ws: Socket): void {
    const conn = ws.getUserData().conn;
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
  }

  function message(ws: Socket, data: ArrayBuffer, isBinary: boolean): void {
    if (data.byteLength > config.maxPayloadBytes) {
      metrics.rejectedFor(ErrorCode.PAYLOAD_TOO_LARGE);
      ws.end(CloseCode.MESSAGE_TOO_BIG, `message too big: limit is ${config.maxPayloadBytes} bytes`);
      return;
    }
    if (isBinary) {
      replyError(ctx, ws, new WireError(ErrorCode.BINARY_NOT_SUPPORTED, 'binary frames are not supported: send JSON text frames'), undefined);
      return;
    }
    const conn = ws.getUserData().conn;
    // Created on the first message: a bucket made now is full, as one made at connect time would still be.
    conn.rates ??= new ConnectionRates(rateSpecs);
    const rates = conn.rates;
    const allowed = rates.all.take();
    let msg: ClientMessage;
    try {
      msg = parseFrame(decoder.decode(data), limits, data.byteLength);
    } catch (err) {
      if (!allowed) {
        rateLimited(ctx, ws, rates, undefined, `at most ${config.rateLimitPerS} messages per second`);
        return;
      }
      // A TypeError from the fatal decoder: uWS already refuses invalid UTF-8 in text frames, this is the second line.
      replyError(ctx, ws, err instanceof TypeError ? new WireError(ErrorCode.BAD_JSON, 'frame is not valid UTF-8') : err, err instanceof FrameError ? err.requestId : undefined);
      return;
    }
    if (allowed) dispatch(ctx, ws, msg, rates);
    else rateLimited(ctx, ws, rates, msg.id, `at most ${config.rateLimitPerS} messages per second`);
  }

  function close(ws: Socket, code: number): void {
    const conn = ws.getUserData().conn;
    conn.closed = true;
    const userId = conn.userId;
    connections.remove(ws, code);
    metrics.closed(code);
    typing.closed(ws);
    if (log.isLevelEnabled('info')) log.info({ userId, connectionId: conn.id, code, durationS: upgrades.durationS(conn) }, 'connection closed');
    presence.close(userId, conn.id)?.catch((err: unknown) => log.error({ err, userId }, 'presence close failed'));
  }

  return {
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
    ...(deps.single
      ? {}
      : {
          subscription(_ws: AnySocket, topicBuf: ArrayBuffer, newCount: number, oldCount: number) {
            if (newCount > 0 && oldCount > 0) return;
            pubsub.localInterest(Buffer.from(topicBuf).toString(), newCount > 0);
          },
        }),

    upgrade: upgrades.handle,

    open(ws: AnySocket) {
      const data = ws.getUserData();
      // A refused upgrade, told in band (see upgrades.refuse): nothing to register.
      if (isRefused(data)) ws.end(data.refusal.code, data.refusal.reason);
      else open(ws as Socket);
    },
    message(ws: AnySocket, data: ArrayBuffer, isBinary: boolean) {
      message(ws as Socket, data, isBinary);
    },
    close(ws: AnySocket, code: number) {
      if (!isRefused(ws.getUserData())) close(ws as Socket, code);
    },
  };
}
