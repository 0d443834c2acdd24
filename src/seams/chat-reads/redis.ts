// Chat read positions in Redis (cluster mode), shared by every node.
//
// Layout (after the backplane's prefix):
//   cr:<user>   hash channel -> "<epoch> <offset>": the user's read position in each channel, in the epoch of
//               the channel's history it was marked in; the hash is kept the longest history TTL of the channels
//               written to it, from its last write (a write never shortens it).
import type { Redis } from 'ioredis';
import { ErrorCode, WireError } from '../../wire/codes.js';
import type { Advanced, ChatReadStore, ReadPosition } from './types.js';

// KEYS: the user's hash; ARGV: channel, epoch, offset, ttl ms. Returns {offset now, moved (0/1)}.
export const ADVANCE = `
local cur = 0
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  local epoch, off = string.match(held, '^(%S+) (%d+)$')
  if epoch == ARGV[2] then cur = tonumber(off) end
end
local want = tonumber(ARGV[3])
if want <= cur then return {cur, 0} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. want)
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return {want, 1}`;

type Scripts = { ADVANCE: (numKeys: number, ...args: (string | number)[]) => Promise<unknown> };
const cs = (r: object) => r as Scripts;

function unavailable(err: unknown): never {
  if (err instanceof WireError) throw err;
  throw new WireError(ErrorCode.UNAVAILABLE, 'chat read positions unavailable: the cluster store (Redis) cannot be reached', 503);
}

export class RedisChatReads implements ChatReadStore {
  constructor(
    private readonly cmd: Redis,
    private readonly key: (name: string) => string,
  ) {
    cmd.defineCommand('ADVANCE', { lua: ADVANCE });
  }

  async advance(userId: string, channel: string, epoch: string, offset: number, ttlMs: number): Promise<Advanced> {
    const [now, moved] = (await cs(this.cmd).ADVANCE(1, this.key(`cr:${userId}`), channel, epoch, offset, ttlMs).catch(unavailable)) as [number, number];
    return { offset: now, moved: moved === 1 };
  }

  async get(userId: string, channels: readonly ReadPosition[]): Promise<number[]> {
    if (channels.length === 0) return [];
    const held = await this.cmd.hmget(this.key(`cr:${userId}`), ...channels.map((c) => c.channel)).catch(unavailable);
    return channels.map(({ epoch }, i) => {
      const h = held[i];
      if (h === null || h === undefined) return 0;
      const sp = h.indexOf(' ');
      return h.slice(0, sp) === epoch ? Number(h.slice(sp + 1)) : 0;
    });
  }
}
