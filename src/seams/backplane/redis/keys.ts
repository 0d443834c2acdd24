// The Redis layout of the cluster backplane: every key and shard channel, named in one place.
//
// Partitions. Every key belongs to one partition, and every Lua script touches the keys of one partition
// only. With one Redis (REDIS_URL, REDIS_SENTINELS) there is one partition, whose prefix is REDIS_PREFIX
// (`storywire:` by default). With Redis Cluster (REDIS_CLUSTER_NODES) there are CLUSTER_PARTITIONS (48), each
// with a prefix `<REDIS_PREFIX>{<tag>}`: the hash tag puts all of a partition's keys in one slot, and the 48
// tags are chosen so that their slots are spread evenly over the 16384 (a cluster whose shards own equal slot
// ranges, as `redis-cli --cluster create` makes them, gets 48 / shards partitions per shard). A topic is in
// the partition of its name (FNV-1a mod 48), a user in the partition of its topic `user:<id>` (with its
// notification history, read state and presence); the membership of a node (its lease, its connections, its
// interests) is kept in every partition, each one swept on its own.
//
// In a partition (after its prefix):
//   t:<topic>        shard channel of a topic's frames ("<origin node id>\n<frame>")
//   interest:<topic> set of nodes listening to the topic (added after SSUBSCRIBE is confirmed, removed
//                    before SUNSUBSCRIBE, so that a member is always listening unless it lost Redis)
//   topics:<node>    set of a node's interests in this partition (to clean up after it)
//   node:<node>      the node's lease: PX NODE_LEASE_MS, renewed every third of it; its value is the epoch
//                    the node last re-registered in, or "syncing" while it does
//   nodes            set of the nodes that registered (swept when their lease is gone)
//   conns:<node>     hash connection id -> user id of a node's connections (of this partition's users)
//   user:<user>      hash connection id -> node id of a user's connections, on every node
//   leaving          zset user -> deadline (Redis time, ms) of users whose last connection closed
//   leaving:by       hash user -> "<node> <connection id>" of the leave that settles them
//   epoch            random id written once; when Redis (the partition's shard) loses its data, it is gone
//   replid           the replication id of the primary the partition was last written on (INFO replication;
//                    named from hgen by the scripts' check_primary)
//   hgen             the history generation: the new primary's replication id when a promoted replica became
//                    the primary; every topic written under another one is retired (the history scripts'
//                    epoch_of checks it at every call, seams/history/redis-lua.ts)
//   recovering       set (PX NODE_LEASE_MS) after a data loss until every known node re-registered
//   sweep            lock of the node sweeping dead nodes and stale leaves this round
//   idem:<topic>:<key> a publish's idempotency record (seams/history/redis.ts, RECORD)
//   h:, s:, hu:, hk:, ho:<topic>, hz, hbytes, hsizes, hage, huage: the history (seams/history/redis.ts)
//   r:<user>, ri:<user>: read state (seams/readstate/redis.ts)
// Outside the partitions (REDIS_PREFIX only; single-key commands, or a hash tag of their own):
//   n:<node>         shard channel of control messages addressed to one node
//   cp:{<channel>}:..., cpn:<node>: channel presence (seams/channel-presence/redis.ts)
//   cr:<user>        chat read positions (seams/chat-reads/redis.ts)
//   wh:<destination>, wha:<destination>: a destination's webhook queue (seams/webhooks/redis.ts); with Redis
//                    Cluster wh:{<destination>} and wha:{<destination>}
// In the partitions with Redis Cluster, outside them with one Redis (seams/pushes/redis.ts):
//   pu:, pn:, pr:, pe:, pa:<user>, pd, pc: push fallback (a user's keys in the user's partition); po, pq: a
//                    partition's outbox of due pushes (Redis Cluster only)

import { GENERATION_KEY } from '../../history/redis.js';

/** Partitions of a Redis Cluster layout (see above). */
export const CLUSTER_PARTITIONS = 48;

const CRC16_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

