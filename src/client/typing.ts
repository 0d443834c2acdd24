// Typing indicators sent by this client: `typing:start` at most once per target per throttle window, and
// `typing:stop` only for a target started (the server stops an indicator by itself after its timeout).
import type { Clock, RequestOptions } from './types.js';

type Request = (type: string, data: unknown, opts: RequestOptions) => Promise<unknown>;

export class TypingSender {
  /** When each target's last `typing:start` was sent. */
  private readonly sent = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly throttleMs: number,
    private readonly request: Request,
  ) {}

  /** Resolves true when a frame was sent, false when throttled. Offline it rejects (a late indicator is a wrong one). */
  async start(target: string, opts: RequestOptions = {}): Promise<boolean> {
    const now = this.clock.now();
    const last = this.sent.get(target);
    if (last !== undefined && now - last < this.throttleMs) return false;
    this.sent.set(target, now);
    try {
      await this.request('typing:start', { target }, { ...opts, offline: opts.offline ?? 'reject' });
      return true;
    } catch (err) {
      if (this.sent.get(target) === now) this.sent.delete(target);
      throw err;
    }
  }

  /** Resolves false when no indicator was running for the target. */
  async stop(target: string, opts: RequestOptions = {}): Promise<boolean> {
    if (!this.sent.delete(target)) return false;
    await this.request('typing:stop', { target }, { ...opts, offline: opts.offline ?? 'reject' });
    return true;
  }

  /** The connection is gone: the server dropped every indicator of it. */
  lost(): void {
    this.sent.clear();
  }
}
