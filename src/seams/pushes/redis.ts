// Push tracking in Redis (cluster mode): every write is one Lua script, so that each push leaves once,
// cluster-wide, whichever node polls.
//
// Layout (after the backplane's prefix):
//   pu:<user>   zset  `<epoch>:<offset>` -> dueAt (ms): the user's pending notifications
//   pn:<user>   hash  `<epoch>:<offset>` -> the notification's JSON, as stored (embedded in the event as is)
//   pr:<user>   hash  `r:<member>` -> 1 (received, waiting for PUSH_UNREAD_DELAY_MS), `d:<member>` -> its id,
//                     `i:<id>` -> its member (notifications:read {id})
//   pe:<user>   zset  `r:<epoch>:<offset>` (a receipt) or `i:<id>` (a read) of a notification not tracked yet
//                     -> when it is forgotten (now + receiptMemoryMs); at most maxPerUser, the oldest go
//   pa:<user>   hash  {epoch, upTo, exp}: the latest read of everything, remembered until exp
//   pd          zset  user -> push time (the oldest pending dueAt + coalesceMs)
//   pc          string: notifications pending over all users (pending(): an estimate, see below)
//   wh:<dest>   the destinations' webhook streams (seams/webhooks/redis.ts): flushDue XADDs `e` <event JSON>
// pu/pn/pr expire ttlMs after their last write (a user whose pushes nobody flushes leaves no keys behind);
// pe/pa after receiptMemoryMs. pd and pc do not expire; a pd entry whose user's keys expired is dropped by
// the next flushDue that reaches it. pc drifts up by the notifications of such expired users.
//
// Times are the callers' `now` (ms since the epoch), not Redis' clock: the nodes' clocks are assumed to
// agree within a second, which only moves a push or a forgetting by that much. The scripts reach the
// per-user keys by name (prefix .. 'pu:' .. user): one Redis, not Redis Cluster (the backplane's keys are
// not hash-tagged either).
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ErrorCode, WireError } from '../../wire/codes.js';
import { PUSH_MAX_LISTED, type PushRead, type PushStore, type PushStoreOptions, type PushTarget, type TrackedNotification } from './types.js';

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

// KEYS: pd pc, then the destinations' streams; ARGV: now, max users, maxDepth, coalesceMs, maxListed, prefix,
// a random salt for the event ids. Returns the events made. The event is built by concatenation, the stored
// JSON embedded as is; str() escapes like JSON.stringify (cjson would also escape '/', and the memory store's
// event must come out byte for byte the same).
const FLUSH = `${LIB}
local function str(s)
  return '"' .. string.gsub(s, '[%z\\1-\\031\\\\"]', function(c)
    local e = ({['"'] = '\\\\"', ['\\\\'] = '\\\\\\\\', ['\\b'] = '\\\\b', ['\\f'] = '\\\\f', ['\\n'] = '\\\\n', ['\\r'] = '\\\\r', ['\\t'] = '\\\\t'})[c]
    return e or string.format('\\\\u%04x', string.byte(c))
  end) .. '"'
end
local now, maxDepth, coalesce, listed, P = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local made = 0
for _, user in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  for i = 3, #KEYS do
    if redis.call('XLEN', KEYS[i]) >= maxDepth then return made end
  end
  local pu, pn, pr = P .. 'pu:' .. user, P .. 'pn:' .. user, P .. 'pr:' .. user
  local due = redis.call('ZRANGEBYSCORE', pu, '-inf', now)
  if #due > 0 then
    local items = {}
    for i = #due, math.max(1, #due - listed + 1), -1 do
      local m = due[i]
      local epoch, offset = string.match(m, '^(.*):(%d+)$')
      local json = redis.call('HGET', pn, m) or 'null'
      local rec = redis.call('HEXISTS', pr, 'r:' .. m) == 1 and 'true' or 'false'
      items[#items + 1] = '{"epoch":' .. str(epoch) .. ',"offset":' .. offset .. ',"received":' .. rec .. ',"notification":' .. json .. '}'
    end
    local id = 'msg_' .. string.sub(redis.sha1hex(ARGV[7] .. user .. '\\0' .. table.concat(due, ',') .. now), 1, 32)
    local event = '{"id":"' .. id .. '","type":"notification.unread","ts":' .. now .. ',"data":{"userId":' .. str(user) ..
      ',"count":' .. #due .. ',"notifications":[' .. table.concat(items, ',') .. ']}}'
    for i = 3, #KEYS do redis.call('XADD', KEYS[i], '*', 'e', event) end
    for _, m in ipairs(due) do drop(pu, pn, pr, m) end
    unpending(KEYS[2], #due)
    made = made + 1
  end
  reschedule(KEYS[1], pu, user, coalesce)
end
return made`;

