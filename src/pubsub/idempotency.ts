// Idempotency keys of backend publishes: the key checks (one rule for HTTP and the embedded API), the
// fingerprint of a request, a notification id derived from its key, and the bounded store a node keeps.
import { createHash } from 'node:crypto';
import { ErrorCode, WireError } from '../wire/codes.js';
import type { Idempotency } from '../seams/backplane/types.js';
import type { Position } from '../seams/history/types.js';

/** 1 to 255 visible ASCII characters, no space (the header's value as the IETF draft and Stripe use it). */
const KEY = /^[\x21-\x7e]{1,255}$/;

/** A checked key, or undefined when none was given; anything else is INVALID_PAYLOAD. */
export function idempotencyKey(v: unknown, where: string): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || !KEY.test(v)) throw new WireError(ErrorCode.INVALID_PAYLOAD, `${where} must be 1 to 255 visible ASCII characters (no space)`, 400);
  return v;
}

/** What a key stands for: a retry must be the same request (same route, same body). */
export function fingerprint(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('base64url').slice(0, 22);
}

/** The id a notification published under a key gets: the same for every retry, on every node. */
export function idFromKey(kind: string, key: string): string {
  const h = createHash('sha256').update(`${kind}\n${key}`).digest('hex');
  // An RFC 9562 UUID of version 8 (custom) and variant 10.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * A publish made under an idempotency key: one Idempotency per topic it goes to, and after it settled,
 * whether it was a duplicate (every topic already had it: nothing new was stored or sent).
 */
export class KeyedPublish {
  private readonly parts: Idempotency[] = [];

  /** `fingerprint` names the request the key stands for; left out, the server derives it from the arguments. */
  constructor(
    readonly key: string,
    public fingerprint?: string,
  ) {}

  /** @internal The idempotency of the publish on one more topic. */
  part(): Idempotency {
    const p = { key: this.key, fingerprint: this.fingerprint ?? '', duplicate: false };
    this.parts.push(p);
    return p;
  }

  get duplicate(): boolean {
    return this.parts.length > 0 && this.parts.every((p) => p.duplicate);
  }
}

export interface PublishOptions {
  /** A retry with the same key within IDEMPOTENCY_TTL_S stores and delivers nothing new (README, protocol.md). */
  idempotencyKey?: string;
}

/** The KeyedPublish of a facade call, or undefined without a key; the fingerprint from what was published. */
export function keyedFrom(options: PublishOptions | KeyedPublish | undefined, kind: string, args: unknown): KeyedPublish | undefined {
  if (options === undefined) return undefined;
  const key = options instanceof KeyedPublish ? undefined : idempotencyKey(options.idempotencyKey, 'options.idempotencyKey');
  const keyed = options instanceof KeyedPublish ? options : key === undefined ? undefined : new KeyedPublish(key);
  if (keyed !== undefined) keyed.fingerprint ??= fingerprint(kind, JSON.stringify(args));
  return keyed;
}

export type Claim = 'new' | 'duplicate' | 'conflict';

/**
 * The keys this node has seen, each for `ttlMs` (or the window its claim names), at most `maxKeys` (the oldest
 * forgotten first). Serves every keyed publish in memory mode, and the keyed live-only frames a node delivers in
 * cluster mode. A key of a recoverable topic also keeps where its publish was stored (record).
 */
export class IdempotencyStore {
  /**
   * Insertion order is claim order: a key is never refreshed, so the first entry is the oldest claimed. With
   * windows of different lengths it may outlive keys behind it: those stay, never answered (claim reads `until`),
   * until the bound or their turn at the front comes.
   */
  private readonly seen = new Map<string, { fingerprint: string; until: number; at: Position | undefined }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxKeys: number,
  ) {}

  get size(): number {
    return this.seen.size;
  }

  /** Records the key unless it is known: then says whether it stood for the same request. */
  claim(key: string, print: string, now = Date.now(), ttlMs = this.ttlMs): Claim {
    const prior = this.seen.get(key);
    if (prior !== undefined && prior.until > now) return prior.fingerprint === print ? 'duplicate' : 'conflict';
    if (prior !== undefined) this.seen.delete(key);
    for (const [k, v] of this.seen) {
      if (this.seen.size < this.maxKeys && v.until > now) break;
      this.seen.delete(k);
    }
    this.seen.set(key, { fingerprint: print, until: now + ttlMs, at: undefined });
    return 'new';
  }

  /** Where the publish claimed under `key` was stored (its topic's history position). */
  record(key: string, at: Position): void {
    const entry = this.seen.get(key);
    if (entry !== undefined) entry.at = { epoch: at.epoch, offset: at.offset };
  }

  /** The position record() kept for a key, if its publish was stored. */
  storedAt(key: string): Position | undefined {
    return this.seen.get(key)?.at;
  }
}
