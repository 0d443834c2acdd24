// History in Redis (cluster mode): one stream and one position hash per recoverable topic, created by the
// first stored event (never by a read). Appends happen in the backplane's RECORD script, atomically with
// their publication.
//
// Layout (after the backplane's prefix):
//   h:<topic>   hash {epoch, offset, born}: the topic's position and when (Redis ms) its epoch began; made by
//               the first event stored, never by a read
//   s:<topic>   stream of {o: offset, f: frame}, capped to HISTORY_SIZE and HISTORY_TTL_S
//   hu:<topic>  list of the stream ids of the user-sent entries of s:<topic> (RecordOptions.user), oldest
//               first: past the user share the oldest of them is deleted from the stream, never another entry.
//               Every other trim (count, age, bytes) drops a stream's oldest entries, so ids whose entry is
//               gone are always at its head: RECORD pops them from there. Same TTL as the stream.
//   hz          the base of the epoch told for topics with no history (random, written once per Redis
//               lifetime: when Redis loses its data it is drawn again)
//   hbytes      bytes of every frame held in every s:<topic>, for HISTORY_MAX_BYTES (a global key)
//   hsizes      hash topic -> bytes held in s:<topic>; hage: zset topic -> Redis ms of its oldest held event.
//               The byte bound drops from the oldest topic of hage; topics whose keys expired are swept from
//               both by every RECORD (two at a time), so the books converge without a timer.
//   huage       zset topic -> Redis ms of its oldest user-sent entry (the head of hu:<topic>): the byte bound
//               drops user-sent events (the oldest anywhere) before any other. A place another trim left
//               behind (the entry gone, the keys expired) is put right, or removed, when the bound reaches it.
// hz, hbytes, hsizes, hage and huage are the only keys shared by all topics: with Redis Cluster (a later issue) they
// would need a slot of their own and the byte bound a different design; every other key of a topic is
// named by the topic alone.
// A user-sent entry deleted for the share leaves a hole in the stream's offsets: a replay across it is
// `recovered: false` (SINCE), never a silent skip, as in memory.
// (Read state, r:<user> and ri:<user>, is seams/readstate/redis.ts: it counts in the epoch of h:user:<user>.)
// Every topic key expires HISTORY_TTL_S after its last write: a topic idle that long starts a new epoch.
//
// The epoch of a topic with no history: `<hz>-<n>`, n = floor(Redis ms / HISTORY_TTL). A resume from
// (`<hz>-<n>`, 0) recovers a topic's history from its first event when that history began in period n:
// no earlier lifetime of the topic can have begun and ended (expired, TTL after its last write) after the
// position was told and before a lifetime that began in the same period. A history that began later may
// follow one that was lost: `recovered: false`.
import type { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { ErrorCode, WireError } from '../../wire/codes.js';
import { newEpoch } from './epoch.js';
import type { ClusterHistory, Position, Replay } from './types.js';

// Lua shared by the scripts: the byte books (hbytes, hsizes, hage) kept with every change of a stream.
// B = {bytes, sizes, age} key names.
const BOOKS = `
local function now_ms() local t = redis.call('TIME') return t[1] * 1000 + math.floor(t[2] / 1000) end
local function entry_ms(id) return tonumber(string.match(id, '^(%d+)')) end
local function sum(entries) local n = 0 for _, e in ipairs(entries) do n = n + #e[2][4] end return n end
-- After a stream of topic changed by delta bytes: the totals, and the topic's place in the age index.
local function rebook(B, topic, s, delta)
  if delta ~= 0 then
    redis.call('INCRBY', B[1], delta)
    redis.call('HINCRBY', B[2], topic, delta)
  end
  local first = redis.call('XRANGE', s, '-', '+', 'COUNT', 1)
  if #first == 0 then
    local rest = tonumber(redis.call('HGET', B[2], topic) or '0')
    if rest ~= 0 then redis.call('INCRBY', B[1], -rest) end
    redis.call('HDEL', B[2], topic)
    redis.call('ZREM', B[3], topic)
  else
    redis.call('ZADD', B[3], entry_ms(first[1][1]), topic)
  end
end
-- Drops the events older than minms; returns the bytes freed.
local function trim_age(s, minms)
  local old = redis.call('XRANGE', s, '-', '(' .. minms .. '-0')
  if #old == 0 then return 0 end
  redis.call('XTRIM', s, 'MINID', minms)
  return -sum(old)
end
-- Drops the oldest event anywhere (or, with none held, zeroes the total).
local function bound_any(B, prefix)
  local oldest = redis.call('ZRANGE', B[3], 0, 0)
  if #oldest == 0 then
    redis.call('SET', B[1], 0)
    return
  end
  local topic = oldest[1]
  local s = prefix .. 's:' .. topic
  local first = redis.call('XRANGE', s, '-', '+', 'COUNT', 1)
  if #first > 0 then redis.call('XDEL', s, first[1][1]) end
  rebook(B, topic, s, -sum(first))
end
-- Topics of the age index whose oldest event is past the age: trimmed (or forgotten once their keys expired).
local function sweep(B, prefix, minms, limit)
  for _, topic in ipairs(redis.call('ZRANGEBYSCORE', B[3], '-inf', '(' .. minms, 'LIMIT', 0, limit)) do
    local s = prefix .. 's:' .. topic
    rebook(B, topic, s, trim_age(s, minms))
  end
end
-- The ids at the head of a user list (hu:) whose entry left the stream (by count, age or bytes).
local function prune(s, u)
  while true do
    local id = redis.call('LINDEX', u, 0)
    if not id or #redis.call('XRANGE', s, id, id) > 0 then return end
    redis.call('LPOP', u)
  end
end
-- Deletes the oldest user-sent entries of s while more than share of them are held; returns the bytes freed.
local function drop_users(s, u, share)
  prune(s, u)
  local freed = 0
  while redis.call('LLEN', u) > share do
    local id = redis.call('LPOP', u)
    local e = redis.call('XRANGE', s, id, id)
    if #e > 0 then
      redis.call('XDEL', s, id)
      freed = freed + sum(e)
    end
    prune(s, u)
  end
  return -freed
end
-- After the user list of topic changed: its place in the user age index UA (its oldest user-sent entry).
local function reindex(UA, topic, s, u)
  prune(s, u)
  local first = redis.call('LINDEX', u, 0)
  if first then redis.call('ZADD', UA, entry_ms(first), topic) else redis.call('ZREM', UA, topic) end
end
-- Drops the oldest user-sent events anywhere, then the oldest events anywhere, until the total is within
-- maxBytes (at most limit steps per call). A place in UA left behind by another trim (an entry gone, a key
-- expired) is put right when it comes first.
local function bound(B, UA, prefix, maxBytes, limit)
  for _ = 1, limit do
    if tonumber(redis.call('GET', B[1]) or '0') <= maxBytes then return end
    local users = redis.call('ZRANGE', UA, 0, 0, 'WITHSCORES')
    if #users > 0 then
      local topic = users[1]
      local s, u = prefix .. 's:' .. topic, prefix .. 'hu:' .. topic
      prune(s, u)
      local first = redis.call('LINDEX', u, 0)
      if first and entry_ms(first) <= tonumber(users[2]) then
        redis.call('LPOP', u)
        local e = redis.call('XRANGE', s, first, first)
        redis.call('XDEL', s, first)
        rebook(B, topic, s, -sum(e))
      end
      reindex(UA, topic, s, u)
    else
      bound_any(B, prefix)
    end
  end
end
-- The epoch told for a topic with no history (see the layout above).
local function empty_epoch(hz, candidate, ttl, now)
  redis.call('SET', hz, candidate, 'NX')
  return redis.call('GET', hz) .. '-' .. math.floor(now / ttl)
end
`;

// KEYS: position hash, empty-epoch base; ARGV: base candidate, ttl ms. Returns {epoch, offset}. Creates no
// key of the topic: a topic with none is at offset 0 of the empty epoch.
export const POSITION = `${BOOKS}
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch then return {epoch, tonumber(redis.call('HGET', KEYS[1], 'offset'))} end
return {empty_epoch(KEYS[2], ARGV[1], tonumber(ARGV[2]), now_ms()), 0}`;

// KEYS: position hash, stream, empty-epoch base, bytes, sizes, age; ARGV: epoch, offset, upTo, ttl ms, base
// candidate, topic. Returns {epoch, offset, recovered (0/1), frames...}: frames in (offset, upTo] when all are
// still stored (none missing: the first is offset + 1 and no user-sent one was deleted between). Writes only
// to drop what is past the age (and the books with it).
export const SINCE = `${BOOKS}
local B = {KEYS[4], KEYS[5], KEYS[6]}
local ttl, now = tonumber(ARGV[4]), now_ms()
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local from, upTo = tonumber(ARGV[2]), tonumber(ARGV[3])
if not epoch then
  local empty = empty_epoch(KEYS[3], ARGV[5], ttl, now)
  -- Nothing was ever stored in this period: a position of this period's empty epoch missed nothing.
  if from == 0 and ARGV[1] == empty then return {empty, 0, 1} end
  return {empty, 0, 0}
end
local current = tonumber(redis.call('HGET', KEYS[1], 'offset') or '0')
if epoch ~= ARGV[1] then
  -- The empty epoch of the period this history began in: it continues from the history's first event.
  local born = tonumber(redis.call('HGET', KEYS[1], 'born') or '0')
  local base = redis.call('GET', KEYS[3])
  if not (from == 0 and born > 0 and base and ARGV[1] == base .. '-' .. math.floor(born / ttl)) then return {epoch, current, 0} end
end
if from > current then return {epoch, current, 0} end
rebook(B, ARGV[6], KEYS[2], trim_age(KEYS[2], now - ttl))
local out = {epoch, current, 1}
if from >= upTo or from >= current then return out end
local entries = redis.call('XRANGE', KEYS[2], '-', '+')
if #entries == 0 or tonumber(entries[1][2][2]) > from + 1 then return {epoch, current, 0} end
for _, e in ipairs(entries) do
  local o = tonumber(e[2][2])
  if o > from and o <= upTo then out[#out + 1] = e[2][4] end
end
-- A user-sent entry deleted for the share (RECORD) left a hole in the range: not recovered.
if #out - 3 ~= math.min(upTo, current) - from then return {epoch, current, 0} end
return out`;

// KEYS: position hash, stream, interest set, recovering flag, channel, bytes, sizes, age, user list, user age
// index, and the idempotency record when the publish has a key; ARGV: head, tail, new epoch candidate, max length, ttl ms,
// origin tag ("*" or "*<node>/<token>"), idempotency window ms, request fingerprint, max bytes, key prefix,
// topic, ifStreamExists ("1": store only into an existing history), user ("1": a user-sent event), user share
// (user-sent entries held at most; 0: a user-sent event is never stored, answered like a topic without history). Appends and publishes in one step, so every
// node receives a topic's numbered frames in offset order (the origin too: origin "*").
// Returns {status, epoch, offset, frame}: status 1 sent to every interested node (or none listens),
// -1 the cluster is re-registering (nothing appended), -2 an interested node missed it (appended: recoverable),
// 2 a duplicate of a publish already stored under this key (nothing appended or sent; -2 instead while an
// interested node is not listening), -3 the key was used for another request (nothing done), 3 the topic has
// no history and ifStreamExists was asked (nothing appended or sent: the caller sends it live only).
// Every node in the interest set is expected, whether its lease is alive or not (see PUBLISH in
// backplane/redis/scripts.ts). The frame it builds is wire/position.ts's numberedFrame(), byte for byte.
// After the append: the age bound and the user share of the topic (the oldest user-sent entry deleted, before
// the count bound, so that a user-sent event never pushes out another), its count bound, then the byte bound
// over every topic (the oldest user-sent event first, then the oldest of any), and two expired topics swept
// from the books.
export const RECORD = `${BOOKS}
local B = {KEYS[6], KEYS[7], KEYS[8]}
local U, UA = KEYS[9], KEYS[10]
local expected = redis.call('SCARD', KEYS[3])
if KEYS[11] then
  local prior = redis.call('GET', KEYS[11])
  if prior then
    local fp, epoch, off = string.match(prior, '^(%S*) (%S+) (%d+)$')
    if fp ~= ARGV[8] then return {-3} end
    if redis.call('PUBSUB', 'SHARDNUMSUB', KEYS[5])[2] < expected then return {-2, epoch, tonumber(off), ''} end
    return {2, epoch, tonumber(off), ''}
  end
end
if redis.call('EXISTS', KEYS[4]) == 1 then return {-1} end
local user, share = ARGV[13] == '1', tonumber(ARGV[14] or ARGV[4])
if user and share <= 0 then return {3} end
local now, ttl, topic = now_ms(), tonumber(ARGV[5]), ARGV[11]
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  if ARGV[12] == '1' then return {3} end
  epoch = ARGV[3]
  rebook(B, topic, KEYS[2], -sum(redis.call('XRANGE', KEYS[2], '-', '+')))
  redis.call('DEL', KEYS[2], U)
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0, 'born', now)
end
local off = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local frame = ARGV[1] .. ',"epoch":"' .. epoch .. '","offset":' .. off .. ARGV[2]
local id = redis.call('XADD', KEYS[2], '*', 'o', off, 'f', frame)
local delta = #frame + trim_age(KEYS[2], now - ttl)
if user then
  redis.call('RPUSH', U, id)
  delta = delta + drop_users(KEYS[2], U, share)
end
local over = redis.call('XLEN', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  delta = delta - sum(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', over))
  redis.call('XTRIM', KEYS[2], 'MAXLEN', ARGV[4])
end
rebook(B, topic, KEYS[2], delta)
reindex(UA, topic, KEYS[2], U)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', U, ttl)
bound(B, UA, ARGV[10], tonumber(ARGV[9]), 100)
sweep(B, ARGV[10], now - ttl, 2)
if KEYS[11] then redis.call('SET', KEYS[11], ARGV[8] .. ' ' .. epoch .. ' ' .. off, 'PX', ARGV[7]) end
local status = 1
if expected > 0 and redis.call('SPUBLISH', KEYS[5], ARGV[6] .. '\\n' .. frame) < expected then status = -2 end
return {status, epoch, off, frame}`;

// A topic whose offsets went back within one epoch (Redis restarted from data older than what a node had
// delivered: an fsync lost the last writes) starts a new epoch, so that no offset names two events. Its
// stream is dropped and its position restarts at 0 of a new epoch (born 0: no empty-epoch position
// continues into it).
// KEYS: position hash, stream, bytes, sizes, age, user list; ARGV: the epoch, the highest offset a node
// delivered in it, a new epoch, topic. Returns 1 when reset.
export const REWOUND = `${BOOKS}
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'offset') or '0') >= tonumber(ARGV[2]) then return 0 end
local B = {KEYS[3], KEYS[4], KEYS[5]}
local held = redis.call('XRANGE', KEYS[2], '-', '+')
redis.call('DEL', KEYS[2], KEYS[6])
rebook(B, ARGV[4], KEYS[2], -sum(held))
redis.call('HSET', KEYS[1], 'epoch', ARGV[3], 'offset', 0, 'born', 0)
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
  /** HISTORY_MAX_BYTES over every topic of the cluster (default: no bound). */
  maxBytes?: number;
  /**
   * User-sent entries (RecordOptions.user) a topic holds at most (NOTIFY_USER_SHARE of HISTORY_SIZE; default
   * `size`): past it the oldest user-sent one is deleted, never another. 0: user-sent events are never stored.
   */
  userSize?: number;
  /** A topic's own limits (its namespace's `history`, CHANNELS_FILE); undefined: `size` and `ttlMs`. */
  perTopic?: (topic: string) => { readonly size: number; readonly ttlMs: number } | undefined;
}

/** A candidate for hz: 12 characters of [A-Za-z0-9_-] (kept only when hz is missing). */
export const emptyEpochBase = (): string => randomBytes(9).toString('base64url');

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

  /** A topic's count and age limits: its namespace's, or the store's. Every script of a topic is given the same. */
  limitsOf(topic: string): { readonly size: number; readonly ttlMs: number } {
    return this.options.perTopic?.(topic) ?? this.options;
  }

  /** The keys of one topic, then the books (see the layout). */
  keysOf(topic: string): { h: string; s: string; u: string; hz: string; books: [string, string, string]; uage: string } {
    const k = this.key;
    return { h: k(`h:${topic}`), s: k(`s:${topic}`), u: k(`hu:${topic}`), hz: k('hz'), books: [k('hbytes'), k('hsizes'), k('hage')], uage: k('huage') };
  }

  async position(topic: string): Promise<Position> {
    const k = this.keysOf(topic);
    const [epoch, offset] = (await hs(this.cmd).POSITION(2, k.h, k.hz, emptyEpochBase(), this.limitsOf(topic).ttlMs).catch(unavailable)) as [string, number];
    return { epoch, offset };
  }

  async since(topic: string, epoch: string, offset: number, upTo: number): Promise<Replay> {
    const k = this.keysOf(topic);
    const r = (await hs(this.cmd).SINCE(6, k.h, k.s, k.hz, ...k.books, epoch, offset, upTo, this.limitsOf(topic).ttlMs, emptyEpochBase(), topic).catch(unavailable)) as [string, number, number, ...string[]];
    const [curEpoch, curOffset, recovered, ...frames] = r;
    return { recovered: recovered === 1, frames: recovered === 1 ? frames : [], position: { epoch: curEpoch, offset: curOffset } };
  }

  /** See REWOUND: after it, the topic's next event opens a new epoch. */
  async rewound(topic: string, epoch: string, delivered: number): Promise<boolean> {
    const k = this.keysOf(topic);
    return (await hs(this.cmd).REWOUND(6, k.h, k.s, ...k.books, k.u, epoch, delivered, newEpoch(), topic).catch(unavailable)) === 1;
  }

  /** Bytes held over every topic (the books' total). */
  async storedBytes(): Promise<number> {
    return Number((await this.cmd.get(this.key('hbytes')).catch(unavailable)) ?? 0);
  }

  async latest(topic: string, limit: number): Promise<string[]> {
    const entries = await this.cmd.xrevrange(this.key(`s:${topic}`), '+', '-', 'COUNT', limit).catch(unavailable);
    const cutoff = Date.now() - this.limitsOf(topic).ttlMs;
    return entries.filter(([id]) => Number(id.split('-')[0]) >= cutoff).map(([, fields]) => fields[3]!);
  }

  async close(): Promise<void> {}
}
