// emit(topic, frame): offsets for recoverable topics, uWS fan-out on this node, the backplane to the others
// (deliver: what reaches this node's connections). Joins, and this node's interest in topics, are join.ts.
import type { UWS } from '../uws.js';
import { Unconfirmed, type Backplane, type ClusterBackplane, type Idempotency } from '../seams/backplane/types.js';
import { NO_STREAM, type Appended, type Position, type Replacement } from '../seams/history/types.js';
import type { Topology } from '../seams/topology.js';
import { ErrorCode, WireError } from '../wire/codes.js';
import { DEFAULT_CHANNELS, type Channels } from '../wire/topics.js';
import type { IdempotencyStore } from './idempotency.js';
import { Interest, Joins, type JoinOptions, type JoinResult } from './join.js';
import type { Metrics } from '../metrics.js';

export type { JoinOptions, JoinResult } from './join.js';

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
export async function emitAll(emits: readonly (number | Promise<number>)[]): Promise<number> {
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

/**
 * A publish option: a numbered event is stored only if its topic already has a history (a stream); otherwise
 * it is delivered live only, without a position. emit sets `stored` (like Idempotency.duplicate): true when
 * the event was stored, false when it was delivered live only (also for a live-only topic).
 */
export interface StoreOption {
  /** Stored only into a history that exists (else live only); false: stored as any event, within the share. */
  readonly ifStreamExists: boolean;
  /** A user-sent event: held within the history's user-sent share (RecordOptions.user). */
  readonly user?: true;
  stored: boolean | undefined;
  /** The entry's key (RecordOptions.key: a chat message's id). */
  readonly key?: string;
  /** A held entry replaced in the same step (RecordOptions.replace): if it cannot be, nothing is stored or sent. */
  readonly replace?: Replacement;
  /** Set by emit when the event was stored: its position (a duplicate's is Idempotency.original). */
  at?: Position;
}

/** The history's options of an emit's StoreOption. */
const recordOptions = (store: StoreOption) => ({
  ifStreamExists: store.ifStreamExists,
  user: store.user === true,
  ...(store.key === undefined ? {} : { key: store.key }),
  ...(store.replace === undefined ? {} : { replace: store.replace }),
});

const conflict = () => new WireError(ErrorCode.IDEMPOTENCY_CONFLICT, 'this Idempotency-Key was used for another request', 422);

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

/**
 * The length of `{"type":<type>,"topic":<topic>` at the start of the frame, checked. A topic that needs no
 * escaping (every topic the registry accepts) is compared in place, without building its JSON.
 */
function headLength(frame: string, type: string, topic: string): number {
  const typePart = typeHead(type);
  const at = typePart.length;
  if (frame.startsWith(typePart)) {
    const end = at + 1 + topic.length;
    if (frame.charCodeAt(at) === 34 && frame.startsWith(topic, at + 1) && frame.charCodeAt(end) === 34) return end + 1;
    const topicPart = JSON.stringify(topic);
    if (frame.startsWith(topicPart, at)) return at + topicPart.length;
  }
  throw new Error(`frame of ${type} does not start with type and topic`);
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
  /** Cluster: connections to leave out of numbered frames this node published, until the frame comes back. */
  private readonly excepts = new Map<string, UWS.WebSocket<unknown>>();
  private exceptSeq = 0;
  private readonly backplane: Backplane;
  private readonly interest: Interest;
  private readonly joins: Joins;

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
    /** Which topics are numbered and kept: the registry's. */
    private readonly channels: Channels = DEFAULT_CHANNELS,
  ) {
    this.backplane = topology.backplane;
    const backplane = this.backplane;
    this.interest = new Interest(backplane);
    this.joins = new Joins(topology, this.interest, metrics, channels);
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
    this.interest.local(topic, on);
  }

  /** Local fan-out; returns how many connections were handed the frame. */
  private deliver(topic: string, frame: string, except: UWS.WebSocket<unknown> | undefined): number {
    this.joins.buffer(topic, frame);
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

  /** Delivers here and hands it to the other nodes; settled in the turn (a number) on a single node. */
  private send(topic: string, frame: string, except: UWS.WebSocket<unknown> | undefined, idem?: Idempotency): number | Promise<number> {
    let local = 0;
    if (idem !== undefined) {
      const claim = this.idempotency.claim(`${topic}\n${idem.key}`, idem.fingerprint);
      if (claim === 'conflict') return Promise.reject(conflict());
      idem.duplicate = claim === 'duplicate';
    }
    // A duplicate is not delivered here again; in a cluster it is sent on, for the nodes the first one missed.
    if (idem?.duplicate !== true) local = this.deliver(topic, frame, except);
    if (this.backplane.single) return local;
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
  emit(type: string, topic: string, frame: string, except?: UWS.WebSocket<unknown>, idem?: Idempotency, store?: StoreOption): Promise<number> {
    this.metrics.published(type);
    let r: number | Promise<number>;
    if (!this.channels.isNumbered(type, topic)) {
      if (store) store.stored = false;
      r = this.send(topic, frame, except, idem);
    } else {
      // The head is read off the frame (a slice, no copy) once checked piece by piece: no string is built.
      const at = headLength(frame, type, topic);
      r = this.numbered(topic, frame.slice(0, at), frame.slice(at), frame, except, idem, store);
    }
    return typeof r === 'number' ? Promise.resolve(r) : r;
  }

  /**
   * emit() with the frame given as its two parts: `head` is exactly `{"type":<type>,"topic":<topic>` (JSON),
   * `tail` the rest of the envelope (wire/frames.ts's notificationHead and notificationTail), so that nothing is
   * checked or sliced.
   * Settled in the turn on a single node in memory: the number, not a promise (the hot path of notifications).
   */
  emitParts(type: string, topic: string, head: string, tail: string, except?: UWS.WebSocket<unknown>, idem?: Idempotency, store?: StoreOption): number | Promise<number> {
    this.metrics.published(type);
    if (this.channels.isNumbered(type, topic)) return this.numbered(topic, head, tail, undefined, except, idem, store);
    if (store) store.stored = false;
    return this.send(topic, head + tail, except, idem);
  }

  /** A numbered event; `frame` is head + tail when the caller has it. */
  private numbered(
    topic: string,
    head: string,
    tail: string,
    frame: string | undefined,
    except: UWS.WebSocket<unknown> | undefined,
    idem: Idempotency | undefined,
    store: StoreOption | undefined,
  ): number | Promise<number> {
    const t = this.topology;
    if (!t.single) return this.record(t.backplane, topic, head, tail, frame, except, idem, store);
    const keyed = idem && `${topic}\n${idem.key}`;
    if (idem !== undefined) {
      const claim = this.idempotency.claim(keyed!, idem.fingerprint, Date.now(), idem.ttlMs);
      if (claim === 'conflict') return Promise.reject(conflict());
      if (claim === 'duplicate') {
        idem.duplicate = true;
        idem.original = this.idempotency.storedAt(keyed!);
        return 0;
      }
    }
    if (store && t.history.sync) {
      // Only a history read in the turn can say, in the turn it stores, that the topic has a stream. Stored as any
      // event otherwise (it may begin the topic's history), within the user-sent share when it is one.
      // The option is read in this call only: the StoreOption itself is the history's RecordOptions.
      const appended = t.history.append(topic, head, tail, store);
      store.stored = appended !== undefined;
      // A replacement that could not be made: nothing at all. Else not stored (no stream, or a user share of 0): live only.
      if (appended === undefined) return store.replace === undefined ? this.send(topic, frame ?? head + tail, except) : 0;
      // Its position alone (callers spread it into replies: chat's acks).
      store.at = { epoch: appended.epoch, offset: appended.offset };
      if (keyed !== undefined) this.idempotency.record(keyed, appended);
      return this.send(topic, appended.frame, except);
    }
    if (store?.ifStreamExists || store?.replace !== undefined) {
      // A history read through a round trip cannot tell in the turn that a stream exists, nor replace an entry.
      store.stored = false;
      if (store.replace !== undefined) {
        store.replace.done = false;
        return 0;
      }
      return this.send(topic, frame ?? head + tail, except);
    }
    if (store) store.stored = true;
    const stored = (a: Appended): number | Promise<number> => {
      if (store) store.at = { epoch: a.epoch, offset: a.offset };
      if (keyed !== undefined) this.idempotency.record(keyed, a);
      return this.send(topic, a.frame, except);
    };
    const appended = t.history.append(topic, head, tail);
    if (!(appended instanceof Promise)) return stored(appended);
    return appended.then(stored);
  }

  /**
   * Cluster: numbered and published in one step; this node delivers it when it comes back from the store,
   * in offset order with everyone else's (leaving out `except`, registered under a token).
   */
  private record(
    backplane: ClusterBackplane,
    topic: string,
    head: string,
    tail: string,
    frame: string | undefined,
    except: UWS.WebSocket<unknown> | undefined,
    idem: Idempotency | undefined,
    store: StoreOption | undefined,
  ): Promise<number> {
    const local = this.app.numSubscribers(topic) - (except && isOpenSubscriber(except, topic) ? 1 : 0);
    let token: string | undefined;
    if (except) {
      token = (++this.exceptSeq).toString(36);
      this.excepts.set(token, except);
    }
    const forget = () => token !== undefined && setTimeout(() => this.excepts.delete(token!), 10_000).unref();
    const recorded = store ? backplane.publishRecorded(topic, head, tail, token, idem, recordOptions(store)) : backplane.publishRecorded(topic, head, tail, token, idem);
    return recorded.then(
      (appended) => {
        forget();
        if (appended === NO_STREAM) {
          // No history for the topic: nothing was stored or sent; it goes out live only, unnumbered.
          store!.stored = false;
          if (token !== undefined) this.excepts.delete(token);
          return this.send(topic, frame ?? head + tail, except, idem);
        }
        if (store) store.stored = store.replace?.done !== false;
        if (store && appended !== undefined) store.at = { epoch: appended.epoch, offset: appended.offset };
        return appended === undefined ? 0 : local;
      },
      (err: unknown) => {
        forget();
        if (!(err instanceof Unconfirmed)) throw err;
        if (store) store.stored = err.stored ?? undefined;
        this.metrics.backplaneErrors.inc();
        // Stored: it comes back from Redis and is delivered here too. Not stored: delivered nowhere.
        throw new PartialDelivery(err.stored === true ? local : 0, err.stored, err.message);
      },
    );
  }

  /**
   * True when a frame published on the topic now could reach someone: a local subscriber, a join in
   * progress, or another node. Callers skip building frames for nobody (and count them with unheard()).
   */
  hasAudience(topic: string): boolean {
    return !this.backplane.single || this.app.numSubscribers(topic) > 0 || this.joins.has(topic);
  }

  /** An event that had no audience (hasAudience false): counted as published, never built. */
  unheard(type: string): void {
    this.metrics.published(type);
  }

  /** See Joins.join (join.ts): replay, then live, in one cork; synchronous on a single in-memory node. */
  join(ws: UWS.WebSocket<{ conn: { closed: boolean } }>, topic: string, since: Position | undefined, options: JoinOptions = {}): JoinResult | undefined | Promise<JoinResult | undefined> {
    return this.joins.join(ws, topic, since, options);
  }

  /** See Joins.replay (join.ts): what a connection already live on the topic missed before it joined. */
  replay(ws: UWS.WebSocket<{ conn: { closed: boolean } }>, topic: string, since: Position, joinedAt: Position): Promise<JoinResult> {
    return this.joins.replay(ws, topic, since, joinedAt);
  }

  /** Undefined when frames of these topics already reach this node from the others, else when they do. */
  whenListening(topics: readonly string[]): Promise<void> | undefined {
    return this.joins.whenListening(topics);
  }
}
