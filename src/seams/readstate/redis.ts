// Read state in Redis (cluster mode), next to the history of the personal topics it counts in.
//
// Layout (after the backplane's prefix):
//   r:<user>    hash {allUpTo, epoch of user:<user> it counts in}
//   ri:<user>   set of the notification ids read one by one
// Both expire after the personal topic's history TTL (the user namespace's, else HISTORY_TTL_S) from their
// last write, so they outlive every notification they mark read. Nothing is written while the personal topic
// has no history (no position hash). The epoch is read from h:user:<user>, the position hash of the personal
// topic (seams/history/redis.ts), in the same script.
import type { Redis } from 'ioredis';
import { ErrorCode, WireError } from '../../wire/codes.js';
import type { ReadChange, ReadState, ReadStateStore } from './types.js';

// Read state counts offsets of one epoch of the personal topic: it is stored with that epoch and ignored
// once the topic has another (its position key expired or Redis lost it, and offsets restarted at 1).
// KEYS: read hash, read-ids set, the personal topic's position hash; ARGV: allUpTo, ttl ms.
export const READ_ALL = `
local epoch = redis.call('HGET', KEYS[3], 'epoch')
if not epoch then return 0 end
local cur = 0
if redis.call('HGET', KEYS[1], 'epoch') == epoch then cur = tonumber(redis.call('HGET', KEYS[1], 'allUpTo') or '0') end
if tonumber(ARGV[1]) > cur then cur = tonumber(ARGV[1]) end
redis.call('HSET', KEYS[1], 'allUpTo', cur, 'epoch', epoch)
redis.call('DEL', KEYS[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

// KEYS: read-ids set, the personal topic's position hash; ARGV: id, ttl ms.
export const READ_ONE = `
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

// KEYS: read hash, read-ids set, the personal topic's position hash. Returns {allUpTo, ids...}.
export const READ_STATE = `
local all = 0
local epoch = redis.call('HGET', KEYS[3], 'epoch')
if epoch and redis.call('HGET', KEYS[1], 'epoch') == epoch then all = tonumber(redis.call('HGET', KEYS[1], 'allUpTo') or '0') end
local out = {all}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do out[#out + 1] = id end
return out`;

const SCRIPTS = { READ_ALL, READ_ONE, READ_STATE };
type Scripts = { [K in keyof typeof SCRIPTS]: (numKeys: number, ...args: (string | number)[]) => Promise<unknown> };
const rs = (r: object) => r as Scripts;

function unavailable(err: unknown): never {
  if (err instanceof WireError) throw err;
  throw new WireError(ErrorCode.UNAVAILABLE, 'read state unavailable: the cluster store (Redis) cannot be reached', 503);
}

export class RedisReadState implements ReadStateStore {
  constructor(
    private readonly cmd: Redis,
    /** A key of the user's partition (backplane/redis/keys.ts: that of its topic `user:<id>`, with its history). */
    private readonly keyOf: (userId: string, name: string) => string,
    /** The TTL of `user:<id>`'s history, ms: read state lives as long as the history it refers to. */
    private readonly ttlMsOf: (userId: string) => number,
  ) {
    for (const [name, lua] of Object.entries(SCRIPTS)) cmd.defineCommand(name, { lua });
  }

  async get(userId: string): Promise<ReadState> {
    const [all, ...ids] = (await rs(this.cmd).READ_STATE(3, this.keyOf(userId, `r:${userId}`), this.keyOf(userId, `ri:${userId}`), this.keyOf(userId, `h:user:${userId}`)).catch(unavailable)) as [number, ...string[]];
    // Ids are notification UUIDs: ids of an older epoch can never match a newer notification.
    return { allUpTo: all, ids: new Set(ids) };
  }

  async mark(userId: string, change: ReadChange): Promise<void> {
    const ttl = this.ttlMsOf(userId);
    if ('id' in change) {
      await rs(this.cmd).READ_ONE(2, this.keyOf(userId, `ri:${userId}`), this.keyOf(userId, `h:user:${userId}`), change.id, ttl).catch(unavailable);
    } else {
      await rs(this.cmd).READ_ALL(3, this.keyOf(userId, `r:${userId}`), this.keyOf(userId, `ri:${userId}`), this.keyOf(userId, `h:user:${userId}`), change.allUpTo, ttl).catch(unavailable);
    }
  }
}
