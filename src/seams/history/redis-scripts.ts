// The Lua scripts of the Redis history (seams/history/redis.ts has the layout they keep): each one is a single
// atomic step. RECORD (and RECORD_MANY, redis-record-many.ts) is run by the backplane (backplane/redis/frames.ts),
// atomically with the publication. The Lua they share is redis-lua.ts.
import { BOOKS } from './redis-lua.js';
import { RECORD_MANY } from './redis-record-many.js';

// KEYS: position hash, empty-epoch base, generation; ARGV: base candidate, ttl ms. Returns {epoch, offset}.
// Creates no key of the topic: a topic with none (or a retired one) is at offset 0 of the empty epoch.
export const POSITION = `${BOOKS}
local epoch = epoch_of(KEYS[1], KEYS[3])
if epoch then return {epoch, tonumber(redis.call('HGET', KEYS[1], 'offset'))} end
return {empty_epoch(KEYS[2], ARGV[1], tonumber(ARGV[2]), now_ms()), 0}`;

// KEYS: position hash, stream, empty-epoch base, bytes, sizes, age, overlay, generation; ARGV: epoch, offset, upTo, ttl ms,
// base candidate, topic. Returns {epoch, offset, recovered (0/1), frames...}: frames in (offset, upTo] when all
// are still stored (none missing: the first is offset + 1 and no user-sent one was deleted between), each in its
// latest state (a replaced one as the overlay holds it). Writes only to drop what is past the age (and the books
// with it).
export const SINCE = `${BOOKS}
local B = {KEYS[4], KEYS[5], KEYS[6]}
local ttl, now = tonumber(ARGV[4]), now_ms()
local epoch = epoch_of(KEYS[1], KEYS[8])
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
-- Replaced entries (edited, deleted chat messages) are answered as they are now: out[3 + n] is offset from + n.
if redis.call('EXISTS', KEYS[7]) == 1 then
  local over = redis.call('ZRANGEBYSCORE', KEYS[7], from + 1, math.min(upTo, current), 'WITHSCORES')
  for i = 1, #over, 2 do out[3 + tonumber(over[i + 1]) - from] = over[i] end
end
return out`;

// KEYS: position hash, stream, interest set, recovering flag, channel, bytes, sizes, age, user list, user age
// index, key index, overlay, generation, and the idempotency record when the publish has a key; ARGV: head, tail, new epoch
// candidate, max length, ttl ms, origin tag ("*" or "*<node>/<token>"), idempotency window ms, request
// fingerprint, max bytes, key prefix, topic, ifStreamExists ("1": store only into an existing history), user ("1":
// a user-sent event), user share (user-sent entries held at most; 0: a user-sent event is never stored, answered
// like a topic without history), the entry's key ("": none), the key of an entry to replace ("": none), the
// SHA-1 of that entry's frame as read, its new frame. Appends and publishes in one step, so every node receives
// a topic's numbered frames in offset order (the origin too: origin "*").
// Returns {status, epoch, offset, frame}: status 1 sent to every interested node (or none listens),
// -1 the cluster is re-registering (nothing appended), -2 an interested node missed it (appended: recoverable),
// 2 a duplicate of a publish already stored under this key (nothing appended or sent; -2 instead while an
// interested node is not listening), -3 the key was used for another request (nothing done), 3 the topic has
// no history and ifStreamExists was asked (nothing appended or sent: the caller sends it live only), 4 the
// entry to replace is not held, or is no longer the frame that was read (nothing replaced, appended or sent).
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
local HK, HO, GEN, IDEM = KEYS[11], KEYS[12], KEYS[13], KEYS[14]
if IDEM then
  local prior = redis.call('GET', IDEM)
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
local epoch = epoch_of(KEYS[1], GEN)
local key, replace = ARGV[15] or '', ARGV[16] or ''
if replace ~= '' then
  -- A replacement: the entry must be held, and still the frame that was read (no concurrent change).
  local e = epoch and keyed(KEYS[2], HK, replace, now - ttl)
  if not e or redis.sha1hex(latest_frame(HO, e)) ~= ARGV[17] then return {4} end
  redis.call('ZREMRANGEBYSCORE', HO, e[2][2], e[2][2])
  redis.call('ZADD', HO, e[2][2], ARGV[18])
