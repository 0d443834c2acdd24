// Push tracking in Redis (cluster mode): every write is one Lua script, so that each push leaves once,
// cluster-wide, whichever node polls.
//
// Layout (after the backplane's prefix; with Redis Cluster, after the prefix of the user's partition, whose
// hash tag puts a user's keys, and its partition's pd, pc, po and pq, in one slot: seams/backplane/redis/keys.ts):
//   pu:<user>   zset  `<epoch>:<offset>` -> dueAt (ms): the user's pending notifications
//   pn:<user>   hash  `<epoch>:<offset>` -> the notification's JSON, as stored (embedded in the event as is)
//   pr:<user>   hash  `r:<member>` -> 1 (received, waiting for PUSH_UNREAD_DELAY_MS), `d:<member>` -> its id,
//                     `i:<id>` -> its member (notifications:read {id})
//   pe:<user>   zset  `r:<epoch>:<offset>` (a receipt) or `i:<id>` (a read) of a notification not tracked yet
//                     -> when it is forgotten (now + receiptMemoryMs); at most maxPerUser, the oldest go
//   pa:<user>   hash  {epoch, upTo, exp}: the latest read of everything, remembered until exp
//   pd          zset  user -> push time (the oldest pending dueAt + coalesceMs)
//   pc          string: notifications pending over all users (pending(): an estimate, see below)
//   wh:<dest>   one Redis: the destinations' webhook streams (seams/webhooks/redis.ts): flushDue XADDs
//               `e` <event JSON> into each in the same script
//   po, pq      Redis Cluster only, the partition's outbox: the destinations' streams are on other shards, so
//               the script moves a due push into po (hash event id -> event JSON) and pq (zset event id ->
//               until when the node that made it holds it: now + claimMs) in its atomic step, the node then
//               adds it to every destination's queue and deletes it from po and pq. One that stays past its
//               hold (its node died, Redis went away, a queue was full) is taken again by the next flushDue on
//               any node: sent at least once, under the same id (the receiver drops duplicates by webhook-id).
// pu/pn/pr expire ttlMs after their last write (a user whose pushes nobody flushes leaves no keys behind);
// pe/pa after receiptMemoryMs. pd and pc do not expire; a pd entry whose user's keys expired is dropped by
// the next flushDue that reaches it. pc drifts up by the notifications of such expired users.
//
// Times are the callers' `now` (ms since the epoch), not Redis' clock: the nodes' clocks are assumed to
// agree within a second, which only moves a push or a forgetting by that much. The scripts reach the
// per-user keys by name (prefix .. 'pu:' .. user), in the slot of the partition's keys they were given.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ErrorCode, WireError } from '../../wire/codes.js';
import { slotOf } from '../backplane/redis/keys.js';
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

const SCRIPTS = { PUSH_TRACK: TRACK, PUSH_RECEIVED: RECEIVED, PUSH_READ: READ, PUSH_FLUSH: FLUSH, PUSH_FLUSH_OUT: FLUSH_OUT, PUSH_PROBE: PROBE };
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
  /** Redis Cluster: how long the node that made a push holds it in the outbox before any node may take it again (default 30 s). */
  readonly claimMs?: number;
}

/** Where the store's keys are: one Redis, or the partitions of a Redis Cluster (seams/backplane/redis/keys.ts). */
export interface PushLayout {
  /** Every partition's prefix (one with one Redis). */
  readonly prefixes: readonly string[];
  /** The prefix of a user's partition. */
  forUser(userId: string): string;
  /** Redis Cluster: due pushes go through each partition's outbox to the destinations' queues (on other shards). */
  readonly outbox: boolean;
}

export class RedisPushStore implements PushStore {
  /** For metrics: notifications dropped past maxPerUser (counted by this node's track() calls). */
  readonly dropped = { perUser: 0 };
  private readonly salt = randomBytes(8).toString('hex');
  private readonly layout: PushLayout;

