// In-memory history: a ring per topic, a new epoch per topic lifetime, LRU eviction of whole topics, and a
// bound on the bytes of every topic's events together (the oldest user-sent event anywhere dropped first, then
// the oldest of any).
import { numberedFrame } from '../../wire/position.js';
import { newEpoch } from './epoch.js';
import { Ring } from './ring.js';
import type { Appended, InTurnHistory, Position, RecordOptions, Replacement, Replay } from './types.js';

interface Entry {
  offset: number;
  at: number;
  frame: string;
  /** UTF-8 bytes of the frame. */
  bytes: number;
  /** A user-sent event (RecordOptions.user): counted against the user share. */
  user: boolean;
  /** Dropped (by count, age, bytes, the user share or eviction): its place in the age queue is dead. */
  gone: boolean;
  /** Its key (RecordOptions.key), when it was given one. */
  key: string | undefined;
}

interface Stream {
  epoch: string;
  offset: number;
  entries: Ring<Entry>;
  /** Its namespace's limits (HistoryLimits.perTopic), or the store's. */
  readonly size: number;
  readonly ttlMs: number;
  /** User-sent entries held. */
  users: number;
  /** Touched since the eviction hand last passed (second-chance LRU: no Map reordering per message). */
  used: boolean;
  /** Evicted whole: its entries in the age queue are dead. */
  gone: boolean;
  /** Its held entries that have a key, by key (made by the first). */
  keyed: Map<string, Entry> | undefined;
}

/** One stored event in the order events were stored, across topics: what the byte bound drops first. */
interface Aged {
  s: Stream;
  e: Entry;
}

export interface HistoryLimits {
  /** Frames kept per topic. */
  size: number;
  /** Age after which a frame is dropped, ms. */
  ttlMs: number;
  /** Topics kept in memory; the least recently used is dropped whole (its epoch with it). */
  maxTopics: number;
  /** UTF-8 bytes of stored frames over every topic; past it the oldest events are dropped first. */
  maxBytes?: number;
  /**
   * User-sent frames (RecordOptions.user) kept per topic (default: `size`); past it the oldest user-sent one
   * is dropped, never another, so user-sent events cannot push the others out. 0: they are never stored.
   */
  userSize?: number;
  /** A topic's own limits (its namespace's `history`, CHANNELS_FILE); undefined: `size` and `ttlMs`. */
  perTopic?: (topic: string) => { readonly size: number; readonly ttlMs: number } | undefined;
}



export class MemoryHistory implements InTurnHistory {
  readonly kind = 'memory';
  readonly appends = 'local' as const;
  readonly sync = true as const;
  /** Insertion order, with a second chance for streams used since the hand passed: an approximate LRU. */
  private readonly streams = new Map<string, Stream>();
  /**
   * The epoch of every topic history that starts in this process while no history has been dropped: a
   * topic with no history yet is answered with it without being created (no allocation per connected
   * user). Dropping any topic's history draws a new one, so a topic that lost its history can never come
   * back under an epoch a client was told before.
   */
  private fresh = newEpoch();
  /**
   * Every stored event, oldest first (entries dropped otherwise stay until compacted): the byte bound
   * drops from the front. `head` is the first live slot.
   */
  private aged: Aged[] = [];
  private head = 0;
  /** The user-sent ones among them, oldest first: the byte bound drops these before any other. */
  private agedUsers: Aged[] = [];
  private userHead = 0;
  /** Bytes and count of the events held in the streams. */
  private bytes = 0;
  private held = 0;
  private readonly maxBytes: number;
  private readonly userSize: number;
  private evicted: ((topic: string) => void) | undefined;

  constructor(private readonly limits: HistoryLimits) {
    this.maxBytes = limits.maxBytes ?? Number.POSITIVE_INFINITY;
    this.userSize = Math.min(limits.userSize ?? limits.size, limits.size);
  }

  /** Bytes of the events held (for tests and metrics). */
  get storedBytes(): number {
    return this.bytes;
  }

  /**
   * Told the topic whose history was evicted whole (HISTORY_MAX_TOPICS), in the turn it goes: what counts in
   * its epoch (the read state of a personal topic) goes with it. One listener.
   */
  onEvicted(listener: (topic: string) => void): void {
    this.evicted = listener;
  }

  /** The topics that have a stream, sorted (for tests). */
  heldTopics(): string[] {
    return [...this.streams.keys()].sort();
  }

