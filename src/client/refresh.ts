// Token refresh on a live connection: a new token from the provider before `exp`, handed over with `auth`.
import { ClientErrorCode, ServerErrorCode, StorywireError } from './codes.js';
import { jwtExp, obtainToken, refreshDelay } from './token.js';
import type { Clock, TokenProvider } from './types.js';

export interface RefreshDeps {
  source: string | TokenProvider;
  clock: Clock;
  /** How long before `exp` the provider is asked. */
  leadMs: number;
  isConnected(): boolean;
  /** Sends `auth` with the token; resolves with the ack's data. */
  auth(token: string): Promise<{ exp?: number } | undefined>;
  reconnectNow(reason: string): void;
  refreshed(exp: number | undefined): void;
  report(err: StorywireError): void;
}

export class TokenRefresh {
  private timer: unknown;

  constructor(private readonly d: RefreshDeps) {}

  /** A connection opened with `token`: schedule its refresh (a fixed token is never refreshed). */
  opened(token: string): void {
    if (typeof this.d.source !== 'string') this.schedule(jwtExp(token));
  }

  stop(): void {
    this.d.clock.clearTimeout(this.timer);
  }

  /**
   * Gets a new token from the provider and hands it to the live connection (`auth`). A server without
   * `auth`, or a token for another user, is answered by reconnecting with it instead.
   */
  async refresh(): Promise<void> {
    if (typeof this.d.source === 'string') throw new StorywireError(ClientErrorCode.TOKEN_PROVIDER, 'a fixed token cannot be refreshed: pass a token provider', false, false);
    if (!this.d.isConnected()) return;
    const token = await obtainToken(this.d.source, { reason: 'refresh' });
    try {
      const ack = await this.d.auth(token);
      const exp = ack?.exp ?? jwtExp(token);
      this.d.refreshed(exp);
      this.schedule(exp);
    } catch (err) {
      const code = (err as StorywireError).code;
      if (code === ServerErrorCode.UNKNOWN_TYPE || code === ServerErrorCode.TOKEN_SUBJECT_MISMATCH) {
        this.d.reconnectNow(`token refresh: ${(err as Error).message}; reconnecting with a new token`);
        return;
      }
      throw err;
    }
  }

  private schedule(exp: number | undefined, delay = refreshDelay(exp, Date.now(), this.d.leadMs)): void {
    this.d.clock.clearTimeout(this.timer);
    if (delay === undefined) return;
    this.timer = this.d.clock.setTimeout(() => {
      this.refresh().catch((err: unknown) => {
        this.d.report(err instanceof StorywireError ? err : new StorywireError(ClientErrorCode.TOKEN_PROVIDER, String(err), false, false));
        // Try again while the token still has life left; the next connection fetches a new one anyway.
        const left = exp === undefined ? 0 : exp * 1000 - Date.now();
        if (left > 2000 && this.d.isConnected()) this.schedule(exp, Math.min(30_000, left / 2));
      });
    }, delay);
  }
}
