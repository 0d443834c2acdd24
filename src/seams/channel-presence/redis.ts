// Channel presence in Redis (cluster mode), mirrored locally so that a node can re-register its share after
// an outage. It lives with the membership of the backplane (seams/backplane/redis/membership.ts): each
// re-registration rewrites this node's share, and the sweep of a dead node removes it.
//
// Layout (after the backplane's prefix); one channel's keys share the `{<channel>}` hash tag (one slot):
//   cp:{<channel>}:u         hash user -> connections counted in the channel, on every node
//   cp:{<channel>}:n:<node>  hash connection id -> user of one node's connections in the channel
//   cpn:<node>               set of the channels where the node has connections (to sweep it when it dies)
import type { Redis } from 'ioredis';
import { ErrorCode, WireError } from '../../wire/codes.js';
import type { ChannelMembers, ChannelPresenceStore } from './types.js';

// KEYS: users hash, node hash; ARGV: connection, user.
const CP_ADD = `
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return 1`;

// KEYS: users hash, node hash; ARGV: connection.
const CP_REMOVE = `
local user = redis.call('HGET', KEYS[2], ARGV[1])
if not user then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HINCRBY', KEYS[1], user, -1) <= 0 then redis.call('HDEL', KEYS[1], user) end
return 1`;

// Replaces one node's share of a channel by ARGV (connection, user pairs; none: the node leaves it).
// KEYS: users hash, node hash.
const CP_REPLACE = `
local old = redis.call('HGETALL', KEYS[2])
for i = 1, #old, 2 do
  if redis.call('HINCRBY', KEYS[1], old[i + 1], -1) <= 0 then redis.call('HDEL', KEYS[1], old[i + 1]) end
end
redis.call('DEL', KEYS[2])
for i = 1, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 then redis.call('HINCRBY', KEYS[1], ARGV[i + 1], 1) end
end
return 1`;

// KEYS: users hash; ARGV: max members. Returns {count, members...}.
const CP_READ = `
local n = redis.call('HLEN', KEYS[1])
local max = tonumber(ARGV[1])
local out = {n}
if max == 0 or n == 0 then return out end
local ids = n <= max and redis.call('HKEYS', KEYS[1]) or redis.call('HRANDFIELD', KEYS[1], max)
for _, id in ipairs(ids) do out[#out + 1] = id end
return out`;

const SCRIPTS = { CP_ADD, CP_REMOVE, CP_REPLACE, CP_READ };
type Scripts = { [K in keyof typeof SCRIPTS]: (numKeys: number, ...args: (string | number)[]) => Promise<unknown> };
const cs = (r: object) => r as Scripts;

/** What channel presence needs of its node's backplane (RedisPresence's PresenceNode). */
export interface ChannelPresenceNode {
  readonly nodeId: string;
  /** Redis reachable and this node registered. */
  readonly up: boolean;
  /** A write failed without a disconnect: re-register at the next lease renewal. */
  dirty(): void;
}

const unavailable = () => new WireError(ErrorCode.UNAVAILABLE, 'channel presence unavailable: the cluster store (Redis) cannot be reached', 503);

export class RedisChannelPresence implements ChannelPresenceStore {
  /** This node's connections per channel: channel -> connection id -> user. */
  private readonly local = new Map<string, Map<string, string>>();
  private readonly inflight = new Set<Promise<unknown>>();
  private changesWhileDown = 0;

  constructor(
    private readonly node: ChannelPresenceNode,
    private readonly cmd: Redis,
    private readonly key: (name: string) => string,
  ) {
    for (const [name, lua] of Object.entries(SCRIPTS)) cmd.defineCommand(name, { lua });
  }

  private users(channel: string): string {
    return this.key(`cp:{${channel}}:u`);
  }

  private share(channel: string, node: string): string {
    return this.key(`cp:{${channel}}:n:${node}`);
  }

  private index(node: string): string {
    return this.key(`cpn:${node}`);
  }

  private track(p: Promise<unknown>): Promise<void> {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
    return p.then(
      () => undefined,
      () => {
        // Applied by the next re-registration (membership's lease renewal).
        this.changesWhileDown++;
        this.node.dirty();
      },
    );
  }