  /** A topic's stream; `trimAt` (for reads) first drops what is older than the age limit. */
  private stream(topic: string, create: boolean, trimAt?: number): Stream | undefined {
    let s = this.streams.get(topic);
    if (s) {
      s.used = true;
    } else if (create) {
      const own = this.limits.perTopic?.(topic);
      const size = own?.size ?? this.limits.size;
      s = { epoch: this.fresh, offset: 0, entries: new Ring(size), size, ttlMs: own?.ttlMs ?? this.limits.ttlMs, users: 0, used: true, gone: false, keyed: undefined };
      this.streams.set(topic, s);
      if (this.streams.size > this.limits.maxTopics) this.evictOne();
    }
    // Appends leave old entries to the next read: the ring bounds the count, reads never see them.
    if (s && trimAt !== undefined) this.trim(s, trimAt);
    return s;
  }

  private evictOne(): void {
    for (const [topic, s] of this.streams) {
      this.streams.delete(topic);
      if (!s.used) {
        this.forget(s);
        this.evicted?.(topic);
        break;
      }
      s.used = false;
      this.streams.set(topic, s);
    }
    this.fresh = newEpoch();
  }

  /** A stream dropped whole: its bytes are no longer held. */
  private forget(s: Stream): void {
    s.gone = true;
    while (s.entries.length > 0) this.dropOldest(s);
  }

  private dropOldest(s: Stream): void {
    const e = s.entries.at(0);
    this.dropped(s, e);
    s.entries.dropOldest();
  }

  private dropped(s: Stream, e: Entry): void {
    e.gone = true;
    this.bytes -= e.bytes;
    this.held--;
    if (e.user) s.users--;
    if (e.key !== undefined && s.keyed?.get(e.key) === e) s.keyed.delete(e.key);
  }

  /** A held, unexpired entry of the stream by its key. */
  private keyedEntry(s: Stream, key: string, now: number): Entry | undefined {
    const e = s.keyed?.get(key);
    return e === undefined || e.gone || now - e.at > s.ttlMs ? undefined : e;
  }

  /** Replaces a held entry's frame (same offset), if it is still the frame that was read. */
  private replaced(s: Stream, r: Replacement, now: number): boolean {
    const e = this.keyedEntry(s, r.key, now);
    r.done = e !== undefined && e.frame === r.expect;
    if (!r.done) return false;
    const bytes = Buffer.byteLength(r.frame);
    this.bytes += bytes - e!.bytes;
    e!.bytes = bytes;
    e!.frame = r.frame;
    return true;
  }

  /**
   * The user share is full: its oldest user-sent entry goes, from wherever it is (O(size), only then). The
   * offsets it leaves out make a resume across it `recovered: false` (sinceNow), never a silent gap.
   */
  private dropOldestUser(s: Stream): void {
    // The oldest of all is user-sent (always so when users alone write to the topic): the ring's own drop.
    if (s.entries.at(0).user) {
      this.dropOldest(s);
      return;
    }
    const kept = new Ring<Entry>(s.size);
    let found = false;
    for (const e of s.entries.toArray()) {
      if (!found && e.user) {
        found = true;
        this.dropped(s, e);
      } else kept.push(e);
    }
    s.entries = kept;
  }

  /** Drops what is over the age (the ring itself keeps the count). */
  private trim(s: Stream, now: number): void {
    const { entries } = s;
    while (entries.length > 0 && now - entries.at(0).at > s.ttlMs) this.dropOldest(s);
  }

  /**
   * Numbers and stores one frame. With `ifStreamExists`, a topic with no stream yet gets none: nothing is
   * stored or numbered and undefined is returned (the caller delivers the event live only), so that an event
   * nobody asked to keep cannot create a stream (and evict real ones at HISTORY_MAX_TOPICS).
   */
  append(topic: string, head: string, tail: string): Appended;
  append(topic: string, head: string, tail: string, options: RecordOptions): Appended | undefined;
  append(topic: string, head: string, tail: string, options?: RecordOptions): Appended | undefined {
    const now = Date.now();
    const user = options?.user === true;
    if (user && this.userSize === 0) return undefined;
    const replace = options?.replace;
    const s = this.stream(topic, options?.ifStreamExists !== true && replace === undefined);
    if (s === undefined || (replace !== undefined && !this.replaced(s, replace, now))) {
      if (replace !== undefined) replace.done = false;
      return undefined;
    }
    const offset = ++s.offset;
    const frame = numberedFrame(head, s.epoch, offset, tail);
    const bytes = Buffer.byteLength(frame);
    if (user && s.users >= Math.min(this.userSize, s.size)) this.dropOldestUser(s);
    // A full ring drops its oldest: account for it before it goes.
    if (s.entries.length === s.size) this.dropOldest(s);
    const e: Entry = { offset, at: now, frame, bytes, user, gone: false, key: options?.key };
    s.entries.push(e);
    if (e.key !== undefined) {
      s.keyed ??= new Map();
      s.keyed.set(e.key, e);
    }
    this.bytes += bytes;
    this.held++;
    if (user) s.users++;
    this.aged.push({ s, e });
    if (user) this.agedUsers.push({ s, e });
    if (this.bytes > this.maxBytes) this.dropForBytes();
    // Entries that left by count, age or eviction stay in the queue: compacted once they are half of it.
    if (this.aged.length - this.head > 2 * this.held + 64 || (this.head > 1024 && this.head * 2 > this.aged.length)) this.compact();
    return { epoch: s.epoch, offset, frame };
  }

