// Per-connection and per-process limits: token buckets, a token-expiry wheel, address counts.

/** A token bucket refilled on demand from the clock: no timer per connection. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    now = Date.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now = Date.now()): boolean {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerS) / 1000);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface RateSpec {
  ratePerS: number;
  burst: number;
}

/** Every message of a connection, with stricter buckets for notifications and publishes. */
export class ConnectionRates {
  readonly all: TokenBucket;
  private notify: TokenBucket | undefined;
  private publish: TokenBucket | undefined;
  /** RATE_LIMITED replies since the last accepted message. */
  strikes = 0;

  constructor(private readonly specs: { all: RateSpec; notify: RateSpec; publish: RateSpec }) {
    this.all = new TokenBucket(specs.all.ratePerS, specs.all.burst);
  }

  notifyBucket(): TokenBucket {
    this.notify ??= new TokenBucket(this.specs.notify.ratePerS, this.specs.notify.burst);
    return this.notify;
  }

  publishBucket(): TokenBucket {
    this.publish ??= new TokenBucket(this.specs.publish.ratePerS, this.specs.publish.burst);
    return this.publish;
  }
}

/**
 * Connections bucketed by the second their token expires; one sweep a second closes the due ones.
 * A refresh moves a connection to its new bucket. Cost: O(expiring connections) per sweep.
 */
export class ExpiryWheel<T> {
  private readonly buckets = new Map<number, Set<T>>();
  private count = 0;

  /**
   * The caller keeps each item's second (a connection has it in its token): no second map here. An item
   * sits in one bucket: to move it, remove() it with its old second first.
   */
  add(item: T, expS: number | undefined): void {
    if (expS === undefined) return;
    let b = this.buckets.get(expS);
    if (!b) {
      b = new Set();
      this.buckets.set(expS, b);
    }
    const before = b.size;
    b.add(item);
    this.count += b.size - before;
  }

  /** `expS`: the second the item was added with. */
  remove(item: T, expS: number | undefined): void {
    if (expS === undefined) return;
    const b = this.buckets.get(expS);
    if (!b?.delete(item)) return;
    this.count--;
    if (b.size === 0) this.buckets.delete(expS);
  }

  /** Removes and returns every item whose second is <= nowS. */
  due(nowS: number): T[] {
    const out: T[] = [];
    for (const [s, b] of this.buckets) {
      if (s > nowS) continue;
      for (const item of b) out.push(item);
      this.count -= b.size;
      this.buckets.delete(s);
    }
    return out;
  }

  get size(): number {
    return this.count;
  }
}

/** Counts of open plus pending connections per key (address or user). */
export class Counts {
  private readonly map = new Map<string, number>();

  get(key: string): number {
    return this.map.get(key) ?? 0;
  }

  inc(key: string): void {
    this.map.set(key, this.get(key) + 1);
  }

  dec(key: string): void {
    const n = this.get(key) - 1;
    if (n <= 0) this.map.delete(key);
    else this.map.set(key, n);
  }
}

/** The client address: the peer, or with a trusted proxy header its last (proxy-appended) entry. */
export function clientAddress(peer: string, proxyHeaderValue: string): string {
  if (!proxyHeaderValue) return peer;
  const parts = proxyHeaderValue.split(',');
  return parts[parts.length - 1]!.trim() || peer;
}