  async add(channel: string, userId: string, connectionId: string): Promise<void> {
    let conns = this.local.get(channel);
    const first = conns === undefined;
    if (conns === undefined) {
      conns = new Map();
      this.local.set(channel, conns);
    }
    if (conns.has(connectionId)) return;
    conns.set(connectionId, userId);
    if (!this.node.up) {
      this.changesWhileDown++;
      this.node.dirty();
      return;
    }
    // The index first, so a share is never unindexed.
    const added = () => cs(this.cmd).CP_ADD(2, this.users(channel), this.share(channel, this.node.nodeId), connectionId, userId);
    // With Redis Cluster the index and the channel are on different shards: the index is awaited first.
    await this.track(first ? this.cmd.sadd(this.index(this.node.nodeId), channel).then(added) : added());
  }

  async remove(channel: string, _userId: string, connectionId: string): Promise<void> {
    const conns = this.local.get(channel);
    if (!conns?.delete(connectionId)) return;
    const last = conns.size === 0;
    if (last) this.local.delete(channel);
    if (!this.node.up) {
      this.changesWhileDown++;
      this.node.dirty();
      return;
    }
    await this.track(Promise.all([cs(this.cmd).CP_REMOVE(2, this.users(channel), this.share(channel, this.node.nodeId), connectionId), last ? this.cmd.srem(this.index(this.node.nodeId), channel) : undefined]));
  }

  async read(channel: string, max: number): Promise<ChannelMembers> {
    if (!this.node.up) throw unavailable();
    let res: unknown;
    try {
      res = await cs(this.cmd).CP_READ(1, this.users(channel), max);
    } catch {
      throw unavailable();
    }
    const [count, ...members] = res as [number, ...string[]];
    return { count, members };
  }

  /**
   * Makes Redis agree with this node again (every (re)connect, lease renewal after a failed write, data loss):
   * this node's share of every channel it has connections in is rewritten, and the channels it left meanwhile
   * are cleared.
   */
  async resync(): Promise<void> {
    let seen: number;
    do {
      seen = this.changesWhileDown;
      await this.resyncPass();
    } while (seen !== this.changesWhileDown);
  }

  private async resyncPass(): Promise<void> {
    const node = this.node.nodeId;
    const indexed = await this.cmd.smembers(this.index(node));
    // Sent together, not as one pipeline: with Redis Cluster the channels are in many slots. The index is
    // written first, so that a share is never unindexed.
    if (this.local.size > 0) await this.cmd.sadd(this.index(node), ...this.local.keys());
    const writes: Promise<unknown>[] = [];
    for (const channel of indexed) if (!this.local.has(channel)) writes.push(cs(this.cmd).CP_REPLACE(2, this.users(channel), this.share(channel, node)));
    for (const [channel, conns] of this.local) writes.push(cs(this.cmd).CP_REPLACE(2, this.users(channel), this.share(channel, node), ...[...conns].flat()));
    await Promise.all(writes);
    const gone = indexed.filter((c) => !this.local.has(c));
    if (gone.length > 0) await this.cmd.srem(this.index(node), ...gone);
  }

  /**
   * Removes what a dead node left in every channel, channel by channel, stopping when it is found alive again
   * (its re-registration rewrites its share). Returns how many channels were cleared.
   */
  async sweepNode(node: string, alive: () => Promise<boolean>): Promise<number> {
    const channels = await this.cmd.smembers(this.index(node));
    let cleared = 0;
    for (const channel of channels) {
      if (await alive()) return cleared;
      await cs(this.cmd).CP_REPLACE(2, this.users(channel), this.share(channel, node));
      await this.cmd.srem(this.index(node), channel);
      cleared++;
    }
    return cleared;
  }

  /** Leaves every channel (the node is going away): waits for writes in flight, then clears its share. */
  async unregister(): Promise<void> {
    await Promise.race([Promise.allSettled([...this.inflight]), new Promise((r) => setTimeout(r, 2000).unref())]);
    this.local.clear();
    await this.sweepNode(this.node.nodeId, async () => false);
  }
}