  private alive(a: Aged): boolean {
    return !a.e.gone;
  }

  /**
   * The oldest user-sent events, whichever their topic, then the oldest of any, until the bytes are within the
   * bound: user-sent events cannot push the others out of the byte bound either. The first live entry of
   * agedUsers is its stream's oldest user-sent one, and the first live entry of aged its stream's oldest (a
   * stream drops oldest first, and oldest user-sent first).
   */
  private dropForBytes(): void {
    while (this.bytes > this.maxBytes && this.userHead < this.agedUsers.length) {
      const a = this.agedUsers[this.userHead]!;
      this.agedUsers[this.userHead++] = undefined as unknown as Aged;
      if (this.alive(a)) this.dropOldestUser(a.s);
    }
    while (this.bytes > this.maxBytes && this.head < this.aged.length) {
      const a = this.aged[this.head]!;
      this.aged[this.head++] = undefined as unknown as Aged;
      if (this.alive(a)) this.dropOldest(a.s);
    }
  }

  private compact(): void {
    const live: Aged[] = [];
    for (let i = this.head; i < this.aged.length; i++) {
      const a = this.aged[i]!;
      if (this.alive(a)) live.push(a);
    }
    this.aged = live;
    this.head = 0;
    // Every user-sent entry is in both queues: compacted together, agedUsers is never the longer.
    this.agedUsers = this.agedUsers.slice(this.userHead).filter((a) => this.alive(a));
    this.userHead = 0;
  }

  readonly now = {
    position: (topic: string): Position => {
      const s = this.stream(topic, false);
      return s ? { epoch: s.epoch, offset: s.offset } : { epoch: this.fresh, offset: 0 };
    },
    since: (topic: string, epoch: string, offset: number, upTo: number): Replay => this.sinceNow(topic, epoch, offset, upTo),
  };

  async position(topic: string): Promise<Position> {
    return this.now.position(topic);
  }

  async since(topic: string, epoch: string, offset: number, upTo: number): Promise<Replay> {
    return this.sinceNow(topic, epoch, offset, upTo);
  }

  private sinceNow(topic: string, epoch: string, offset: number, upTo: number): Replay {
    const s = this.stream(topic, false, Date.now()) ?? { epoch: this.fresh, offset: 0, entries: new Ring<Entry>(1), users: 0, used: false };
    const position = { epoch: s.epoch, offset: s.offset };
    if (epoch !== s.epoch || offset > s.offset || offset < 0) return { recovered: false, frames: [], position };
    if (offset >= upTo) return { recovered: true, frames: [], position };
    const first = s.entries.length > 0 ? s.entries.at(0) : undefined;
    // Recoverable only when the first missing frame (offset + 1) is still stored.
    if (!first || first.offset > offset + 1) return { recovered: false, frames: [], position };
    const frames: string[] = [];
    for (let i = 0; i < s.entries.length; i++) {
      const e = s.entries.at(i);
      if (e.offset > offset && e.offset <= upTo) frames.push(e.frame);
    }
    // A user-sent entry dropped from the middle (the user share) leaves a hole: not recovered.
    if (frames.length !== Math.min(upTo, s.offset) - offset) return { recovered: false, frames: [], position };
    return { recovered: true, frames, position };
  }

  async latest(topic: string, limit: number): Promise<string[]> {
    const s = this.stream(topic, false, Date.now());
    if (!s) return [];
    return s.entries.toArray().slice(-limit).reverse().map((e) => e.frame);
  }

  async entry(topic: string, key: string): Promise<Appended | undefined> {
    const s = this.stream(topic, false);
    const e = s && this.keyedEntry(s, key, Date.now());
    return e && { epoch: s!.epoch, offset: e.offset, frame: e.frame };
  }

    async close(): Promise<void> {}
}
