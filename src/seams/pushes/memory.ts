// Push tracking in this process (one node): per user the pending notifications and the push time, a min-heap
// of push times to find the due users, and the receipts and reads that came before their notification.
import { randomBytes } from 'node:crypto';
import { PUSH_MAX_LISTED, pushEvent, type PushItem, type PushRead, type PushStore, type PushStoreOptions, type PushTarget, type TrackedNotification } from './types.js';

interface Pending {
  readonly member: string;
  readonly epoch: string;
  readonly offset: number;
  readonly id: string;
  readonly json: string;
  dueAt: number;
  received: boolean;
}

interface User {
  /** By `${epoch}:${offset}`. */
  readonly pending: Map<string, Pending>;
  readonly byId: Map<string, string>;
  /** The oldest dueAt + coalesceMs; Infinity with nothing pending. */
  pushAt: number;
}

/** Receipts (`r:<epoch>:<offset>`) and reads (`i:<id>`) of notifications not tracked yet -> when forgotten. */
interface Early {
  readonly keys: Map<string, number>;
  /** The latest read of everything: {epoch, allUpTo}, forgotten at `exp`. */
  all?: { epoch: string; upTo: number; exp: number } | undefined;
}

interface Slot {
  readonly at: number;
  readonly userId: string;
}

/** Push times, smallest first. Entries go stale when a user's push time changes (a new one is pushed). */
class Heap {
  private readonly a: Slot[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): Slot | undefined {
    return this.a[0];
  }
  push(s: Slot): void {
    const a = this.a;
    let i = a.push(s) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.at <= s.at) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = s;
  }
  pop(): Slot | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= a.length) break;
      if (c + 1 < a.length && a[c + 1]!.at < a[c]!.at) c++;
      if (a[c]!.at >= last.at) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
  clear(): void {
    this.a.length = 0;
  }
}

export interface MemoryPushStoreOptions extends PushStoreOptions {
  /** Notifications pending over all users, and remembered early receipts/reads: past it, new ones are refused. */
  readonly maxTracked: number;
}

/** Redis' order for a user's members (score, then member bytes), reversed: newest first. */
const newestFirst = (a: Pending, b: Pending) => b.dueAt - a.dueAt || (a.member < b.member ? 1 : a.member > b.member ? -1 : 0);

export class MemoryPushStore implements PushStore {
  private readonly users = new Map<string, User>();
  private readonly heap = new Heap();
  private readonly early = new Map<string, Early>();
  /** Early entries in the order they expire (every one lives receiptMemoryMs): [userId, key, exp]. */
  private expiries: [string, string, number][] = [];
  private expiryHead = 0;
  private earlyCount = 0;
  private total = 0;
  /** For metrics: notifications dropped past maxPerUser, refused past maxTracked, early receipts/reads not remembered. */
  readonly dropped = { perUser: 0, total: 0, early: 0 };

  constructor(private readonly options: MemoryPushStoreOptions) {
    for (const k of ['coalesceMs', 'maxPerUser', 'receiptMemoryMs', 'maxTracked'] as const) {
      const v = options[k];
      if (!Number.isInteger(v) || v < (k === 'coalesceMs' ? 0 : 1)) throw new RangeError(`MemoryPushStore: ${k} must be a positive integer, got ${v}`);
    }
  }

  async track(userId: string, n: TrackedNotification, dueAt: number, now = Date.now()): Promise<void> {
    this.sweep(now);
    const member = `${n.epoch}:${n.offset}`;
    const e = this.early.get(userId);
    if (e && (live(e.keys.get(`r:${member}`), now) || live(e.keys.get(`i:${n.id}`), now))) return;
    if (e?.all && e.all.exp > now && e.all.epoch === n.epoch && n.offset <= e.all.upTo) return;
    let u = this.users.get(userId);
    if (u?.pending.has(member)) return;
    if (u && u.pending.size >= this.options.maxPerUser) {
      let oldest: Pending | undefined;
      for (const p of u.pending.values()) if (!oldest || p.dueAt < oldest.dueAt || (p.dueAt === oldest.dueAt && p.member < oldest.member)) oldest = p;
      this.remove(u, oldest!);
      this.dropped.perUser++;
    } else if (this.total >= this.options.maxTracked) {
      this.dropped.total++;
      return;
    }
    if (!u) {
      u = { pending: new Map(), byId: new Map(), pushAt: Number.POSITIVE_INFINITY };
      this.users.set(userId, u);
    }
    u.pending.set(member, { member, epoch: n.epoch, offset: n.offset, id: n.id, json: n.json, dueAt, received: false });
    u.byId.set(n.id, member);
    this.total++;
    this.reschedule(userId, u);
  }

  async received(userId: string, epoch: string, offsets: readonly number[], now: number, unreadDueAt?: number): Promise<void> {
    this.sweep(now);
    const u = this.users.get(userId);
    for (const offset of offsets) {
      const member = `${epoch}:${offset}`;
      const p = u?.pending.get(member);
      if (!p) this.remember(userId, `r:${member}`, now);
      else if (unreadDueAt === undefined) this.remove(u!, p);
      else if (!p.received) {
        p.received = true;
        p.dueAt = unreadDueAt;
      }
    }
    if (u) this.reschedule(userId, u);
  }

