// Chat read positions of a single node, in this process: per (user, channel), with the epoch they count in.
import type { Advanced, ChatReadStore, ReadPosition } from './types.js';

export class MemoryChatReads implements ChatReadStore {
  /** Least recently marked first: the oldest entry is the one dropped past the bound. */
  private readonly reads = new Map<string, { epoch: string; offset: number }>();

  constructor(
    /** Positions kept (users x conversations); past it the least recently marked is forgotten (it reads as 0). */
    private readonly maxEntries: number,
  ) {}

  get size(): number {
    return this.reads.size;
  }

  async advance(userId: string, channel: string, epoch: string, offset: number): Promise<Advanced> {
    const key = `${userId}\n${channel}`;
    const r = this.reads.get(key);
    const current = r !== undefined && r.epoch === epoch ? r.offset : 0;
    if (offset <= current) return { offset: current, moved: false };
    this.reads.delete(key);
    this.reads.set(key, { epoch, offset });
    if (this.reads.size > this.maxEntries) this.reads.delete(this.reads.keys().next().value as string);
    return { offset, moved: true };
  }

  async get(userId: string, channels: readonly ReadPosition[]): Promise<number[]> {
    return channels.map(({ channel, epoch }) => {
      const r = this.reads.get(`${userId}\n${channel}`);
      return r !== undefined && r.epoch === epoch ? r.offset : 0;
    });
  }
}
