// Read state of a single node, in this process: per user, counted in the epoch of `user:<id>` it was marked
// in, and kept only while that topic has a history (forget() drops it with the history).
import type { MemoryHistory } from '../history/memory.js';
import type { Position } from '../history/types.js';
import type { ReadChange, ReadState, ReadStateStore } from './types.js';

export interface ReadStateLimits {
  /** Users with read state kept; the least recently marked is dropped. */
  maxUsers: number;
  /** Ids marked one by one kept per user; the oldest is dropped. */
  maxIds: number;
}

interface Entry {
  epoch: string;
  allUpTo: number;
  ids: Set<string>;
}

const PERSONAL = 'user:';

export class MemoryReadState implements ReadStateStore {
  private readonly reads = new Map<string, Entry>();

  /**
   * Read state over a history of this process: positions read in the turn, and a user's read state dropped in
   * the turn `user:<id>` is evicted (it could not be seen again, and must not push out read state that can).
   */
  static alongside(history: MemoryHistory, limits: ReadStateLimits): MemoryReadState {
    const reads = new MemoryReadState(limits, (userId) => history.now.position(PERSONAL + userId));
    history.onEvicted((topic) => {
      if (topic.startsWith(PERSONAL)) reads.forget(topic.slice(PERSONAL.length));
    });
    return reads;
  }

  constructor(
    private readonly limits: ReadStateLimits,
    /**
     * The current position of `user:<id>`, from the history the read state refers to; answered in the turn
     * when that history is in this process (nothing can evict it between the answer and the mark).
     */
    private readonly positionOf: (userId: string) => Position | Promise<Position>,
  ) {}

  /** The user's entry when it counts in `epoch`; one of an older epoch is dropped. */
  private current(userId: string, epoch: string): Entry | undefined {
    const r = this.reads.get(userId);
    if (r === undefined || r.epoch === epoch) return r;
    this.reads.delete(userId);
    return undefined;
  }

  async get(userId: string): Promise<ReadState> {
    const p = this.positionOf(userId);
    const r = this.current(userId, (p instanceof Promise ? await p : p).epoch);
    return r ? { allUpTo: r.allUpTo, ids: new Set(r.ids) } : { allUpTo: 0, ids: new Set() };
  }

  async mark(userId: string, change: ReadChange): Promise<void> {
    const p = this.positionOf(userId);
    const { epoch, offset } = p instanceof Promise ? await p : p;
    // A topic with no history has nothing to read: no entry that would outlive it or push out a real one.
    if (offset === 0) {
      this.reads.delete(userId);
      return;
    }
    const r = this.current(userId, epoch) ?? { epoch, allUpTo: 0, ids: new Set<string>() };
    this.reads.delete(userId);
    this.reads.set(userId, r);
    if (this.reads.size > this.limits.maxUsers) this.reads.delete(this.reads.keys().next().value as string);
    if ('id' in change) {
      r.ids.add(change.id);
      if (r.ids.size > this.limits.maxIds) r.ids.delete(r.ids.values().next().value as string);
    } else {
      r.allUpTo = Math.max(r.allUpTo, change.allUpTo);
      r.ids.clear();
    }
  }

  /** `user:<id>` lost its history (evicted whole): its read state goes with it. */
  forget(userId: string): void {
    this.reads.delete(userId);
  }

  /** Users with read state held (for tests and metrics). */
  get size(): number {
    return this.reads.size;
  }
}
