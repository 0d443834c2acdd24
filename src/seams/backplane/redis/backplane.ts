// Cluster backplane on one Redis 7 primary: sharded pub/sub for frames, Lua-atomic presence (redis-presence.ts,
// scripts in redis-scripts.ts), node leases.
//
// Redis layout (every name starts with the prefix, `storywire:` by default):
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
//   recovering       set (PX NODE_LEASE_MS) after a data loss until every known node re-registered
//   sweep            lock of the node sweeping dead nodes and stale leaves this round
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { ErrorCode, WireError } from '../../../wire/codes.js';
import { SCRIPTS, sc, unavailable } from './scripts.js';
import { RedisPresence } from './presence.js';
import { TopicStreams } from './streams.js';
import { Unconfirmed, type ClusterBackplane, type ClusterStores, type DisconnectHandler, type FrameHandler, type Idempotency } from '../types.js';
import { RedisHistory, hs, newEpoch, type RedisHistoryOptions } from '../../history/redis.js';
import type { Appended, Position } from '../../history/types.js';
import { RedisReadState } from '../../readstate/redis.js';

export interface RedisBackplaneOptions {
  url: string;
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

/** ioredis' refusal of a command it did not send (no connection, and no offline queue). */
const NOT_SENT = /isn't writeable/;

/** Longer than the longest reconnect delay of retryStrategy (1.1 s) plus a re-registration. */
const RECOVERY_MIN_MS = 2500;

type Control =
  | { op: 'disconnect'; id: string; userId: string; code: number; reason: string }
  | { op: 'closed'; id: string; closed: number };

interface PendingDisconnect {
  waiting: number;
  closed: number;
  resolve(n: number): void;
  timer: NodeJS.Timeout;
}

export class RedisBackplane implements ClusterBackplane {
  readonly single = false as const;
  readonly kind = 'redis';
  readonly nodeId: string;
  /** The cluster's history, presence and read state: on this backplane's Redis connection. */
  readonly stores: ClusterStores;
  /** Presence shares the lease and the sweep of this node's membership. */
  private readonly presence: RedisPresence;
  private readonly history: RedisHistory;
  private readonly barriers = new Map<string, () => void>();
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly p: string;
  private readonly log: Logger;
  private readonly leaseMs: number;
  readonly sweepMs: number;
  private readonly timeoutMs: number;
  private readonly idempotencyMs: number;
  private state = false;
  private closing = false;
  private frameHandler: FrameHandler = () => {};
  private lostHandler: (topic: string) => void = () => {};
  /** Numbered frames in offset order per topic, gaps filled from the history. */
  private readonly streams: TopicStreams;
  /**
   * Until then, a missing lease proves nothing: this node has just come back to Redis, and so may the
   * others (their leases expired while Redis was away, which is no sign that they died).
   */
  private leasesTrustedAt = 0;
  private disconnectHandler: DisconnectHandler = () => 0;
  private readonly stateHandlers: ((up: boolean) => void)[] = [];
  /** Topics with local subscribers, and those of them this node is known, in Redis, to listen to. */
  private readonly desired = new Set<string>();
  private readonly listening = new Set<string>();
  private readonly ops = new Map<string, Promise<void>>();
  private readonly pending = new Map<string, PendingDisconnect>();
  private epoch: string | undefined;
  /** Nodes with a live lease at the last sweep: after a data loss, recovery ends when all are back. */
  private livePeers: string[] = [];
  /** The nodes alive before Redis lost its data, when this node saw the loss. */
  private recoveryPeers: string[] | undefined;
  private syncing: Promise<void> | undefined;
  private resyncAgain = false;
  private needsResync = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private lastError = '';

