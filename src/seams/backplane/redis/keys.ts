// The Redis layout of the cluster backplane: every key and shard channel, named in one place.
//
// Every name starts with the prefix (REDIS_PREFIX, `storywire:` by default):
//   t:<topic>        shard channel of a topic's frames ("<origin node id>\n<frame>")
//   n:<node>         shard channel of control messages addressed to one node
//   interest:<topic> set of nodes listening to the topic (added after SSUBSCRIBE is confirmed, removed
//                    before SUNSUBSCRIBE, so that a member is always listening unless it lost Redis)
//   topics:<node>    set of a node's interests (to clean up after it)
//   node:<node>      the node's lease: PX NODE_LEASE_MS, renewed every third of it; its value is the epoch
//                    the node last re-registered in, or "syncing" while it does
//   nodes            set of the nodes that registered (swept when their lease is gone)
//   conns:<node>     hash connection id -> user id of a node's connections
//   user:<user>      hash connection id -> node id of a user's connections, on every node
//   leaving          zset user -> deadline (Redis time, ms) of users whose last connection closed
//   leaving:by       hash user -> "<node> <connection id>" of the leave that settles them
//   epoch            random id written once; when Redis loses its data, it is gone
//   replid           the replication id of the primary the nodes last registered on (INFO replication)
//   hgen             the history generation: a new random value when a promoted replica became the primary;
//                    every topic written under another one is retired (seams/history/redis-scripts.ts epoch_of)
//   recovering       set (PX NODE_LEASE_MS) after a data loss until every known node re-registered
//   sweep            lock of the node sweeping dead nodes and stale leaves this round
//   idem:<topic>:<key> a publish's idempotency record (seams/history/redis.ts, RECORD)
// The history (h:<topic>, s:<topic>) is seams/history/redis.ts's, read state (r:, ri:) seams/readstate/redis.ts's,
// channel presence (cp:{<channel>}:..., cpn:<node>) seams/channel-presence/redis.ts's.

import { GENERATION_KEY } from '../../history/redis.js';

export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** Any name of the layout, prefixed. */
  key(name: string): string {
    return this.prefix + name;
  }

  /** t:<topic> */
  channel(topic: string): string {
    return `${this.prefix}t:${topic}`;
  }

  /** The topic of a frame channel (the inverse of channel()). */
  topicOf(channel: string): string {
    return channel.slice(this.prefix.length + 2);
  }

  /** n:<node> */
  control(node: string): string {
    return `${this.prefix}n:${node}`;
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

  get replid(): string {
    return `${this.prefix}replid`;
  }

  get hgen(): string {
    return this.key(GENERATION_KEY);
  }

  get sweep(): string {
    return `${this.prefix}sweep`;
  }
}
