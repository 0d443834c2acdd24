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
import { dispatch, limitOf, parseFrame, rateLimited, replyError, type Ctx } from '../wire/messages.js';
import { FrameError, limitsOf, type ClientMessage, type Limits } from '../wire/protocol.js';
import { PRESENCE_ALL, STORIES, userTopic } from '../wire/topics.js';
import { isRefused, personalPosition, setPersonalPosition, type AnySocket, type Held, type Refused, type Socket } from './conn.js';
import type { Connections } from './connections.js';
import { Budgets } from './rates.js';
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

/** The uWS handlers of one node's WebSocket route; `behavior()` is what `app.ws()` takes. */
export class Lifecycle {
  private readonly limits: Limits;
  /** Message budgets per user and per address, kept across reconnects (this node's share in a cluster). */
  private readonly budgets: Budgets;
  /** The topics every connection joins along with its personal topic: fixed for the server's life. */
  private readonly alongWith: readonly string[];
  private readonly connectedFrame: ReturnType<typeof connectedFrameTemplate>;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly d: LifecycleDeps) {
    const { config } = d;
    this.limits = limitsOf(config);
    this.budgets = new Budgets(
      {
        all: { ratePerS: config.rateLimitPerS, burst: config.rateLimitBurst },
        notify: { ratePerS: config.notifyRatePerS, burst: config.notifyBurst },
        publish: { ratePerS: config.publishRatePerS, burst: config.publishBurst },
      },
      {
        all: { ratePerS: config.rateLimitPerSPerIp, burst: config.rateLimitBurstPerIp },
        notify: { ratePerS: config.notifyRatePerSPerIp, burst: config.notifyBurstPerIp },
        publish: { ratePerS: config.publishRatePerSPerIp, burst: config.publishBurstPerIp },
      },
      config.rateBudgetMaxKeys,
      { ratePerS: config.historyReadBytesPerS, burst: config.historyReadBurstBytes },
    );
    this.alongWith = [...(config.autoSubscribeStories ? [STORIES] : []), ...(config.presenceBroadcast ? [PRESENCE_ALL] : [])];
    this.connectedFrame = connectedFrameTemplate({
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      idleTimeoutS: config.idleTimeoutS,
      limits: {
        maxPayloadBytes: config.maxPayloadBytes,
        maxSubscriptions: config.maxSubscriptions,
        maxPresenceIds: config.maxPresenceIds,
        maxNotificationBytes: config.maxNotificationBytes,
        maxStoryBytes: config.maxStoryBytes,
        // The personal topic's: what the SDK's inbox can expect the server to keep.
        historySize: d.ctx.channels.namespace('user')?.history?.size ?? config.historySize,
      },
      // Asked for only where a push destination reads them (section 15).
      receipts: d.ctx.push !== undefined,
    });
  }

  behavior(): UWS.WebSocketBehavior<Held | Refused> {
    const { config, pubsub, upgrades } = this.d;
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
      ...(this.d.single
        ? {}
        : {
            subscription(_ws: AnySocket, topicBuf: ArrayBuffer, newCount: number, oldCount: number) {
              if (newCount > 0 && oldCount > 0) return;
              pubsub.localInterest(Buffer.from(topicBuf).toString(), newCount > 0);
            },
          }),

      upgrade: upgrades.handle,

      open: (ws: AnySocket) => {
        const data = ws.getUserData();
        // A refused upgrade, told in band (see upgrades.refuse): nothing to register.
        if (isRefused(data)) ws.end(data.refusal.code, data.refusal.reason);
        else this.open(ws as Socket);
      },
      message: (ws: AnySocket, data: ArrayBuffer, isBinary: boolean) => this.message(ws as Socket, data, isBinary),
      close: (ws: AnySocket, code: number) => {
        if (!isRefused(ws.getUserData())) this.close(ws as Socket, code);
      },
    };
  }

  private open(ws: Socket): void {
    const conn = ws.getUserData().conn;
    const userId = conn.userId;
    this.d.connections.add(ws);
    this.d.metrics.connection('accepted');
    const personal = userTopic(userId);
    // The personal topic is joined through the history (resuming from ?since= when given), and the
    // `connected` frame goes first in the same cork: connected, then what was missed, then live.
    const resumeFrom = personalPosition(conn);
    const welcome = (r: JoinResult | undefined) => {
      setPersonalPosition(conn, r);
      // A resume's replay is never refused (the upgrade budgets bound reconnects) but is charged: a user whose
      // reconnects replay megabytes finds its inbox pages and replays refused until the budget refills.
      if (r !== undefined && r.replayedBytes > 0) this.budgets.readBucket(userId).charge(r.replayedBytes, Date.now());
      const permissions = conn.permissions.size === 0 ? [] : [...conn.permissions];
      // No position while the history store is unreachable (cluster without Redis).
      const position = r && { epoch: r.epoch, offset: r.offset, ...(resumeFrom ? { recovered: r.recovered === true, replayed: r.replayed } : {}) };
      this.d.ctx.send(ws, this.connectedFrame({ userId, connectionId: conn.id, permissions, exp: conn.exp }, personal, position));
    };
    const failed = (err: unknown) => {
      this.d.log.error({ err, userId }, 'joining the personal topic failed');
      if (!conn.closed) ws.end(CloseCode.RECONNECT, 'could not load history: reconnect');
    };
    try {
      const joined = this.d.pubsub.join(ws, personal, resumeFrom, { prelude: welcome, alongWith: this.alongWith });
      if (joined instanceof Promise) joined.catch(failed);
    } catch (err) {
      // A synchronous join that threw: an exception must not leave a uWS handler. The close has run by
      // now (ws.end calls it), so presence is not registered for a connection that is gone.
      failed(err);
      return;
    }
    if (this.d.log.isLevelEnabled('info')) this.d.log.info({ userId, connectionId: conn.id, ip: conn.ip }, 'connection open');
    this.d.presence.open(userId, conn.id)?.catch((err: unknown) => this.d.log.error({ err, userId }, 'presence open failed'));
    this.d.ctx.webhooks.connection('connection.opened', { userId, connectionId: conn.id });
  }

  private message(ws: Socket, data: ArrayBuffer, isBinary: boolean): void {
    if (data.byteLength > this.d.config.maxPayloadBytes) {
      this.d.metrics.rejectedFor(ErrorCode.PAYLOAD_TOO_LARGE);
      ws.end(CloseCode.MESSAGE_TOO_BIG, `message too big: limit is ${this.d.config.maxPayloadBytes} bytes`);
      return;
    }
    const conn = ws.getUserData().conn;
    // The user's and the address's buckets, looked up on the first message (most connections only listen)
    // and cached on the connection: a reconnect finds them as the last connection left them. Every frame
    // draws from them, binary ones too: an error reply is work the sender must pay for.
    conn.rates ??= this.budgets.forConnection(conn.userId, conn.ip);
    const rates = conn.rates;
    const refusedBy = rates.takeAll();
    if (isBinary) {
      if (refusedBy !== undefined) rateLimited(this.d.ctx, ws, rates, undefined, limitOf(this.d.ctx, 'all', refusedBy));
      else replyError(this.d.ctx, ws, new WireError(ErrorCode.BINARY_NOT_SUPPORTED, 'binary frames are not supported: send JSON text frames'), undefined);
      return;
    }
    let msg: ClientMessage;
    try {
      msg = parseFrame(this.decoder.decode(data), this.limits, data.byteLength);
    } catch (err) {
      if (refusedBy !== undefined) {
        rateLimited(this.d.ctx, ws, rates, undefined, limitOf(this.d.ctx, 'all', refusedBy));
        return;
      }
      // A TypeError from the fatal decoder: uWS already refuses invalid UTF-8 in text frames, this is the second line.
      replyError(this.d.ctx, ws, err instanceof TypeError ? new WireError(ErrorCode.BAD_JSON, 'frame is not valid UTF-8') : err, err instanceof FrameError ? err.requestId : undefined);
      return;
    }
    if (refusedBy === undefined) dispatch(this.d.ctx, ws, msg, rates);
    else rateLimited(this.d.ctx, ws, rates, msg.id, limitOf(this.d.ctx, 'all', refusedBy));
  }

  private close(ws: Socket, code: number): void {
    const conn = ws.getUserData().conn;
    conn.closed = true;
    const userId = conn.userId;
    this.d.connections.remove(ws, code);
    this.d.metrics.closed(code);
    this.d.typing.closed(ws);
    this.d.ctx.channelPresence.closed(conn);
    if (this.d.log.isLevelEnabled('info')) this.d.log.info({ userId, connectionId: conn.id, code, durationS: this.d.upgrades.durationS(conn) }, 'connection closed');
    this.d.presence.close(userId, conn.id)?.catch((err: unknown) => this.d.log.error({ err, userId }, 'presence close failed'));
    this.d.ctx.webhooks.connection('connection.closed', { userId, connectionId: conn.id, code });
  }
}
