// Sending a remembered topic's `subscribe`: with its resume position, and for a channel the app gates with
// subscription tokens, a token from the app's provider (renewed before it expires); the answer settles the
// subscribe() calls waiting for it.
import type { ChannelTokens } from './channel-tokens.js';
import { ClientErrorCode, StorywireError } from './codes.js';
import type { Resume } from './resume.js';
import type { Topics } from './topics.js';
import type { Position, RequestOptions } from './types.js';

export interface SubscriberDeps {
  topics: Topics;
  resume: Resume;
  tokens: ChannelTokens;
  request(type: string, data: unknown, opts: RequestOptions): Promise<unknown>;
  isConnected(): boolean;
  /** Errors no subscribe() call is waiting for. */
  report(err: StorywireError): void;
  /** A subscribe of this connection was acknowledged (after its position was taken), with the `since` it sent. */
  joined(topic: string, ack: unknown, asked: Position | undefined): void;
}

export class Subscriber {
  constructor(private readonly d: SubscriberDeps) {}

  /** Sends the topic's subscribe on the live connection (asking its subscription token first, if gated). */
  send(topic: string): void {
    const { tokens, topics } = this.d;
    if (!tokens.has(topic)) {
      this.subscribeWith(topic, undefined);
      return;
    }
    tokens.token(topic).then(
      (token) => {
        if (this.d.isConnected() && topics.has(topic)) this.subscribeWith(topic, token);
      },
      (err: StorywireError) => {
        if (!topics.settle(topic, err)) this.d.report(err);
      },
    );
  }

  /**
   * Asks again, on a subscription already live, for the events the history holds after `since` up to where this
   * connection joined (protocol.md, "subscribe"): they arrive before the ack. A gated channel sends its token again.
   */
  async replay(topic: string, since: Position): Promise<unknown> {
    const { tokens } = this.d;
    const token = tokens.has(topic) ? (tokens.current(topic) ?? (await tokens.token(topic))) : undefined;
    const ack = await this.d.request('subscribe', { topic, since, ...(token !== undefined ? { token } : {}) }, { offline: 'reject' });
    if (token !== undefined) tokens.acknowledged(topic, token, () => this.d.isConnected() && this.send(topic));
    return ack;
  }

  /** unsubscribe(): the topic, its position and its tokens forgotten; its waiting subscribe() calls cancelled. */
  forget(topic: string): void {
    this.d.topics.delete(topic);
    this.d.resume.forget(topic);
    this.d.tokens.forget(topic);
    this.d.topics.settle(topic, new StorywireError(ClientErrorCode.CANCELLED, `subscribe ${topic}: cancelled by unsubscribe()`, false, false));
  }

  private subscribeWith(topic: string, token: string | undefined): void {
    const { topics, resume, tokens } = this.d;
    const data = { ...resume.subscribeData(topic), ...(token !== undefined ? { token } : {}) };
    this.d.request('subscribe', data, { offline: 'reject' }).then(
      (ack) => {
        const held = topics.has(topic);
        if (held) resume.subscribed(topic, ack as Parameters<Resume['subscribed']>[1], data.since);
        if (token !== undefined) tokens.acknowledged(topic, token, () => this.d.isConnected() && this.send(topic));
        topics.settle(topic);
        if (held) this.d.joined(topic, ack, data.since);
      },
      (err: StorywireError) => {
        // Lost with the connection: the next connection subscribes again and settles the waiters then.
        if (err.code === ClientErrorCode.DISCONNECTED || err.code === ClientErrorCode.NOT_CONNECTED || err.code === ClientErrorCode.CLOSED) return;
        if (err.fromServer) topics.delete(topic);
        if (!topics.settle(topic, err)) this.d.report(err);
      },
    );
  }
}
