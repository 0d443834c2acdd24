// Topics the client keeps joined across connections, and the subscribe() calls waiting for the server's answer.
import type { StorywireError } from './codes.js';
import type { Clock } from './types.js';

interface Waiter {
  resolve(): void;
  reject(e: StorywireError): void;
  timer: unknown;
}

export class Topics {
  private readonly joined = new Set<string>();
  private readonly waiters = new Map<string, Waiter[]>();

  constructor(private readonly clock: Clock) {}

  get list(): readonly string[] {
    return [...this.joined];
  }
  has(topic: string): boolean {
    return this.joined.has(topic);
  }
  add(topic: string): void {
    this.joined.add(topic);
  }
  delete(topic: string): void {
    this.joined.delete(topic);
  }
  [Symbol.iterator](): IterableIterator<string> {
    return this.joined.values();
  }

  /** A promise settled by settle(topic), or rejected with onTimeout() after timeoutMs. */
  wait(topic: string, timeoutMs: number, onTimeout: () => StorywireError): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: undefined };
      w.timer = this.clock.setTimeout(() => {
        const rest = (this.waiters.get(topic) ?? []).filter((x) => x !== w);
        if (rest.length) this.waiters.set(topic, rest);
        else this.waiters.delete(topic);
        reject(onTimeout());
      }, timeoutMs);
      this.waiters.set(topic, [...(this.waiters.get(topic) ?? []), w]);
    });
  }

  /** Resolves (or rejects) everyone waiting on a topic; false when nobody was. */
  settle(topic: string, err?: StorywireError): boolean {
    const ws = this.waiters.get(topic);
    this.waiters.delete(topic);
    if (!ws || ws.length === 0) return false;
    for (const w of ws) {
      this.clock.clearTimeout(w.timer);
      if (err) w.reject(err);
      else w.resolve();
    }
    return true;
  }

  settleAll(err: (topic: string) => StorywireError): void {
    for (const topic of [...this.waiters.keys()]) this.settle(topic, err(topic));
  }
}
