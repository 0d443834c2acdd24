// Subscriptions granted by a subscription token end when the token does (its `exp`), unless the client sent a
// fresher token for the channel in the meantime (`subscribe` again with `data.token`). One sweep a second.
import { connOf, type Socket } from '../edge/conn.js';
import { ErrorCode } from '../wire/codes.js';
import { eventFrame } from '../wire/frames.js';

export class TokenSubscriptions {
  /** Socket -> channel -> the token's expiry, seconds since epoch. */
  private readonly bySocket = new Map<Socket, Map<string, number>>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly send: (ws: Socket, frame: string) => void,
    private readonly everyMs = 1000,
    /** Told of each subscription this ends (channel presence). */
    private readonly ended: (ws: Socket, topic: string) => void = () => {},
  ) {}

  /** The subscription of `ws` to `topic` lasts until `exp` (replacing what an older token said). */
  track(ws: Socket, topic: string, exp: number): void {
    let topics = this.bySocket.get(ws);
    if (!topics) {
      topics = new Map();
      this.bySocket.set(ws, topics);
    }
    topics.set(topic, exp);
    this.timer ??= setInterval(() => this.sweep(), this.everyMs).unref();
  }

  /** The subscription no longer rests on a token (joined again without one, or left). */
  forget(ws: Socket, topic: string): void {
    const topics = this.bySocket.get(ws);
    if (topics?.delete(topic) && topics.size === 0) this.bySocket.delete(ws);
  }

  /** Ends every subscription whose token expired: the client is told `unsubscribed` SUBSCRIPTION_EXPIRED. */
  sweep(nowS = Date.now() / 1000): void {
    for (const [ws, topics] of this.bySocket) {
      const conn = connOf(ws);
      for (const [topic, exp] of topics) {
        // Left by the client, or revoked: nothing to end.
        if (conn.closed || conn.subscriptions?.has(topic) !== true) topics.delete(topic);
        else if (exp <= nowS) {
          topics.delete(topic);
          ws.cork(() => {
            this.send(ws, eventFrame('unsubscribed', topic, { topic, code: ErrorCode.SUBSCRIPTION_EXPIRED, reason: 'subscription token expired: subscribe again with a fresh token' }));
            conn.subscriptions?.delete(topic);
            ws.unsubscribe(topic);
          });
          this.ended(ws, topic);
        }
      }
      if (topics.size === 0) this.bySocket.delete(ws);
    }
    if (this.bySocket.size === 0) this.stop();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
