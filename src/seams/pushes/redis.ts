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
// agree within a second, which only moves a push or a forgetting by that much. The scripts (redis-scripts.ts)
// reach the per-user keys by name (prefix .. 'pu:' .. user), in the slot of the partition's keys they were given.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ErrorCode, WireError } from '../../wire/codes.js';
import { shardOfSlot } from '../backplane/redis/ioredis-fix.js';
import { slotOf } from '../backplane/redis/keys.js';
import { SCRIPTS } from './redis-scripts.js';
import { PUSH_MAX_LISTED, type PushRead, type PushStore, type PushStoreOptions, type PushTarget, type TrackedNotification } from './types.js';

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
    const shards = new Map<string, number[]>();
    prefixes.forEach((p, i) => {
      const shard = shardOfSlot(this.cmd, slotOf(`${p}pd`)) ?? p;
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
