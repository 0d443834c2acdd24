// Frames over Redis: publishing (live-only frames, and numbered frames recorded in the history in the same
// step), listening to the topics this node has interest in, the join barrier, and receiving.
import { createHash, randomBytes } from 'node:crypto';
import { ErrorCode, WireError } from '../../../wire/codes.js';
import { numberedFrame } from '../../../wire/position.js';
import { hs, newEpoch, type RedisHistory } from '../../history/redis.js';
import { NO_STREAM, type Appended, type NoStream, type Position, type RecordOptions } from '../../history/types.js';
import { Unconfirmed, type FrameHandler, type Idempotency } from '../types.js';
import { shardOfSlot } from './ioredis-fix.js';
import { slotOf, type PartKeys } from './keys.js';
import type { Link } from './link.js';
import { sc, unavailable } from './scripts.js';
import { TopicStreams } from './streams.js';

/** Events in one RECORD_MANY call at most (a script blocks its Redis while it runs). */
const BATCH_MAX = 128;

/** A plain recorded event waiting for its RECORD_MANY's answer. */
interface Waiting {
  head: string;
  tail: string;
  resolve: (a: Appended | NoStream) => void;
  reject: (e: unknown) => void;
}

/** ioredis' refusal of a command it did not send (no connection, and no offline queue). */
const NOT_SENT = /isn't writeable/;

/**
 * What a failed RECORD or RECORD_MANY call means for its events: refused before it was sent (no connection), not
 * stored; sent and its answer lost (or the script failed part way), unknown: only a retry with the same
 * Idempotency-Key can tell.
 */
const recordFailed = (err: unknown): Unconfirmed =>
  NOT_SENT.test((err as Error).message)
    ? new Unconfirmed('not stored: the cluster store (Redis) cannot be reached', false)
    : new Unconfirmed('not confirmed: the cluster store (Redis) did not answer (stored: unknown)', null);

export class Frames {
  private frameHandler: FrameHandler = () => {};
  private lostHandler: (topic: string) => void = () => {};
  /** Numbered frames in offset order per topic, gaps filled from the history. */
  private readonly streams: TopicStreams;
  private readonly barriers = new Map<string, () => void>();
  /** Topics with local subscribers, and those of them this node is known, in Redis, to listen to. */
  private readonly desired = new Set<string>();
  private readonly listening = new Set<string>();
  private readonly ops = new Map<string, Promise<void>>();
  /** The plain recorded events of this turn, per Redis (shard), then per partition (batched). */
  private readonly batches = new Map<string, { parts: Map<PartKeys, { args: (string | number)[]; waiting: Waiting[] }>; events: number }>();
  /** The slot of each partition (its hash tag's). */
  private readonly slots = new Map<PartKeys, number>();
  private flushing = false;

  constructor(
    private readonly link: Link,
    private readonly history: RedisHistory,
    /** IDEMPOTENCY_TTL_S: how long a publish's Idempotency-Key is remembered. */
    private readonly idempotencyMs: number,
  ) {
    this.streams = new TopicStreams(history, (topic, frame, except) => this.frameHandler(topic, frame, except), (topic) => this.lostHandler(topic), link.log);
  }

  onFrame(handler: FrameHandler): void {
    this.frameHandler = handler;
  }

  onHistoryLost(handler: (topic: string) => void): void {
    this.lostHandler = handler;
  }

  async publish(topic: string, frame: string, keyed?: string): Promise<void> {
    const { link } = this;
    // Not before this node's own re-registration: until then it cannot tell a data loss from an empty topic.
    if (!link.up) throw new Unconfirmed('not delivered to the other nodes: the cluster store (Redis) cannot be reached', false);
    const origin = keyed === undefined ? link.nodeId : `${link.nodeId} ${keyed}`;
    let r: unknown;
    try {
      const part = link.keys.forTopic(topic);
      this.flush(part);
      r = await sc(link.cmd).PUBLISH(3, part.interest(topic), part.recovering, part.channel(topic), `${origin}\n${frame}`, link.nodeId);
    } catch {
      throw new Unconfirmed('not confirmed by the other nodes: the cluster store (Redis) did not answer', false);
    }
    if (r === -1) throw new Unconfirmed('the cluster is re-registering after Redis lost its data', false);
    if (r === -2) throw new Unconfirmed('a node listening to this topic is not connected to Redis', false);
  }

