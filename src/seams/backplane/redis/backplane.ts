// Cluster backplane on one Redis 7 primary: composes the parts that share the node's two Redis connections.
//   frames.ts      sharded pub/sub of frames (numbered ones recorded in the history in the same Lua step),
//                  the topics this node listens to, the join barrier; streams.ts keeps them in offset order
//   control.ts     node-to-node requests (disconnect a user's connections, end a user's subscription)
//   membership.ts  the lease, the re-registration after every (re)connect or data loss, the sweep of dead nodes
//   presence.ts    Lua-atomic presence, re-registered and swept with the membership (channel presence too:
//                  seams/channel-presence/redis.ts)
//   keys.ts        the Redis layout; scripts.ts the Lua scripts
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { closeForGood } from './ioredis-fix.js';
import type { Logger } from 'pino';
import { RedisHistory, type RedisHistoryOptions } from '../../history/redis.js';
import type { Appended, NoStream, Position, RecordOptions } from '../../history/types.js';
import { RedisReadState } from '../../readstate/redis.js';
import { RedisChatReads } from '../../chat-reads/redis.js';
import { RedisChannelPresence } from '../../channel-presence/redis.js';
import { RedisPushStore } from '../../pushes/redis.js';
import { RedisWebhookQueue } from '../../webhooks/redis.js';
import type { ClusterBackplane, ClusterNode, ClusterStores, DisconnectHandler, FrameHandler, Idempotency, UnsubscribeHandler, UserConnection } from '../types.js';
import { Control } from './control.js';
import { Frames } from './frames.js';
import { CLUSTER_PARTITIONS, RedisKeys } from './keys.js';
import type { Link } from './link.js';
import { Membership } from './membership.js';
import { RedisPresence } from './presence.js';
import { SCRIPTS } from './scripts.js';
import { clusterNodes, userConnections } from './view.js';

/** Redis Sentinel: the primary the sentinels name, found again after a failover. */
export interface SentinelOptions {
  sentinels: readonly { host: string; port: number }[];
  /** The monitored primary's name. */
  name: string;
  /** The primary's (and replicas') password. */
  password?: string;
}

/** Redis Cluster: some of its nodes (the others are discovered), and their password. */
export interface ClusterOptions {
  nodes: readonly { host: string; port: number }[];
  password?: string;
}

export interface RedisBackplaneOptions {
  /** One primary (REDIS_URL); or, instead, `sentinel` or `cluster`. */
  url?: string;
  sentinel?: SentinelOptions;
  cluster?: ClusterOptions;
  nodeId: string;
  /** Key and channel prefix, so that several deployments can share one Redis. */
  prefix: string;
  /** A node whose lease is not renewed for this long is dead: its connections are removed. */
  leaseMs: number;
  /** PRESENCE_GRACE_MS: deadline of a leave, after which a surviving node may settle it. */
  graceMs: number;
  log: Logger;
  /** Bound on every Redis round trip; a publish fails after it. */
  commandTimeoutMs?: number;
  /** HISTORY_SIZE and HISTORY_TTL_S of the recoverable topics kept in Redis. */
  history?: RedisHistoryOptions;
  /** IDEMPOTENCY_TTL_S: how long a publish's Idempotency-Key is remembered. */
  idempotencyMs?: number;
}

/**
 * A client of the one primary: REDIS_URL's, or the one the sentinels name (asked again on every reconnect, and
 * dropped as soon as the sentinels announce a failover, so that no write goes to a demoted primary).
 */
function connectTo(options: RedisBackplaneOptions, timeoutMs: number, connectionName: string): Redis {
  const common = {
    // Never queue a command while disconnected, never resend one after a reconnect: a publish either
    // goes out now or its caller is told it failed (a resent one could be delivered twice).
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    maxRetriesPerRequest: 0,
    commandTimeout: timeoutMs,
    connectTimeout: timeoutMs,
    retryStrategy: (times: number) => Math.min(100 * times, 1000) + Math.floor(Math.random() * 100),
    lazyConnect: true,
    connectionName,
  } satisfies RedisOptions;
  const c = options.cluster;
  if (c !== undefined) {
    const { lazyConnect: _lazy, retryStrategy: _retry, connectionName: _name, enableOfflineQueue: _queue, ...node } = common;
    // ioredis' Cluster speaks every command the backplane uses (scripts and pipelines route by their first key,
    // each of one slot: keys.ts), so it is used as a Redis. Commands refused before they ran (MOVED, ASK,
    // TRYAGAIN, CLUSTERDOWN) are retried by it, never one that may have run.
    return new Cluster(
      c.nodes.map(({ host, port }) => ({ host, port })),
      {
        lazyConnect: true,
        enableOfflineQueue: false,
        enableReadyCheck: true,
        shardedSubscribers: connectionName.endsWith('-sub'),
        slotsRefreshInterval: 1000,
        slotsRefreshTimeout: timeoutMs,
        retryDelayOnFailover: 100,
        retryDelayOnClusterDown: 100,
        maxRedirections: 16,
        clusterRetryStrategy: (times: number) => Math.min(100 * times, 1000) + Math.floor(Math.random() * 100),
        redisOptions: { ...node, connectionName, ...(c.password === undefined ? {} : { password: c.password }) },
      },
    ) as unknown as Redis;
  }
  const s = options.sentinel;
  if (s === undefined) {
    if (options.url === undefined) throw new Error('RedisBackplane: url or sentinel is required');
    return new Redis(options.url, common);
  }
  return new Redis({
    ...common,
    sentinels: s.sentinels.map(({ host, port }) => ({ host, port })),
    name: s.name,
    role: 'master',
    failoverDetector: true,
    sentinelRetryStrategy: (times: number) => Math.min(100 * times, 1000),
    ...(s.password === undefined ? {} : { password: s.password }),
  });
}

