// A fix for ioredis 6.0.0's sharded subscribers (Redis Cluster), applied once when this module loads.
//
// ClusterSubscriberGroup.reset() awaits the start of every shard's subscriber. A subscriber stopped while it
// is connecting (the Cluster disconnects to reconnect, as when all its Redis nodes restart) removes every
// listener of its connection, among them the ones that would settle that connection's connect() promise: its
// start() never settles, the group stays "resetting" for good, every later reset is queued behind it, and no
// sharded subscriber is ever made again ("No sharded subscriber for slot"): the node stays down with Redis
// reachable. Here a stop settles a start in progress, so the reset goes on. Resolved, not rejected: the group
// treats a failed start as a failed connection and schedules a slots refresh, which on a Cluster closed
// meanwhile finds no node and reconnects it (ClusterAllFailedError -> disconnect(true)); a stopped subscriber
// has no connection left to resubscribe (the group skips it).
//
// shardOfSlot() reads ioredis' slot map, which its API does not expose: the batching of RECORD_MANY and of the
// push store's probe per shard.
//
// closeForGood() closes a connection (a Redis or a Cluster) so that it stays closed: a Cluster disconnected while
// a periodic slots refresh (slotsRefreshInterval) is in flight schedules the next round from that refresh's
// callback, and goes on refreshing every interval for good, a timer that keeps the process alive; it can also
// reconnect itself (a refresh a failed sharded subscriber scheduled finds no node: disconnect(true)).
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';

interface Subscriber {
  start(): Promise<void>;
  stop(): void;
}

const stopped = Symbol('storywire.stopped');
type Patched = Subscriber & { [stopped]?: Set<() => void> };

// (A CommonJS module of ioredis that its index does not export: loaded by path, from the pinned version.)
const { default: ShardedSubscriber } = createRequire(import.meta.url)('ioredis/built/cluster/ShardedSubscriber.js') as { default: { prototype: Patched } };
const proto = ShardedSubscriber.prototype;
const { start, stop } = proto;
if (typeof start === 'function' && typeof stop === 'function') {
  proto.start = function (this: Patched) {
    const started = start.call(this);
    const waiting = this[stopped] ?? new Set();
    this[stopped] = waiting;
    let settle: () => void = () => {};
    const whenStopped = new Promise<void>((resolve) => {
      settle = resolve;
      waiting.add(resolve);
    });
    return Promise.race([started, whenStopped]).finally(() => waiting.delete(settle));
  };
  proto.stop = function (this: Patched) {
    stop.call(this);
    const waiting = this[stopped];
    delete this[stopped];
    for (const settle of waiting ?? []) settle();
  };
}

/**
 * The shard that serves `slot`, as ioredis' Cluster slot map names it (its internal `slots`: per slot, the
 * primary's "host:port" first): '' for one Redis (a single shard), undefined while the map does not say yet.
 */
export function shardOfSlot(conn: object, slot: number): string | undefined {
  const slots = (conn as { slots?: string[][] }).slots;
  return slots === undefined ? '' : slots[slot]?.[0];
}

/** Disconnects `conn` for good: no reconnect, no further slots refresh (a Cluster's loop ends at its next tick). */
export function closeForGood(conn: Redis): void {
  const c = conn as unknown as { refreshSlotsCache?: unknown; clearNodesRefreshInterval?: () => void };
  // Neither refreshing nor calling back: the refresh loop's next round is never scheduled.
  if (typeof c.refreshSlotsCache === 'function') c.refreshSlotsCache = () => {};
  conn.on('reconnecting', () => conn.disconnect());
  conn.disconnect();
  c.clearNodesRefreshInterval?.();
}