end
if not epoch then
  if ARGV[12] == '1' then return {3} end
  epoch = ARGV[3]
  rebook(B, topic, KEYS[2], -sum(redis.call('XRANGE', KEYS[2], '-', '+')))
  redis.call('DEL', KEYS[2], U, HK, HO)
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0, 'born', now, 'gen', redis.call('GET', GEN) or '')
end
local off = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local frame = ARGV[1] .. ',"epoch":"' .. epoch .. '","offset":' .. off .. ARGV[2]
local id
if key ~= '' then
  id = redis.call('XADD', KEYS[2], '*', 'o', off, 'f', frame, 'k', key)
  redis.call('ZADD', HK, entry_ms(id), key)
else
  id = redis.call('XADD', KEYS[2], '*', 'o', off, 'f', frame)
end
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
-- Until when the topic's keys live (RECORD_MANY refreshes them only when that is less than a TTL away).
redis.call('HSET', KEYS[1], 'x', now + ttl)
if key ~= '' or replace ~= '' then
  prune_keyed(KEYS[2], HK, HO)
  redis.call('PEXPIRE', HK, ttl)
  redis.call('PEXPIRE', HO, ttl)
end
bound(B, UA, ARGV[10], tonumber(ARGV[9]), 100)
-- Other topics by the longest TTL any topic has (ARGV[19]), never by this one's: a topic with a longer TTL
-- of its own would lose events early.
sweep(B, ARGV[10], now - math.max(ttl, tonumber(ARGV[19] or '0') or 0), 2)
if IDEM then redis.call('SET', IDEM, ARGV[8] .. ' ' .. epoch .. ' ' .. off, 'PX', ARGV[7]) end
local status = 1
if expected > 0 and redis.call('SPUBLISH', KEYS[5], ARGV[6] .. '\\n' .. frame) < expected then status = -2 end
return {status, epoch, off, frame}`;

// A topic whose offsets went back within one epoch (Redis restarted from data older than what a node had
// delivered: an fsync lost the last writes) starts a new epoch, so that no offset names two events. Its
// stream is dropped and its position restarts at 0 of a new epoch (born 0: no empty-epoch position
// continues into it).
// KEYS: position hash, stream, bytes, sizes, age, user list, key index, overlay, generation; ARGV: the epoch, the highest
// offset a node delivered in it, a new epoch, topic. Returns 1 when reset.
export const REWOUND = `${BOOKS}
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'offset') or '0') >= tonumber(ARGV[2]) then return 0 end
local B = {KEYS[3], KEYS[4], KEYS[5]}
local held = redis.call('XRANGE', KEYS[2], '-', '+')
redis.call('DEL', KEYS[2], KEYS[6], KEYS[7], KEYS[8])
rebook(B, ARGV[4], KEYS[2], -sum(held))
redis.call('HSET', KEYS[1], 'epoch', ARGV[3], 'offset', 0, 'born', 0, 'gen', redis.call('GET', KEYS[9]) or '')
return 1`;

// KEYS: position hash, stream, key index, overlay, generation; ARGV: key, ttl ms. Returns {epoch, offset, frame} of the held
// entry under the key, in its latest state, or {} (never written to).
export const ENTRY = `${BOOKS}
local epoch = epoch_of(KEYS[1], KEYS[5])
if not epoch then return {} end
local e = keyed(KEYS[2], KEYS[3], ARGV[1], now_ms() - tonumber(ARGV[2]))
if not e then return {} end
return {epoch, tonumber(e[2][2]), latest_frame(KEYS[4], e)}`;

export const HISTORY_SCRIPTS = { POSITION, SINCE, RECORD, RECORD_MANY, REWOUND, ENTRY };
type Scripts = { [K in keyof typeof HISTORY_SCRIPTS]: (numKeys: number, ...args: (string | number)[]) => Promise<unknown> };
export const hs = (r: object) => r as Scripts;
