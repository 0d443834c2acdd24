// In-memory history: a ring per topic (memory-stream.ts), a new epoch per topic lifetime, LRU eviction of whole
// topics, and a bound on the bytes of every topic's events together (the oldest user-sent event anywhere
// dropped first, then the oldest of any).
import { numberedFrame } from '../../wire/position.js';
import { newEpoch } from './epoch.js';
import { Stream } from './memory-stream.js';
import type { Appended, InTurnHistory, Position, RecordOptions, Replacement, Replay } from './types.js';

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
   * Every stored event, oldest first, as its stream and offset (entries dropped otherwise stay until
   * compacted): the byte bound drops from the front. `head` is the first live slot.
   */
  private agedStreams: (Stream | undefined)[] = [];
  private agedOffsets: number[] = [];
  private head = 0;
  /** The user-sent ones among them, oldest first: the byte bound drops these before any other. */
  private userStreams: (Stream | undefined)[] = [];
  private userOffsets: number[] = [];
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
      s = new Stream(this.fresh, own?.size ?? this.limits.size, own?.ttlMs ?? this.limits.ttlMs);
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
    while (s.length > 0) this.drop(s, 0);
  }

  /** Drops the i-th held event of the stream, with its accounting. */
  private drop(s: Stream, i: number): void {
    this.bytes -= s.bytesAt(i);
    this.held--;
    if (s.isUser(i)) s.users--;
    const key = s.keyAt(i);
    if (key !== undefined && s.keyed?.get(key) === s.offsetAt(i)) s.keyed.delete(key);
    s.removeAt(i);
  }

  /** The index of a held, unexpired event of the stream by its key, or -1. */
  private keyedIndex(s: Stream, key: string, now: number): number {
    const offset = s.keyed?.get(key);
    const i = offset === undefined ? -1 : s.indexOf(offset);
    return i < 0 || now - s.atOf(i) > s.ttlMs ? -1 : i;
  }

  /** Replaces a held entry's frame (same offset), if it is still the frame that was read. */
  private replaced(s: Stream, r: Replacement, now: number): boolean {
    const i = this.keyedIndex(s, r.key, now);
    r.done = i >= 0 && s.frameAt(i) === r.expect;
    if (!r.done) return false;
    const bytes = Buffer.byteLength(r.frame);
    this.bytes += bytes - s.bytesAt(i);
    s.setFrame(i, r.frame, bytes);
    return true;
  }

  /**
   * The user share is full: its oldest user-sent entry goes, from wherever it is (O(size), only then). The
   * offsets it leaves out make a resume across it `recovered: false` (sinceNow), never a silent gap.
   */
  private dropOldestUser(s: Stream): void {
    for (let i = 0; i < s.length; i++) {
      if (s.isUser(i)) {
        this.drop(s, i);
        return;
      }
    }
  }

  /** Drops what is over the age (the ring itself keeps the count). */
  private trim(s: Stream, now: number): void {
    while (s.length > 0 && now - s.atOf(0) > s.ttlMs) this.drop(s, 0);
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
    // A full ring drops its oldest.
    if (s.length === s.size) this.drop(s, 0);
    const key = options?.key;
    s.push(frame, offset, now, bytes, user, key);
    if (key !== undefined) {
      s.keyed ??= new Map();
      s.keyed.set(key, offset);
    }
    this.bytes += bytes;
    this.held++;
    if (user) s.users++;
    this.agedStreams.push(s);
    this.agedOffsets.push(offset);
    if (user) {
      this.userStreams.push(s);
      this.userOffsets.push(offset);
    }
    if (this.bytes > this.maxBytes) this.dropForBytes();
    // Entries that left by count, age or eviction stay in the queue: compacted once they are half of it.
    const queued = this.agedStreams.length;
    if (queued - this.head > 2 * this.held + 64 || (this.head > 1024 && this.head * 2 > queued)) this.compact();
    return { epoch: s.epoch, offset, frame };
  }

  /** The index of a queued event in its stream, or -1 when it is no longer held. */
  private static heldIndex(s: Stream, offset: number): number {
    return s.gone ? -1 : s.indexOf(offset);
  }

  /**
   * The oldest user-sent events, whichever their topic, then the oldest of any, until the bytes are within the
   * bound: user-sent events cannot push the others out of the byte bound either.
   */
  private dropForBytes(): void {
    while (this.bytes > this.maxBytes && this.userHead < this.userStreams.length) {
      const s = this.userStreams[this.userHead]!;
      const i = MemoryHistory.heldIndex(s, this.userOffsets[this.userHead]!);
      this.userStreams[this.userHead++] = undefined;
      if (i >= 0) this.drop(s, i);
    }
    while (this.bytes > this.maxBytes && this.head < this.agedStreams.length) {
      const s = this.agedStreams[this.head]!;
      const i = MemoryHistory.heldIndex(s, this.agedOffsets[this.head]!);
      this.agedStreams[this.head++] = undefined;
      if (i >= 0) this.drop(s, i);
    }
  }

  private compact(): void {
    [this.agedStreams, this.agedOffsets] = MemoryHistory.live(this.agedStreams, this.agedOffsets, this.head);
    this.head = 0;
    // Every user-sent entry is in both queues: compacted together, the user queue is never the longer.
    [this.userStreams, this.userOffsets] = MemoryHistory.live(this.userStreams, this.userOffsets, this.userHead);
    this.userHead = 0;
  }

  private static live(streams: (Stream | undefined)[], offsets: number[], from: number): [(Stream | undefined)[], number[]] {
    const keptStreams: (Stream | undefined)[] = [];
    const keptOffsets: number[] = [];
    for (let i = from; i < streams.length; i++) {
      const s = streams[i]!;
      if (MemoryHistory.heldIndex(s, offsets[i]!) >= 0) {
        keptStreams.push(s);
        keptOffsets.push(offsets[i]!);
      }
    }
    return [keptStreams, keptOffsets];
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
    const s = this.stream(topic, false, Date.now());
    const position = s ? { epoch: s.epoch, offset: s.offset } : { epoch: this.fresh, offset: 0 };
    if (epoch !== position.epoch || offset > position.offset || offset < 0) return { recovered: false, frames: [], position };
    if (offset >= upTo) return { recovered: true, frames: [], position };
    // Recoverable only when the first missing frame (offset + 1) is still stored.
    if (s === undefined || s.length === 0 || s.offsetAt(0) > offset + 1) return { recovered: false, frames: [], position };
    const frames: string[] = [];
    for (let i = 0; i < s.length; i++) {
      const o = s.offsetAt(i);
      if (o > offset && o <= upTo) frames.push(s.frameAt(i));
    }
    // A user-sent entry dropped from the middle (the user share) leaves a hole: not recovered.
    if (frames.length !== Math.min(upTo, s.offset) - offset) return { recovered: false, frames: [], position };
    return { recovered: true, frames, position };
  }

  async latest(topic: string, limit: number): Promise<string[]> {
    const s = this.stream(topic, false, Date.now());
    if (!s) return [];
    const frames: string[] = [];
    for (let i = s.length - 1; i >= 0 && frames.length < limit; i--) frames.push(s.frameAt(i));
    return frames;
  }

  async entry(topic: string, key: string): Promise<Appended | undefined> {
    const s = this.stream(topic, false);
    if (s === undefined) return undefined;
    const i = this.keyedIndex(s, key, Date.now());
    return i < 0 ? undefined : { epoch: s.epoch, offset: s.offsetAt(i), frame: s.frameAt(i) };
  }

  async close(): Promise<void> {}
}
