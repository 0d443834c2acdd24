// emit(topic, frame): offsets for recoverable topics, uWS fan-out on this node, the backplane to the others;
// join(ws, topic, since): replay what a connection missed, then live, with no gap and no duplicate.
import type { UWS } from '../uws.js';
import { Unconfirmed, type Backplane, type Idempotency } from '../seams/backplane/types.js';
import { CloseCode, ErrorCode, WireError } from '../wire/codes.js';
import type { IdempotencyStore } from './idempotency.js';
import type { Position } from '../seams/history/types.js';
import type { Topology } from '../seams/topology.js';
import { isNumbered, isRecoverable } from '../wire/topics.js';
import { framePosition } from '../wire/position.js';
import type { Metrics } from '../metrics.js';

/**
 * Not confirmed on every node that listens: reported as a failure, with what this node delivered and whether
 * the event is stored (recoverable topics: true, false, or null when not known; live-only topics: false).
 */
export class PartialDelivery extends WireError {
  constructor(
    readonly delivered: number,
    readonly stored: boolean | null,
    message = 'delivered on this node only: the other nodes could not be reached',
  ) {
    super(ErrorCode.UNAVAILABLE, message, 503);
  }
}

/** true when every part is true, false when every part is false, null otherwise. */
function storedOfAll(parts: readonly (boolean | null)[]): boolean | null {
  if (parts.every((p) => p === true)) return true;
  if (parts.every((p) => p === false)) return false;
  return null;
}

/**
 * Sums local deliveries of several emits; a failure makes the whole a PartialDelivery with the sum, stored
 * when every failed part is stored, not stored when none is, null otherwise (the parts that succeeded
 * need no retry). An error of another kind wins.
 */
export async function emitAll(emits: Promise<number>[]): Promise<number> {
  const results = await Promise.allSettled(emits);
  let delivered = 0;
  const failed: PartialDelivery[] = [];
  for (const r of results) {
    if (r.status === 'fulfilled') delivered += r.value;
    else if (r.reason instanceof PartialDelivery) {
      delivered += r.reason.delivered;
      failed.push(r.reason);
    } else throw r.reason;
  }
  if (failed.length > 0) throw new PartialDelivery(delivered, storedOfAll(failed.map((f) => f.stored)), failed[0]!.message);
  return delivered;
}

const RECONNECT_TO_RESUME = 'the cluster store is back: reconnect to resume from your position';

const conflict = () => new WireError(ErrorCode.IDEMPOTENCY_CONFLICT, 'this Idempotency-Key was used for another request', 422);


export interface JoinResult extends Position {
  /** Set when the join asked to resume from a position. */
  recovered: boolean | undefined;
  replayed: number;
}

interface Joiner {
  buffer: string[];
}

export interface JoinOptions {
  /** Runs first inside the same cork, before any replayed frame (the `connected` frame on open). */
  prelude?: (r: JoinResult | undefined) => void;
  /** Non-recoverable topics joined in the same step (they are listened to before the prelude runs). */
  alongWith?: readonly string[];
}

const NOTIFICATION_HEAD = '{"type":"notification:received"';
const USER_PREFIX = 'user:';

const typeHeads = new Map<string, string>();
/** `{"type":<type>,"topic":` for an event type, built once per type (event types are few). */
function typeHead(type: string): string {
  let h = typeHeads.get(type);
  if (h === undefined) {
    h = `{"type":${JSON.stringify(type)},"topic":`;
    // Backend-defined types (POST /v1/publish) are open-ended: only a bounded number is remembered.
    if (typeHeads.size < 1000) typeHeads.set(type, h);
  }
  return h;
}

/** A connection may have closed since it was remembered: uWS throws on any use of a closed one. */
function isOpenSubscriber(ws: UWS.WebSocket<unknown>, topic: string): boolean {
  try {
    return ws.isSubscribed(topic);
  } catch {
    return false;
  }
}

