// The history's batched recording, run by the backplane (backplane/redis/frames.ts): the turn's plain events of
// one Redis in one script call. The shared Lua is redis-lua.ts; the single-event RECORD is in redis-scripts.ts.
import { BOOKS } from './redis-lua.js';

// RECORD for a batch of plain events (no idempotency key, entry key or replacement): the frames one node
// publishes in one event-loop turn (backplane/redis/frames.ts), numbered and published in one call, in order.
// Each event is stored, trimmed and published as RECORD would, with fewer commands: the work that does not
// depend on the event is done once per partition and call (the recovering flag, the failover check, the clock,
// the byte total as one INCRBY, the byte bound and the age sweeps after the last event, as many steps as RECORD
// would take for all of them, the sweep of other topics by the longest TTL any topic has); the age and count trims read the
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
// candidate, the longest TTL any topic has (ms: the sweep's age), then per partition its key prefix, max bytes
// and event count, then 8 per event: topic, head, tail,
// origin tag, flags ("u": user-sent, "e": ifStreamExists), max length, ttl ms, user share. Returns 3 per event,
// in order: status (1, -2, 3 as RECORD; -1: its partition is re-registering, nothing appended), epoch, offset.
export const RECORD_MANY = `#!lua flags=allow-cross-slot-keys
${BOOKS}
local now, candidate, longest, out = now_ms(), ARGV[1], tonumber(ARGV[2]), {}
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
  -- Other topics by the longest TTL any topic has, never by this batch's: one with a longer TTL of its own would
  -- lose events early.
  sweep(B, P, now - math.max(ttlMax, longest), 2 * events)
  -- Places of the user age index older than the age: put right (their entry left by age, or their keys expired).
  for _, topic in ipairs(redis.call('ZRANGEBYSCORE', UA, '-inf', '(' .. (now - ttlMax), 'LIMIT', 0, 2 * events)) do
    reindex(UA, topic, P .. 's:' .. topic, P .. 'hu:' .. topic)
  end
end
end
-- The partitions: prefix, max bytes, event count, then the events. Every partition's recovering flag is read
-- before anything is written: a partition whose slot this Redis does not serve (it moved) fails the call there,
-- with nothing done.
local parts, ai = {}, 3
while ai <= #ARGV do
  local P, n = ARGV[ai], tonumber(ARGV[ai + 2])
  parts[#parts + 1] = {P, {P .. 'recovering', P .. 'hgen', P .. 'hbytes', P .. 'hsizes', P .. 'hage', P .. 'huage'}, tonumber(ARGV[ai + 1]), ai + 3, ai + 2 + 8 * n}
  ai = ai + 3 + 8 * n
end
for _, p in ipairs(parts) do p[6] = redis.call('EXISTS', p[2][1]) == 1 end
for _, p in ipairs(parts) do record_part(p[1], p[2], p[6], p[3], p[4], p[5]) end
return out`;
