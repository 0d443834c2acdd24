// The key set of JWT_JWKS_URL: fetched with a size cap and a deadline, warmed at start, kept through outages.
import { createLocalJWKSet, errors as joseErrors, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters } from 'jose';
import type { Logger } from 'pino';
import { ErrorCode, WireError } from '../wire/codes.js';

export interface KeySetOptions {
  readonly url: URL;
  /** A good set is fetched again this long after it was fetched (JWT_JWKS_CACHE_MS). */
  readonly cacheMaxAgeMs: number;
  /** Deadline of one fetch, body included. */
  readonly timeoutMs: number;
  /** Largest answer read (JWT_JWKS_MAX_BYTES): a longer one is a failed fetch, cut as soon as it passes. */
  readonly maxBytes: number;
  readonly log: Logger;
  /** An unknown `kid` fetches the set again only when the last good fetch is older than this. */
  readonly cooldownMs?: number;
  /** Delay of the first retry after a failed fetch, doubled at each failure up to retryMaxMs. */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
}

type LocalSet = ReturnType<typeof createLocalJWKSet>;
type Key = Awaited<ReturnType<LocalSet>>;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The remote key set, fetched by us rather than by jose's createRemoteJWKSet, which refetches a stale set on
 * the request path (every verification of an outage then waits for a fetch that fails, up to its timeout) and
 * reports an HTTP error like a bad token. Here:
 * - a timer fetches the set every `cacheMaxAgeMs`; a failed fetch is retried with a doubling delay
 *   (`retryMinMs` .. `retryMaxMs`), each failure logged once as a warning;
 * - a verification never waits for a fetch while a set is cached: the last good set keeps verifying through an
 *   outage, however long (keys removed from the set stop verifying after the next good fetch);
 * - an unknown `kid` fetches at once, at most every `cooldownMs` (a rotation); when that fetch is not possible the
 *   answer is UNAVAILABLE, not TOKEN_INVALID: nobody can tell whether the key exists;
 * - before the first good fetch, every token is UNAVAILABLE (503 at the upgrade, 4104 in band).
 * An answer other than 200 (a redirect included: it is not followed), over `maxBytes`, not JSON or not a key set
 * is a failed fetch like an unreachable endpoint.
 */
export class RemoteKeySet {
  private keys: LocalSet | undefined;
  /** Date.now() of the last good fetch. */
  private fetchedAt = 0;
  /** Date.now() of the last failed fetch, and how many failed in a row. */
  private failedAt = 0;
  private failures = 0;
  private inFlight: Promise<boolean> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly cooldownMs: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  /** For the logs: no userinfo nor query (they may carry a credential). */
  private readonly where: string;

  constructor(private readonly o: KeySetOptions) {
    this.cooldownMs = o.cooldownMs ?? 30_000;
    this.retryMinMs = o.retryMinMs ?? 500;
    this.retryMaxMs = o.retryMaxMs ?? 30_000;
    this.where = `${o.url.origin}${o.url.pathname}`;
  }

  /** A key set was fetched at least once (readiness). */
  get ready(): boolean {
    return this.keys !== undefined;
  }

  /** Fetches now and keeps the set fresh until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    void this.fetchNow();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  /** jose's key resolver: the key for this header, or a WireError UNAVAILABLE when it cannot be known now. */
  readonly resolve = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<Key> => {
    if (this.keys === undefined && !(await this.tryFetch())) {
      throw unavailable('the key set (JWT_JWKS_URL) could not be fetched yet');
    }
    try {
      return await this.keys!(header, token);
    } catch (err) {
      // A set fetched within the cooldown is current enough: this kid is not in it (TOKEN_INVALID).
      if (!(err instanceof joseErrors.JWKSNoMatchingKey) || Date.now() - this.fetchedAt < this.cooldownMs) throw err;
      if (!(await this.tryFetch())) throw unavailable('no cached key has this kid and the key set (JWT_JWKS_URL) cannot be fetched now');
      return this.keys!(header, token);
    }
  };

  /** The fetch under way, else a new one unless one failed less than retryMinMs ago (then false at once). */
  private tryFetch(): Promise<boolean> {
    if (this.inFlight) return this.inFlight;
    if (this.failures > 0 && Date.now() - this.failedAt < this.retryMinMs) return Promise.resolve(false);
    return this.fetchNow();
  }

  private fetchNow(): Promise<boolean> {
    this.inFlight ??= fetchKeySet(this.o.url, this.o.timeoutMs, this.o.maxBytes)
      .then(
        (keys) => {
          if (this.failures > 0) this.o.log.info({ url: this.where, failures: this.failures }, 'JWKS fetched again after failures');
          this.keys = keys;
          this.fetchedAt = Date.now();
          this.failures = 0;
          return true;
        },
        (err: unknown) => {
          this.failures++;
          this.failedAt = Date.now();
          const cached = this.keys !== undefined;
          this.o.log.warn(
            { url: this.where, reason: (err as Error).message, failures: this.failures, retryInMs: this.running ? this.retryDelay() : undefined, cached },
            cached ? 'JWKS fetch failed: the cached keys keep verifying' : 'JWKS fetch failed: no key set yet, every token is answered UNAVAILABLE',
          );
          return false;
        },
      )
      .finally(() => {
        this.inFlight = undefined;
        this.schedule();
      });
    return this.inFlight;
  }

  private retryDelay(): number {
    return Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(this.failures - 1, 20));
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (!this.running) return;
    this.timer = setTimeout(() => void this.fetchNow(), this.failures === 0 ? this.o.cacheMaxAgeMs : this.retryDelay());
    this.timer.unref();
  }
}

function unavailable(message: string): WireError {
  return new WireError(ErrorCode.UNAVAILABLE, message, 503);
}

/** One GET of the set: 200 only, redirects not followed, the body read up to maxBytes, within timeoutMs. */
export async function fetchKeySet(url: URL, timeoutMs: number, maxBytes: number): Promise<LocalSet> {
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, { signal, redirect: 'manual', headers: { accept: 'application/json, application/jwk-set+json' } });
  } catch (err) {
    throw new Error(signal.aborted ? `no answer within ${timeoutMs} ms` : `unreachable (${(err as Error).cause ?? (err as Error).message})`);
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => {});
    throw new Error(`answered HTTP ${res.status}, not 200`);
  }
  const text = await readCapped(res, maxBytes, signal, timeoutMs);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error('answered something that is not JSON');
  }
  try {
    return createLocalJWKSet(json as JSONWebKeySet);
  } catch {
    throw new Error('answered JSON that is not a key set ({"keys": [...]})');
  }
}

async function readCapped(res: Response, maxBytes: number, signal: AbortSignal, timeoutMs: number): Promise<string> {
  const tooLong = `answered more than JWT_JWKS_MAX_BYTES (${maxBytes} bytes)`;
  const declared = Number(res.headers.get('content-length') ?? 0);
  const reader = res.body?.getReader();
  if (!reader) return '';
  if (declared > maxBytes) {
    await reader.cancel().catch(() => {});
    throw new Error(tooLong);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    // Bounded: the loop ends at the body's end, past maxBytes, or when the deadline aborts the stream.
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new Error(tooLong);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (signal.aborted) throw new Error(`no whole answer within ${timeoutMs} ms`);
    throw err;
  }
  try {
    return strictUtf8.decode(Buffer.concat(chunks));
  } catch {
    throw new Error('answered something that is not UTF-8');
  }
}
