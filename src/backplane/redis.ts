// Cluster backplane on one Redis 7 primary: sharded pub/sub for frames, Lua-atomic presence, node leases.
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
import { ErrorCode, WireError } from '../errors.js';
import type { Backplane, DisconnectHandler, FrameHandler, PresenceChange, PresenceStore } from './types.js';

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
}

// KEYS: interest set, recovering flag, channel; ARGV: message, lease key prefix, own node id.
// 0: no other node listens (nothing sent); 1: sent to all; -1: recovering; -2: an interested node missed it.
const PUBLISH = `
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local expected, self = 0, 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if node == ARGV[3] then self = 1
  elseif redis.call('EXISTS', ARGV[2] .. node) == 1 then expected = expected + 1 end
end
if expected == 0 then return 0 end
if redis.call('SPUBLISH', KEYS[3], ARGV[1]) - self < expected then return -2 end
return 1`;

const ADD = `
local had = redis.call('HLEN', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
if had > 0 then return 0 end
redis.call('ZREM', KEYS[3], ARGV[3])
if redis.call('HDEL', KEYS[4], ARGV[3]) == 1 then return 0 end
return 1`;

// ARGV[5] = "force": mark the user leaving if it has no connection, even if this one was not registered
// (used after an outage for connections that closed while Redis was unreachable).
const REMOVE = `
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 and ARGV[5] ~= 'force' then return 0 end
if redis.call('HLEN', KEYS[1]) > 0 or redis.call('HEXISTS', KEYS[4], ARGV[2]) == 1 then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[3], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[3]), ARGV[2])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[4])
return 1`;

const SETTLE = `
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HLEN', KEYS[1]) > 0 then return 0 end
return 1`;

// KEYS: node lease, node conns, then one user hash per connection; ARGV: connection id, user id pairs.
// Returns the users left without any connection, or -1 when the node is alive again.
const SWEEP = `
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local gone = {}
for i = 3, #KEYS do
  local conn, user = ARGV[(i - 3) * 2 + 1], ARGV[(i - 3) * 2 + 2]
  redis.call('HDEL', KEYS[2], conn)
  if redis.call('HDEL', KEYS[i], conn) == 1 and redis.call('HLEN', KEYS[i]) == 0 then gone[#gone + 1] = user end
end
return gone`;

const FORGET_NODE = `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HLEN', KEYS[2]) > 0 then return 0 end
for _, topic in ipairs(redis.call('SMEMBERS', KEYS[3])) do redis.call('SREM', ARGV[2] .. topic, ARGV[1]) end
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return 1`;

