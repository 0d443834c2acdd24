// This node's membership of the cluster: its lease, its re-registration after every (re)connect or data
// loss, and the sweep that removes what dead nodes left behind (their connections, leaves nobody settled).
import { randomBytes } from 'node:crypto';
import type { Frames } from './frames.js';
import type { Link } from './link.js';
import type { RedisPresence } from './presence.js';
import type { RedisChannelPresence } from '../../channel-presence/redis.js';
import type { PartKeys } from './keys.js';
import { sc } from './scripts.js';

/** A partition's membership state (keys.ts). */
interface PartState {
  readonly keys: PartKeys;
  /** The partition's epoch when this node last registered: a new one is a data loss of its Redis. */
  epoch: string | undefined;
  /** Nodes with a live lease there at the last sweep: after a data loss, recovery ends when all are back. */
  livePeers: string[];
  /** The nodes alive before the partition lost its data, when this node saw the loss. */
  recoveryPeers: string[] | undefined;
}

/** Longer than the longest reconnect delay of retryStrategy (1.1 s) plus a re-registration. */
const RECOVERY_MIN_MS = 2500;
/** A registration that failed while connected is tried again after 100 ms, then twice as long, at most 2 s apart. */
const RESYNC_RETRY_MIN_MS = 100;
const RESYNC_RETRY_MAX_MS = 2000;

