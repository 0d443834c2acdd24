// A fixed-size log-linear latency histogram in microseconds: exact below 256 µs, then 256 buckets per
// power of two (< 0.4 % error), up to 2^32 µs. Recording is two integer ops; merging is an array sum,
// so workers ship their counts to the coordinator instead of raw samples.

const SUB = 256;
const SUB_BITS = 8;
const OCTAVES = 32 - SUB_BITS + 1;
export const HIST_BUCKETS = SUB * OCTAVES;

function indexOf(us: number): number {
  const v = us <= 0 ? 0 : us >= 0xffffffff ? 0xffffffff : Math.floor(us);
  if (v < SUB) return v;
  const e = 31 - Math.clz32(v) - SUB_BITS + 1; // octave >= 1
  return e * SUB + ((v >>> (e - 1)) - SUB);
}

/** Lower bound of a bucket, in µs. */
function valueAt(index: number): number {
  if (index < SUB) return index;
  const e = Math.floor(index / SUB);
  const sub = index % SUB;
  return (SUB + sub) * 2 ** (e - 1);
}

export class Histogram {
  counts: Uint32Array;
  total = 0;
  max = 0;
  sum = 0;

  constructor(counts?: Uint32Array) {
    this.counts = counts ?? new Uint32Array(HIST_BUCKETS);
    if (counts) for (let i = 0; i < counts.length; i++) if (counts[i]) this.#account(i, counts[i]!);
  }

  #account(i: number, n: number): void {
    const v = valueAt(i);
    this.total += n;
    this.sum += v * n;
    if (v > this.max) this.max = v;
  }

  record(us: number): void {
    const i = indexOf(us);
    this.counts[i]!++;
    this.total++;
    this.sum += us;
    if (us > this.max) this.max = us;
  }

  merge(other: Histogram | Uint32Array): void {
    const c = other instanceof Histogram ? other.counts : other;
    for (let i = 0; i < c.length; i++) {
      const n = c[i]!;
      if (n) {
        this.counts[i]! += n;
        this.#account(i, n);
      }
    }
  }

  /** Value (µs) at quantile q in [0, 1]; NaN when empty. */
  quantile(q: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return valueAt(i);
    }
    return this.max;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.max = 0;
    this.sum = 0;
  }
}

/** Median of a list of numbers (NaN for an empty list). */
export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}