  async read(userId: string, change: PushRead, now = Date.now()): Promise<void> {
    this.sweep(now);
    const u = this.users.get(userId);
    if ('id' in change) {
      const member = u?.byId.get(change.id);
      const p = member === undefined ? undefined : u!.pending.get(member);
      if (p) this.remove(u!, p);
      else this.remember(userId, `i:${change.id}`, now);
    } else {
      for (const p of u?.pending.values() ?? []) if (p.epoch !== change.epoch || p.offset <= change.allUpTo) this.remove(u!, p);
      this.rememberAll(userId, change.epoch, change.allUpTo, now);
    }
    if (u) this.reschedule(userId, u);
  }

  async flushDue(now: number, max: number, target: PushTarget): Promise<number> {
    this.sweep(now);
    let made = 0;
    for (let seen = 0; seen < max; ) {
      const top = this.heap.peek();
      if (!top || top.at > now) break;
      this.heap.pop();
      const u = this.users.get(top.userId);
      if (!u || u.pushAt !== top.at) continue; // stale: the user's push time changed since
      seen++;
      const taken = [...u.pending.values()].filter((p) => p.dueAt <= now).sort(newestFirst);
      const items: PushItem[] = taken.slice(0, PUSH_MAX_LISTED).map((p) => ({ epoch: p.epoch, offset: p.offset, received: p.received, json: p.json }));
      const event = pushEvent(`msg_${randomBytes(16).toString('hex')}`, now, top.userId, taken.length, items);
      if (!target.enqueue(event)) {
        this.heap.push(top); // still due: the next poll tries again
        break;
      }
      for (const p of taken) this.remove(u, p);
      this.reschedule(top.userId, u);
      made++;
    }
    return made;
  }

  async pending(): Promise<number> {
    return this.total;
  }

  private remove(u: User, p: Pending): void {
    if (!u.pending.delete(p.member)) return;
    u.byId.delete(p.id);
    this.total--;
  }

  private reschedule(userId: string, u: User): void {
    let oldest = Number.POSITIVE_INFINITY;
    for (const p of u.pending.values()) if (p.dueAt < oldest) oldest = p.dueAt;
    if (oldest === Number.POSITIVE_INFINITY) {
      this.users.delete(userId);
      u.pushAt = oldest;
      return;
    }
    const at = oldest + this.options.coalesceMs;
    if (at === u.pushAt) return;
    u.pushAt = at;
    this.heap.push({ at, userId });
    // Stale entries are skipped when popped; rebuild once they outnumber the live ones, so the heap stays O(users).
    if (this.heap.size > 2 * this.users.size + 1024) {
      this.heap.clear();
      for (const [id, v] of this.users) this.heap.push({ at: v.pushAt, userId: id });
    }
  }

  private earlyOf(userId: string): Early {
    let e = this.early.get(userId);
    if (!e) {
      e = { keys: new Map() };
      this.early.set(userId, e);
    }
    return e;
  }

  private remember(userId: string, key: string, now: number): void {
    const e = this.earlyOf(userId);
    const had = e.keys.delete(key);
    if (!had) {
      if (e.keys.size >= this.options.maxPerUser) {
        const first = e.keys.keys().next().value as string; // the oldest: Map keeps insertion order
        e.keys.delete(first);
        this.earlyCount--;
      }
      if (this.earlyCount >= this.options.maxTracked) {
        this.dropped.early++;
        if (e.keys.size === 0 && !e.all) this.early.delete(userId);
        return;
      }
      this.earlyCount++;
    }
    const exp = now + this.options.receiptMemoryMs;
    e.keys.set(key, exp);
    this.expiries.push([userId, key, exp]);
  }

  private rememberAll(userId: string, epoch: string, upTo: number, now: number): void {
    const e = this.earlyOf(userId);
    if (!e.all) {
      if (this.earlyCount >= this.options.maxTracked) {
        this.dropped.early++;
        if (e.keys.size === 0) this.early.delete(userId);
        return;
      }
      this.earlyCount++;
    }
    const prev = e.all && e.all.epoch === epoch && e.all.exp > now ? e.all.upTo : 0;
    const exp = now + this.options.receiptMemoryMs;
    e.all = { epoch, upTo: Math.max(prev, upTo), exp };
    this.expiries.push([userId, '', exp]); // '': the read of everything
  }

  /** Forgets the early receipts/reads whose time is up (entries whose expiry changed since are skipped). */
  private sweep(now: number): void {
    const q = this.expiries;
    while (this.expiryHead < q.length && q[this.expiryHead]![2] <= now) {
      const [userId, key, exp] = q[this.expiryHead++]!;
      const e = this.early.get(userId);
      if (!e) continue;
      if (key === '' ? e.all?.exp === exp : e.keys.get(key) === exp) {
        if (key === '') delete e.all;
        else e.keys.delete(key);
        this.earlyCount--;
      }
      if (e.keys.size === 0 && !e.all) this.early.delete(userId);
    }
    if (this.expiryHead > 1024 && this.expiryHead * 2 > q.length) {
      this.expiries = q.slice(this.expiryHead);
      this.expiryHead = 0;
    }
  }
}

const live = (exp: number | undefined, now: number) => exp !== undefined && exp > now;
