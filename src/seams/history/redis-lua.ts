// Lua shared by the history's scripts (redis-scripts.ts, redis-record-many.ts): the failover check and the byte
// books, age indexes and keyed entries every change of a stream keeps (seams/history/redis.ts has the layout).
/** The failover check (check_primary(g): 1 when it started a new generation), shared with the backplane's PRIMARY. */
export const CHECK_PRIMARY = `
local function check_primary(g)
  local info = redis.call('INFO', 'replication')
  local id = string.match(info, 'master_replid:(%x+)')
  if not id then return 0 end
  local rid = string.sub(g, 1, -5) .. 'replid'
  local known = redis.call('GET', rid)
  if known == id then return 0 end
  redis.call('SET', rid, id)
  if known and known == string.match(info, 'master_replid2:(%x+)') then
    redis.call('SET', g, id)
    return 1
  end
  return 0
end
`;

// Lua shared by the scripts: the byte books (hbytes, hsizes, hage) kept with every change of a stream.
// B = {bytes, sizes, age} key names.
export const BOOKS = `
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
-- A failover (the primary is a promoted replica, which may lack the last writes the old one acknowledged:
-- replication is asynchronous): the partition's replid (the key g names, 'hgen' replaced by 'replid') records
-- the primary the partition was last used on; when this primary's previous replication id (master_replid2) is
-- the one recorded, a replica of that primary was promoted, and a new generation (its own id) retires every
-- topic of the partition. Checked by every call, so that no write lands in a retired history unnoticed.
${CHECK_PRIMARY}-- The topic's epoch, or nil: it has none, or it is of an older generation (g: the current one, set when a
-- replica was promoted, check_primary): a retired history, continued by nobody.
local function epoch_of(h, g)
  check_primary(g)
  local e = redis.call('HMGET', h, 'epoch', 'gen')
  if not e[1] then return nil end
  if (e[2] or '') ~= (redis.call('GET', g) or '') then return nil end
  return e[1]
end
-- The epoch told for a topic with no history (see the layout above).
local function empty_epoch(hz, candidate, ttl, now)
  redis.call('SET', hz, candidate, 'NX')
  return redis.call('GET', hz) .. '-' .. math.floor(now / ttl)
end
-- Keyed entries (RecordOptions.key; a chat message's id): the index hk (zset key -> Redis ms of its entry's
-- stream id) and the overlay ho (zset offset -> the entry's replacement frame, RecordOptions.replace).
-- The held, unexpired entry of stream s under key k, or nil (an index place whose entry left reads as none).
local function keyed(s, hk, k, minms)
  local ms = redis.call('ZSCORE', hk, k)
  if not ms or tonumber(ms) < minms then return nil end
  for _, e in ipairs(redis.call('XRANGE', s, ms, ms)) do
    if e[2][6] == k then return e end
  end
  return nil
end
-- An entry's latest frame: its replacement in the overlay, or its own.
local function latest_frame(ho, e)
  local over = redis.call('ZRANGEBYSCORE', ho, e[2][2], e[2][2])
  if #over > 0 then return over[1] end
  return e[2][4]
end
-- The index and overlay places of entries that left the stream (older than its first held one) go too.
local function prune_keyed(s, hk, ho)
  local first = redis.call('XRANGE', s, '-', '+', 'COUNT', 1)
  if #first == 0 then
    redis.call('DEL', hk, ho)
    return
  end
  redis.call('ZREMRANGEBYSCORE', hk, '-inf', '(' .. entry_ms(first[1][1]))
  redis.call('ZREMRANGEBYSCORE', ho, '-inf', '(' .. first[1][2][2])
end
`;
