// History in Redis (cluster mode): one stream and one position hash per recoverable topic, created by the
// first stored event (never by a read). Appends happen in the backplane's RECORD script, atomically with
// their publication.
//
// Layout (after the backplane's prefix):
//   h:<topic>   hash {epoch, offset, born, gen, x}: the topic's position, when (Redis ms) its epoch began, the
//               history generation (hgen) it was made in, and until when (Redis ms) its keys live (the TTL is
//               renewed when less than HISTORY_TTL is left, RECORD_MANY); made by the first event stored, never by a read. A
//               topic of another generation than hgen's is retired (a failover: backplane/redis/keys.ts): the
//               scripts treat it as having no history, and its next event begins a new epoch
//   s:<topic>   stream of {o: offset, f: frame}, capped to HISTORY_SIZE and HISTORY_TTL_S
//   hu:<topic>  list of the stream ids of the user-sent entries of s:<topic> (RecordOptions.user), oldest
//               first: past the user share the oldest of them is deleted from the stream, never another entry.
//               Every other trim (count, age, bytes) drops a stream's oldest entries, so ids whose entry is
//               gone are always at its head: RECORD pops them from there. Same TTL as the stream.
//   hz          the base of the epoch told for topics with no history (random, written once per Redis
//               lifetime: when Redis loses its data it is drawn again)
//   hbytes      bytes of every frame held in every s:<topic>, for HISTORY_MAX_BYTES (a global key)
//   hsizes      hash topic -> bytes held in s:<topic>; hage: zset topic -> Redis ms of its oldest held event.
//               The byte bound drops from the oldest topic of hage; topics whose keys expired, or whose oldest
//               event is older than the longest TTL of any topic, are swept from both by every RECORD (two at a
//               time), so the books converge without a timer (never by the recorded topic's TTL: a topic whose
//               namespace keeps its events longer would lose them early).
//   huage       zset topic -> Redis ms of its oldest user-sent entry (the head of hu:<topic>): the byte bound
//               drops user-sent events (the oldest anywhere) before any other. A place another trim left
//               behind (the entry gone, the keys expired) is put right, or removed, when the bound reaches it.
//   hk:<topic>  zset key -> Redis ms of its entry's stream id, for the entries appended with a key
//               (RecordOptions.key: a chat message's id; the entry has a field k); ho:<topic> zset offset -> the
//               replacement frame of an entry (RecordOptions.replace: an edited or deleted chat message), which
//               SINCE, latest and ENTRY answer instead of the stream's (a stream entry cannot be changed). Places of
//               entries that left the stream go at the next keyed RECORD of the topic; a place left meanwhile
//               finds no entry (ENTRY checks the stream). Same TTL as the stream. Overlay frames are not in the
//               byte books (at most one per held entry, each within MAX_CHAT_BYTES of its entry).
// hz, hbytes, hsizes, hage and huage are shared by the topics of one partition (backplane/redis/keys.ts): with
// Redis Cluster, each of the 48 partitions keeps its own books and holds at most HISTORY_MAX_BYTES / 48 (the
// bound is split evenly, since no script may read another partition's books); with one Redis there is one
// partition and the bound is over every topic. Every other key of a topic is named by the topic alone.
// A user-sent entry deleted for the share leaves a hole in the stream's offsets: a replay across it is
// `recovered: false` (SINCE), never a silent skip, as in memory.
// (Read state, r:<user> and ri:<user>, is seams/readstate/redis.ts: it counts in the epoch of h:user:<user>.)
// Every topic key expires at least HISTORY_TTL_S after its last write (at most 9/8 of it: renewed when due, not
// at every write): a topic idle that long starts a new epoch.
//
// The epoch of a topic with no history: `<hz>-<n>`, n = floor(Redis ms / HISTORY_TTL). A resume from
// (`<hz>-<n>`, 0) recovers a topic's history from its first event when that history began in period n:
// no earlier lifetime of the topic can have begun and ended (expired, TTL after its last write) after the
// position was told and before a lifetime that began in the same period. A history that began later may
// follow one that was lost: `recovered: false`.
import type { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { ErrorCode, WireError } from '../../wire/codes.js';
import { newEpoch } from './epoch.js';
import { HISTORY_SCRIPTS, hs } from './redis-scripts.js';
import type { Appended, ClusterHistory, Position, Replay } from './types.js';

export { hs, RECORD } from './redis-scripts.js';


/** The history generation's key name (see h:<topic> above): the backplane's failover check writes it. */
export const GENERATION_KEY = 'hgen';

// The candidate passed to POSITION/RECORD is kept only when the topic has no epoch yet (see those scripts).
export { newEpoch };

/** A Redis failure (down, timed out, not writeable) is an outage, never the client's fault: UNAVAILABLE. */
function unavailable(err: unknown): never {
  if (err instanceof WireError) throw err;
  throw new WireError(ErrorCode.UNAVAILABLE, 'history unavailable: the cluster store (Redis) cannot be reached', 503);
}

export interface RedisHistoryOptions {
  size: number;
  ttlMs: number;
  /** HISTORY_MAX_BYTES over every topic of the cluster (default: no bound). */
  maxBytes?: number;
  /**
   * User-sent entries (RecordOptions.user) a topic holds at most (NOTIFY_USER_SHARE of HISTORY_SIZE; default
   * `size`): past it the oldest user-sent one is deleted, never another. 0: user-sent events are never stored.
   */
  userSize?: number;
  /** A topic's own limits (its namespace's `history`, CHANNELS_FILE); undefined: `size` and `ttlMs`. */
  perTopic?: (topic: string) => { readonly size: number; readonly ttlMs: number } | undefined;
  /**
   * The longest TTL perTopic gives any topic (ms; default `ttlMs`): a record sweeps the other topics of its
   * partition by it (or by `ttlMs` when that is longer), never by its own TTL, which may be shorter than theirs.
   */
  longestTtlMs?: number;
}

/** A candidate for hz: 12 characters of [A-Za-z0-9_-] (kept only when hz is missing). */
export const emptyEpochBase = (): string => randomBytes(9).toString('base64url');

/** Where a topic's keys are (backplane/redis/keys.ts): its partition's prefix, and every partition. */
export interface HistoryLayout {
  forTopic(topic: string): { key(name: string): string; readonly prefix: string };
  readonly parts: readonly { key(name: string): string }[];
}

export class RedisHistory implements ClusterHistory {
  readonly kind = 'redis';
  /** Appends are the backplane's RECORD (RedisBackplane.publishRecorded), atomic with the publication. */
  readonly appends = 'backplane' as const;

  constructor(
    private readonly cmd: Redis,
    private readonly layout: HistoryLayout,
    readonly options: RedisHistoryOptions,
  ) {
    for (const [name, lua] of Object.entries(HISTORY_SCRIPTS)) cmd.defineCommand(name, { lua });
  }

  /** A topic's count and age limits: its namespace's, or the store's. Every script of a topic is given the same. */
  limitsOf(topic: string): { readonly size: number; readonly ttlMs: number } {
    return this.options.perTopic?.(topic) ?? this.options;
  }

  /** The keys of one topic, then the books (see the layout). */
  keysOf(topic: string): { h: string; s: string; u: string; hk: string; ho: string; hz: string; books: [string, string, string]; uage: string; gen: string; prefix: string } {
    const part = this.layout.forTopic(topic);
    const k = (name: string) => part.key(name);
    return {
      prefix: part.prefix, h: k(`h:${topic}`), s: k(`s:${topic}`), u: k(`hu:${topic}`), hk: k(`hk:${topic}`), ho: k(`ho:${topic}`), hz: k('hz'), books: [k('hbytes'), k('hsizes'), k('hage')], uage: k('huage'), gen: k(GENERATION_KEY) };
  }

  async position(topic: string): Promise<Position> {
    const k = this.keysOf(topic);
    const [epoch, offset] = (await hs(this.cmd).POSITION(3, k.h, k.hz, k.gen, emptyEpochBase(), this.limitsOf(topic).ttlMs).catch(unavailable)) as [string, number];
    return { epoch, offset };
  }

  async since(topic: string, epoch: string, offset: number, upTo: number): Promise<Replay> {
    const k = this.keysOf(topic);
    const r = (await hs(this.cmd).SINCE(8, k.h, k.s, k.hz, ...k.books, k.ho, k.gen, epoch, offset, upTo, this.limitsOf(topic).ttlMs, emptyEpochBase(), topic).catch(unavailable)) as [string, number, number, ...string[]];
    const [curEpoch, curOffset, recovered, ...frames] = r;
    return { recovered: recovered === 1, frames: recovered === 1 ? frames : [], position: { epoch: curEpoch, offset: curOffset } };
  }

  /** See REWOUND: after it, the topic's next event opens a new epoch. */
  async rewound(topic: string, epoch: string, delivered: number): Promise<boolean> {
    const k = this.keysOf(topic);
    return (await hs(this.cmd).REWOUND(9, k.h, k.s, ...k.books, k.u, k.hk, k.ho, k.gen, epoch, delivered, newEpoch(), topic).catch(unavailable)) === 1;
  }

  /** The age by which a record sweeps the other topics of its partition: the longest TTL of any topic. */
  get sweepTtlMs(): number {
    return Math.max(this.options.ttlMs, this.options.longestTtlMs ?? 0);
  }

  /** HISTORY_MAX_BYTES of one partition (the bound split evenly over the partitions). */
  get partMaxBytes(): number {
    const max = this.options.maxBytes;
    return max === undefined ? Number.MAX_SAFE_INTEGER : Math.floor(max / this.layout.parts.length);
  }

  /** Bytes held over every topic (the books' total, over every partition). */
  async storedBytes(): Promise<number> {
    const held = await Promise.all(this.layout.parts.map((p) => this.cmd.get(p.key('hbytes')).catch(unavailable)));
    return held.reduce((n, v) => n + Number(v ?? 0), 0);
  }

  async latest(topic: string, limit: number): Promise<string[]> {
    const k = this.keysOf(topic);
    // One round trip, one state: the newest entries and the replacements of any of them.
    const replies = await this.cmd.multi().xrevrange(k.s, '+', '-', 'COUNT', limit).zrange(k.ho, '0', '-1', 'WITHSCORES').exec().catch(unavailable);
    const entries = (replies?.[0]?.[1] ?? []) as [string, string[]][];
    const over = (replies?.[1]?.[1] ?? []) as string[];
    const replaced = new Map<string, string>();
    for (let i = 0; i < over.length; i += 2) replaced.set(over[i + 1]!, over[i]!);
    const cutoff = Date.now() - this.limitsOf(topic).ttlMs;
    return entries.filter(([id]) => Number(id.split('-')[0]) >= cutoff).map(([, fields]) => replaced.get(fields[1]!) ?? fields[3]!);
  }

  async entry(topic: string, key: string): Promise<Appended | undefined> {
    const k = this.keysOf(topic);
    const r = (await hs(this.cmd).ENTRY(5, k.h, k.s, k.hk, k.ho, k.gen, key, this.limitsOf(topic).ttlMs).catch(unavailable)) as [] | [string, number, string];
    return r.length === 0 ? undefined : { epoch: r[0], offset: r[1], frame: r[2] };
  }

  async close(): Promise<void> {}
}
