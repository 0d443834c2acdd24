// In-order delivery, on this node, of the numbered frames of each recoverable topic it listens to: a frame
// seen twice is dropped, a gap (frames this node missed while its Redis subscription was down) is filled
// from the history before anything after it, and a gap the history cannot fill is reported as lost.
import type { Logger } from 'pino';
import { framePosition } from '../../../wire/position.js';
import type { Position } from '../../history/types.js';
import type { RedisHistory } from '../../history/redis.js';
import type { FrameHandler } from '../types.js';

/** A failed history read is tried again after 100 ms, then twice as long each time, at most 2 s apart. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2000;

type Held = { frame: string; except: string | undefined } | { after: () => void };

interface Stream {
  /** The last frame delivered here; epoch undefined until the first one (or after a loss). */
  epoch: string | undefined;
  offset: number;
  /** A fill from the history is running (or waits for Redis): what arrives meanwhile is held, in order. */
  filling: boolean;
  /** Redis went away during the fill: the next catchUp() starts it again. */
  stalled: boolean;
  /** A catchUp() came during a fill: read up to the head again once it is done. */
  recheck: boolean;
  /** Failed reads in a row (a slow or unreachable Redis): the next one waits longer. */
  retries: number;
  held: Held[];
}

export class TopicStreams {
  private readonly streams = new Map<string, Stream>();

  constructor(
    private readonly history: Pick<RedisHistory, 'since' | 'rewound'>,
    private readonly deliver: FrameHandler,
    /** The topic's local subscribers missed frames that can no longer be given to them. */
    private readonly lost: (topic: string) => void,
    private readonly log: Logger,
  ) {}

  private streamOf(topic: string): Stream {
    let s = this.streams.get(topic);
    if (s === undefined) {
      s = { epoch: undefined, offset: 0, filling: false, stalled: false, recheck: false, retries: 0, held: [] };
      this.streams.set(topic, s);
    }
    return s;
  }

  /** A numbered frame from Redis (origin "*"), in the order Redis sent it. */
  receive(topic: string, frame: string, except?: string): void {
    const s = this.streamOf(topic);
    if (s.filling) s.held.push({ frame, except });
    else this.accept(topic, s, frame, except);
  }

  /**
   * A join's barrier: every frame up to `position` has reached this node. Runs `fn` once every frame received
   * so far on the topic has been delivered, and from then on measures gaps from `position` at least.
   */
  after(topic: string, position: Position, fn: () => void): void {
    const s = this.seed(topic, position);
    if (s.filling) s.held.push({ after: fn });
    else fn();
  }

  /** A join read `position`: unless this node already delivered frames of the topic, gaps are measured from it. */
  seed(topic: string, position: Position): Stream {
    const s = this.streamOf(topic);
    if (s.epoch === undefined) {
      s.epoch = position.epoch;
      s.offset = position.offset;
    }
    return s;
  }

  /** The node stopped listening to the topic: what it knew of it no longer holds. */
  forget(topic: string): void {
    this.streams.delete(topic);
  }

  /**
   * After this node listens again (a reconnect to Redis): every topic it had delivered frames of is read from
   * the history up to its head, so that what was published while this node could not hear it reaches the
   * topic's local subscribers, in order, before anything newer; or they are told it is lost. `only`: one
   * topic that this node has just started to listen to again.
   */
  catchUp(only?: string): void {
    for (const [topic, s] of this.streams) {
      if (s.epoch === undefined || (only !== undefined && topic !== only)) continue;
      if (!s.filling || s.stalled) this.fill(topic, s, Number.MAX_SAFE_INTEGER);
      else s.recheck = true;
    }
  }

  private accept(topic: string, s: Stream, frame: string, except: string | undefined): void {
    const p = framePosition(frame);
    if (p === undefined) {
      this.deliver(topic, frame, except);
      return;
    }
    // Seeded at offset 0 (a join found the topic with no history: its empty epoch), nothing was delivered
    // here: the history that began since is the continuation, measured from 0.
    if (s.epoch !== p.epoch && s.epoch !== undefined && s.offset === 0) s.epoch = p.epoch;
    if (s.epoch !== p.epoch) {
      // A new epoch: the history this node's subscribers hold positions in is gone (Redis lost it, or the
      // topic's keys expired). They are told first, so that none of them takes this frame as a continuation.
      if (s.epoch !== undefined) this.lose(topic, s);
      s.epoch = p.epoch;
      s.offset = p.offset;
      this.deliver(topic, frame, except);
      return;
    }
    if (p.offset <= s.offset) return;
    if (p.offset === s.offset + 1) {
      s.offset = p.offset;
      this.deliver(topic, frame, except);
      return;
    }
    s.held.push({ frame, except });
    this.fill(topic, s, p.offset - 1);
  }

  private lose(topic: string, s: Stream): void {
    this.log.warn({ topic, epoch: s.epoch, offset: s.offset }, 'history lost under live subscribers: they are closed to resume (recovered: false)');
    s.epoch = undefined;
    s.offset = 0;
    this.lost(topic);
  }

  private fill(topic: string, s: Stream, upTo: number): void {
    s.filling = true;
    s.stalled = false;
    const epoch = s.epoch!;
    this.history.since(topic, epoch, s.offset, upTo).then(
      (replay) => {
        if (this.streams.get(topic) !== s) return;
        s.retries = 0;
        if (s.epoch !== epoch) return this.flush(topic, s);
        if (!replay.recovered) {
          // Offsets went back (Redis restarted from older data): that epoch must never be continued.
          if (replay.position.epoch === epoch && replay.position.offset < s.offset) {
            this.history.rewound(topic, epoch, s.offset).catch((err: unknown) => this.log.warn({ err, topic }, 'could not retire a rewound epoch'));
          }
          this.lose(topic, s);
        } else {
          for (const f of replay.frames) {
            const p = framePosition(f);
            if (p === undefined || p.offset <= s.offset) continue;
            s.offset = p.offset;
            this.deliver(topic, f);
          }
          if (s.recheck) {
            s.recheck = false;
            return this.fill(topic, s, Number.MAX_SAFE_INTEGER);
          }
        }
        this.flush(topic, s);
      },
      () => {
        // A read that failed (Redis slow or away): the frames stay held, in order, and the read is tried
        // again by itself, up to the head, until it succeeds or the node stops listening to the topic.
        s.stalled = true;
        const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(s.retries++, 5));
        setTimeout(() => {
          if (this.streams.get(topic) === s && s.stalled) this.fill(topic, s, Number.MAX_SAFE_INTEGER);
        }, delay).unref();
      },
    );
  }

  private flush(topic: string, s: Stream): void {
    s.filling = false;
    while (!s.filling && s.held.length > 0) {
      const h = s.held.shift()!;
      if ('after' in h) h.after();
      else this.accept(topic, s, h.frame, h.except);
    }
  }
}