const SCRIPTS = { PUSH_TRACK: TRACK, PUSH_RECEIVED: RECEIVED, PUSH_READ: READ, PUSH_FLUSH: FLUSH };
type Scripts = { [K in keyof typeof SCRIPTS]: (numKeys: number, ...args: (string | number)[]) => Promise<unknown> };
const ps = (r: object) => r as Scripts;

function unavailable(err: unknown): never {
  if (err instanceof WireError) throw err;
  throw new WireError(ErrorCode.UNAVAILABLE, 'push tracking unavailable: the cluster store (Redis) cannot be reached', 503);
}

export interface RedisPushStoreOptions extends PushStoreOptions {
  /** How long a user's pu/pn/pr keys live after their last write: longer than any push can wait (e.g. 2 x (delay + coalesce + unread delay) + a margin). */
  readonly ttlMs: number;
  /** WEBHOOK_QUEUE_MAX: a destination stream with this many entries is full (the user's notifications stay pending). */
  readonly maxDepth: number;
}

export class RedisPushStore implements PushStore {
  /** For metrics: notifications dropped past maxPerUser (counted by this node's track() calls). */
  readonly dropped = { perUser: 0 };
  private readonly salt = randomBytes(8).toString('hex');

  constructor(
    private readonly cmd: Redis,
    private readonly key: (name: string) => string,
    private readonly options: RedisPushStoreOptions,
  ) {
    for (const k of ['coalesceMs', 'maxPerUser', 'receiptMemoryMs', 'ttlMs', 'maxDepth'] as const) {
      const v = options[k];
      if (!Number.isInteger(v) || v < (k === 'coalesceMs' ? 0 : 1)) throw new RangeError(`RedisPushStore: ${k} must be a positive integer, got ${v}`);
    }
    for (const [name, lua] of Object.entries(SCRIPTS)) cmd.defineCommand(name, { lua });
  }

  private userKeys(userId: string, names: readonly string[]): string[] {
    return names.map((n) => this.key(`${n}:${userId}`));
  }

  async track(userId: string, n: TrackedNotification, dueAt: number, now = Date.now()): Promise<void> {
    const o = this.options;
    const keys = [...this.userKeys(userId, ['pu', 'pn', 'pr', 'pe', 'pa']), this.key('pd'), this.key('pc')];
    const r = await ps(this.cmd)
      .PUSH_TRACK(keys.length, ...keys, userId, n.epoch, n.offset, n.id, n.json, dueAt, now, o.maxPerUser, o.coalesceMs, o.ttlMs)
      .catch(unavailable);
    if (r === 2) this.dropped.perUser++;
  }

  async received(userId: string, epoch: string, offsets: readonly number[], now: number, unreadDueAt?: number): Promise<void> {
    if (offsets.length === 0) return;
    const o = this.options;
    const keys = [...this.userKeys(userId, ['pu', 'pn', 'pr', 'pe']), this.key('pd'), this.key('pc')];
    await ps(this.cmd)
      .PUSH_RECEIVED(keys.length, ...keys, userId, epoch, now, unreadDueAt ?? '', o.coalesceMs, o.ttlMs, o.receiptMemoryMs, o.maxPerUser, ...offsets)
      .catch(unavailable);
  }

  async read(userId: string, change: PushRead, now = Date.now()): Promise<void> {
    const o = this.options;
    const keys = [...this.userKeys(userId, ['pu', 'pn', 'pr', 'pe', 'pa']), this.key('pd'), this.key('pc')];
    const args = 'id' in change ? ['id', change.id, 0] : ['all', change.epoch, change.allUpTo];
    await ps(this.cmd)
      .PUSH_READ(keys.length, ...keys, userId, ...args, now, o.coalesceMs, o.receiptMemoryMs, o.maxPerUser)
      .catch(unavailable);
  }

  async flushDue(now: number, max: number, target: PushTarget): Promise<number> {
    if (max <= 0) return 0;
    const keys = [this.key('pd'), this.key('pc'), ...target.destinations.map((d) => this.key(`wh:${d}`))];
    return (await ps(this.cmd)
      .PUSH_FLUSH(keys.length, ...keys, now, max, this.options.maxDepth, this.options.coalesceMs, PUSH_MAX_LISTED, this.key(''), this.salt)
      .catch(unavailable)) as number;
  }

  async pending(): Promise<number> {
    return Number((await this.cmd.get(this.key('pc')).catch(unavailable)) ?? 0);
  }
}