/** A Redis connection that ioredis ended while this node runs is started again after 200-400 ms. */
const RESTART_MS = 200;

export class RedisBackplane implements ClusterBackplane, Link {
  readonly single = false as const;
  readonly kind = 'redis';
  readonly nodeId: string;
  /** The cluster's history, presence and read state: on this backplane's Redis connection. */
  readonly stores: ClusterStores;
  readonly cmd: Redis;
  readonly sub: Redis;
  readonly keys: RedisKeys;
  readonly log: Logger;
  readonly timeoutMs: number;
  closing = false;
  private readonly frames: Frames;
  private readonly control: Control;
  private readonly membership: Membership;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(options: RedisBackplaneOptions) {
    this.nodeId = options.nodeId;
    this.keys = new RedisKeys(options.prefix, options.cluster === undefined ? 1 : CLUSTER_PARTITIONS);
    this.log = options.log.child({ backplane: 'redis', nodeId: options.nodeId });
    this.timeoutMs = options.commandTimeoutMs ?? 2000;
    this.cmd = connectTo(options, this.timeoutMs, `storywire-${this.nodeId}`);
    this.sub = connectTo(options, this.timeoutMs, `storywire-${this.nodeId}-sub`);
    for (const [name, lua] of Object.entries(SCRIPTS)) this.cmd.defineCommand(name, { lua });
    const history = new RedisHistory(this.cmd, this.keys, options.history ?? { size: 50, ttlMs: 7 * 24 * 3600 * 1000 });
    const presence = new RedisPresence(this, this.cmd, this.keys, options.graceMs);
    const channelPresence = new RedisChannelPresence(this, this.cmd, (name) => this.keys.key(name));
    const chatReads = new RedisChatReads(this.cmd, (name) => this.keys.key(name));
    const key = (name: string) => this.keys.key(name);
    this.stores = {
      history,
      presence,
      readState: new RedisReadState(this.cmd, (userId, name) => this.keys.forUser(userId).key(name), (userId) => history.limitsOf(`user:${userId}`).ttlMs),
      channelPresence,
      chatReads,
      webhookQueue: (name, queueOptions) => new RedisWebhookQueue(this.cmd, key, this.nodeId, name, queueOptions, this.log, this.keys.partitioned),
      pushes: (pushOptions) =>
        new RedisPushStore(
          this.cmd,
          key,
          pushOptions,
          this.keys.partitioned ? { prefixes: this.keys.parts.map((p) => p.prefix), forUser: (userId) => this.keys.forUser(userId).prefix, outbox: true } : undefined,
        ),
    };
    this.frames = new Frames(this, history, options.idempotencyMs ?? 600_000);
    this.control = new Control(this);
    this.membership = new Membership(this, this.frames, presence, options.leaseMs, channelPresence);
    for (const conn of [this.cmd, this.sub]) {
      conn.on('error', (err: Error) => {
        this.membership.lastError = err.message;
        this.log.debug({ err: err.message }, 'redis connection error');
      });
      conn.on('close', () => this.membership.down());
      conn.on('ready', () => this.membership.resync());
      // ioredis stops for good ('end') when a connect it started is cut short, as when the sentinels announce
      // a failover while it is asking them for the primary (seen under load): never for this node, which
      // starts it again until it is closed.
      conn.on('end', () => {
        if (this.closing) return;
        setTimeout(() => {
          // (ioredis' Cluster shows 'close' once it ended.)
          if (!this.closing && (conn.status === 'end' || conn.status === 'close')) conn.connect().catch(() => {});
        }, RESTART_MS + Math.floor(Math.random() * RESTART_MS)).unref();
      });
    }
    this.sub.on('smessage', (channel: string, message: string) => this.onMessage(channel, message));
    if (options.cluster !== undefined) {
      // A shard's subscriber lost (its primary failed, or its slots moved): that shard's topics are not heard
      // here until ioredis has subscribed again on the primaries that own them now; then the node re-registers
      // (listening again reads what it missed from the history). The other shards' topics go on meanwhile.
      this.sub.on('-subscriber', () => this.membership.deaf());
      this.sub.on('subscribersReady', () => this.membership.resync());
    }
    this.timers.push(
      setInterval(() => this.membership.renew(), Math.floor(options.leaseMs / 3)),
      setInterval(() => this.membership.sweep().catch((err: unknown) => this.log.debug({ err }, 'sweep failed')), this.membership.sweepMs),
    );
    for (const t of this.timers) t.unref();
  }

