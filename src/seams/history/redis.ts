// History in Redis (cluster mode): one stream and one position hash per recoverable topic. Appends
// happen in the backplane's RECORD script, atomically with their publication.
//
// Layout (after the backplane's prefix):
//   h:<topic>   hash {epoch, offset}: the topic's position; a new epoch whenever it is missing
//   s:<topic>   stream of {o: offset, f: frame}, capped to HISTORY_SIZE and HISTORY_TTL_S
// (Read state, r:<user> and ri:<user>, is seams/readstate/redis.ts: it counts in the epoch of h:user:<user>.)
// Every key expires HISTORY_TTL_S after its last write: a topic idle that long starts a new epoch.
import type { Redis } from 'ioredis';
import { ErrorCode, WireError } from '../../wire/codes.js';
import { newEpoch } from './epoch.js';
import type { ClusterHistory, Position, Replay } from './types.js';

// KEYS: position hash, stream; ARGV: new epoch candidate, ttl ms. Returns {epoch, offset}.
export const POSITION = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {epoch, tonumber(redis.call('HGET', KEYS[1], 'offset'))}`;

// KEYS: position hash, stream; ARGV: epoch, offset, upTo, ttl ms.
// Returns {epoch, offset, recovered (0/1), frames...}: frames in (offset, upTo] when all are still stored.
export const SINCE = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local current = tonumber(redis.call('HGET', KEYS[1], 'offset') or '0')
if not epoch or epoch ~= ARGV[1] or tonumber(ARGV[2]) > current then return {epoch or '', current, 0} end
local t = redis.call('TIME')
redis.call('XTRIM', KEYS[2], 'MINID', t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(ARGV[4]))
local from, upTo = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {epoch, current, 1}
if from >= upTo or from >= current then return out end
local entries = redis.call('XRANGE', KEYS[2], '-', '+')
if #entries == 0 or tonumber(entries[1][2][2]) > from + 1 then return {epoch, current, 0} end
for _, e in ipairs(entries) do
  local o = tonumber(e[2][2])
  if o > from and o <= upTo then out[#out + 1] = e[2][4] end
end
return out`;

// KEYS: position hash, stream, interest set, recovering flag, channel, and the idempotency record when the
// publish has a key; ARGV: head, tail, new epoch candidate, max length, ttl ms, origin tag ("*" or
// "*<node>/<token>"), idempotency window ms, request fingerprint. Appends and publishes in one step, so every
// node receives a topic's numbered frames in offset order (the origin too: origin "*").
// Returns {status, epoch, offset, frame}: status 1 sent to every interested node (or none listens),
// -1 the cluster is re-registering (nothing appended), -2 an interested node missed it (appended: recoverable),
// 2 a duplicate of a publish already stored under this key (nothing appended or sent; -2 instead while an
// interested node is not listening), -3 the key was used for another request (nothing done).
// Every node in the interest set is expected, whether its lease is alive or not (see PUBLISH in
// backplane/redis/scripts.ts). The frame it builds is wire/position.ts's numberedFrame(), byte for byte.
export const RECORD = `
local expected = redis.call('SCARD', KEYS[3])
if KEYS[6] then
  local prior = redis.call('GET', KEYS[6])
  if prior then
    local fp, epoch, off = string.match(prior, '^(%S*) (%S+) (%d+)$')
    if fp ~= ARGV[8] then return {-3} end
    if redis.call('PUBSUB', 'SHARDNUMSUB', KEYS[5])[2] < expected then return {-2, epoch, tonumber(off), ''} end
    return {2, epoch, tonumber(off), ''}
  end
end
if redis.call('EXISTS', KEYS[4]) == 1 then return {-1} end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[3]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
end
local off = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local frame = ARGV[1] .. ',"epoch":"' .. epoch .. '","offset":' .. off .. ARGV[2]
local t = redis.call('TIME')
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], '*', 'o', off, 'f', frame)
redis.call('XTRIM', KEYS[2], 'MINID', t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(ARGV[5]))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if KEYS[6] then redis.call('SET', KEYS[6], ARGV[8] .. ' ' .. epoch .. ' ' .. off, 'PX', ARGV[7]) end
local status = 1
if expected > 0 and redis.call('SPUBLISH', KEYS[5], ARGV[6] .. '\\n' .. frame) < expected then status = -2 end
return {status, epoch, off, frame}`;

// A topic whose offsets went back within one epoch (Redis restarted from data older than what a node had
// delivered: an fsync lost the last writes) starts a new epoch, so that no offset names two events.
// KEYS: position hash, stream; ARGV: the epoch, the highest offset a node delivered in it. Returns 1 when reset.
export const REWOUND = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'offset') or '0') >= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1`;

export const HISTORY_SCRIPTS = { POSITION, SINCE, RECORD, REWOUND };
type Scripts = { [K in keyof typeof HISTORY_SCRIPTS]: (numKeys: number, ...args: (string | number)[]) => Promise<unknown> };
export const hs = (r: object) => r as Scripts;

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
}

export class RedisHistory implements ClusterHistory {
  readonly kind = 'redis';
  /** Appends are the backplane's RECORD (RedisBackplane.publishRecorded), atomic with the publication. */
  readonly appends = 'backplane' as const;

  constructor(
    private readonly cmd: Redis,
    private readonly key: (name: string) => string,
    readonly options: RedisHistoryOptions,
  ) {
    for (const [name, lua] of Object.entries(HISTORY_SCRIPTS)) cmd.defineCommand(name, { lua });
  }

  async position(topic: string): Promise<Position> {
    const [epoch, offset] = (await hs(this.cmd).POSITION(2, this.key(`h:${topic}`), this.key(`s:${topic}`), newEpoch(), this.options.ttlMs).catch(unavailable)) as [string, number];
    return { epoch, offset };
  }

  async since(topic: string, epoch: string, offset: number, upTo: number): Promise<Replay> {
    const r = (await hs(this.cmd).SINCE(2, this.key(`h:${topic}`), this.key(`s:${topic}`), epoch, offset, upTo, this.options.ttlMs).catch(unavailable)) as [string, number, number, ...string[]];
    const [curEpoch, curOffset, recovered, ...frames] = r;
    return { recovered: recovered === 1, frames: recovered === 1 ? frames : [], position: { epoch: curEpoch, offset: curOffset } };
  }

  /** See REWOUND: after it, the topic's next event opens a new epoch. */
  async rewound(topic: string, epoch: string, delivered: number): Promise<boolean> {
    return (await hs(this.cmd).REWOUND(2, this.key(`h:${topic}`), this.key(`s:${topic}`), epoch, delivered).catch(unavailable)) === 1;
  }

  async latest(topic: string, limit: number): Promise<string[]> {
    const entries = await this.cmd.xrevrange(this.key(`s:${topic}`), '+', '-', 'COUNT', limit).catch(unavailable);
    const cutoff = Date.now() - this.options.ttlMs;
    return entries.filter(([id]) => Number(id.split('-')[0]) >= cutoff).map(([, fields]) => fields[3]!);
  }

  async close(): Promise<void> {}
}