  constructor(options: RedisBackplaneOptions) {
    this.nodeId = options.nodeId;
    this.p = options.prefix;
    this.log = options.log.child({ backplane: 'redis', nodeId: options.nodeId });
    this.leaseMs = options.leaseMs;
    this.sweepMs = Math.max(100, Math.min(2000, Math.floor(options.leaseMs / 5)));
    this.timeoutMs = options.commandTimeoutMs ?? 2000;
    this.idempotencyMs = options.idempotencyMs ?? 600_000;
    const common = {
      // Never queue a command while disconnected, never resend one after a reconnect: a publish either
      // goes out now or its caller is told it failed (a resent one could be delivered twice).
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.timeoutMs,
      connectTimeout: this.timeoutMs,
      retryStrategy: (times: number) => Math.min(100 * times, 1000) + Math.floor(Math.random() * 100),
      lazyConnect: true,
    } satisfies RedisOptions;
    this.cmd = new Redis(options.url, { ...common, connectionName: `storywire-${this.nodeId}` });
    this.sub = new Redis(options.url, { ...common, connectionName: `storywire-${this.nodeId}-sub` });
    for (const [name, lua] of Object.entries(SCRIPTS)) this.cmd.defineCommand(name, { lua });
    this.presence = new RedisPresence(this, this.cmd, this.p, options.graceMs);
    this.history = new RedisHistory(this.cmd, (name: string) => this.key(name), options.history ?? { size: 50, ttlMs: 7 * 24 * 3600 * 1000 });
    this.stores = { history: this.history, presence: this.presence, readState: new RedisReadState(this.cmd, (name) => this.key(name), this.history.options.ttlMs) };
    this.streams = new TopicStreams(this.history, (topic, frame, except) => this.frameHandler(topic, frame, except), (topic) => this.lostHandler(topic), this.log);
    for (const conn of [this.cmd, this.sub]) {
      conn.on('error', (err: Error) => {
        this.lastError = err.message;
        this.log.debug({ err: err.message }, 'redis connection error');
      });
      conn.on('close', () => this.setDown());
      conn.on('ready', () => this.resync());
    }
    this.sub.on('smessage', (channel: string, message: string) => this.onMessage(channel, message));
    this.timers.push(
      setInterval(() => this.renew(), Math.floor(this.leaseMs / 3)),
      setInterval(() => this.sweep().catch((err: unknown) => this.log.debug({ err }, 'sweep failed')), this.sweepMs),
    );
    for (const t of this.timers) t.unref();
  }

  get up(): boolean {
    return this.state;
  }

  /** A presence write failed without a disconnect (a timeout): re-register at the next lease renewal. */
  dirty(): void {
    this.needsResync = true;
  }

  private get connected(): boolean {
    return this.cmd.status === 'ready' && this.sub.status === 'ready';
  }

  key(name: string): string {
    return this.p + name;
  }

  /** Connects; resolves true once registered in the cluster, false if that takes longer than timeoutMs. */
  async connect(timeoutMs = 5000): Promise<boolean> {
    this.cmd.connect().catch(() => {});
    this.sub.connect().catch(() => {});
    if (this.state) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (!this.state) this.log.warn({ err: this.lastError, timeoutMs }, 'Redis not reachable at start: serving local connections only until it is');
        resolve(this.state);
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
    this.stateHandlers.push(handler);
  }

  private setState(up: boolean): void {
    if (up === this.state) return;
    this.state = up;
    for (const h of this.stateHandlers) h(up);
  }

  private setDown(): void {
    this.listening.clear();
    if (!this.state || this.closing) return;
    this.log.error({ err: this.lastError }, 'backplane down: Redis unreachable; serving local connections only, publishes to other nodes fail until it is back');
    this.setState(false);
  }

  // --- frames ---------------------------------------------------------------------------------------

  async publish(topic: string, frame: string, keyed?: string): Promise<void> {
    // Not before this node's own re-registration: until then it cannot tell a data loss from an empty topic.
    if (!this.state) throw new Unconfirmed('not delivered to the other nodes: the cluster store (Redis) cannot be reached', false);
    const origin = keyed === undefined ? this.nodeId : `${this.nodeId} ${keyed}`;
    let r: unknown;
    try {
      r = await sc(this.cmd).PUBLISH(3, this.key(`interest:${topic}`), this.key('recovering'), this.key(`t:${topic}`), `${origin}\n${frame}`, this.nodeId);
    } catch {
      throw new Unconfirmed('not confirmed by the other nodes: the cluster store (Redis) did not answer', false);
    }
    if (r === -1) throw new Unconfirmed('the cluster is re-registering after Redis lost its data', false);
    if (r === -2) throw new Unconfirmed('a node listening to this topic is not connected to Redis', false);
  }