export class PubSub {
  private bytesSinceCheck = 0;
  private checkScheduled = false;
  /** Connections joining a topic: frames delivered meanwhile are kept for them. */
  private readonly joining = new Map<string, Set<Joiner>>();
  /** Topics with local uWS subscribers, and topics held by joins in progress: together, this node's interest. */
  private readonly subscribed = new Set<string>();
  private readonly holds = new Map<string, number>();
  /** Cluster: connections to leave out of numbered frames this node published, until the frame comes back. */
  private readonly excepts = new Map<string, UWS.WebSocket<unknown>>();
  private exceptSeq = 0;
  /**
   * Cluster: connections that joined a recoverable topic without a position (the store was unreachable).
   * Closed with 4001 once this node is registered again, so that they resume from where they were.
   */
  private readonly positionless = new Set<UWS.WebSocket<{ conn: { closed: boolean } }>>();
  private readonly backplane: Backplane;

  /**
   * Slow readers are found before a burst overflows them: `slowReaders.checkUser(id)` runs after every
   * frame delivered on `user:<id>` (it looks at that user's sockets only), and `slowReaders.checkAll()`
   * (once per event-loop turn at most) after `checkEveryBytes` of frames were published on other topics.
   */
  constructor(
    private readonly app: UWS.TemplatedApp,
    /** The backplane and the history that goes with it: which kind they are chooses emit's and join's paths. */
    private readonly topology: Topology,
    private readonly metrics: Metrics,
    private readonly checkEveryBytes: number,
    private readonly slowReaders: { checkAll(): void; checkUser(userId: string): void },
    private readonly idempotency: IdempotencyStore,
  ) {
    const backplane = (this.backplane = topology.backplane);
    backplane.onFrame((topic, frame, exceptToken, keyed) => {
      let except: UWS.WebSocket<unknown> | undefined;
      if (exceptToken !== undefined) {
        except = this.excepts.get(exceptToken);
        this.excepts.delete(exceptToken);
      }
      // A retry of a keyed live-only publish reaches the nodes that had the first one too: each delivers it once.
      if (keyed !== undefined && this.idempotency.claim(`${topic}\n${keyed.key}`, keyed.fingerprint) !== 'new') return;
      this.deliver(topic, frame, except);
    });
    backplane.onStateChange((up) => {
      if (up) this.closePositionless();
    });
  }

  private closePositionless(): void {
    for (const ws of this.positionless) if (!ws.getUserData().conn.closed) ws.end(CloseCode.RECONNECT, RECONNECT_TO_RESUME);
    this.positionless.clear();
  }

  private count(bytes: number): void {
    this.bytesSinceCheck += bytes;
    if (this.bytesSinceCheck < this.checkEveryBytes || this.checkScheduled) return;
    this.checkScheduled = true;
    setImmediate(() => {
      this.checkScheduled = false;
      this.bytesSinceCheck = 0;
      this.slowReaders.checkAll();
    });
  }

  /** The uWS `subscription` handler reports a topic's local count going 0->1 (true) or 1->0 (false). */
  localInterest(topic: string, on: boolean): void {
    const before = this.interested(topic);
    if (on) this.subscribed.add(topic);
    else this.subscribed.delete(topic);
    this.interestChanged(topic, before);
  }

  private interested(topic: string): boolean {
    return this.subscribed.has(topic) || this.holds.has(topic);
  }

  private interestChanged(topic: string, before: boolean): void {
    const now = this.interested(topic);
    if (now !== before) this.backplane.interest(topic, now);
  }

  /** Keeps this node listening to a topic while a join reads its history (no local subscriber yet). */
  private hold(topic: string): void {
    const before = this.interested(topic);
    this.holds.set(topic, (this.holds.get(topic) ?? 0) + 1);
    this.interestChanged(topic, before);
  }

  private release(topic: string): void {
    const before = this.interested(topic);
    const n = (this.holds.get(topic) ?? 1) - 1;
    if (n > 0) this.holds.set(topic, n);
    else this.holds.delete(topic);
    this.interestChanged(topic, before);
  }

  /** Local fan-out; returns how many connections were handed the frame. */
  private deliver(topic: string, frame: string, except: UWS.WebSocket<unknown> | undefined): number {
    const joiners = this.joining.get(topic);
    if (joiners) for (const j of joiners) j.buffer.push(frame);
    let local = this.app.numSubscribers(topic);
    if (except && isOpenSubscriber(except, topic)) {
      local -= 1;
      except.publish(topic, frame);
    } else if (local > 0) {
      this.app.publish(topic, frame);
    }
    if (local > 0) {
      this.metrics.messagesOut.inc(local);
      if (frame.startsWith(NOTIFICATION_HEAD)) this.metrics.notificationsDelivered.inc(local);
      // A personal topic reaches one user's few sockets: look at those now rather than at everyone later.
      if (topic.startsWith(USER_PREFIX)) this.slowReaders.checkUser(topic.slice(USER_PREFIX.length));
      else this.count(frame.length);
    }
    return local;
  }