  async publishRecorded(topic: string, head: string, tail: string, exceptToken?: string, idem?: Idempotency, options?: RecordOptions): Promise<Appended | undefined | NoStream> {
    const { link } = this;
    // Nothing sent: certainly not stored.
    if (!link.up) throw new Unconfirmed('not stored: the cluster store (Redis) cannot be reached', false);
    // A plain event waits for the turn's batch of its Redis (shard); any other is sent after that batch.
    if (idem === undefined && options?.key === undefined && options?.replace === undefined) return this.batched(topic, head, tail, exceptToken, options);
    this.flush(link.keys.forTopic(topic));
    const { userSize } = this.history.options;
    const { size, ttlMs } = this.history.limitsOf(topic);
    const k = this.history.keysOf(topic);
    const replace = options?.replace;
    const part = link.keys.forTopic(topic);
    const keys = [k.h, k.s, part.interest(topic), part.recovering, part.channel(topic), ...k.books, k.u, k.uage, k.hk, k.ho, k.gen];
    if (idem) keys.push(part.key(`idem:${topic}:${idem.key}`));
    let r: [number, string?, number?, string?];
    try {
      r = (await hs(link.cmd).RECORD(
        keys.length,
        ...keys,
        head,
        tail,
        newEpoch(),
        size,
        ttlMs,
        exceptToken === undefined ? '*' : `*${link.nodeId}/${exceptToken}`,
        idem?.ttlMs ?? this.idempotencyMs,
        idem?.fingerprint ?? '',
        this.history.partMaxBytes,
        part.prefix,
        topic,
        options?.ifStreamExists === true ? '1' : '',
        options?.user === true ? '1' : '',
        Math.min(userSize ?? size, size),
        options?.key ?? '',
        replace?.key ?? '',
        replace === undefined ? '' : createHash('sha1').update(replace.expect).digest('hex'),
        replace?.frame ?? '',
        this.history.sweepTtlMs,
      )) as typeof r;
    } catch (err) {
      throw recordFailed(err);
    }
    if (r[0] === -1) throw new Unconfirmed('not stored: the cluster is re-registering after Redis lost its data', false);
    if (r[0] === -3) throw new WireError(ErrorCode.IDEMPOTENCY_CONFLICT, 'this Idempotency-Key was used for another request', 422);
    if (r[0] === -2) throw new Unconfirmed('stored (recoverable), but a node listening to this topic is not connected to Redis', true);
    if (r[0] === 2) {
      idem!.duplicate = true;
      // Where the first publish under the key was stored (RECORD keeps it with the key).
      idem!.original = { epoch: r[1]!, offset: r[2]! };
      return undefined;
    }
    if (r[0] === 3) return NO_STREAM;
    if (replace !== undefined) replace.done = r[0] !== 4;
    // The entry to replace was gone or had changed: nothing replaced, appended or sent.
    if (r[0] === 4) return undefined;
    return { epoch: r[1]!, offset: r[2]!, frame: r[3]! };
  }

  /**
   * Queues a plain event (no idempotency key, entry key or replacement) for RECORD_MANY: the events of one
   * event-loop turn are numbered and published in one script call per Redis (with Redis Cluster, per shard: the
   * partitions whose slots one primary serves, as ioredis' slot map says), at most BATCH_MAX each, in the order
   * they were published, and before any other command of their partition this node sends after them (flush).
   */
  private batched(topic: string, head: string, tail: string, exceptToken: string | undefined, options: RecordOptions | undefined): Promise<Appended | NoStream> {
    const { userSize } = this.history.options;
    const { size, ttlMs } = this.history.limitsOf(topic);
    const part = this.link.keys.forTopic(topic);
    const flags = (options?.user === true ? 'u' : '') + (options?.ifStreamExists === true ? 'e' : '');
    return new Promise((resolve, reject) => {
      const shard = this.shardOf(part);
      let batch = this.batches.get(shard);
      if (batch === undefined) {
        batch = { parts: new Map(), events: 0 };
        this.batches.set(shard, batch);
        if (!this.flushing) {
          this.flushing = true;
          setImmediate(this.flushAll);
        }
      }
      let group = batch.parts.get(part);
      if (group === undefined) {
        group = { args: [], waiting: [] };
        batch.parts.set(part, group);
      }
      group.args.push(topic, head, tail, exceptToken === undefined ? '*' : `*${this.link.nodeId}/${exceptToken}`, flags, size, ttlMs, Math.min(userSize ?? size, size));
      group.waiting.push({ head, tail, resolve, reject });
      if (++batch.events >= BATCH_MAX) this.flushShard(shard);
    });
  }

