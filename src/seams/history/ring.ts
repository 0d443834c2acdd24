// A bounded first-in first-out buffer: adding to a full ring drops the oldest; every operation is O(1).

export class Ring<T> {
  // Grows to `capacity` slots as items come, then is reused in place (no shifting, no reallocation).
  private readonly slots: (T | undefined)[] = [];
  private start = 0;
  private count = 0;

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`ring capacity must be a positive integer, got ${capacity}`);
  }

  get length(): number {
    return this.count;
  }

  /** Adds at the newest end; when full, the oldest item is dropped. */
  push(item: T): void {
    if (this.count < this.capacity) {
      this.slots[(this.start + this.count) % this.capacity] = item;
      this.count++;
    } else {
      this.slots[this.start] = item;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  /** The i-th item, oldest first (0 <= i < length). */
  at(i: number): T {
    if (i < 0 || i >= this.count) throw new RangeError(`ring index ${i} out of 0..${this.count - 1}`);
    return this.slots[(this.start + i) % this.capacity]!;
  }

  /** Drops the oldest item (nothing when empty). */
  dropOldest(): void {
    if (this.count === 0) return;
    this.slots[this.start] = undefined;
    this.start = (this.start + 1) % this.capacity;
    this.count--;
  }

  /** Items oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.slots[(this.start + i) % this.capacity]!);
    return out;
  }
}