  private send(topic: string, frame: string, except: UWS.WebSocket<unknown> | undefined, idem?: Idempotency): Promise<number> {
    let local = 0;
    if (idem !== undefined) {
      const claim = this.idempotency.claim(`${topic}\n${idem.key}`, idem.fingerprint);
      if (claim === 'conflict') return Promise.reject(conflict());
      idem.duplicate = claim === 'duplicate';
    }
    // A duplicate is not delivered here again; in a cluster it is sent on, for the nodes the first one missed.
    if (idem?.duplicate !== true) local = this.deliver(topic, frame, except);
    if (this.backplane.single) return Promise.resolve(local);
    return this.backplane.publish(topic, frame, idem && `${idem.key} ${idem.fingerprint}`).then(
      () => local,
      (err: unknown) => {
        this.metrics.backplaneErrors.inc();
        throw new PartialDelivery(local, false, err instanceof Unconfirmed ? err.message : undefined);
      },
    );
  }

  /**
   * Publishes one event on one topic. `frame` is the serialized envelope without position; on a
   * recoverable topic the position is spliced in after `"topic":"..."`. Resolves with the number of local
   * connections handed the frame once the other nodes have it; rejects with PartialDelivery otherwise.
   * Local delivery of an unnumbered event happens before this returns.
   */
  emit(type: string, topic: string, frame: string, except?: UWS.WebSocket<unknown>, idem?: Idempotency): Promise<number> {
    this.metrics.published(type);
    if (!isNumbered(type, topic)) return this.send(topic, frame, except, idem);
    // The head is read off the frame (a slice, no copy) once checked piece by piece: no string is built.
    const typePart = typeHead(type);
    const topicPart = JSON.stringify(topic);
    if (!frame.startsWith(typePart) || !frame.startsWith(topicPart, typePart.length)) throw new Error(`frame of ${type} does not start with type and topic`);
    const head = frame.slice(0, typePart.length + topicPart.length);
    const t = this.topology;
    if (!t.single) {
      // Cluster: numbered and published in one step; this node delivers it when it comes back from the
      // store, in offset order with everyone else's (leaving out `except`, registered under a token).
      const local = this.app.numSubscribers(topic) - (except && isOpenSubscriber(except, topic) ? 1 : 0);
      let token: string | undefined;
      if (except) {
        token = (++this.exceptSeq).toString(36);
        this.excepts.set(token, except);
      }
      const forget = () => token !== undefined && setTimeout(() => this.excepts.delete(token!), 10_000).unref();
      return t.backplane.publishRecorded(topic, head, frame.slice(head.length), token, idem).then(
        (appended) => (forget(), appended === undefined ? 0 : local),
        (err: unknown) => {
          forget();
          if (!(err instanceof Unconfirmed)) throw err;
          this.metrics.backplaneErrors.inc();
          // Stored: it comes back from Redis and is delivered here too. Not stored: delivered nowhere.
          throw new PartialDelivery(err.stored === true ? local : 0, err.stored, err.message);
        },
      );
    }
    if (idem !== undefined) {
      const claim = this.idempotency.claim(`${topic}\n${idem.key}`, idem.fingerprint);
      if (claim === 'conflict') return Promise.reject(conflict());
      if (claim === 'duplicate') {
        idem.duplicate = true;
        return Promise.resolve(0);
      }
    }
    const appended = t.history.append(topic, head, frame.slice(head.length));
    if (!(appended instanceof Promise)) return this.send(topic, appended.frame, except);
    return appended.then((a) => this.send(topic, a.frame, except));
  }

  /**
   * True when a frame published on the topic now could reach someone: a local subscriber, a join in
   * progress, or another node. Callers skip building frames for nobody (and count them with unheard()).
   */
  hasAudience(topic: string): boolean {
    return !this.backplane.single || this.app.numSubscribers(topic) > 0 || this.joining.has(topic);
  }

  /** An event that had no audience (hasAudience false): counted as published, never built. */
  unheard(type: string): void {
    this.metrics.published(type);
  }