  constructor(
    private readonly cmd: Redis,
    private readonly key: (name: string) => string,
    private readonly options: RedisPushStoreOptions,
    layout?: PushLayout,
  ) {
    for (const k of ['coalesceMs', 'maxPerUser', 'receiptMemoryMs', 'ttlMs', 'maxDepth'] as const) {
      const v = options[k];
      if (!Number.isInteger(v) || v < (k === 'coalesceMs' ? 0 : 1)) throw new RangeError(`RedisPushStore: ${k} must be a positive integer, got ${v}`);
    }
    if (options.claimMs !== undefined && !(Number.isInteger(options.claimMs) && options.claimMs >= 1)) throw new RangeError(`RedisPushStore: claimMs must be a positive integer, got ${options.claimMs}`);
    const prefix = key('');
    this.layout = layout ?? { prefixes: [prefix], forUser: () => prefix, outbox: false };
    for (const [name, lua] of Object.entries(SCRIPTS)) cmd.defineCommand(name, { lua });
  }

  /** The user's keys `names`, then its partition's pd and pc. */
  private userKeys(userId: string, names: readonly string[]): string[] {
    const p = this.layout.forUser(userId);
    return [...names.map((n) => `${p}${n}:${userId}`), `${p}pd`, `${p}pc`];
  }

  async track(userId: string, n: TrackedNotification, dueAt: number, now = Date.now()): Promise<void> {
    const o = this.options;
    const keys = this.userKeys(userId, ['pu', 'pn', 'pr', 'pe', 'pa']);
    const r = await ps(this.cmd)
      .PUSH_TRACK(keys.length, ...keys, userId, n.epoch, n.offset, n.id, n.json, dueAt, now, o.maxPerUser, o.coalesceMs, o.ttlMs)
      .catch(unavailable);
    if (r === 2) this.dropped.perUser++;
  }

  async received(userId: string, epoch: string, offsets: readonly number[], now: number, unreadDueAt?: number): Promise<void> {
    if (offsets.length === 0) return;
    const o = this.options;
    const keys = this.userKeys(userId, ['pu', 'pn', 'pr', 'pe']);
    await ps(this.cmd)
      .PUSH_RECEIVED(keys.length, ...keys, userId, epoch, now, unreadDueAt ?? '', o.coalesceMs, o.ttlMs, o.receiptMemoryMs, o.maxPerUser, ...offsets)
      .catch(unavailable);
  }

  async read(userId: string, change: PushRead, now = Date.now()): Promise<void> {
    const o = this.options;
    const keys = this.userKeys(userId, ['pu', 'pn', 'pr', 'pe', 'pa']);
    const args = 'id' in change ? ['id', change.id, 0] : ['all', change.epoch, change.allUpTo];
    await ps(this.cmd)
      .PUSH_READ(keys.length, ...keys, userId, ...args, now, o.coalesceMs, o.receiptMemoryMs, o.maxPerUser)
      .catch(unavailable);
  }

  async flushDue(now: number, max: number, target: PushTarget): Promise<number> {
    if (max <= 0) return 0;
    if (this.layout.outbox) return this.flushThroughOutboxes(now, max, target);
    const keys = [this.key('pd'), this.key('pc'), ...target.destinations.map((d) => this.key(`wh:${d}`))];
    return (await ps(this.cmd)
      .PUSH_FLUSH(keys.length, ...keys, now, max, this.options.maxDepth, this.options.coalesceMs, PUSH_MAX_LISTED, this.key(''), this.salt)
      .catch(unavailable)) as number;
  }

  /**
   * Redis Cluster: the due pushes of the partitions that have some (at most `max` events in all, and no more
   * than the fullest destination's queue has room for) into their outboxes, then into every destination's
   * queue, then out of the outboxes. Resolves the events handed to the queues.
   */
  private async flushThroughOutboxes(now: number, max: number, target: PushTarget): Promise<number> {
    const queues = target.queues;
    if (queues === undefined) throw new Error('RedisPushStore: with Redis Cluster the target must give its queues');
    const o = this.options;
    const depths = await Promise.all(queues.map((q) => q.depth())).catch(unavailable);
    let budget = Math.min(max, o.maxDepth - Math.max(0, ...depths));
    if (budget <= 0) return 0;
    // Which partitions have users due or outbox entries whose hold ran out.
    const prefixes = this.layout.prefixes;
    const counts = await this.dueCounts(prefixes, now).catch(unavailable);
    // The budget shared out from a partition that turns with the time, so that none waits behind the others.
    const shares: [prefix: string, max: number][] = [];
    const first = Math.floor(now / 100) % prefixes.length;
    for (let i = 0; i < prefixes.length && budget > 0; i++) {
      const k = (first + i) % prefixes.length;
      const n = Math.min(counts[k]!, budget);
      if (n > 0) shares.push([prefixes[k]!, n]);
      budget -= n;
    }
    const made = await Promise.all(shares.map(([p, n]) => this.flushPartition(p, now, n, queues)));
    return made.reduce((a, b) => a + b, 0);
  }

