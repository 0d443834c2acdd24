// join(ws, topic, since): replay what a connection missed, then live, with no gap and no duplicate; this
// node's interest in topics (local subscribers and joins in progress), and the join barrier of a cluster.
import type { Backplane } from '../seams/backplane/types.js';
import type { Position } from '../seams/history/types.js';
import type { Topology } from '../seams/topology.js';
import type { UWS } from '../uws.js';
import { CloseCode } from '../wire/codes.js';
import { framePosition } from '../wire/position.js';
import type { Channels } from '../wire/topics.js';
import type { Metrics } from '../metrics.js';

const RECONNECT_TO_RESUME = 'the cluster store is back: reconnect to resume from your position';

type Joining = UWS.WebSocket<{ conn: { closed: boolean } }>;

export interface JoinResult extends Position {
  /** Set when the join asked to resume from a position. */
  recovered: boolean | undefined;
  replayed: number;
  /** UTF-8 bytes of the replayed frames: what the user's history-read budget is charged. */
  replayedBytes: number;
}

const bytesOf = (frames: readonly string[]): number => {
  let n = 0;
  for (const f of frames) n += Buffer.byteLength(f);
  return n;
};

export interface JoinOptions {
  /** Runs first inside the same cork, before any replayed frame (the `connected` frame on open). */
  prelude?: (r: JoinResult | undefined) => void;
  /** Non-recoverable topics joined in the same step (they are listened to before the prelude runs). */
  alongWith?: readonly string[];
}

interface Joiner {
  buffer: string[];
}

/** This node's interest in a topic: local uWS subscribers, or a join in progress holding it. */
export class Interest {
  private readonly subscribed = new Set<string>();
  private readonly holds = new Map<string, number>();

  constructor(private readonly backplane: Backplane) {}

  /** The uWS `subscription` handler reports a topic's local count going 0->1 (true) or 1->0 (false). */
  local(topic: string, on: boolean): void {
    const before = this.has(topic);
    if (on) this.subscribed.add(topic);
    else this.subscribed.delete(topic);
    this.changed(topic, before);
  }

  /** Keeps this node listening to a topic while a join reads its history (no local subscriber yet). */
  hold(topic: string): void {
    const before = this.has(topic);
    this.holds.set(topic, (this.holds.get(topic) ?? 0) + 1);
    this.changed(topic, before);
  }

  release(topic: string): void {
    const before = this.has(topic);
    const n = (this.holds.get(topic) ?? 1) - 1;
    if (n > 0) this.holds.set(topic, n);
    else this.holds.delete(topic);
    this.changed(topic, before);
  }

  private has(topic: string): boolean {
    return this.subscribed.has(topic) || this.holds.has(topic);
  }

  private changed(topic: string, before: boolean): void {
    const now = this.has(topic);
    if (now !== before) this.backplane.interest(topic, now);
  }
}

export class Joins {
  /** Connections joining a topic: frames delivered meanwhile are kept for them. */
  private readonly joining = new Map<string, Set<Joiner>>();
  /**
   * Cluster: connections that joined a recoverable topic without a position (the store was unreachable), by
   * topic. Closed with 4001 once this node is registered again, or before the first numbered frame of the
   * topic reaches them, whichever comes first: a client must not take a later offset as its resume point.
   */
  private readonly positionless = new Map<string, Set<Joining>>();

  constructor(
    private readonly topology: Topology,
    private readonly interest: Interest,
    private readonly metrics: Metrics,
    private readonly channels: Channels,
  ) {
    topology.backplane.onStateChange((up) => {
      if (up) this.closePositionless();
    });
  }

  private closePositionless(topic?: string): void {
    for (const [t, sockets] of this.positionless) {
      if (topic !== undefined && t !== topic) continue;
      this.positionless.delete(t);
      for (const ws of sockets) if (!ws.getUserData().conn.closed) ws.end(CloseCode.RECONNECT, RECONNECT_TO_RESUME);
    }
  }

  /** A frame being delivered on the topic: joins in progress keep it, positionless subscribers are closed first. */
  buffer(topic: string, frame: string): void {
    const joiners = this.joining.get(topic);
    if (joiners) for (const j of joiners) j.buffer.push(frame);
    if (this.positionless.size > 0 && this.positionless.has(topic) && framePosition(frame) !== undefined) this.closePositionless(topic);
  }

  /** A join of the topic is in progress here. */
  has(topic: string): boolean {
    return this.joining.has(topic);
  }

  /**
   * Joins `ws` to a topic. For a recoverable topic: replays what came after `since` (when given and still
   * in history) up to the topic's position, then the frames delivered while the history was read, then
   * subscribes; all in one turn, so every frame reaches the connection once and in order.
   * Synchronous (no promise) on a single node whose history is read in the turn (memory): nothing can be
   * published between reading the position and subscribing.
   */
  join(ws: Joining, topic: string, since: Position | undefined, options: JoinOptions = {}): JoinResult | undefined | Promise<JoinResult | undefined> {
    const t = this.topology;
    const recoverable = this.channels.isRecoverable(topic);
    // In one turn only on a single node, and for a recoverable topic only with a history read in the turn.
    if (!t.single || (recoverable && !t.history.sync)) return this.joinLater(ws, topic, since, options);
    let result: JoinResult | undefined;
    let frames: readonly string[] = [];
    if (recoverable && t.history.sync) {
      const now = t.history.now;
      const position = now.position(topic);
      let recovered: boolean | undefined;
      if (since) {
        const replay = now.since(topic, since.epoch, since.offset, position.offset);
        recovered = replay.recovered;
        frames = replay.frames;
      }
      result = { epoch: position.epoch, offset: position.offset, recovered, replayed: frames.length, replayedBytes: bytesOf(frames) };
    }
    this.enter(ws, topic, options, result, frames);
    return result;
  }

