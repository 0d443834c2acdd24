// The Lua of the push store (redis.ts, where the keys are described): every write is one script, so that each
// push leaves once, cluster-wide, whichever node polls.

// Shared by the scripts: P is the key prefix, U the user.
const LIB = `
local function drop(pu, pn, pr, m)
  if redis.call('ZREM', pu, m) == 0 then return 0 end
  redis.call('HDEL', pn, m)
  local id = redis.call('HGET', pr, 'd:' .. m)
  if id then redis.call('HDEL', pr, 'r:' .. m, 'd:' .. m, 'i:' .. id) else redis.call('HDEL', pr, 'r:' .. m) end
  return 1
end
local function reschedule(pd, pu, user, coalesce)
  local first = redis.call('ZRANGE', pu, 0, 0, 'WITHSCORES')
  if first[1] then redis.call('ZADD', pd, tonumber(first[2]) + coalesce, user) else redis.call('ZREM', pd, user) end
end
local function remember(pe, key, now, memory, cap)
  redis.call('ZADD', pe, now + memory, key)
  redis.call('ZREMRANGEBYSCORE', pe, '-inf', now)
  redis.call('ZREMRANGEBYRANK', pe, 0, -(cap + 1))
  redis.call('PEXPIRE', pe, memory)
end
local function unpending(pc, n)
  if n > 0 and tonumber(redis.call('DECRBY', pc, n)) < 0 then redis.call('SET', pc, 0) end
end
`;

// KEYS: pu pn pr pe pa pd pc; ARGV: user, epoch, offset, id, json, dueAt, now, maxPerUser, coalesceMs, ttlMs.
// Returns 0 (skipped: received, read or tracked already), 1 (tracked), 2 (tracked, the oldest dropped).
const TRACK = `${LIB}
local m = ARGV[2] .. ':' .. ARGV[3]
local now = tonumber(ARGV[7])
local s = redis.call('ZSCORE', KEYS[4], 'r:' .. m)
if s and tonumber(s) > now then return 0 end
s = redis.call('ZSCORE', KEYS[4], 'i:' .. ARGV[4])
if s and tonumber(s) > now then return 0 end
local a = redis.call('HMGET', KEYS[5], 'epoch', 'upTo', 'exp')
if a[1] == ARGV[2] and tonumber(a[3]) > now and tonumber(ARGV[3]) <= tonumber(a[2]) then return 0 end
if redis.call('ZSCORE', KEYS[1], m) then return 0 end
local out = 1
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[8]) then
  drop(KEYS[1], KEYS[2], KEYS[3], redis.call('ZRANGE', KEYS[1], 0, 0)[1])
  out = 2
else
  redis.call('INCR', KEYS[7])
end
redis.call('ZADD', KEYS[1], ARGV[6], m)
redis.call('HSET', KEYS[2], m, ARGV[5])
redis.call('HSET', KEYS[3], 'd:' .. m, ARGV[4], 'i:' .. ARGV[4], m)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[10]) end
reschedule(KEYS[6], KEYS[1], ARGV[1], tonumber(ARGV[9]))
return out`;

// KEYS: pu pn pr pe pd pc; ARGV: user, epoch, now, unreadDueAt ('' for none), coalesceMs, ttlMs,
// receiptMemoryMs, maxPerUser, offsets...
const RECEIVED = `${LIB}
local now = tonumber(ARGV[3])
local gone = 0
for i = 9, #ARGV do
  local m = ARGV[2] .. ':' .. ARGV[i]
  if not redis.call('ZSCORE', KEYS[1], m) then
    remember(KEYS[4], 'r:' .. m, now, tonumber(ARGV[7]), tonumber(ARGV[8]))
  elseif ARGV[4] == '' then
    gone = gone + drop(KEYS[1], KEYS[2], KEYS[3], m)
  elseif redis.call('HSETNX', KEYS[3], 'r:' .. m, 1) == 1 then
    redis.call('ZADD', KEYS[1], ARGV[4], m)
    for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], ARGV[6]) end
  end
end
unpending(KEYS[6], gone)
reschedule(KEYS[5], KEYS[1], ARGV[1], tonumber(ARGV[5]))
return gone`;

// KEYS: pu pn pr pe pa pd pc; ARGV: user, 'id' | 'all', id | epoch, allUpTo, now, coalesceMs,
// receiptMemoryMs, maxPerUser.
const READ = `${LIB}
local now = tonumber(ARGV[5])
local memory = tonumber(ARGV[7])
local gone = 0
if ARGV[2] == 'id' then
  local m = redis.call('HGET', KEYS[3], 'i:' .. ARGV[3])
  if m then gone = drop(KEYS[1], KEYS[2], KEYS[3], m) else remember(KEYS[4], 'i:' .. ARGV[3], now, memory, tonumber(ARGV[8])) end
else
  local upTo = tonumber(ARGV[4])
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local epoch, offset = string.match(m, '^(.*):(%d+)$')
    if epoch ~= ARGV[3] or tonumber(offset) <= upTo then gone = gone + drop(KEYS[1], KEYS[2], KEYS[3], m) end
  end
  local a = redis.call('HMGET', KEYS[5], 'epoch', 'upTo', 'exp')
  if a[1] == ARGV[3] and tonumber(a[3]) > now and tonumber(a[2]) > upTo then upTo = tonumber(a[2]) end
  redis.call('HSET', KEYS[5], 'epoch', ARGV[3], 'upTo', upTo, 'exp', now + memory)
  redis.call('PEXPIRE', KEYS[5], memory)
end
unpending(KEYS[7], gone)
reschedule(KEYS[6], KEYS[1], ARGV[1], tonumber(ARGV[6]))
return gone`;

