// The Lua scripts of the Redis history (seams/history/redis.ts has the layout they keep): each one is a single
// atomic step. RECORD is run by the backplane (backplane/redis/frames.ts), atomically with the publication.
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
sweep(B, ARGV[10], now - ttl, 2)
if IDEM then redis.call('SET', IDEM, ARGV[8] .. ' ' .. epoch .. ' ' .. off, 'PX', ARGV[7]) end
local status = 1
if expected > 0 and redis.call('SPUBLISH', KEYS[5], ARGV[6] .. '\\n' .. frame) < expected then status = -2 end
return {status, epoch, off, frame}`;

// RECORD for a batch of plain events (no idempotency key, entry key or replacement): the frames one node
// publishes in one event-loop turn (backplane/redis/frames.ts), numbered and published in one call, in order.
// Each event is stored, trimmed and published as RECORD would, with fewer commands: the work that does not
// depend on the event is done once per partition and call (the recovering flag, the failover check, the clock,
// the byte total as one INCRBY, the byte bound and the age sweeps after the last event, as many steps as RECORD
// would take for all of them, the sweep by the longest TTL of the batch); the age and count trims read the
// stream's head once; the age index is written only when a stream's oldest entry changed; and an event that is
// not user-sent leaves the user list alone (it cannot change what the list holds: RECORD's prune of the ids
// that left the stream is then done by the next user-sent event, the bound or the user age sweep, each of which
// checks a place before it trusts it; and the list's TTL, refreshed by every user-sent event, outlives each of
// its entries); the TTLs of the position hash and the stream are renewed when less than a TTL is left (field x
// of h:<topic>: until when they live), to 9/8 of the TTL.
// One call carries the events of several partitions of one Redis (with Redis Cluster, the partitions whose slots
// one shard serves: the script's allow-cross-slot-keys flag lets it touch the keys of other slots of its node;
// the one declared key routes the call). Partition keys: recovering, hgen, hbytes, hsizes, hage, huage.
// KEYS: the first partition's recovering flag; ARGV: a new epoch
// candidate, then per partition its key prefix, max bytes and event count, then 8 per event: topic, head, tail,
// origin tag, flags ("u": user-sent, "e": ifStreamExists), max length, ttl ms, user share. Returns 3 per event,
// in order: status (1, -2, 3 as RECORD; -1: its partition is re-registering, nothing appended), epoch, offset.
export const RECORD_MANY = `#!lua flags=allow-cross-slot-keys
${BOOKS}
local now, candidate, out = now_ms(), ARGV[1], {}
-- The events ARGV[first..last] (8 each) of one partition: P its key prefix, K its keys, recovering its flag.
local function record_part(P, K, recovering, maxBytes, first, last)
if recovering then
  for _ = first, last, 8 do out[#out + 1] = -1; out[#out + 1] = ''; out[#out + 1] = 0 end
  return
end
local B = {K[3], K[4], K[5]}
local UA = K[6]
check_primary(K[2])
local gen = redis.call('GET', K[2]) or ''
local total, ttlMax = 0, nil
for a = first, last, 8 do
  local topic, flags, size, ttl, share = ARGV[a], ARGV[a + 4], tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])
  local user, onlyExisting = string.find(flags, 'u', 1, true) ~= nil, string.find(flags, 'e', 1, true) ~= nil
  local h, s = P .. 'h:' .. topic, P .. 's:' .. topic
  local e = redis.call('HMGET', h, 'epoch', 'gen', 'x')
  local epoch = e[1]
  if epoch and (e[2] or '') ~= gen then epoch = nil end
  if (user and share <= 0) or (not epoch and onlyExisting) then
    out[#out + 1] = 3; out[#out + 1] = ''; out[#out + 1] = 0
  else
    local u = P .. 'hu:' .. topic
    local reset = not epoch
    if reset then
      epoch = candidate
      local held = sum(redis.call('XRANGE', s, '-', '+'))
      if held ~= 0 then
        total = total - held
        redis.call('HINCRBY', B[2], topic, -held)
      end
      redis.call('DEL', s, u, P .. 'hk:' .. topic, P .. 'ho:' .. topic)
      redis.call('HSET', h, 'epoch', epoch, 'offset', 0, 'born', now, 'gen', gen)
    end
    if not ttlMax or ttl > ttlMax then ttlMax = ttl end
    local off = redis.call('HINCRBY', h, 'offset', 1)
    local frame = ARGV[a + 1] .. ',"epoch":"' .. epoch .. '","offset":' .. off .. ARGV[a + 2]
    local id = redis.call('XADD', s, '*', 'o', off, 'f', frame)
    local delta = #frame
    if user then
      redis.call('RPUSH', u, id)
      delta = delta + drop_users(s, u, share)
    end
    -- The age and count trims in one read of the head: the entries past the length and those older than the
    -- age go, up to the first one that stays (read again only while every entry read goes).
    local len, minms = redis.call('XLEN', s), now - ttl
    local over, cut, first = len - size, 0, nil
    while true do
      local head = redis.call('XRANGE', s, cut == 0 and '-' or '(' .. cut, '+', 'COUNT', math.max(over, 0) + 1)
      for _, x in ipairs(head) do
        if over > 0 or entry_ms(x[1]) < minms then
          over = over - 1
          delta = delta - #x[2][4]
          cut = x[1]
        else
          first = x
          break
        end
      end
      if first or #head == 0 then break end
    end
    if cut ~= 0 then
      if first then redis.call('XTRIM', s, 'MINID', first[1]) else redis.call('DEL', s) end
    end
    total = total + delta
    if delta ~= 0 then redis.call('HINCRBY', B[2], topic, delta) end
    if cut ~= 0 or len == 1 or reset or user then
      -- The oldest entry changed (or may have): the topic's place in the age index.
      if first then
        redis.call('ZADD', B[3], entry_ms(first[1]), topic)
      else
        local rest = tonumber(redis.call('HGET', B[2], topic) or '0')
        if rest ~= 0 then total = total - rest end
        redis.call('HDEL', B[2], topic)
        redis.call('ZREM', B[3], topic)
      end
    end
    if user or reset then
      reindex(UA, topic, s, u)
      redis.call('PEXPIRE', u, ttl)
    end
    if reset or not e[3] or tonumber(e[3]) - now < ttl then
      -- Every key of the topic lives at least a TTL after its last write: given an eighth more when it is
      -- renewed, it is renewed about once per eighth of a TTL, not at every event.
      local life = ttl + math.floor(ttl / 8)
      redis.call('PEXPIRE', h, life)
      redis.call('PEXPIRE', s, life)
      redis.call('HSET', h, 'x', now + life)
    end
    local status = 1
    local expected = redis.call('SCARD', P .. 'interest:' .. topic)
    if expected > 0 and redis.call('SPUBLISH', P .. 't:' .. topic, ARGV[a + 3] .. '\\n' .. frame) < expected then status = -2 end
    out[#out + 1] = status; out[#out + 1] = epoch; out[#out + 1] = off
  end
end
if total ~= 0 then redis.call('INCRBY', B[1], total) end
if ttlMax then
  local events = (last - first + 1) / 8
  bound(B, UA, P, maxBytes, 100 * events)
  sweep(B, P, now - ttlMax, 2 * events)
  -- Places of the user age index older than the age: put right (their entry left by age, or their keys expired).
  for _, topic in ipairs(redis.call('ZRANGEBYSCORE', UA, '-inf', '(' .. (now - ttlMax), 'LIMIT', 0, 2 * events)) do
    reindex(UA, topic, P .. 's:' .. topic, P .. 'hu:' .. topic)
  end
end
end
-- The partitions: prefix, max bytes, event count, then the events. Every partition's recovering flag is read
-- before anything is written: a partition whose slot this Redis does not serve (it moved) fails the call there,
-- with nothing done.
local parts, ai = {}, 2
while ai <= #ARGV do
  local P, n = ARGV[ai], tonumber(ARGV[ai + 2])
  parts[#parts + 1] = {P, {P .. 'recovering', P .. 'hgen', P .. 'hbytes', P .. 'hsizes', P .. 'hage', P .. 'huage'}, tonumber(ARGV[ai + 1]), ai + 3, ai + 2 + 8 * n}
  ai = ai + 3 + 8 * n
end
for _, p in ipairs(parts) do p[6] = redis.call('EXISTS', p[2][1]) == 1 end
for _, p in ipairs(parts) do record_part(p[1], p[2], p[6], p[3], p[4], p[5]) end
return out`;

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
