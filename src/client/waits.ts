// What a conversation's requests wait on: its next join, a pause between two tries, and its end, which cuts
// every wait short (a send that waits loses to it).
import type { StorywireError } from './codes.js';
import type { Clock } from './types.js';

interface Waiter {
  resolve(): void;
  reject(e: StorywireError): void;
}

export class Waits {
  private joins: Waiter[] = [];
  private readonly sleeping = new Set<() => void>();
  private endedBy: StorywireError | undefined;
  /** Rejected by end(): what a request races against it. */
  readonly ended: Promise<never>;
  private signalEnd: (e: StorywireError) => void = () => {};

  constructor(private readonly clock: Clock) {
    this.ended = new Promise<never>((_, reject) => (this.signalEnd = reject));
    this.ended.catch(() => undefined);
  }

  /** Resolves at once when `joined`, else at the next join; rejects once the conversation ended. */
  join(joined: boolean): Promise<void> {
    if (this.endedBy) return Promise.reject(this.endedBy);
    if (joined) return Promise.resolve();
    return new Promise((resolve, reject) => this.joins.push({ resolve, reject }));
  }

  /** The channel was joined: what waited for it goes on. */
  joined(): void {
    const joins = this.joins;
    this.joins = [];
    for (const w of joins) w.resolve();
  }

  /** What waits for the join fails with `err` (the conversation goes on: a later join is waited for anew). */
  fail(err: StorywireError): void {
    const joins = this.joins;
    this.joins = [];
    for (const w of joins) w.reject(err);
  }

  /** Resolves after `ms`; rejects at once when the conversation ends meanwhile. */
  pause(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const wake = () => {
        this.sleeping.delete(wake);
        this.clock.clearTimeout(timer);
        if (this.endedBy) reject(this.endedBy);
        else resolve();
      };
      const timer = this.clock.setTimeout(wake, ms);
      this.sleeping.add(wake);
    });
  }

  /** The conversation is over: nothing waits any more. */
  end(err: StorywireError): void {
    this.endedBy = err;
    this.signalEnd(err);
    this.fail(err);
    for (const wake of [...this.sleeping]) wake();
  }
}