/** The Redis Cluster slot of a key (CRC16/XMODEM of its hash tag or of the whole key, mod 16384). */
export function slotOf(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const b of Buffer.from(key)) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xff]!;
  return crc % 16384;
}

/** For each partition k, a 3-character tag whose slot is in the k-th 1/n of the slot range. */
function spreadTags(n: number): string[] {
  const tags: string[] = [];
  let i = 0;
  for (let k = 0; k < n; k++) {
    const lo = Math.floor((k * 16384) / n);
    const hi = Math.floor(((k + 1) * 16384) / n);
    for (i = 0; ; i++) {
      const tag = i.toString(36).padStart(3, '0');
      const slot = slotOf(`{${tag}}`);
      if (slot >= lo && slot < hi) {
        tags.push(tag);
        break;
      }
    }
  }
  return tags;
}

/** FNV-1a (32 bits) of a string's UTF-16 code units: the partition of a topic. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The keys of one partition (the whole layout with one Redis). */
export class PartKeys {
  constructor(
    /** REDIS_PREFIX, and the partition's hash tag with Redis Cluster. */
    readonly prefix: string,
    readonly index: number,
  ) {}

  /** Any name of the partition, prefixed. */
  key(name: string): string {
    return this.prefix + name;
  }

  /** t:<topic> */
  channel(topic: string): string {
    return `${this.prefix}t:${topic}`;
  }

  interest(topic: string): string {
    return `${this.prefix}interest:${topic}`;
  }

  topicsOf(node: string): string {
    return `${this.prefix}topics:${node}`;
  }

  /** node:<node> */
  lease(node: string): string {
    return `${this.prefix}node:${node}`;
  }

  conns(node: string): string {
    return `${this.prefix}conns:${node}`;
  }

  user(userId: string): string {
    return `${this.prefix}user:${userId}`;
  }

  get nodes(): string {
    return `${this.prefix}nodes`;
  }

  get leaving(): string {
    return `${this.prefix}leaving`;
  }

  get leavingBy(): string {
    return `${this.prefix}leaving:by`;
  }

  get epoch(): string {
    return `${this.prefix}epoch`;
  }

  get recovering(): string {
    return `${this.prefix}recovering`;
  }

  get hgen(): string {
    return this.key(GENERATION_KEY);
  }

  get sweep(): string {
    return `${this.prefix}sweep`;
  }
}

export class RedisKeys {
  /** Every partition: one with one Redis, CLUSTER_PARTITIONS with Redis Cluster. */
  readonly parts: readonly PartKeys[];
  /** Length of every partition's prefix (they all have the same). */
  private readonly partLength: number;

  constructor(
    /** REDIS_PREFIX. */
    readonly prefix: string,
    partitions = 1,
  ) {
    this.parts = partitions === 1 ? [new PartKeys(prefix, 0)] : spreadTags(partitions).map((tag, i) => new PartKeys(`${prefix}{${tag}}`, i));
    this.partLength = this.parts[0]!.prefix.length;
  }

  /** Whether the layout is partitioned (Redis Cluster). */
  get partitioned(): boolean {
    return this.parts.length > 1;
  }

  /** Any name outside the partitions, prefixed. */
  key(name: string): string {
    return this.prefix + name;
  }

  /** The partition of a topic. */
  forTopic(topic: string): PartKeys {
    return this.parts.length === 1 ? this.parts[0]! : this.parts[fnv1a(topic) % this.parts.length]!;
  }

  /** The partition of a user: that of its topic `user:<id>`. */
  forUser(userId: string): PartKeys {
    return this.forTopic(`user:${userId}`);
  }

  /** t:<topic>, in the topic's partition. */
  channel(topic: string): string {
    return this.forTopic(topic).channel(topic);
  }

  /** The topic of a frame channel (the inverse of channel()). */
  topicOf(channel: string): string {
    return channel.slice(this.partLength + 2);
  }

  /** n:<node> */
  control(node: string): string {
    return `${this.prefix}n:${node}`;
  }

  /** user:<user>, in the user's partition. */
  user(userId: string): string {
    return this.forUser(userId).user(userId);
  }
}