export class Membership {
  /** Registered in the cluster, with Redis reachable: the backplane's `up`. */
  private state = false;
  private readonly stateHandlers: ((up: boolean) => void)[] = [];
  private readonly partialHandlers: ((partial: boolean) => void)[] = [];
  /** The last Redis error seen, for the logs. */
  lastError = '';
  readonly sweepMs: number;
  /**
   * Until then, a missing lease proves nothing: this node has just come back to Redis, and so may the
   * others (their leases expired while Redis was away, which is no sign that they died).
   */
  private leasesTrustedAt = 0;
  /** Per partition (keys.ts; one with one Redis): its epoch, its live peers, its recovery. */
  private readonly parts: PartState[];
  private syncing: Promise<void> | undefined;
  private resyncAgain = false;
  private needsResync = false;
  /** Registrations that failed in a row (each one is tried again after a longer wait). */
  private failedSyncs = 0;
  /** Redis Cluster: a shard's subscriber was lost; down once this fires, unless a registration came first. */
  private deafTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly link: Link,
    private readonly frames: Frames,
    private readonly presence: RedisPresence,
    /** NODE_LEASE_MS: a node whose lease is not renewed for this long is dead. */
    private readonly leaseMs: number,
    /** Channel presence: re-registered and swept with the user presence. */
    private readonly channelPresence?: RedisChannelPresence,
  ) {
    this.sweepMs = Math.max(100, Math.min(2000, Math.floor(leaseMs / 5)));
    this.parts = link.keys.parts.map((keys) => ({ keys, epoch: undefined, livePeers: [], recoveryPeers: undefined }));
  }

  get up(): boolean {
    return this.state;
  }

  onStateChange(handler: (up: boolean) => void): void {
    this.stateHandlers.push(handler);
  }

  /** Up, but a Redis Cluster shard's topics are not heard here (deaf() until heard() or down()). */
  get partial(): boolean {
    return this.deafTimer !== undefined;
  }

  onPartialChange(handler: (partial: boolean) => void): void {
    this.partialHandlers.push(handler);
  }

  private partialChanged(): void {
    for (const h of this.partialHandlers) h(this.partial);
  }

  private setState(up: boolean): void {
    if (up === this.state) return;
    this.state = up;
    for (const h of this.stateHandlers) h(up);
  }

  /** A Redis connection closed. */
  down(why = 'Redis unreachable'): void {
    this.frames.down();
    if (!this.state || this.link.closing) return;
    this.link.log.error({ err: this.lastError }, `backplane down: ${why}; serving local connections only, publishes to other nodes fail until it is back`);
    // Down says more than partial: no shard is heard now.
    this.heard();
    this.setState(false);
  }

  /** A presence write failed without a disconnect (a timeout): re-register at the next lease renewal. */
  dirty(): void {
    this.needsResync = true;
  }

  /**
   * Redis Cluster: ioredis lost one shard's subscriber (its primary failed, its slots moved). Only that shard's
   * topics are not heard here: a publish to one of them from another node is answered 503 (this node is in
   * its interest set but not listening: the scripts' count check), this node's own to them fail with their
   * primary, and the other shards' topics go on. Once ioredis subscribed again (subscribersReady) the node
   * re-registers, reading what it missed from the history. If that takes longer than a lease (the shard does
   * not come back), the node reports itself down.
   */
  deaf(): void {
    if (!this.state || this.link.closing) return;
    this.needsResync = true;
    if (this.deafTimer !== undefined) return;
    this.link.log.warn('a Redis Cluster shard\'s subscriber lost: its topics are not heard here until ioredis subscribes again on its primary; the other shards\' go on');
    this.deafTimer = setTimeout(() => {
      this.deafTimer = undefined;
      this.lastError = 'a Redis Cluster shard not heard for NODE_LEASE_MS';
      this.partialChanged();
      this.down('a Redis Cluster shard not heard for NODE_LEASE_MS');
    }, this.leaseMs);
    this.deafTimer.unref();
    this.partialChanged();
  }

  /** No longer deaf: registered again, down, or closing. */
  heard(): void {
    if (this.deafTimer === undefined) return;
    clearTimeout(this.deafTimer);
    this.deafTimer = undefined;
    this.partialChanged();
  }

  /** Re-registers everything the other nodes need to know about this node; runs on every (re)connect. */
  resync(): void {
    if (this.link.closing || !this.link.connected) return;
    if (this.syncing) {
      this.resyncAgain = true;
      return;
    }
    this.syncing = this.register()
      .then(
        () => {
          this.failedSyncs = 0;
        },
        (err: unknown) => {
          this.lastError = (err as Error).message;
          this.needsResync = true;
          // Connected but not registered (a command timed out under load, the sentinels named a primary that
          // was going away, ioredis' sharded subscribers of a Redis Cluster are not ready yet: "No sharded
          // subscriber for slot"): tried again by itself, 100 ms then twice as long each time, at most 2 s
          // apart (and on a Redis Cluster also when ioredis says its sharded subscribers are ready). A node that
          // waited for its next reconnect would stay down, answering 503, with Redis reachable.
          const delay = Math.min(RESYNC_RETRY_MAX_MS, RESYNC_RETRY_MIN_MS * 2 ** Math.min(this.failedSyncs++, 5));
          this.link.log.debug({ err, retryInMs: delay }, 'resync failed; tried again');
          setTimeout(() => {
            if (!this.state || this.needsResync) this.resync();
          }, delay).unref();
        },
      )
      .finally(() => {
        this.syncing = undefined;
        if (this.resyncAgain) {
          this.resyncAgain = false;
          this.resync();
        }
      });
  }

  private async register(): Promise<void> {
    const { cmd, keys, nodeId } = this.link;
    const started = Date.now();
    this.needsResync = false;
    const lostParts = (await Promise.all(this.parts.map((p) => this.checkEpoch(p)))).filter((p) => p !== undefined);
    const lost = lostParts.length > 0;
    await Promise.all(this.parts.map((p) => this.checkPrimary(p)));
    // A lease first, so that no other node sweeps this one while it re-registers.
    await Promise.all(this.parts.map(({ keys: part }) => cmd.multi().set(part.lease(nodeId), 'syncing', 'PX', this.leaseMs).sadd(part.nodes, nodeId).exec()));
    await this.link.sub.ssubscribe(keys.control(nodeId));
    await Promise.all(this.parts.map((p) => this.dropStaleInterests(p)));
    // Listening again: what was published while this node could not hear it comes from the history.
    await this.frames.relisten();
    await Promise.all(this.parts.map(({ keys: part, epoch }) => cmd.set(part.lease(nodeId), epoch!, 'PX', this.leaseMs)));
    await Promise.all(lostParts.map(({ part, peers }) => this.endRecovery(part, peers)));
    await this.channelPresence?.resync();
    // Last, and nothing awaited between its last pass and `up`: a connection opened meanwhile is not missed.
    const users = await this.presence.resync(lost);
    this.link.log.info(
      { topics: this.frames.listeningCount, connections: this.presence.local.size, onlineAgain: users, dataLost: lost, ms: Date.now() - started, ...(lost && this.parts.length > 1 ? { partitionsLost: lostParts.length } : {}) },
      this.state ? 're-registered in the cluster' : 'backplane up: registered in the cluster',
    );
    this.heard();
    this.setState(true);
    this.frames.reconcile();
  }

  /**
   * Reads a partition's epoch (writing it when Redis has none): a new one means its Redis lost its data, and a
   * recovery of the partition starts, to end when its peers (the nodes alive there before) are back. Sets how
   * long this node trusts no missing lease. Returns the partition when it lost its data.
   */
  private async checkEpoch(part: PartState): Promise<{ part: PartState; peers: string[] } | undefined> {
    const { cmd, nodeId } = this.link;
    const [epoch, sinceRedisStart] = (await sc(cmd).EPOCH(1, part.keys.epoch, randomBytes(8).toString('hex'))) as [string, number];
    const first = part.epoch === undefined;
    const lost = !first && epoch !== part.epoch;
    const peers = part.livePeers;
    part.epoch = epoch;
    if (lost) {
      part.recoveryPeers = peers;
      await cmd.set(part.keys.recovering, nodeId, 'PX', this.recoveryMs, 'NX');
    }
    // Back from an outage, or Redis itself just started: the others get a whole lease (and a reconnect) to
    // renew theirs before any is judged.
    const wait = !first && (!this.state || lost) ? this.recoveryMs : Math.max(0, this.recoveryMs - sinceRedisStart);
    this.leasesTrustedAt = Math.max(this.leasesTrustedAt, Date.now() + wait);
    return lost ? { part, peers } : undefined;
  }

  /**
   * A failover: the primary is a promoted replica, which may lack the last writes the old one acknowledged
   * (replication is asynchronous). Every topic's history in the partition is retired (a new generation: the
   * scripts treat a topic of another one as having none), so that every client of every topic, connected or
   * not, resumes `recovered: false` rather than past a silent gap. The history scripts make the same check at
   * every call (check_primary), so no write lands before it; here it is made before this node listens again,
   * and logged. A restart of the same primary (its previous id is not the recorded one) is the epoch's business
   * (checkEpoch).
   */
  private async checkPrimary(part: PartState): Promise<void> {
    if ((await sc(this.link.cmd).PRIMARY(1, part.keys.hgen)) === 1) {
      this.link.log.warn({ partition: part.keys.index }, 'the primary is a promoted replica: every history of the partition starts a new epoch (clients resume recovered: false)');
    }
  }

  /** Interests Redis still holds for this node that it no longer has (they changed while it was away). */
  private async dropStaleInterests({ keys: part }: PartState): Promise<void> {
    const { cmd, nodeId } = this.link;
    const registered = await cmd.smembers(part.topicsOf(nodeId));
    const stale = registered.filter((t) => !this.frames.wants(t));
    if (stale.length === 0) return;
    const m = cmd.multi();
    for (const t of stale) m.srem(part.interest(t), nodeId);
    await m.srem(part.topicsOf(nodeId), ...stale).exec();
  }

  /**
   * After a data loss, publishes to the partition fail until every node this one knew alive there is
   * registered again, and for at least RECOVERY_MIN_MS: a node that joined too recently to be known has
   * reconnected by then.
   */
  private async endRecovery(part: PartState, peers: readonly string[]): Promise<void> {
    const leaseKeys = [part.keys.recovering, ...peers.map((n) => part.keys.lease(n))];
    if ((await sc(this.link.cmd).END_RECOVERY(leaseKeys.length, ...leaseKeys, this.recoveryMs, RECOVERY_MIN_MS, part.epoch ?? '')) === 1) part.recoveryPeers = undefined;
  }

  /** How long a recovery lasts at most (one lease, and never less than RECOVERY_MIN_MS). */
  private get recoveryMs(): number {
    return Math.max(this.leaseMs, RECOVERY_MIN_MS);
  }

  /** Every third of a lease: the lease of every partition. */
  renew(): void {
    if (!this.state || this.syncing) return;
    const { cmd, nodeId, log } = this.link;
    Promise.all(this.parts.map(({ keys: part, epoch }) => sc(cmd).RENEW(1, part.lease(nodeId), epoch ?? '', this.leaseMs))).then(
      (oks) => {
        const lost = oks.some((ok) => ok === 0);
        if (lost || this.needsResync) {
          if (lost) log.warn('lease lost (expired or Redis lost its data): re-registering');
          this.resync();
        }
      },
      () => {},
    );
  }

  /** Every sweepMs: in each partition, the lock holder removes what dead nodes left behind and settles forgotten leaves. */
  async sweep(): Promise<void> {
    if (!this.state) return;
    await Promise.all(this.parts.map((p) => this.sweepPart(p)));
  }

  private async sweepPart(part: PartState): Promise<void> {
    const { cmd, nodeId } = this.link;
    const { keys } = part;
    const nodes = await cmd.smembers(keys.nodes);
    const leases = nodes.length === 0 ? [] : await cmd.mget(...nodes.map((n) => keys.lease(n)));
    part.livePeers = nodes.filter((_, i) => leases[i] !== null);
    if (part.recoveryPeers) await this.endRecovery(part, part.recoveryPeers);
    if (Date.now() < this.leasesTrustedAt) return;
    if ((await cmd.set(keys.sweep, nodeId, 'PX', this.sweepMs, 'NX')) === null) return;
    for (const [i, node] of nodes.entries()) if (leases[i] === null && node !== nodeId) await this.sweepNode(keys, node);
    const gone = (await sc(cmd).STALE(2, keys.leaving, keys.leavingBy, this.leaseMs, keys.lease(''), keys.user(''))) as string[];
    for (const userId of gone) this.presence.changed('user:offline', userId);
  }

  private async sweepNode(keys: PartKeys, node: string): Promise<void> {
    const { cmd } = this.link;
    const nodeKey = keys.lease(node);
    const connsKey = keys.conns(node);
    let cursor = '0';
    let removed = 0;
    const offline: string[] = [];
    do {
      const [next, flat] = await cmd.hscan(connsKey, cursor, 'COUNT', 500);
      cursor = next;
      if (flat.length === 0) continue;
      const scriptKeys: string[] = [nodeKey, connsKey];
      for (let i = 1; i < flat.length; i += 2) scriptKeys.push(keys.user(flat[i]!));
      const gone = await sc(cmd).SWEEP(scriptKeys.length, ...scriptKeys, ...flat);
      if (gone === -1) return;
      removed += flat.length / 2;
      this.presence.connectionsLost(node, flat);
      for (const userId of gone as string[]) {
        offline.push(userId);
        this.presence.changed('user:offline', userId);
      }
    } while (cursor !== '0');
    // Channel presence is not partitioned: the first partition sweeps it.
    if (keys.index === 0) await this.channelPresence?.sweepNode(node, async () => (await cmd.exists(nodeKey)) === 1);
    await sc(cmd).FORGET_NODE(4, nodeKey, connsKey, keys.topicsOf(node), keys.nodes, node, keys.interest(''));
    if (removed > 0 || keys.index === 0) this.link.log.warn({ deadNode: node, connections: removed, offline: offline.length, ...(this.parts.length > 1 ? { partition: keys.index } : {}) }, 'node lease expired: its connections removed from presence');
  }

  /** Leaves the cluster (close): this node's interests, lease and registration go; presence writes drain first. */
  async unregister(): Promise<void> {
    if (!this.state) return;
    const { cmd, nodeId } = this.link;
    try {
      await this.presence.drain();
      await this.channelPresence?.unregister();
      await Promise.all(
        this.parts.map(async ({ keys }) => {
          const topics = await cmd.smembers(keys.topicsOf(nodeId));
          const m = cmd.multi();
          for (const t of topics) m.srem(keys.interest(t), nodeId);
          // Without a lease, the leaves this node did not settle are settled by the others at their deadline.
          await m.del(keys.topicsOf(nodeId), keys.lease(nodeId)).srem(keys.nodes, nodeId).exec();
        }),
      );
    } catch (err) {
      this.link.log.warn({ err }, 'could not unregister from the cluster: the others will sweep this node when its lease expires');
    }
  }

  /** close(): `up` is false from now on, without telling anyone (the node is going away). */
  closed(): void {
    this.heard();
    this.state = false;
  }
}
