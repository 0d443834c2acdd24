// The webhook queue in Redis (cluster mode): a Stream with one consumer group, so each event goes to one
// node and a dead node's events to another.
//
// Layout (after the backplane's prefix), for the destination <name> (with Redis Cluster `wh:{<name>}` and
// `wha:{<name>}`: the hash tag keeps both in one slot, for the MULTI of an ack):
//   wh:<name>   stream; each entry has ONE field `e` whose value is the event's JSON,
//               {"id":"<event id>","type":"user.online","ts":<ms since the epoch>,"data":{...}}
//               (seams/pushes' Lua script XADDs entries of exactly this shape: keep them in step).
//               Consumer group `senders`, one consumer per node (its node id). An entry leaves the stream
//               when it is acked (XACK + XDEL), so the stream holds only what is still to be sent.
//   wha:<name>  hash event id -> failed attempts, deleted on ack, so that a takeover continues the count.
// A held entry is renewed (XCLAIM ... JUSTID: idle reset, delivery count untouched) every claimIdleMs/3 while
// its holder retries it; one idle past claimIdleMs belongs to a dead node and XAUTOCLAIM hands it to the next
// consumer that takes. Redis unreachable: every method rejects and nothing is lost (the caller retries). A
// Redis that restarted empty lost the events (there is nothing to recover); the group is created again on the
// first NOGROUP.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ClusterWebhookQueue, HeldEvent, WebhookEvent, WebhookQueueOptions } from './types.js';

export const GROUP = 'senders';

/** The stream's name before the prefix: `key(streamKey(name))` is the key; `tagged` with Redis Cluster. */
export function streamKey(name: string, tagged = false): string {
  return tagged ? `wh:{${name}}` : `wh:${name}`;
}

/** The attempts hash's name before the prefix (in the stream's slot when `tagged`). */
export function attemptsKey(name: string, tagged = false): string {
  return tagged ? `wha:{${name}}` : `wha:${name}`;
}

/** KEYS: the stream; ARGV: maxDepth, the event's JSON. 1 when added, 0 when the queue is full. */
export const WH_ENQUEUE = `
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], '*', 'e', ARGV[2])
return 1`;

type Entry = [id: string, fields: string[]];
type Scripts = { whEnqueue(stream: string, maxDepth: number, json: string): Promise<number> };

/** The event of an entry, or undefined when it is not of the documented shape. */
export function parseEntry(fields: readonly string[] | null): WebhookEvent | undefined {
  if (!fields) return undefined;
  const i = fields.indexOf('e');
  if (i < 0 || i % 2 !== 0) return undefined;
  try {
    const e = JSON.parse(fields[i + 1] ?? '') as Partial<WebhookEvent> | null;
    if (e === null || typeof e !== 'object' || typeof e.id !== 'string' || e.id === '' || typeof e.type !== 'string') return undefined;
    if (typeof e.ts !== 'number' || !Number.isFinite(e.ts) || e.data === null || typeof e.data !== 'object' || Array.isArray(e.data)) return undefined;
    return { id: e.id, type: e.type, ts: e.ts, data: e.data };
  } catch {
    return undefined;
  }
}

const isNoGroup = (err: unknown) => err instanceof Error && err.message.startsWith('NOGROUP');

export class RedisWebhookQueue implements ClusterWebhookQueue {
  /** Entries that were not of the documented shape: acked, deleted and logged. */
  invalid = 0;
  private readonly stream: string;
  private readonly attemptsHash: string;
  /** What this consumer holds: event id -> stream entry id. */
  private readonly held = new Map<string, string>();
  private groupReady = false;
  private readonly renewTimer: NodeJS.Timeout;

  constructor(
    private readonly cmd: Redis,
    key: (name: string) => string,
    private readonly nodeId: string,
    readonly name: string,
    private readonly options: WebhookQueueOptions,
    private readonly log?: Logger,
    /** Redis Cluster: the stream and its attempts hash get a hash tag (one slot). */
    tagged = false,
  ) {
    this.stream = key(streamKey(name, tagged));
    this.attemptsHash = key(attemptsKey(name, tagged));
    cmd.defineCommand('whEnqueue', { numberOfKeys: 1, lua: WH_ENQUEUE });
    this.renewTimer = setInterval(() => void this.renew(), Math.max(10, Math.floor(options.claimIdleMs / 3)));
    this.renewTimer.unref();
  }