  /** The last step of a join, in one cork: the prelude, the replay, then live. */
  private enter(ws: UWS.WebSocket<unknown>, topic: string, options: JoinOptions, result: JoinResult | undefined, frames: readonly string[]): void {
    const along = options.alongWith ?? [];
    ws.cork(() => {
      options.prelude?.(result);
      for (const f of frames) ws.send(f);
      ws.subscribe(topic);
      for (const t of along) ws.subscribe(t);
    });
    if (frames.length > 0) this.metrics.messagesOut.inc(frames.length);
  }

  /** A join that waits for the other nodes or for the history store, buffering what is delivered meanwhile. */
  private async joinLater(ws: Joining, topic: string, since: Position | undefined, options: JoinOptions): Promise<JoinResult | undefined> {
    const topics = [topic, ...(options.alongWith ?? [])];
    const recoverable = this.channels.isRecoverable(topic);
    const joiner: Joiner = { buffer: [] };
    let set: Set<Joiner> | undefined;
    if (recoverable) {
      set = this.joining.get(topic);
      if (!set) {
        set = new Set();
        this.joining.set(topic, set);
      }
      set.add(joiner);
    }
    for (const t of topics) this.interest.hold(t);
    let read: { result: JoinResult | undefined; frames: string[] } = { result: undefined, frames: [] };
    try {
      // In a cluster, first make sure the other nodes send this one the topics, so that nothing published
      // from now on can be missed; a Redis outage does not block the join (it degrades to this node).
      await this.whenListening(topics)?.catch(() => undefined);
      if (recoverable) read = await this.readPosition(topic, since);
    } catch (err) {
      for (const t of topics) this.interest.release(t);
      throw err;
    } finally {
      set?.delete(joiner);
      if (set?.size === 0) this.joining.delete(topic);
    }
    if (ws.getUserData().conn.closed) {
      for (const t of topics) this.interest.release(t);
      return undefined;
    }
    const { result, frames } = read;
    for (const f of joiner.buffer) {
      const p = framePosition(f);
      // Unnumbered frames (typing) and frames past the position read come after the replay.
      if (p === undefined || result === undefined || p.offset > result.offset) frames.push(f);
    }
    this.enter(ws, topic, options, result, frames);
    for (const t of topics) this.interest.release(t);
    if (recoverable && result === undefined) {
      const sockets = this.positionless.get(topic) ?? new Set();
      this.positionless.set(topic, sockets);
      sockets.add(ws);
      if (this.topology.backplane.up) this.closePositionless();
    }
    return result;
  }

  /**
   * The topic's position and what came after `since`, once every frame numbered up to that position has
   * reached this node; no position (undefined) when the history store cannot be reached.
   */
  private async readPosition(topic: string, since: Position | undefined): Promise<{ result: JoinResult | undefined; frames: string[] }> {
    const t = this.topology;
    const frames: string[] = [];
    try {
      const position = await t.history.position(topic);
      let recovered: boolean | undefined;
      if (since) {
        const replay = await t.history.since(topic, since.epoch, since.offset, position.offset);
        recovered = replay.recovered;
        frames.push(...replay.frames);
      }
      const result = { ...position, recovered, replayed: frames.length, replayedBytes: bytesOf(frames) };
      // Every frame numbered up to the position read must have reached this node (or never will,
      // having been published before it listened): then the buffer holds exactly what came after.
      if (!t.single) await t.backplane.barrier(topic, position);
      return { result, frames };
    } catch {
      // The history store is unreachable (a cluster without Redis): the connection joins live, without a
      // position, and is closed with 4001 once this node is registered again, so that it resumes then
      // (what was published elsewhere meanwhile, or its `recovered: false`, is only known from Redis).
      return { result: undefined, frames: [] };
    }
  }

  /**
   * For a topic the connection already receives live since position `joinedAt`: sends what it missed in
   * (since, joinedAt]. Those frames come after the live ones received since joining; every frame still
   * reaches the connection once, and its offset tells where it belongs.
   */
  async replay(ws: Joining, topic: string, since: Position, joinedAt: Position): Promise<JoinResult> {
    const r = since.epoch === joinedAt.epoch ? await this.topology.history.since(topic, since.epoch, since.offset, joinedAt.offset) : { recovered: false, frames: [] };
    if (!ws.getUserData().conn.closed && r.frames.length > 0) {
      ws.cork(() => {
        for (const f of r.frames) ws.send(f);
      });
      this.metrics.messagesOut.inc(r.frames.length);
    }
    return { ...joinedAt, recovered: r.recovered, replayed: r.frames.length, replayedBytes: bytesOf(r.frames) };
  }

  /** Undefined when frames of these topics already reach this node from the others, else when they do. */
  whenListening(topics: readonly string[]): Promise<void> | undefined {
    return this.topology.backplane.whenListening(topics);
  }
}