  /**
   * Per partition, its users due and its outbox entries whose hold ran out: one call per shard (the partitions
   * whose slots one primary serves, as ioredis' slot map says; all of them with one Redis). A shard whose call
   * fails (a slot moving away, a slot map not updated yet) is asked partition by partition.
   */
  private async dueCounts(prefixes: readonly string[], now: number): Promise<number[]> {
    const slots = (this.cmd as unknown as { slots?: string[][] }).slots;
    const shards = new Map<string, number[]>();
    prefixes.forEach((p, i) => {
      const shard = slots === undefined ? '' : (slots[slotOf(`${p}pd`)]?.[0] ?? p);
      const of = shards.get(shard);
      if (of === undefined) shards.set(shard, [i]);
      else of.push(i);
    });
    const counts = new Array<number>(prefixes.length).fill(0);
    await Promise.all(
      [...shards.values()].map(async (of) => {
        const mine = of.map((i) => prefixes[i]!);
        const r = (await ps(this.cmd)
          .PUSH_PROBE(1, `${mine[0]}pd`, now, ...mine)
          .catch(() => undefined)) as number[] | undefined;
        if (r !== undefined && r.length === of.length) {
          for (const [j, i] of of.entries()) counts[i] = Number(r[j]);
          return;
        }
        await Promise.all(
          of.map(async (i) => {
            counts[i] = await this.dueCount(prefixes[i]!, now);
          }),
        );
      }),
    );
    return counts;
  }

  /** One partition's users due and outbox entries whose hold ran out (one pipeline: one slot). */
  private async dueCount(p: string, now: number): Promise<number> {
    const r = await this.cmd.pipeline().zcount(`${p}pd`, '-inf', now).zcount(`${p}pq`, '-inf', now).exec();
    return r === null ? 0 : r.reduce((sum, [err, n]) => (err === null ? sum + Number(n) : sum), 0);
  }

  private async flushPartition(p: string, now: number, max: number, queues: NonNullable<PushTarget['queues']>): Promise<number> {
    const o = this.options;
    const keys = [`${p}pd`, `${p}pc`, `${p}po`, `${p}pq`];
    const out = (await ps(this.cmd)
      .PUSH_FLUSH_OUT(keys.length, ...keys, now, max, o.coalesceMs, PUSH_MAX_LISTED, p, this.salt, o.claimMs ?? 30_000)
      .catch(unavailable)) as [number, ...string[]];
    const sent: string[] = [];
    const full: string[] = [];
    for (let i = 1; i + 1 < out.length; i += 2) {
      const id = out[i] as string;
      const json = out[i + 1] as string;
      // A queue that is unreachable leaves the push in the outbox, taken again by any node once its hold ran
      // out; one that is full (another node filled it meanwhile) releases it at once, for the next flush.
      const taken = await Promise.all(queues.map((q) => q.enqueueJson(json))).catch(() => undefined);
      if (taken === undefined) continue;
      (taken.every(Boolean) ? sent : full).push(id);
    }
    if (sent.length + full.length > 0) {
      const done = this.cmd.multi();
      if (sent.length > 0) done.hdel(keys[2]!, ...sent).zrem(keys[3]!, ...sent);
      for (const id of full) done.zadd(keys[3]!, 'XX', now, id);
      await done.exec().catch(() => undefined);
    }
    // What reached the queues: made now or taken again from the outbox (one made and not handed over counts
    // when it is).
    return sent.length;
  }

  async pending(): Promise<number> {
    const counts = await Promise.all(this.layout.prefixes.map((p) => this.cmd.get(`${p}pc`))).catch(unavailable);
    return counts.reduce((sum, c) => sum + Number(c ?? 0), 0);
  }
}
