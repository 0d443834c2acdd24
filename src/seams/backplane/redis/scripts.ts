// The Lua scripts of the Redis backplane: each one is a single atomic step on the layout of keys.ts.
import { ErrorCode, WireError } from '../../../wire/codes.js';
import { CHECK_PRIMARY } from '../../history/redis-lua.js';

// KEYS: interest set, recovering flag, channel; ARGV: message, own node id.
// 0: no other node listens (nothing sent); 1: sent to all; -1: recovering; -2: an interested node missed it.
// Every node in the interest set is expected, whether its lease is alive or not: a lease that expired while
// Redis was away proves nothing, and a dead node leaves the set when it is swept.
export const PUBLISH = `
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local expected, self = 0, 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if node == ARGV[2] then self = 1 else expected = expected + 1 end
end
if expected == 0 then return 0 end
if redis.call('SPUBLISH', KEYS[3], ARGV[1]) - self < expected then return -2 end
return 1`;

export const ADD = `
local had = redis.call('HLEN', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
if had > 0 then return 0 end
redis.call('ZREM', KEYS[3], ARGV[3])
if redis.call('HDEL', KEYS[4], ARGV[3]) == 1 then return 0 end
return 1`;

// ARGV[5] = "force": mark the user leaving if it has no connection, even if this one was not registered
// (used after an outage for connections that closed while Redis was unreachable).
export const REMOVE = `
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 and ARGV[5] ~= 'force' then return 0 end
if redis.call('HLEN', KEYS[1]) > 0 or redis.call('HEXISTS', KEYS[4], ARGV[2]) == 1 then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[3], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[3]), ARGV[2])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[4])
return 1`;

export const SETTLE = `
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HLEN', KEYS[1]) > 0 then return 0 end
return 1`;

// KEYS: node lease, node conns, then one user hash per connection; ARGV: connection id, user id pairs.
// Returns the users left without any connection, or -1 when the node is alive again.
export const SWEEP = `
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local gone = {}
for i = 3, #KEYS do
  local conn, user = ARGV[(i - 3) * 2 + 1], ARGV[(i - 3) * 2 + 2]
  redis.call('HDEL', KEYS[2], conn)
  if redis.call('HDEL', KEYS[i], conn) == 1 and redis.call('HLEN', KEYS[i]) == 0 then gone[#gone + 1] = user end
end
return gone`;

export const FORGET_NODE = `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HLEN', KEYS[2]) > 0 then return 0 end
for _, topic in ipairs(redis.call('SMEMBERS', KEYS[3])) do redis.call('SREM', ARGV[2] .. topic, ARGV[1]) end
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return 1`;

// Leaves past their deadline whose node is gone, or past it by a whole lease (the node failed to settle).
export const STALE = `
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
export const END_RECOVERY = `
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 1 end
if tonumber(ARGV[1]) - ttl < tonumber(ARGV[2]) then return 0 end
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[3] then return 0 end
end
redis.call('DEL', KEYS[1])
return 1`;

export const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

// KEYS: hgen. The failover check of the history scripts (check_primary, seams/history/redis-lua.ts),
// run at every re-registration so that it is logged: 1 when this call started a new generation (once per
// failover, cluster-wide).
export const PRIMARY = `${CHECK_PRIMARY}
return check_primary(KEYS[1])`;

// KEYS: epoch; ARGV: a candidate. The partition's epoch (the candidate when it had none) and how long ago, in
// ms, its Redis started (INFO server): read on the partition's own shard.
export const EPOCH = `
local stored = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET')
local up = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)') or '0')
return {stored or ARGV[1], up * 1000}`;

export const SCRIPTS = { PUBLISH, ADD, REMOVE, SETTLE, SWEEP, FORGET_NODE, STALE, END_RECOVERY, RENEW, PRIMARY, EPOCH };
type Scripts = { [K in keyof typeof SCRIPTS]: (numKeys: number, ...args: (string | number)[]) => Promise<unknown> };
/** The scripts as commands: ioredis sends EVALSHA (the body only once, on NOSCRIPT), in pipelines too. */
export const sc = (r: object) => r as Scripts;

export const unavailable = (what: string) => new WireError(ErrorCode.UNAVAILABLE, `${what}: the cluster store (Redis) cannot be reached`, 503);