  async publishRecorded(topic: string, head: string, tail: string, exceptToken?: string, idem?: Idempotency): Promise<Appended | undefined> {
    // Nothing sent: certainly not stored.
    if (!this.state) throw new Unconfirmed('not stored: the cluster store (Redis) cannot be reached', false);
    const { size, ttlMs } = this.history.options;
    const keys = [this.key(`h:${topic}`), this.key(`s:${topic}`), this.key(`interest:${topic}`), this.key('recovering'), this.key(`t:${topic}`)];
    if (idem) keys.push(this.key(`idem:${topic}:${idem.key}`));
    let r: [number, string?, number?, string?];
    try {
      r = (await hs(this.cmd).RECORD(
        keys.length,
        ...keys,
        head,
        tail,
        newEpoch(),
        size,
        ttlMs,
        exceptToken === undefined ? '*' : `*${this.nodeId}/${exceptToken}`,
        this.idempotencyMs,
        idem?.fingerprint ?? '',
      )) as typeof r;
    } catch (err) {
      // Refused before it was sent (no connection): not stored. Sent and its answer lost: only a retry with
      // the same Idempotency-Key can tell.
      if (NOT_SENT.test((err as Error).message)) throw new Unconfirmed('not stored: the cluster store (Redis) cannot be reached', false);
      throw new Unconfirmed('not confirmed: the cluster store (Redis) did not answer (stored: unknown)', null);
    }
    if (r[0] === -1) throw new Unconfirmed('not stored: the cluster is re-registering after Redis lost its data', false);
    if (r[0] === -3) throw new WireError(ErrorCode.IDEMPOTENCY_CONFLICT, 'this Idempotency-Key was used for another request', 422);
    if (r[0] === -2) throw new Unconfirmed('stored (recoverable), but a node listening to this topic is not connected to Redis', true);
    if (r[0] === 2) {
      idem!.duplicate = true;
      return undefined;
    }
    return { epoch: r[1]!, offset: r[2]!, frame: r[3]! };
  }

  /** Publishes a marker on the topic's channel and resolves when it comes back: everything before it has arrived. */
  barrier(topic: string, position: Position): Promise<void> {
    if (!this.listening.has(topic)) return Promise.resolve();
    const token = randomBytes(6).toString('base64url');
    return new Promise<void>((resolve) => {
      // A marker that never comes back (Redis lost meanwhile) must not hold the join: after the command
      // timeout it goes on; the worst outcome is a frame seen twice, which carries its offset.
      const timer = setTimeout(() => this.barriers.delete(token) && resolve(), this.timeoutMs);
      this.barriers.set(token, () => {
        clearTimeout(timer);
        this.streams.after(topic, position, resolve);
      });
      this.cmd.spublish(this.key(`t:${topic}`), `~${this.nodeId}\n${token}`).catch(() => {});
    });
  }

  onFrame(handler: FrameHandler): void {
    this.frameHandler = handler;
  }

  onHistoryLost(handler: (topic: string) => void): void {
    this.lostHandler = handler;
  }

  interest(topic: string, on: boolean): void {
    if (this.closing) return;
    if (on) this.desired.add(topic);
    else {
      this.desired.delete(topic);
      this.streams.forget(topic);
    }
    // While disconnected the resync applies it; during a resync the chain of the topic does.
    if (this.connected) this.sync(topic).catch(() => {});
  }

  whenListening(topics: readonly string[]): Promise<void> | undefined {
    const waits: Promise<void>[] = [];
    for (const t of topics) if (!this.listening.has(t)) waits.push(this.connected ? this.sync(t) : Promise.reject(unavailable('not listening')));
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
    const channel = this.key(`t:${topic}`);
    if (want) {
      await this.sub.ssubscribe(channel);
      await this.cmd.multi().sadd(this.key(`interest:${topic}`), this.nodeId).sadd(this.key(`topics:${this.nodeId}`), topic).exec();
      this.listening.add(topic);
      if (!this.desired.has(topic)) await this.apply(topic);
    } else {
      this.listening.delete(topic);
      await this.cmd.multi().srem(this.key(`interest:${topic}`), this.nodeId).srem(this.key(`topics:${this.nodeId}`), topic).exec();
      await this.sub.sunsubscribe(channel);
    }
  }

