// In-memory history: a ring per topic, a new epoch per topic lifetime, LRU eviction of whole topics.
import { numberedFrame } from '../../wire/position.js';
import { newEpoch } from './epoch.js';
import { Ring } from './ring.js';
import type { Appended, InTurnHistory, Position, Replay } from './types.js';

interface Entry {
  offset: number;
  at: number;
  frame: string;
}

interface Stream {
  epoch: string;
  offset: number;
  entries: Ring<Entry>;
  /** Touched since the eviction hand last passed (second-chance LRU: no Map reordering per message). */
  used: boolean;
}

export interface HistoryLimits {
  /** Frames kept per topic. */
  size: number;
  /** Age after which a frame is dropped, ms. */
  ttlMs: number;
  /** Topics kept in memory; the least recently used is dropped whole (its epoch with it). */
  maxTopics: number;
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

  constructor(private readonly limits: HistoryLimits) {}

  /** A topic's stream; `trimAt` (for reads) first drops what is older than the age limit. */
  private stream(topic: string, create: boolean, trimAt?: number): Stream | undefined {
    let s = this.streams.get(topic);
    if (s) {
      s.used = true;
    } else if (create) {
      s = { epoch: this.fresh, offset: 0, entries: new Ring(this.limits.size), used: true };
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
      if (!s.used) break;
      s.used = false;
      this.streams.set(topic, s);
    }
    this.fresh = newEpoch();
  }

  /** Drops what is over the age (the ring itself keeps the count). */
  private trim(s: Stream, now: number): void {
    const { entries } = s;
    while (entries.length > 0 && now - entries.at(0).at > this.limits.ttlMs) entries.dropOldest();
  }

  append(topic: string, head: string, tail: string): Appended {
    const now = Date.now();
    const s = this.stream(topic, true)!;
    const offset = ++s.offset;
    const frame = numberedFrame(head, s.epoch, offset, tail);
    s.entries.push({ offset, at: now, frame });
    return { epoch: s.epoch, offset, frame };
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
    const s = this.stream(topic, false, Date.now()) ?? { epoch: this.fresh, offset: 0, entries: new Ring<Entry>(1), used: false };
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
    return { recovered: true, frames, position };
  }

  async latest(topic: string, limit: number): Promise<string[]> {
    const s = this.stream(topic, false, Date.now());
    if (!s) return [];
    return s.entries.toArray().slice(-limit).reverse().map((e) => e.frame);
  }

  async close(): Promise<void> {}
}