  /**
   * The key of the Redis that serves a partition: with Redis Cluster, the primary ioredis' slot map names for
   * the partition's slot (the partition itself when the map does not say yet); with one Redis, one key.
   */
  private shardOf(part: PartKeys): string {
    if (this.link.keys.parts.length === 1) return '';
    let slot = this.slots.get(part);
    if (slot === undefined) {
      slot = slotOf(part.recovering);
      this.slots.set(part, slot);
    }
    return shardOfSlot(this.link.cmd, slot) ?? part.prefix;
  }

  private readonly flushAll = (): void => {
    this.flushing = false;
    for (const shard of [...this.batches.keys()]) this.flushShard(shard);
  };

  /** Sends the queued events of the partition's Redis now, ahead of the command the caller sends next. */
  private flush(part: PartKeys): void {
    if (this.batches.size > 0) this.flushShard(this.shardOf(part));
  }

  /** One RECORD_MANY call for the queued events of one Redis (shard). */
  private flushShard(shard: string): void {
    const batch = this.batches.get(shard);
    if (batch === undefined) return;
    this.batches.delete(shard);
    const keys: string[] = [];
    const args: (string | number)[] = [newEpoch(), this.history.sweepTtlMs];
    const waiting: Waiting[] = [];
    for (const [part, group] of batch.parts) {
      if (keys.length === 0) keys.push(part.recovering);
      args.push(part.prefix, this.history.partMaxBytes, group.waiting.length);
      for (const a of group.args) args.push(a);
      for (const w of group.waiting) waiting.push(w);
    }
    hs(this.link.cmd)
      .RECORD_MANY(keys.length, ...keys, ...args)
      .then(
        (reply) => {
          const r = reply as (number | string)[];
          for (let i = 0; i < waiting.length; i++) {
            const status = r[3 * i] as number;
            const w = waiting[i]!;
            if (status === 3) w.resolve(NO_STREAM);
            else if (status === -1) w.reject(new Unconfirmed('not stored: the cluster is re-registering after Redis lost its data', false));
            else if (status === -2) w.reject(new Unconfirmed('stored (recoverable), but a node listening to this topic is not connected to Redis', true));
            else {
              const epoch = r[3 * i + 1] as string;
              const offset = r[3 * i + 2] as number;
              // The frame RECORD_MANY built, byte for byte, without sending it back.
              w.resolve({ epoch, offset, frame: numberedFrame(w.head, epoch, offset, w.tail) });
            }
          }
        },
        (err: unknown) => {
          const e = recordFailed(err);
          // A script error is not an outage: said in the log, once per call. (A partition whose slot moved to
          // another shard fails the call at its first read, before anything is written; ioredis' error does not
          // tell it apart, so it is answered unknown too, and the backend retries with its Idempotency-Key.)
          if (e.stored === null && /^ERR|script/i.test((err as Error).message)) this.link.log.error({ err: (err as Error).message, events: waiting.length }, 'RECORD_MANY failed');
          for (const w of waiting) w.reject(e);
        },
      );
  }

  /** Publishes a marker on the topic's channel and resolves when it comes back: everything before it has arrived. */
  barrier(topic: string, position: Position): Promise<void> {
    if (!this.listening.has(topic)) {
      // Not listening yet (Redis just came back): the join read its position all the same, so the first
      // frame that reaches this node later is measured from it, and the missed ones come from the history.
      this.streams.seed(topic, position);
      return Promise.resolve();
    }
    const token = randomBytes(6).toString('base64url');
    return new Promise<void>((resolve) => {
      // A marker that never comes back (Redis lost meanwhile) must not hold the join: after the command
      // timeout it goes on; the worst outcome is a frame seen twice, which carries its offset.
      const timer = setTimeout(() => this.barriers.delete(token) && resolve(), this.link.timeoutMs);
      this.barriers.set(token, () => {
        clearTimeout(timer);
        this.streams.after(topic, position, resolve);
      });
      this.link.cmd.spublish(this.link.keys.channel(topic), `~${this.link.nodeId}\n${token}`).catch(() => {});
    });
  }