  private onMessage(channel: string, message: string): void {
    const nl = message.indexOf('\n');
    const origin = message.slice(0, nl);
    if (origin === this.nodeId || (origin.startsWith(this.nodeId) && origin.charCodeAt(this.nodeId.length) === 32)) return;
    const body = message.slice(nl + 1);
    if (origin.startsWith('~')) {
      // A join's barrier marker, never delivered: it resolves once the frames that came before it are
      // delivered (a gap being filled holds them).
      if (origin === `~${this.nodeId}`) {
        this.barriers.get(body)?.();
        this.barriers.delete(body);
      }
      return;
    }
    // Origin "*": a numbered frame, delivered by every listening node including the one that published it
    // ("*<node>/<token>": that node leaves out the connection it registered under the token).
    if (origin.startsWith('*')) {
      const slash = origin.indexOf('/');
      const mine = slash > 0 && origin.slice(1, slash) === this.nodeId;
      const topic = channel.slice(this.p.length + 2);
      // A topic this node no longer wants has nobody here to keep in order (its stream was forgotten).
      if (this.desired.has(topic)) this.streams.receive(topic, body, mine ? origin.slice(slash + 1) : undefined);
      return;
    }
    if (channel === this.key(`n:${this.nodeId}`)) return this.onControl(origin, body);
    // "<node> <key> <fingerprint>": a live-only frame published with an idempotency key.
    const sp = origin.indexOf(' ');
    if (sp < 0) return this.frameHandler(channel.slice(this.p.length + 2), body);
    const sp2 = origin.indexOf(' ', sp + 1);
    this.frameHandler(channel.slice(this.p.length + 2), body, undefined, { key: origin.slice(sp + 1, sp2), fingerprint: origin.slice(sp2 + 1) });
  }

  // --- control ----------------------------------------------------------------------------------------

  onDisconnect(handler: DisconnectHandler): void {
    this.disconnectHandler = handler;
  }

