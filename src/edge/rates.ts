// Budgets and limits: token buckets kept per user and per address across reconnects, a token-expiry wheel,
// address counts.

/** A token bucket refilled on demand from the clock: no timer per bucket. */
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

  /** Refills from the clock; true when a token is there to take. */
  ready(now: number): boolean {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerS) / 1000);
      this.last = now;
    }
    return this.tokens >= 1;
  }

  /** Takes a token that ready() said is there. */
  spend(): void {
    this.tokens -= 1;
  }

  take(now = Date.now()): boolean {
    if (!this.ready(now)) return false;
    this.tokens -= 1;
    return true;
  }

  /**
   * Takes `n` tokens whether they are there or not: the bucket may go below zero, a debt the clock repays
   * before ready() says yes again (a cost known only once the answer is built).
   */
  charge(n: number, now: number): void {
    this.ready(now);
    this.tokens -= n;
  }

  /** Full at `now`: it carries no information (a new bucket would be the same), so it can be forgotten. */
  full(now: number): boolean {
    this.ready(now);
    return this.tokens >= this.burst;
  }

  /** Whole seconds until a token is there (0 when one is). */
  retryS(): number {
    return this.tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - this.tokens) / this.ratePerS));
  }
}

export interface RateSpec {
  ratePerS: number;
  burst: number;
}

/**
 * Token buckets by key (a user, an address), kept after the connections that drew from them are gone, so
 * that a reconnect starts from what the key has left, not from a full bucket. Bounded: past `maxKeys`, the
 * full buckets are forgotten first (they carry nothing), then the oldest. No timer: cleaned up on insertion.
 */
export class BucketStore {
  private readonly map = new Map<string, TokenBucket>();

  constructor(
    private readonly spec: RateSpec,
    private readonly maxKeys: number,
  ) {}

  /** The key's bucket (one Map lookup), made full when the key has none. */
  get(key: string, now = Date.now()): TokenBucket {
    let b = this.map.get(key);
    if (b === undefined) {
      b = new TokenBucket(this.spec.ratePerS, this.spec.burst, now);
      this.map.set(key, b);
      if (this.map.size > this.maxKeys) this.shrink(now);
    }
    return b;
  }

  get size(): number {
    return this.map.size;
  }

  /**
   * Down to 90 % of the bound: full buckets first, oldest first; then, if every bucket is in use, the oldest
   * (a key forgotten that way starts full again: the price of the bound, paid only past it).
   * Amortized O(1) per insertion: a tenth of the bound is made free at each pass.
   */
  private shrink(now: number): void {
    const target = Math.floor(this.maxKeys * 0.9);
    for (const [key, b] of this.map) {
      if (this.map.size <= target) return;
      if (b.full(now)) this.map.delete(key);
    }
    for (const key of this.map.keys()) {
      if (this.map.size <= target) return;
      this.map.delete(key);
    }
  }
}

export type BucketKind = 'all' | 'notify' | 'publish';
export type RateSpecs = Readonly<Record<BucketKind, RateSpec>>;

/** Which budget refused a message: its user's, or its address's. */
export type Payer = 'user' | 'address';

/**
 * The message budgets of one node: per user (`sub`) and per client address, each kind in its own store,
 * kept across reconnects. In a cluster every node keeps its own (the budgets are split per node).
 * Besides them, each user's history-read budget, in bytes: what inbox pages and replays send it.
 */
export class Budgets {
  private readonly user: Record<BucketKind, BucketStore>;
  private readonly address: Record<BucketKind, BucketStore>;
  private readonly reads: BucketStore;

  constructor(userSpecs: RateSpecs, addressSpecs: RateSpecs, maxKeys: number, readSpec: RateSpec) {
    const stores = (specs: RateSpecs) => ({
      all: new BucketStore(specs.all, maxKeys),
      notify: new BucketStore(specs.notify, maxKeys),
      publish: new BucketStore(specs.publish, maxKeys),
    });
    this.user = stores(userSpecs);
    this.address = stores(addressSpecs);
    this.reads = new BucketStore(readSpec, maxKeys);
  }

  /** The user's history-read budget: one token per byte of history sent by request (HISTORY_READ_*). */
  readBucket(userId: string): TokenBucket {
    return this.reads.get(userId);
  }

  /** A connection's view of its payers' buckets (the general ones looked up now, the others on first use). */
  forConnection(userId: string, ip: string): ConnectionRates {
    return new ConnectionRates(this, userId, ip);
  }

  bucket(payer: Payer, kind: BucketKind, key: string): TokenBucket {
    return (payer === 'user' ? this.user : this.address)[kind].get(key);
  }
}

/**
 * One connection's buckets: its user's and its address's, cached here so that a message costs no lookup.
 * `strikes` is the connection's own (RATE_LIMIT_CLOSE_AFTER counts per connection).
 */
export class ConnectionRates {
  private readonly userAll: TokenBucket;
  private readonly addressAll: TokenBucket;
  private userNotify: TokenBucket | undefined;
  private addressNotify: TokenBucket | undefined;
  private userPublish: TokenBucket | undefined;
  private addressPublish: TokenBucket | undefined;
  private userRead: TokenBucket | undefined;
  /** RATE_LIMITED replies since the last accepted message. */
  strikes = 0;

  constructor(
    private readonly budgets: Budgets,
    private readonly userId: string,
    private readonly ip: string,
  ) {
    this.userAll = budgets.bucket('user', 'all', userId);
    this.addressAll = budgets.bucket('address', 'all', ip);
  }

  /** Takes from both general buckets, or from neither; undefined when allowed, else who ran out. */
  takeAll(now = Date.now()): Payer | undefined {
    return takeBoth(this.userAll, this.addressAll, now);
  }

  /** The same for a stricter kind (notify, publish). */
  take(kind: 'notify' | 'publish', now = Date.now()): Payer | undefined {
    if (kind === 'notify') {
      this.userNotify ??= this.budgets.bucket('user', 'notify', this.userId);
      this.addressNotify ??= this.budgets.bucket('address', 'notify', this.ip);
      return takeBoth(this.userNotify, this.addressNotify, now);
    }
    this.userPublish ??= this.budgets.bucket('user', 'publish', this.userId);
    this.addressPublish ??= this.budgets.bucket('address', 'publish', this.ip);
    return takeBoth(this.userPublish, this.addressPublish, now);
  }

  /** A request that reads history is answered while the user's history-read budget is above zero. */
  mayRead(now = Date.now()): boolean {
    this.userRead ??= this.budgets.readBucket(this.userId);
    return this.userRead.ready(now);
  }

  /** The bytes of history an answer sent, taken from the user's budget (below zero if need be). */
  chargeRead(bytes: number, now = Date.now()): void {
    this.userRead ??= this.budgets.readBucket(this.userId);
    this.userRead.charge(bytes, now);
  }
}

function takeBoth(user: TokenBucket, address: TokenBucket, now: number): Payer | undefined {
  if (!user.ready(now)) return 'user';
  if (!address.ready(now)) return 'address';
  user.spend();
  address.spend();
  return undefined;
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