  interest(topic: string, on: boolean): void {
    if (this.link.closing) return;
    if (on) this.desired.add(topic);
    else {
      this.desired.delete(topic);
      this.streams.forget(topic);
    }
    // While disconnected the resync applies it; during a resync the chain of the topic does.
    if (this.link.connected) this.sync(topic).catch(() => {});
  }

  whenListening(topics: readonly string[]): Promise<void> | undefined {
    const waits: Promise<void>[] = [];
    for (const t of topics) if (!this.listening.has(t)) waits.push(this.link.connected ? this.sync(t) : Promise.reject(unavailable('not listening')));
    return waits.length === 0 ? undefined : Promise.all(waits).then(() => undefined);
  }

  /** Serializes the Redis side of one topic: each step brings it to the latest desired state. */
  private sync(topic: string): Promise<void> {
    const prev = this.ops.get(topic) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(() => this.apply(topic));
    this.ops.set(topic, next);
    const forget = () => {
      if (this.ops.get(topic) === next) this.ops.delete(topic);
    };
    next.then(forget, forget);
    return next;
  }

  private async apply(topic: string): Promise<void> {
    const want = this.desired.has(topic);
    const have = this.listening.has(topic);
    if (want === have) return;
    const { cmd, sub, keys, nodeId } = this.link;
    if (want) {
      await sub.ssubscribe(keys.channel(topic));
      const part = keys.forTopic(topic);
      await cmd.multi().sadd(part.interest(topic), nodeId).sadd(part.topicsOf(nodeId), topic).exec();
      this.listening.add(topic);
      // A join that read its position before this node listened seeded the topic's stream: read what was
      // published meanwhile (nothing, usually) from the history.
      this.streams.catchUp(topic);
      if (!this.desired.has(topic)) await this.apply(topic);
    } else {
      this.listening.delete(topic);
      const part = keys.forTopic(topic);
      await cmd.multi().srem(part.interest(topic), nodeId).srem(part.topicsOf(nodeId), topic).exec();
      await sub.sunsubscribe(keys.channel(topic));
    }
  }

  // --- what membership asks of the frames after a (re)connect --------------------------------------------

  /** Whether this node has local interest in the topic. */
  wants(topic: string): boolean {
    return this.desired.has(topic);
  }

  get listeningCount(): number {
    return this.listening.size;
  }

  /** Redis is gone: this node listens to nothing until it subscribes again. */
  down(): void {
    this.listening.clear();
  }

  /**
   * Subscribes again to every topic of interest; as each is listened to again, what was published while this
   * node could not hear it comes from the history (apply() reads its stream up to its head).
   */
  async relisten(): Promise<void> {
    this.listening.clear();
    await Promise.all([...this.desired].map((t) => this.sync(t)));
  }

  /** Applies the interest changes made while a re-registration ran. */
  reconcile(): void {
    for (const t of new Set([...this.desired, ...this.listening])) if (this.desired.has(t) !== this.listening.has(t)) this.sync(t).catch(() => {});
  }

  // --- receiving ------------------------------------------------------------------------------------------

  /** A message on a topic's channel from another node (origin and body split by the backplane). */
  receive(channel: string, origin: string, body: string): void {
    if (origin.startsWith('~')) {
      // A join's barrier marker, never delivered: it resolves once the frames that came before it are
      // delivered (a gap being filled holds them).
      if (origin === `~${this.link.nodeId}`) {
        this.barriers.get(body)?.();
        this.barriers.delete(body);
      }
      return;
    }
    const topic = this.link.keys.topicOf(channel);
    // Origin "*": a numbered frame, delivered by every listening node including the one that published it
    // ("*<node>/<token>": that node leaves out the connection it registered under the token).
    if (origin.startsWith('*')) {
      const slash = origin.indexOf('/');
      const mine = slash > 0 && origin.slice(1, slash) === this.link.nodeId;
      // A topic this node no longer wants has nobody here to keep in order (its stream was forgotten).
      if (this.desired.has(topic)) this.streams.receive(topic, body, mine ? origin.slice(slash + 1) : undefined);
      return;
    }
    // "<node> <key> <fingerprint>": a live-only frame published with an idempotency key.
    const sp = origin.indexOf(' ');
    if (sp < 0) {
      this.frameHandler(topic, body);
      return;
    }
    const sp2 = origin.indexOf(' ', sp + 1);
    this.frameHandler(topic, body, undefined, { key: origin.slice(sp + 1, sp2), fingerprint: origin.slice(sp2 + 1) });
  }
}