  async disconnectUser(userId: string, code: number, reason: string): Promise<number> {
    if (!this.state) throw unavailable('not disconnected on the other nodes');
    const nodes = new Set(Object.values(await this.cmd.hgetall(this.key(`user:${userId}`)).catch(() => Promise.reject(unavailable('not disconnected on the other nodes')))));
    nodes.delete(this.nodeId);
    if (nodes.size === 0) return 0;
    const id = randomBytes(8).toString('hex');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new WireError(ErrorCode.UNAVAILABLE, 'a node holding connections of this user did not answer', 503));
      }, this.timeoutMs);
      const req: PendingDisconnect = { waiting: nodes.size, closed: 0, resolve, timer };
      this.pending.set(id, req);
      const msg = `${this.nodeId}\n${JSON.stringify({ op: 'disconnect', id, userId, code, reason } satisfies Control)}`;
      for (const node of nodes) {
        // A node that receives nothing is gone: its connections died with it and are swept with its lease.
        this.cmd.spublish(this.key(`n:${node}`), msg).then(
          (n) => n === 0 && this.answered(id, 0),
          () => {
            clearTimeout(timer);
            this.pending.delete(id);
            reject(unavailable('not disconnected on the other nodes'));
          },
        );
      }
    });
  }

  private answered(id: string, closed: number): void {
    const req = this.pending.get(id);
    if (!req) return;
    req.closed += closed;
    if (--req.waiting > 0) return;
    clearTimeout(req.timer);
    this.pending.delete(id);
    req.resolve(req.closed);
  }

  private onControl(origin: string, body: string): void {
    let msg: Control;
    try {
      msg = JSON.parse(body) as Control;
    } catch {
      return;
    }
    if (msg.op === 'closed') return this.answered(msg.id, msg.closed);
    if (msg.op !== 'disconnect') return;
    const closed = this.disconnectHandler(msg.userId, msg.code, msg.reason);
    const reply = `${this.nodeId}\n${JSON.stringify({ op: 'closed', id: msg.id, closed } satisfies Control)}`;
    this.cmd.spublish(this.key(`n:${origin}`), reply).catch(() => {});
  }

  // --- lease, re-registration, sweeping ---------------------------------------------------------------

  /** Re-registers everything the other nodes need to know about this node; runs on every (re)connect. */
  private resync(): void {
    if (this.closing || !this.connected) return;
    if (this.syncing) {
      this.resyncAgain = true;
      return;
    }
    this.syncing = this.doResync()
      .catch((err: unknown) => {
        this.lastError = (err as Error).message;
        this.log.debug({ err }, 'resync failed; retried on the next reconnect or lease renewal');
        this.needsResync = true;
      })
      .finally(() => {
        this.syncing = undefined;
        if (this.resyncAgain) {
          this.resyncAgain = false;
          this.resync();
        }
      });
  }

  private async doResync(): Promise<void> {
    const started = Date.now();
    this.needsResync = false;
    const fresh = randomBytes(8).toString('hex');
    const stored = (await this.cmd.set(this.key('epoch'), fresh, 'NX', 'GET')) as string | null;
    const epoch = stored ?? fresh;
    const first = this.epoch === undefined;
    const lost = !first && epoch !== this.epoch;
    const peers = this.livePeers;
    this.epoch = epoch;
    if (lost) {
      this.recoveryPeers = peers;
      await this.cmd.set(this.key('recovering'), this.nodeId, 'PX', this.recoveryMs, 'NX');
    }
    // Back from an outage, or Redis itself just started: the others get a whole lease (and a reconnect) to
    // renew theirs before any is judged.
    const sinceRedisStart = Number(/uptime_in_seconds:(\d+)/.exec(await this.cmd.info('server'))?.[1] ?? 0) * 1000;
    const wait = !first && (!this.state || lost) ? this.recoveryMs : Math.max(0, this.recoveryMs - sinceRedisStart);
    this.leasesTrustedAt = Math.max(this.leasesTrustedAt, Date.now() + wait);
    // A lease first, so that no other node sweeps this one while it re-registers.
    await this.cmd.multi().set(this.key(`node:${this.nodeId}`), 'syncing', 'PX', this.leaseMs).sadd(this.key('nodes'), this.nodeId).exec();
    await this.sub.ssubscribe(this.key(`n:${this.nodeId}`));
    const registered = await this.cmd.smembers(this.key(`topics:${this.nodeId}`));
    const stale = registered.filter((t) => !this.desired.has(t));
    if (stale.length > 0) {
      const m = this.cmd.multi();
      for (const t of stale) m.srem(this.key(`interest:${t}`), this.nodeId);
      await m.srem(this.key(`topics:${this.nodeId}`), ...stale).exec();
    }
    this.listening.clear();
    await Promise.all([...this.desired].map((t) => this.sync(t)));
    // Listening again: what was published while this node could not hear it comes from the history.
    this.streams.catchUp();
    await this.cmd.set(this.key(`node:${this.nodeId}`), epoch, 'PX', this.leaseMs);
    if (lost) await this.endRecovery(peers);
    // Last, and nothing awaited between its last pass and `up`: a connection opened meanwhile is not missed.
    const users = await this.presence.resync(lost);
    this.log.info(
      { topics: this.listening.size, connections: this.presence.local.size, onlineAgain: users, dataLost: lost, ms: Date.now() - started },
      this.state ? 're-registered in the cluster' : 'backplane up: registered in the cluster',
    );
    this.setState(true);
    for (const t of new Set([...this.desired, ...this.listening])) if (this.desired.has(t) !== this.listening.has(t)) this.sync(t).catch(() => {});
  }

  /**
   * After a data loss, publishes fail until every node this one knew alive is registered again, and for at
   * least RECOVERY_MIN_MS: a node that joined too recently to be known has reconnected by then.
   */
  private async endRecovery(peers: readonly string[]): Promise<void> {
    const keys = [this.key('recovering'), ...peers.map((n) => this.key(`node:${n}`))];
    if ((await sc(this.cmd).END_RECOVERY(keys.length, ...keys, this.recoveryMs, RECOVERY_MIN_MS, this.epoch ?? '')) === 1) this.recoveryPeers = undefined;
  }

  /** How long a recovery lasts at most (one lease, and never less than RECOVERY_MIN_MS). */
  private get recoveryMs(): number {
    return Math.max(this.leaseMs, RECOVERY_MIN_MS);
  }

  private renew(): void {
    if (!this.state || this.syncing) return;
    sc(this.cmd).RENEW(1, this.key(`node:${this.nodeId}`), this.epoch ?? '', this.leaseMs).then(
      (ok) => {
        if (ok === 0 || this.needsResync) {
          if (ok === 0) this.log.warn('lease lost (expired or Redis lost its data): re-registering');
          this.resync();
        }
      },
      () => {},
    );
  }

  /** Every sweepMs: the lock holder removes what dead nodes left behind and settles forgotten leaves. */
  private async sweep(): Promise<void> {
    if (!this.state) return;
    const nodes = await this.cmd.smembers(this.key('nodes'));
    const leases = nodes.length === 0 ? [] : await this.cmd.mget(...nodes.map((n) => this.key(`node:${n}`)));
    this.livePeers = nodes.filter((_, i) => leases[i] !== null);
    if (this.recoveryPeers) await this.endRecovery(this.recoveryPeers);
    if (Date.now() < this.leasesTrustedAt) return;
    if ((await this.cmd.set(this.key('sweep'), this.nodeId, 'PX', this.sweepMs, 'NX')) === null) return;
    for (const [i, node] of nodes.entries()) if (leases[i] === null && node !== this.nodeId) await this.sweepNode(node);
    const gone = (await sc(this.cmd).STALE(2, this.key('leaving'), this.key('leaving:by'), this.leaseMs, this.key('node:'), this.key('user:'))) as string[];
    for (const userId of gone) this.presence.changed('user:offline', userId);
  }

  private async sweepNode(node: string): Promise<void> {
    const nodeKey = this.key(`node:${node}`);
    const connsKey = this.key(`conns:${node}`);
    let cursor = '0';
    let removed = 0;
    const offline: string[] = [];
    do {
      const [next, flat] = await this.cmd.hscan(connsKey, cursor, 'COUNT', 500);
      cursor = next;
      if (flat.length === 0) continue;
      const keys: string[] = [nodeKey, connsKey];
      for (let i = 1; i < flat.length; i += 2) keys.push(this.key(`user:${flat[i]}`));
      const gone = await sc(this.cmd).SWEEP(keys.length, ...keys, ...flat);
      if (gone === -1) return;
      removed += flat.length / 2;
      for (const userId of gone as string[]) {
        offline.push(userId);
        this.presence.changed('user:offline', userId);
      }
    } while (cursor !== '0');
    await sc(this.cmd).FORGET_NODE(4, nodeKey, connsKey, this.key(`topics:${node}`), this.key('nodes'), node, this.key('interest:'));
    this.log.warn({ deadNode: node, connections: removed, offline: offline.length }, 'node lease expired: its connections removed from presence');
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const t of this.timers) clearInterval(t);
    for (const req of this.pending.values()) clearTimeout(req.timer);
    if (this.state) {
      try {
        await this.presence.drain();
        const topics = await this.cmd.smembers(this.key(`topics:${this.nodeId}`));
        const m = this.cmd.multi();
        for (const t of topics) m.srem(this.key(`interest:${t}`), this.nodeId);
        // Without a lease, the leaves this node did not settle are settled by the others at their deadline.
        await m.del(this.key(`topics:${this.nodeId}`), this.key(`node:${this.nodeId}`)).srem(this.key('nodes'), this.nodeId).exec();
      } catch (err) {
        this.log.warn({ err }, 'could not unregister from the cluster: the others will sweep this node when its lease expires');
      }
    }
    this.state = false;
    this.cmd.disconnect();
    this.sub.disconnect();
  }
}

