// Per-topic resume positions (epoch + highest offset processed) and de-duplication of events by offset.
import type { JoinPosition, Position, Positions } from './types.js';

/** Offsets skipped below the highest one seen, kept per topic so that a late frame is not taken for a duplicate. */
const MAX_HOLES = 256;
const EPOCH = /^[A-Za-z0-9_-]{1,64}$/;

export type Verdict = 'new' | 'duplicate';

interface Track extends Position {
  holes: Set<number>;
}

/** Throws a TypeError unless `p` is a position the server can parse in `?since=` and `subscribe.since`. */
export function checkPosition(p: unknown, what: string): Position {
  const o = p as Partial<Position> | null;
  if (typeof o !== 'object' || o === null || typeof o.epoch !== 'string' || !EPOCH.test(o.epoch) || !Number.isSafeInteger(o.offset) || (o.offset as number) < 0) {
    throw new TypeError(`storywire: ${what} must be {epoch: [A-Za-z0-9_-]{1,64}, offset: integer >= 0}`);
  }
  return { epoch: o.epoch, offset: o.offset as number };
}

/**
 * A topic that may have a position: a channel with an id (`user:<id>`, `story:<id>`, `conversation:<id>`, any
 * namespace with history). Whether it has history is the server's to say: positions come from its acks and events.
 */
export function isRecoverable(topic: string): boolean {
  return /^[a-z][a-z0-9-]{0,31}:./.test(topic);
}

export class PositionTracker {
  private readonly map = new Map<string, Track>();

  constructor(seed: Positions = {}) {
    for (const [topic, p] of Object.entries(seed)) {
      if (!isRecoverable(topic)) throw new TypeError(`storywire: resumeFrom["${topic}"]: only channels with an id (user:<id>, story:<id>, conversation:<id>, ...) have positions`);
      this.set(topic, checkPosition(p, `resumeFrom["${topic}"]`));
    }
  }

  get(topic: string): Position | undefined {
    const t = this.map.get(topic);
    return t && { epoch: t.epoch, offset: t.offset };
  }

  /** A plain copy, JSON-serializable, to persist and hand back as `resumeFrom`. */
  snapshot(): Positions {
    const out: Positions = {};
    for (const [topic, t] of this.map) out[topic] = { epoch: t.epoch, offset: t.offset };
    return out;
  }

  delete(topic: string): void {
    this.map.delete(topic);
  }

  /**
   * An event at (epoch, offset): a duplicate when that offset of that epoch was already processed. Another
   * epoch is adopted (the server's history was renewed while this connection was live: nothing was missed).
   */
  accept(topic: string, epoch: string, offset: number): Verdict {
    const t = this.map.get(topic);
    if (!t || t.epoch !== epoch) {
      this.set(topic, { epoch, offset });
      return 'new';
    }
    if (offset <= t.offset) return t.holes.delete(offset) ? 'new' : 'duplicate';
    for (let o = Math.max(t.offset + 1, offset - MAX_HOLES); o < offset; o++) t.holes.add(o);
    if (t.holes.size > MAX_HOLES) for (const o of [...t.holes].slice(0, t.holes.size - MAX_HOLES)) t.holes.delete(o);
    t.offset = offset;
    return 'new';
  }

  /**
   * The server's answer to a join (`connected.data.topics`, a subscribe ack) for a join that asked to resume
   * from `asked` (or not). Returns the resync to report when the server could not fill the gap.
   */
  joined(topic: string, server: JoinPosition, asked: Position | undefined): { from: Position; reason: 'epoch' | 'gap' } | undefined {
    const to = { epoch: server.epoch, offset: server.offset };
    if (!asked || server.recovered === undefined) {
      this.adopt(topic, to);
      return undefined;
    }
    // Recovered: the replayed events (before or after this answer) move the position; nothing to adopt.
    if (server.recovered) {
      if (!this.map.has(topic)) this.set(topic, asked);
      return undefined;
    }
    const reason = asked.epoch === server.epoch ? 'gap' : 'epoch';
    // Asked for an offset the server never reached (a position from elsewhere): only the server's is true.
    if (reason === 'gap' && asked.offset > server.offset) this.set(topic, to);
    else this.adopt(topic, to);
    return { from: asked, reason };
  }

  /** Takes a position the server announced, never moving back within one epoch (live events may have come first). */
  private adopt(topic: string, p: Position): void {
    const t = this.map.get(topic);
    if (t && t.epoch === p.epoch) {
      if (p.offset > t.offset) {
        t.offset = p.offset;
        t.holes.clear();
      }
      return;
    }
    this.set(topic, p);
  }

  private set(topic: string, p: Position): void {
    this.map.set(topic, { epoch: p.epoch, offset: p.offset, holes: new Set() });
  }
}