// Shared by the flush scripts: a due user's push. P is the prefix of the user's keys, pc its partition's count.
// The event is built by concatenation, the stored JSON embedded as is; str() escapes like JSON.stringify
// (cjson would also escape '/', and the memory store's event must come out byte for byte the same).
const TAKE = `${LIB}
local function str(s)
  return '"' .. string.gsub(s, '[%z\\1-\\031\\\\"]', function(c)
    local e = ({['"'] = '\\\\"', ['\\\\'] = '\\\\\\\\', ['\\b'] = '\\\\b', ['\\f'] = '\\\\f', ['\\n'] = '\\\\n', ['\\r'] = '\\\\r', ['\\t'] = '\\\\t'})[c]
    return e or string.format('\\\\u%04x', string.byte(c))
  end) .. '"'
end
-- The user's notifications due by now, taken out, as one event: its id and JSON (nil when none is due).
local function take_due(P, user, now, listed, salt, pc)
  local pu, pn, pr = P .. 'pu:' .. user, P .. 'pn:' .. user, P .. 'pr:' .. user
  local due = redis.call('ZRANGEBYSCORE', pu, '-inf', now)
  if #due == 0 then return nil end
  local items = {}
  for i = #due, math.max(1, #due - listed + 1), -1 do
    local m = due[i]
    local epoch, offset = string.match(m, '^(.*):(%d+)$')
    local json = redis.call('HGET', pn, m) or 'null'
    local rec = redis.call('HEXISTS', pr, 'r:' .. m) == 1 and 'true' or 'false'
    items[#items + 1] = '{"epoch":' .. str(epoch) .. ',"offset":' .. offset .. ',"received":' .. rec .. ',"notification":' .. json .. '}'
  end
  local id = 'msg_' .. string.sub(redis.sha1hex(salt .. user .. '\\0' .. table.concat(due, ',') .. now), 1, 32)
  local event = '{"id":"' .. id .. '","type":"notification.unread","ts":' .. now .. ',"data":{"userId":' .. str(user) ..
    ',"count":' .. #due .. ',"notifications":[' .. table.concat(items, ',') .. ']}}'
  for _, m in ipairs(due) do drop(pu, pn, pr, m) end
  unpending(pc, #due)
  return id, event
end
`;

// One Redis. KEYS: pd pc, then the destinations' streams; ARGV: now, max users, maxDepth, coalesceMs,
// maxListed, prefix, a random salt for the event ids. Returns the events made.
const FLUSH = `${TAKE}
local now, maxDepth, coalesce, listed, P = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local made = 0
for _, user in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  for i = 3, #KEYS do
    if redis.call('XLEN', KEYS[i]) >= maxDepth then return made end
  end
  local id, event = take_due(P, user, now, listed, ARGV[7], KEYS[2])
  if id then
    for i = 3, #KEYS do redis.call('XADD', KEYS[i], '*', 'e', event) end
    made = made + 1
  end
  reschedule(KEYS[1], P .. 'pu:' .. user, user, coalesce)
end
return made`;

// Redis Cluster, one partition. KEYS: pd pc po pq; ARGV: now, max events, coalesceMs, maxListed, prefix, salt,
// claimMs. Returns {made, id, json, id, json, ...}: the outbox's events whose hold ran out (held again, for
// claimMs), then the events made now, at most max in all.
const FLUSH_OUT = `${TAKE}
local now, max, coalesce, listed, P = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local hold = tonumber(now) + tonumber(ARGV[7])
local out = {0}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, max)) do
  local event = redis.call('HGET', KEYS[3], id)
  if event then
    redis.call('ZADD', KEYS[4], hold, id)
    out[#out + 1] = id
    out[#out + 1] = event
  else
    redis.call('ZREM', KEYS[4], id)
  end
end
local room = max - (#out - 1) / 2
if room <= 0 then return out end
for _, user in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, room)) do
  local id, event = take_due(P, user, now, listed, ARGV[6], KEYS[2])
  if id then
    redis.call('HSET', KEYS[3], id, event)
    redis.call('ZADD', KEYS[4], hold, id)
    out[1] = out[1] + 1
    out[#out + 1] = id
    out[#out + 1] = event
  end
  reschedule(KEYS[1], P .. 'pu:' .. user, user, coalesce)
end
return out`;

// Redis Cluster: the partitions one shard serves, counted in one call (the flag lets the script read the keys of
// the other slots of its node; the one declared key routes the call). KEYS: the first partition's pd; ARGV: now,
// then the partitions' key prefixes. Returns, per partition, its users due plus its outbox entries whose hold ran out.
const PROBE = `#!lua flags=allow-cross-slot-keys
local now, out = ARGV[1], {}
for i = 2, #ARGV do
  local P = ARGV[i]
  out[#out + 1] = redis.call('ZCOUNT', P .. 'pd', '-inf', now) + redis.call('ZCOUNT', P .. 'pq', '-inf', now)
end
return out`;

export const SCRIPTS = { PUSH_TRACK: TRACK, PUSH_RECEIVED: RECEIVED, PUSH_READ: READ, PUSH_FLUSH: FLUSH, PUSH_FLUSH_OUT: FLUSH_OUT, PUSH_PROBE: PROBE };
