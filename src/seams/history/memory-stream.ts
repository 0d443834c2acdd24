// One topic's stored events in the memory history, oldest first, as parallel arrays in a ring: no object per
// event. At 10,000 notifications/s to 5,000 users, an object per stored event (plus one in the age queue) was
// ~250,000 long-lived objects that every event touched cold (the oldest one, to drop it) and that every GC
// traversed; the arrays of one topic are a few cache lines, and a number array holds no pointers.

/** Bit of `flags`: a user-sent event (RecordOptions.user), counted against the user share. */
const USER = 1;

export class Stream {
  /** Offset of the last event numbered in this epoch (stored or since dropped). */
  offset = 0;
  /** User-sent events held. */
  users = 0;
  /** Touched since the eviction hand last passed (second-chance LRU: no Map reordering per message). */
  used = true;
  /** Evicted whole: its places in the age queues are dead. */
  gone = false;
  /** Held events that have a key, key -> offset (made by the first). */
  keyed: Map<string, number> | undefined;

  // The ring: slot (start + i) % capacity holds the i-th held event, oldest first. It grows by doubling up
  // to `size` (a topic that holds one event costs one slot, not `size`).
  private start = 0;
  private count = 0;
  private frames: string[] = [''];
  private offsets: number[] = [0];
  private ats: number[] = [0];
  private bytes: number[] = [0];
  private flags: number[] = [0];
  /** Keys by slot, once the stream holds a keyed event. */
  private keys: (string | undefined)[] | undefined;

  constructor(
    public epoch: string,
    /** Events held at most (its namespace's history size, or the store's). */
    readonly size: number,
    readonly ttlMs: number,
  ) {}

  get length(): number {
    return this.count;
  }

  private slot(i: number): number {
    const s = this.start + i;
    const cap = this.frames.length;
    return s < cap ? s : s - cap;
  }

  frameAt(i: number): string {
    return this.frames[this.slot(i)]!;
  }

  offsetAt(i: number): number {
    return this.offsets[this.slot(i)]!;
  }

  atOf(i: number): number {
    return this.ats[this.slot(i)]!;
  }

  bytesAt(i: number): number {
    return this.bytes[this.slot(i)]!;
  }

  isUser(i: number): boolean {
    return (this.flags[this.slot(i)]! & USER) !== 0;
  }

  keyAt(i: number): string | undefined {
    return this.keys?.[this.slot(i)];
  }

  /** The index of the held event with this offset, or -1 (offsets are held in increasing order). */
  indexOf(offset: number): number {
    let lo = 0;
    let hi = this.count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const o = this.offsetAt(mid);
      if (o === offset) return mid;
      if (o < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Adds the newest event; the caller has made room (length < size). */
  push(frame: string, offset: number, at: number, bytes: number, user: boolean, key: string | undefined): void {
    if (this.count === this.frames.length) this.grow();
    const slot = this.slot(this.count);
    this.frames[slot] = frame;
    this.offsets[slot] = offset;
    this.ats[slot] = at;
    this.bytes[slot] = bytes;
    this.flags[slot] = user ? USER : 0;
    if (key !== undefined || this.keys !== undefined) {
      this.keys ??= new Array<string | undefined>(this.frames.length).fill(undefined);
      this.keys[slot] = key;
    }
    this.count++;
  }

  /** Swaps the frame of the i-th event (same offset). */
  setFrame(i: number, frame: string, bytes: number): void {
    const slot = this.slot(i);
    this.frames[slot] = frame;
    this.bytes[slot] = bytes;
  }

  /** Forgets the oldest event (its accounting is the caller's). */
  shift(): void {
    const slot = this.start;
    this.frames[slot] = '';
    if (this.keys !== undefined) this.keys[slot] = undefined;
    this.start = slot + 1 === this.frames.length ? 0 : slot + 1;
    this.count--;
  }

  /** Forgets the i-th event, the later ones moving up one place (O(length)). */
  removeAt(i: number): void {
    if (i === 0) {
      this.shift();
      return;
    }
    for (let j = i; j < this.count - 1; j++) {
      const to = this.slot(j);
      const from = this.slot(j + 1);
      this.frames[to] = this.frames[from]!;
      this.offsets[to] = this.offsets[from]!;
      this.ats[to] = this.ats[from]!;
      this.bytes[to] = this.bytes[from]!;
      this.flags[to] = this.flags[from]!;
      if (this.keys !== undefined) this.keys[to] = this.keys[from];
    }
    const last = this.slot(this.count - 1);
    this.frames[last] = '';
    if (this.keys !== undefined) this.keys[last] = undefined;
    this.count--;
  }

  private grow(): void {
    const cap = Math.min(this.size, this.frames.length * 2);
    const n = this.count;
    const frames = new Array<string>(cap).fill('');
    const offsets = new Array<number>(cap).fill(0);
    const ats = new Array<number>(cap).fill(0);
    const bytes = new Array<number>(cap).fill(0);
    const flags = new Array<number>(cap).fill(0);
    const keys = this.keys && new Array<string | undefined>(cap).fill(undefined);
    for (let i = 0; i < n; i++) {
      const s = this.slot(i);
      frames[i] = this.frames[s]!;
      offsets[i] = this.offsets[s]!;
      ats[i] = this.ats[s]!;
      bytes[i] = this.bytes[s]!;
      flags[i] = this.flags[s]!;
      if (keys) keys[i] = this.keys![s];
    }
    this.frames = frames;
    this.offsets = offsets;
    this.ats = ats;
    this.bytes = bytes;
    this.flags = flags;
    this.keys = keys;
    this.start = 0;
  }
}
