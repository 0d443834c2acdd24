// Read state of a single node, in this process: per user, counted in the epoch of `user:<id>` it was marked in.
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

export class MemoryReadState implements ReadStateStore {
  private readonly reads = new Map<string, Entry>();

  constructor(
    private readonly limits: ReadStateLimits,
    /** The current epoch of `user:<id>`, from the history the read state refers to. */
    private readonly epochOf: (userId: string) => string | Promise<string>,
  ) {}

  /** The user's entry when it counts in `epoch`; one of an older epoch is dropped. */
  private current(userId: string, epoch: string): Entry | undefined {
    const r = this.reads.get(userId);
    if (r === undefined || r.epoch === epoch) return r;
    this.reads.delete(userId);
    return undefined;
  }

  async get(userId: string): Promise<ReadState> {
    const r = this.current(userId, await this.epochOf(userId));
    return r ? { allUpTo: r.allUpTo, ids: new Set(r.ids) } : { allUpTo: 0, ids: new Set() };
  }

  async mark(userId: string, change: ReadChange): Promise<void> {
    const epoch = await this.epochOf(userId);
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
}