// Leaves past their deadline whose node is gone, or past it by a whole lease (the node failed to settle).
const STALE = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1000)
local gone = {}
for i = 1, #due, 2 do
  local user, deadline = due[i], tonumber(due[i + 1])
  local by = redis.call('HGET', KEYS[2], user)
  local node = by and string.match(by, '^(%S+) ')
  if not node or deadline < now - tonumber(ARGV[1]) or redis.call('EXISTS', ARGV[2] .. node) == 0 then
    redis.call('ZREM', KEYS[1], user)
    redis.call('HDEL', KEYS[2], user)
    if node and redis.call('HLEN', ARGV[3] .. user) == 0 then gone[#gone + 1] = user end
  end
end
return gone`;

// Ends a recovery once it is old enough (KEYS[1] set with PX = ARGV[1]) for every live node to have
// reconnected (ARGV[2] ms, above ioredis' longest retry delay) and every node in KEYS[2..] is registered again.
const END_RECOVERY = `
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 1 end
if tonumber(ARGV[1]) - ttl < tonumber(ARGV[2]) then return 0 end
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[3] then return 0 end
end
redis.call('DEL', KEYS[1])
return 1`;

const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

type Control =
  | { op: 'disconnect'; id: string; userId: string; code: number; reason: string }
  | { op: 'closed'; id: string; closed: number };

interface PendingDisconnect {
  waiting: number;
  closed: number;
  resolve(n: number): void;
  timer: NodeJS.Timeout;
}

/** Longer than the longest reconnect delay of retryStrategy (1.1 s) plus a re-registration. */
const RECOVERY_MIN_MS = 2500;

const SCRIPTS = { PUBLISH, ADD, REMOVE, SETTLE, SWEEP, FORGET_NODE, STALE, END_RECOVERY, RENEW };
type Scripts = { [K in keyof typeof SCRIPTS]: (numKeys: number, ...args: (string | number)[]) => Promise<unknown> };
/** The scripts as commands: ioredis sends EVALSHA (the body only once, on NOSCRIPT), in pipelines too. */
const sc = (r: object) => r as Scripts;

const unavailable = (what: string) => new WireError(ErrorCode.UNAVAILABLE, `${what}: the cluster store (Redis) cannot be reached`, 503);

export class RedisBackplane implements Backplane {
  readonly kind = 'redis';
  readonly nodeId: string;
  readonly presence: RedisPresence;
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly p: string;
  private readonly log: Logger;
  private readonly leaseMs: number;
  readonly sweepMs: number;
  private readonly timeoutMs: number;
  private state = false;
  private closing = false;
  private frameHandler: FrameHandler = () => {};
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

  async publish(topic: string, frame: string): Promise<void> {
    // Not before this node's own re-registration: until then it cannot tell a data loss from an empty topic.
    if (!this.state) throw unavailable('not delivered to the other nodes');
    let r: unknown;
    try {
      r = await sc(this.cmd).PUBLISH(3, this.key(`interest:${topic}`), this.key('recovering'), this.key(`t:${topic}`), `${this.nodeId}\n${frame}`, this.key('node:'), this.nodeId);
    } catch {
      throw unavailable('not delivered to the other nodes');
    }
    if (r === -1) throw new WireError(ErrorCode.UNAVAILABLE, 'the cluster is re-registering after Redis lost its data', 503);
    if (r === -2) throw new WireError(ErrorCode.UNAVAILABLE, 'a node listening to this topic is not connected to Redis', 503);
  }

  onFrame(handler: FrameHandler): void {
    this.frameHandler = handler;
  }

  interest(topic: string, on: boolean): void {
    if (this.closing) return;
    if (on) this.desired.add(topic);
    else this.desired.delete(topic);
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
    if (origin === this.nodeId) return;
    const body = message.slice(nl + 1);
    if (channel === this.key(`n:${this.nodeId}`)) this.onControl(origin, body);
    else this.frameHandler(channel.slice(this.p.length + 2), body);
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
    const lost = this.epoch !== undefined && epoch !== this.epoch;
    const peers = this.livePeers;
    this.epoch = epoch;
    if (lost) {
      this.recoveryPeers = peers;
      await this.cmd.set(this.key('recovering'), this.nodeId, 'PX', this.leaseMs, 'NX');
    }
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
    const minMs = Math.min(RECOVERY_MIN_MS, this.leaseMs);
    if ((await sc(this.cmd).END_RECOVERY(keys.length, ...keys, this.leaseMs, minMs, this.epoch ?? '')) === 1) this.recoveryPeers = undefined;
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

/** Presence in Redis, mirrored locally so that this node can re-register its connections after an outage. */
export class RedisPresence implements PresenceStore {
  /** Open connections on this node: connection id -> user id. */
  readonly local = new Map<string, string>();
  /** Connections that closed while Redis was unreachable, applied at the next resync. */
  private readonly lost = new Map<string, string>();
  private readonly inflight = new Set<Promise<unknown>>();
  private changesWhileDown = 0;
  private handler: PresenceChange = () => {};

  constructor(
    private readonly bp: RedisBackplane,
    private readonly cmd: Redis,
    private readonly p: string,
    private readonly graceMs: number,
  ) {}

  onChange(handler: PresenceChange): void {
    this.handler = handler;
  }

  changed(type: 'user:online' | 'user:offline', userId: string): void {
    this.handler(type, userId);
  }

  private keys(userId: string): string[] {
    return [`${this.p}user:${userId}`, `${this.p}conns:${this.bp.nodeId}`, `${this.p}leaving`, `${this.p}leaving:by`];
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  async add(userId: string, connectionId: string): Promise<boolean> {
    this.local.set(connectionId, userId);
    this.lost.delete(connectionId);
    if (!this.bp.up) {
      this.changesWhileDown++;
      return false;
    }
    try {
      return (await this.track(sc(this.cmd).ADD(4, ...this.keys(userId), connectionId, this.bp.nodeId, userId))) === 1;
    } catch {
      this.bp.dirty();
      return false; // the next resync registers it, and reports it online if it is the first
    }
  }

  async remove(userId: string, connectionId: string): Promise<boolean> {
    this.local.delete(connectionId);
    if (this.bp.up) {
      try {
        const marker = `${this.bp.nodeId} ${connectionId}`;
        return (await this.track(sc(this.cmd).REMOVE(4, ...this.keys(userId), connectionId, userId, this.graceMs, marker, ''))) === 1;
      } catch {
        // fall through
      }
    }
    this.lost.set(connectionId, userId);
    this.changesWhileDown++;
    this.bp.dirty();
    return false;
  }

  async settle(userId: string, connectionId: string): Promise<boolean> {
    const [user, , leaving, leavingBy] = this.keys(userId);
    const marker = `${this.bp.nodeId} ${connectionId}`;
    try {
      return (await this.track(sc(this.cmd).SETTLE(3, user!, leaving!, leavingBy!, userId, marker))) === 1;
    } catch {
      return false; // a surviving node settles it one lease after its deadline (reported through onChange)
    }
  }

  async online(userIds: readonly string[]): Promise<string[]> {
    if (userIds.length === 0) return [];
    if (!this.bp.up) throw unavailable('presence unavailable');
    try {
      const m = this.cmd.pipeline();
      for (const id of userIds) m.exists(`${this.p}user:${id}`);
      m.hmget(`${this.p}leaving:by`, ...userIds);
      const res = (await m.exec())!;
      const leaving = res[userIds.length]![1] as (string | null)[];
      return userIds.filter((_, i) => res[i]![1] === 1 || leaving[i] !== null);
    } catch {
      throw unavailable('presence unavailable');
    }
  }

  async count(userId: string): Promise<number> {
    if (!this.bp.up) throw unavailable('presence unavailable');
    return this.cmd.hlen(`${this.p}user:${userId}`).catch(() => Promise.reject(unavailable('presence unavailable')));
  }

  /**
   * Makes Redis agree with this node again: registers every local connection, and marks leaving the users
   * whose connections here closed meanwhile (a surviving node settles them one lease after their grace).
   * Returns how many users were reported online again; none after a data loss (`silent`), when every node
   * re-registers users that were online all along.
   */
  async resync(silent: boolean): Promise<number> {
    let again = 0;
    let seen: number;
    do {
      seen = this.changesWhileDown;
      again += await this.resyncPass(silent);
    } while (seen !== this.changesWhileDown);
    return again;
  }

  private async resyncPass(silent: boolean): Promise<number> {
    const connsKey = `${this.p}conns:${this.bp.nodeId}`;
    const registered = await this.cmd.hgetall(connsKey);
    const removals = new Map(this.lost);
    for (const [conn, user] of Object.entries(registered)) if (!this.local.has(conn)) removals.set(conn, user);
    const adds = [...this.local].filter(([conn]) => registered[conn] === undefined);
    const m = this.cmd.pipeline();
    for (const [conn, user] of removals) sc(m).REMOVE(4, ...this.keys(user), conn, user, this.graceMs, `${this.bp.nodeId} ${conn}`, 'force');
    for (const [conn, user] of adds) sc(m).ADD(4, ...this.keys(user), conn, this.bp.nodeId, user);
    const res = (await m.exec()) ?? [];
    const failed = res.find(([err]) => err);
    if (failed) throw failed[0];
    for (const conn of removals.keys()) this.lost.delete(conn);
    let again = 0;
    adds.forEach(([, user], i) => {
      if (res[removals.size + i]![1] === 1 && !silent) {
        again++;
        this.changed('user:online', user);
      }
    });
    return again;
  }

  /** Waits (a bounded time) for presence writes in flight, before the node unregisters. */
  async drain(): Promise<void> {
    await Promise.race([Promise.allSettled([...this.inflight]), new Promise((r) => setTimeout(r, 2000).unref())]);
  }
}
