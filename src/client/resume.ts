// Resume across connections: `?since=` for the personal topic, `subscribe.since` for channels with history, resync reports, event de-duplication.
import { PositionTracker, type Verdict } from './positions.js';
import { jwtSub } from './token.js';
import type { JoinPosition, Position, Positions, ResyncInfo } from './types.js';

/** What a join asked for: the topic and the position sent, if any. */
interface Asked {
  topic: string;
  since: Position | undefined;
}

export class Resume {
  private readonly tracker: PositionTracker;
  private personal: string | undefined;
  /** The personal topic and position the current connection attempt sent in `?since=`. */
  private asked: Asked | undefined;

  constructor(
    seed: Positions | undefined,
    /** false: never ask to resume (positions are still tracked and duplicates still dropped). */
    private readonly enabled: boolean,
    /** Topics whose events are tracked besides the personal one (the client's subscriptions). */
    private readonly tracked: (topic: string) => boolean,
    private readonly resync: (info: ResyncInfo) => void,
  ) {
    this.tracker = new PositionTracker(seed);
  }

  get positions(): Positions {
    return this.tracker.snapshot();
  }

  /**
   * The `since` query value of a connection attempt with `token`: the personal topic is the token's `sub`
   * (the user of the last connection when the token is not a readable JWT).
   */
  sinceParam(token: string): string | undefined {
    const sub = jwtSub(token);
    const topic = sub !== undefined ? `user:${sub}` : this.personal;
    const since = topic !== undefined && this.enabled ? this.tracker.get(topic) : undefined;
    this.asked = topic === undefined ? undefined : { topic, since };
    return since && `${since.epoch}:${since.offset}`;
  }

  /** The `connected` frame: the personal topic's position, and a resync when the missed part is gone. */
  opened(userId: string, topics: Record<string, JoinPosition> | undefined): void {
    this.personal = `user:${userId}`;
    const joined = topics?.[this.personal];
    const asked = this.asked?.topic === this.personal ? this.asked.since : undefined;
    this.asked = undefined;
    if (joined) this.joined(this.personal, joined, asked);
  }

  /**
   * The data of a `subscribe`: `since` for a topic with a position (only the server's acks and numbered events
   * give one: a topic with history), not live yet on this connection.
   */
  subscribeData(topic: string): { topic: string; since?: Position } {
    const since = this.enabled && topic !== this.personal ? this.tracker.get(topic) : undefined;
    return since ? { topic, since } : { topic };
  }

  /** A subscribe ack; its position (recoverable topics) is adopted, or reported as a resync. */
  subscribed(topic: string, ack: unknown, asked: Position | undefined): void {
    const a = ack as Partial<JoinPosition> | null | undefined;
    if (typeof a?.epoch !== 'string' || typeof a.offset !== 'number') return;
    this.joined(topic, a as JoinPosition, asked);
  }

  /** An event: 'duplicate' when its offset was already processed (drop it). Untracked topics are always 'new'. */
  event(topic: string, epoch: unknown, offset: unknown): Verdict {
    if (typeof epoch !== 'string' || typeof offset !== 'number') return 'new';
    if (topic !== this.personal && !this.tracked(topic)) return 'new';
    return this.tracker.accept(topic, epoch, offset);
  }

  /** The app left a topic: its position goes too (a later subscribe starts from live). */
  forget(topic: string): void {
    if (topic !== this.personal) this.tracker.delete(topic);
  }

  private joined(topic: string, server: JoinPosition, asked: Position | undefined): void {
    const gap = this.tracker.joined(topic, server, asked);
    if (gap) this.resync({ topic, reason: gap.reason, from: gap.from, to: { epoch: server.epoch, offset: server.offset } });
  }
}