  get up(): boolean {
    return this.membership.up;
  }

  get partial(): boolean {
    return this.membership.partial;
  }

  get connected(): boolean {
    return this.cmd.status === 'ready' && this.sub.status === 'ready';
  }

  /** A presence write failed without a disconnect (a timeout): re-register at the next lease renewal. */
  dirty(): void {
    this.membership.dirty();
  }

  /** Connects; resolves true once registered in the cluster, false if that takes longer than timeoutMs. */
  async connect(timeoutMs = 5000): Promise<boolean> {
    this.cmd.connect().catch(() => {});
    this.sub.connect().catch(() => {});
    if (this.up) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (!this.up) this.log.warn({ err: this.membership.lastError, timeoutMs }, 'Redis not reachable at start: serving local connections only until it is');
        resolve(this.up);
      }, timeoutMs);
      this.onStateChange((up) => {
        if (up) {
          clearTimeout(timer);
          resolve(true);
        }
      });
    });
  }

  onStateChange(handler: (up: boolean) => void): void {
    this.membership.onStateChange(handler);
  }

  onPartialChange(handler: (partial: boolean) => void): void {
    this.membership.onPartialChange(handler);
  }

  publish(topic: string, frame: string, keyed?: string): Promise<void> {
    return this.frames.publish(topic, frame, keyed);
  }

  publishRecorded(topic: string, head: string, tail: string, exceptToken?: string, idem?: Idempotency): Promise<Appended | undefined>;
  publishRecorded(topic: string, head: string, tail: string, exceptToken: string | undefined, idem: Idempotency | undefined, options: RecordOptions): Promise<Appended | undefined | NoStream>;
  publishRecorded(topic: string, head: string, tail: string, exceptToken?: string, idem?: Idempotency, options?: RecordOptions): Promise<Appended | undefined | NoStream> {
    return this.frames.publishRecorded(topic, head, tail, exceptToken, idem, options);
  }

  barrier(topic: string, position: Position): Promise<void> {
    return this.frames.barrier(topic, position);
  }

  nodes(): Promise<ClusterNode[]> {
    return clusterNodes(this);
  }

  userConnections(userId: string): Promise<UserConnection[]> {
    return userConnections(this, userId);
  }

  interest(topic: string, on: boolean): void {
    this.frames.interest(topic, on);
  }

  whenListening(topics: readonly string[]): Promise<void> | undefined {
    return this.frames.whenListening(topics);
  }

  onFrame(handler: FrameHandler): void {
    this.frames.onFrame(handler);
  }

  onHistoryLost(handler: (topic: string) => void): void {
    this.frames.onHistoryLost(handler);
  }

  disconnectUser(userId: string, code: number, reason: string): Promise<number> {
    return this.control.disconnectUser(userId, code, reason);
  }

  onDisconnect(handler: DisconnectHandler): void {
    this.control.onDisconnect(handler);
  }

  unsubscribeUser(userId: string, topic: string, reason: string): Promise<number> {
    return this.control.unsubscribeUser(userId, topic, reason);
  }

  onUnsubscribe(handler: UnsubscribeHandler): void {
    this.control.onUnsubscribe(handler);
  }

  /** "<origin>\n<body>" on a shard channel: a frame, a barrier marker, or a control message to this node. */
  private onMessage(channel: string, message: string): void {
    const nl = message.indexOf('\n');
    const origin = message.slice(0, nl);
    // This node's own frames ("<node>" or "<node> <key> <fingerprint>") never come back to it.
    if (origin === this.nodeId || (origin.startsWith(this.nodeId) && origin.charCodeAt(this.nodeId.length) === 32)) return;
    const body = message.slice(nl + 1);
    const marked = origin.startsWith('~') || origin.startsWith('*');
    if (!marked && channel === this.keys.control(this.nodeId)) this.control.receive(origin, body);
    else this.frames.receive(channel, origin, body);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const t of this.timers) clearInterval(t);
    this.control.close();
    await this.membership.unregister();
    this.membership.closed();
    // (A Cluster disconnected with a slots refresh in flight would refresh, or reconnect, for good: ioredis-fix.ts.)
    closeForGood(this.cmd);
    closeForGood(this.sub);
  }
}