  /**
   * Joins `ws` to a topic. For a recoverable topic: replays what came after `since` (when given and still
   * in history) up to the topic's position, then the frames delivered while the history was read, then
   * subscribes; all in one turn, so every frame reaches the connection once and in order.
   * Synchronous (no promise) on a single node whose history is in memory: nothing can be published
   * between reading the position and subscribing.
   */
  join(
    ws: UWS.WebSocket<{ conn: { closed: boolean } }>,
    topic: string,
    since: Position | undefined,
    options: JoinOptions = {},
  ): JoinResult | undefined | Promise<JoinResult | undefined> {
    const t = this.topology;
    const recoverable = isRecoverable(topic);
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
      result = { epoch: position.epoch, offset: position.offset, recovered, replayed: frames.length };
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
  private async joinLater(ws: UWS.WebSocket<{ conn: { closed: boolean } }>, topic: string, since: Position | undefined, options: JoinOptions): Promise<JoinResult | undefined> {
    const topics = [topic, ...(options.alongWith ?? [])];
    const recoverable = isRecoverable(topic);
    const joiner: Joiner = { buffer: [] };
    let set: Set<Joiner> | undefined;
    if (recoverable) {
      set = this.joining.get(topic);
      if (!set) this.joining.set(topic, (set = new Set()));
      set.add(joiner);
    }
    for (const t of topics) this.hold(t);
    let result: JoinResult | undefined;
    const frames: string[] = [];
    try {
      // In a cluster, first make sure the other nodes send this one the topics, so that nothing published
      // from now on can be missed; a Redis outage does not block the join (it degrades to this node).
      await this.whenListening(topics)?.catch(() => undefined);
      if (recoverable) {
        try {
          const { history } = this.topology;
          const position = await history.position(topic);
          let recovered: boolean | undefined;
          if (since) {
            const replay = await history.since(topic, since.epoch, since.offset, position.offset);
            recovered = replay.recovered;
            frames.push(...replay.frames);
          }
          result = { ...position, recovered, replayed: frames.length };
          // Every frame numbered up to the position read must have reached this node (or never will,
          // having been published before it listened): then the buffer holds exactly what came after.
          if (!this.topology.single) await this.topology.backplane.barrier(topic, position);
        } catch {
          // The history store is unreachable (a cluster without Redis): the connection joins live, without a
          // position, and is closed with 4001 once this node is registered again, so that it resumes then
          // (what was published elsewhere meanwhile, or its `recovered: false`, is only known from Redis).
          result = undefined;
          frames.length = 0;
        }
      }
    } catch (err) {
      for (const t of topics) this.release(t);
      throw err;
    } finally {
      set?.delete(joiner);
      if (set?.size === 0) this.joining.delete(topic);
    }
    if (ws.getUserData().conn.closed) {
      for (const t of topics) this.release(t);
      return undefined;
    }
    for (const f of joiner.buffer) {
      const p = framePosition(f);
      // Unnumbered frames (typing) and frames past the position read come after the replay.
      if (p === undefined || result === undefined || p.offset > result.offset) frames.push(f);
    }
    this.enter(ws, topic, options, result, frames);
    for (const t of topics) this.release(t);
    if (recoverable && result === undefined) {
      this.positionless.add(ws);
      if (this.backplane.up) this.closePositionless();
    }
    return result;
  }

  /**
   * For a topic the connection already receives live since position `joinedAt`: sends what it missed in
   * (since, joinedAt]. Those frames come after the live ones received since joining; every frame still
   * reaches the connection once, and its offset tells where it belongs.
   */
  async replay(ws: UWS.WebSocket<{ conn: { closed: boolean } }>, topic: string, since: Position, joinedAt: Position): Promise<JoinResult> {
    const r = since.epoch === joinedAt.epoch ? await this.topology.history.since(topic, since.epoch, since.offset, joinedAt.offset) : { recovered: false, frames: [] };
    if (!ws.getUserData().conn.closed && r.frames.length > 0) {
      ws.cork(() => {
        for (const f of r.frames) ws.send(f);
      });
      this.metrics.messagesOut.inc(r.frames.length);
    }
    return { ...joinedAt, recovered: r.recovered, replayed: r.frames.length };
  }

  /** Undefined when frames of these topics already reach this node from the others, else when they do. */
  whenListening(topics: readonly string[]): Promise<void> | undefined {
    return this.backplane.whenListening(topics);
  }
}