  async enqueue(event: WebhookEvent): Promise<boolean> {
    return this.enqueueJson(JSON.stringify({ id: event.id, type: event.type, ts: event.ts, data: event.data }));
  }

  /** enqueue() of an event already in the documented JSON shape (the push store's, made in Lua). */
  async enqueueJson(json: string): Promise<boolean> {
    return (await (this.cmd as unknown as Scripts).whEnqueue(this.stream, this.options.maxDepth, json)) === 1;
  }

  async take(n: number): Promise<HeldEvent[]> {
    if (n <= 0) return [];
    try {
      return await this.takeOnce(n);
    } catch (err) {
      if (!isNoGroup(err)) throw err;
      // Redis restarted (or the stream was deleted): whatever this node held is gone with it.
      this.groupReady = false;
      this.held.clear();
      return this.takeOnce(n);
    }
  }

  private async ensureGroup(): Promise<void> {
    if (this.groupReady) return;
    // From 0, not $: entries XADDed before the group existed are events to send too.
    await this.cmd.xgroup('CREATE', this.stream, GROUP, '0', 'MKSTREAM').catch((err: unknown) => {
      if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
    });
    this.groupReady = true;
  }

  private async takeOnce(n: number): Promise<HeldEvent[]> {
    await this.ensureGroup();
    const claimed = (await this.cmd.xautoclaim(this.stream, GROUP, this.nodeId, this.options.claimIdleMs, '0-0', 'COUNT', n)) as [string, Entry[], string[]];
    // Our own entries come back when a renewal failed (Redis was away): they are still ours, not new.
    let entries = claimed[1].filter(([, fields]) => {
      const e = parseEntry(fields);
      return e === undefined || !this.held.has(e.id);
    });
    if (entries.length < n) {
      const read = (await this.cmd.xreadgroup('GROUP', GROUP, this.nodeId, 'COUNT', n - entries.length, 'STREAMS', this.stream, '>')) as [string, Entry[]][] | null;
      entries = entries.concat(read?.[0]?.[1] ?? []);
    }
    const events: { streamId: string; event: WebhookEvent }[] = [];
    const bad: string[] = [];
    for (const [streamId, fields] of entries) {
      const event = parseEntry(fields);
      if (event === undefined) bad.push(streamId);
      else events.push({ streamId, event });
    }
    if (bad.length > 0) await this.dropInvalid(bad);
    if (events.length === 0) return [];
    const counts = await this.cmd.hmget(this.attemptsHash, ...events.map((e) => e.event.id));
    return events.map(({ streamId, event }, i) => {
      this.held.set(event.id, streamId);
      return { event, attempts: Number(counts[i] ?? 0) };
    });
  }

  private async dropInvalid(ids: string[]): Promise<void> {
    await this.cmd.multi().xack(this.stream, GROUP, ...ids).xdel(this.stream, ...ids).exec();
    this.invalid += ids.length;
    this.log?.error({ destination: this.name, entries: ids }, 'webhook queue: entries not of the documented shape dropped');
  }

  /** Resets the idle time of what this consumer holds, so that another node does not take it over. */
  private async renew(): Promise<void> {
    if (this.held.size === 0) return;
    try {
      await this.cmd.xclaim(this.stream, GROUP, this.nodeId, 0, ...this.held.values(), 'JUSTID');
    } catch (err) {
      this.log?.debug({ err, destination: this.name }, 'webhook queue: renewal failed');
    }
  }

  async ack(id: string): Promise<void> {
    const streamId = this.held.get(id);
    if (streamId === undefined) {
      await this.cmd.hdel(this.attemptsHash, id);
      return;
    }
    const res = await this.cmd.multi().xack(this.stream, GROUP, streamId).xdel(this.stream, streamId).hdel(this.attemptsHash, id).exec();
    const err = res?.find(([e]) => e !== null)?.[0];
    if (err && !isNoGroup(err)) throw err;
    this.held.delete(id);
  }

  async failed(id: string): Promise<number> {
    return this.cmd.hincrby(this.attemptsHash, id, 1);
  }

  depth(): Promise<number> {
    return this.cmd.xlen(this.stream);
  }

  async close(): Promise<void> {
    clearInterval(this.renewTimer);
    this.held.clear();
  }
}
