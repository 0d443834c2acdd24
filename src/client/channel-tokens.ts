// Subscription tokens for channels the app gates (protocol.md, "Channels"): asked from the app's provider
// before each subscribe of such a channel, and again before the token expires, sent in band as a fresh
// `subscribe` so that the server does not end the subscription (`unsubscribed` SUBSCRIPTION_EXPIRED).
import { ClientErrorCode, StorywireError } from './codes.js';
import { jwtExp, refreshDelay } from './token.js';
import type { Clock, SubscriptionTokenProvider } from './types.js';

export class ChannelTokens {
  private readonly gated = new Set<string>();
  private readonly timers = new Map<string, unknown>();
  /** Tokens given by the app for one channel (not renewed), instead of the provider. */
  private readonly fixed = new Map<string, string>();
  /** The last token the server acknowledged for each channel. */
  private readonly acked = new Map<string, string>();

  constructor(
    private readonly provider: SubscriptionTokenProvider | undefined,
    private readonly clock: Clock,
    private readonly leadMs: number,
  ) {}

  /** Marks a channel as joined with a subscription token: `fixed`, or the provider's (subscribe(topic, { token: true })). */
  gate(topic: string, fixed?: string): void {
    if (fixed !== undefined) {
      if (fixed.length === 0) throw new TypeError('storywire: a subscription token must be a non-empty string');
      this.fixed.set(topic, fixed);
    } else if (!this.provider) throw new TypeError('storywire: subscribe(topic, { token: true }) needs the subscriptionToken option');
    this.gated.add(topic);
  }

  /** The token last acknowledged for the channel on this connection, if any. */
  current(topic: string): string | undefined {
    return this.acked.get(topic);
  }

  has(topic: string): boolean {
    return this.gated.has(topic);
  }

  /** The token for the next subscribe of a gated channel; a failing provider is a TOKEN_PROVIDER error. */
  async token(topic: string): Promise<string> {
    const fixed = this.fixed.get(topic);
    if (fixed !== undefined) return fixed;
    let token: unknown;
    try {
      token = await this.provider!({ channel: topic });
    } catch (err) {
      throw new StorywireError(ClientErrorCode.TOKEN_PROVIDER, `subscription token provider failed for ${topic}: ${(err as Error)?.message ?? String(err)}`, false, false);
    }
    if (typeof token !== 'string' || token.length === 0) throw new StorywireError(ClientErrorCode.TOKEN_PROVIDER, 'subscription token provider must return a non-empty string', false, false);
    return token;
  }

  /** After a subscribe with `token` was acknowledged: `resend` runs ahead of the token's expiry. */
  acknowledged(topic: string, token: string, resend: () => void): void {
    this.cancel(topic);
    this.acked.set(topic, token);
    // A fixed token cannot be renewed: the subscription ends with it (`unsubscribed` SUBSCRIPTION_EXPIRED).
    if (this.fixed.has(topic)) return;
    // Wall time, as `exp` is (the clock's now() is monotonic).
    const delay = refreshDelay(jwtExp(token), Date.now(), this.leadMs);
    if (delay === undefined) return;
    this.timers.set(
      topic,
      this.clock.setTimeout(() => {
        this.timers.delete(topic);
        if (this.gated.has(topic)) resend();
      }, delay),
    );
  }

  /** The channel was left: no more tokens for it. */
  forget(topic: string): void {
    this.gated.delete(topic);
    this.fixed.delete(topic);
    this.acked.delete(topic);
    this.cancel(topic);
  }

  /** The connection is gone: the next one subscribes (with a fresh token) again. */
  lost(): void {
    for (const topic of [...this.timers.keys()]) this.cancel(topic);
    this.acked.clear();
  }

  private cancel(topic: string): void {
    const t = this.timers.get(topic);
    if (t !== undefined) this.clock.clearTimeout(t);
    this.timers.delete(topic);
  }
}
