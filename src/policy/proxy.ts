// A backend proxy: storywire asks the app's backend (an HTTP POST) whether a user may subscribe, publish,
// notify or watch presence, with a timeout, a bounded decision cache and a cap on requests in flight.
// A backend that is slow, down, overloaded or answers garbage is UNAVAILABLE (retryable): never an allow,
// and never reported as the client's fault. Request and response bodies: protocol.md, "Backend proxies".
import http from 'node:http';
import https from 'node:https';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { ProxySpec } from '../wire/channels-file.js';
import { ErrorCode, WireError } from '../wire/codes.js';

export type ProxyKind = 'subscribe' | 'publish' | 'notify' | 'presence';

export type ProxyDecision = { readonly allow: true; readonly info?: unknown; readonly data?: unknown } | { readonly allow: false; readonly reason: string };

/** A backend's answer is at most this many bytes; a longer one is UNAVAILABLE. */
export const MAX_ANSWER_BYTES = 65536;
/** A refusal's `reason` is at most this many characters (it is shown to the client). */
export const MAX_REASON_CHARS = 200;
/** The reason of a refusal that gave none. */
export const DEFAULT_REASON = 'refused by the backend';

/** The cache key of a decision about one user on one channel (what `forget` takes to revoke it). */
export const decisionKey = (kind: ProxyKind, userId: string, channel: string): string => `${kind} ${userId} ${channel}`;

type Outcome = 'allow' | 'deny' | 'unavailable' | 'overloaded';

/** The proxies' metrics, one set per registry (every proxy of a server shares it, labelled by name). */
export class ProxyMetrics {
  readonly requests: Counter<'proxy' | 'kind' | 'outcome'>;
  readonly seconds: Histogram<'proxy' | 'kind'>;
  readonly cacheHits: Counter<'proxy' | 'kind'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({ name: 'storywire_proxy_requests_total', help: 'Requests to backend proxies by proxy, kind and outcome (allow, deny, unavailable, overloaded)', labelNames: ['proxy', 'kind', 'outcome'], registers });
    this.seconds = new Histogram({
      name: 'storywire_proxy_request_seconds',
      help: 'Time to a backend proxy answer (or its failure), by proxy and kind',
      labelNames: ['proxy', 'kind'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.cacheHits = new Counter({ name: 'storywire_proxy_cache_hits_total', help: 'Decisions answered from a backend proxy cache (or shared with a request in flight)', labelNames: ['proxy', 'kind'], registers });
  }
}

export interface ProxyDeps {
  readonly metrics?: ProxyMetrics;
}

interface Cached {
  readonly decision: ProxyDecision;
  readonly expires: number;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export class BackendProxy {
  /** Decisions by cache key, oldest first (a Map keeps insertion order: the first key is the one to drop). */
  private readonly cache = new Map<string, Cached>();
  /** Requests in flight by cache key: concurrent asks for one key share one request (single flight). */
  private readonly pending = new Map<string, Promise<ProxyDecision>>();
  private requestsInFlight = 0;
  private readonly target: URL;
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  private readonly metrics: ProxyMetrics | undefined;

  constructor(
    readonly name: string,
    readonly spec: ProxySpec,
    deps: ProxyDeps = {},
  ) {
    this.target = new URL(spec.url);
    this.transport = this.target.protocol === 'https:' ? https : http;
    // Keep-alive: a decision costs one round trip on a warm connection, not a TCP (and TLS) handshake.
    this.agent = new this.transport.Agent({ keepAlive: true, maxSockets: spec.maxInFlight, scheduling: 'lifo' });
    this.metrics = deps.metrics;
  }

  /** Requests to the backend now in flight (shared asks count once). */
  get inFlight(): number {
    return this.requestsInFlight;
  }

  /** Decisions held in the cache (expired ones included until they are asked for or pushed out). */
  get cached(): number {
    return this.cache.size;
  }

  /**
   * Asks the backend. `cacheKey`: decisions for the same key are reused for `cacheTtlMs` (publish passes none:
   * its answer depends on the data). Rejects with WireError UNAVAILABLE when no decision could be had.
   */
  ask(kind: ProxyKind, body: Readonly<Record<string, unknown>>, cacheKey?: string): Promise<ProxyDecision> {
    if (cacheKey === undefined) return this.request(kind, body);
    const hit = this.decided(kind, cacheKey);
    if (hit !== undefined) return Promise.resolve(hit);
    const shared = this.pending.get(cacheKey);
    if (shared !== undefined) {
      this.metrics?.cacheHits.inc({ proxy: this.name, kind });
      return shared;
    }
    const asked = this.request(kind, body);
    this.pending.set(cacheKey, asked);
    // Registered before the caller's own handlers: the decision is cached by the time the caller sees it.
    asked.then(
      (decision) => {
        // forget() during the request detached it: its answer may predate the revocation, so it is not kept.
        if (this.pending.get(cacheKey) !== asked) return;
        this.pending.delete(cacheKey);
        this.store(cacheKey, decision);
      },
      () => {
        if (this.pending.get(cacheKey) === asked) this.pending.delete(cacheKey);
      },
    );
    return asked;
  }

  /**
   * The cached decision for a key, in the same turn (no promise): what a caller checks before building a
   * request body, so that a decided channel costs one Map lookup. Undefined when not cached or expired.
   */
  decided(kind: ProxyKind, cacheKey: string): ProxyDecision | undefined {
    const hit = this.cache.get(cacheKey);
    if (hit === undefined) return undefined;
    if (hit.expires <= Date.now()) {
      this.cache.delete(cacheKey);
      return undefined;
    }
    this.hitCounter(kind)?.inc();
    return hit.decision;
  }

  /** The cache-hit counter of a kind, with its labels bound once (a labelled inc() looks them up each time). */
  private readonly hitCounters = new Map<ProxyKind, { inc(): void }>();
  private hitCounter(kind: ProxyKind): { inc(): void } | undefined {
    if (!this.metrics) return undefined;
    let c = this.hitCounters.get(kind);
    if (!c) {
      c = this.metrics.cacheHits.labels(this.name, kind);
      this.hitCounters.set(kind, c);
    }
    return c;
  }

  /** Drops the decision for a key (revocation): the next ask goes to the backend; a request in flight is not cached. */
  forget(cacheKey: string): void {
    this.cache.delete(cacheKey);
    this.pending.delete(cacheKey);
  }

  /** Drops every decision. */
  clear(): void {
    this.cache.clear();
    this.pending.clear();
  }

  /** Closes the kept-alive connections to the backend. */
  close(): void {
    this.agent.destroy();
  }

  private store(key: string, decision: ProxyDecision): void {
    const { cacheTtlMs, cacheMax } = this.spec;
    if (cacheTtlMs <= 0 || cacheMax <= 0) return;
    this.cache.delete(key);
    while (this.cache.size >= cacheMax) {
      const oldest = this.cache.keys().next();
      if (oldest.done === true) break;
      this.cache.delete(oldest.value);
    }
    this.cache.set(key, { decision, expires: Date.now() + cacheTtlMs });
  }

  private unavailable(why: string): WireError {
    return new WireError(ErrorCode.UNAVAILABLE, `backend proxy "${this.name}" ${why}: try again later`, 503);
  }

  private count(kind: ProxyKind, outcome: Outcome, startedMs?: number): void {
    if (this.metrics === undefined) return;
    this.metrics.requests.inc({ proxy: this.name, kind, outcome });
    if (startedMs !== undefined) this.metrics.seconds.observe({ proxy: this.name, kind }, (performance.now() - startedMs) / 1000);
  }

  /** One POST to the backend, within the timeout and the cap on requests in flight. */
  private request(kind: ProxyKind, body: Readonly<Record<string, unknown>>): Promise<ProxyDecision> {
    if (this.requestsInFlight >= this.spec.maxInFlight) {
      this.count(kind, 'overloaded');
      return Promise.reject(this.unavailable(`is overloaded (${this.spec.maxInFlight} requests in flight)`));
    }
    const doc: Record<string, unknown> = { kind, ...body };
    doc['kind'] = kind;
    const payload = JSON.stringify(doc);
    const started = performance.now();
    this.requestsInFlight++;
    return new Promise<ProxyDecision>((resolve, reject) => {
      let settled = false;
      let req: http.ClientRequest | undefined;
      const finish = (err: WireError | undefined, decision?: ProxyDecision) => {
        if (settled) return;
        settled = true;
        this.requestsInFlight--;
        clearTimeout(timer);
        if (err !== undefined) {
          this.count(kind, 'unavailable', started);
          req?.destroy();
          reject(err);
        } else {
          this.count(kind, decision!.allow ? 'allow' : 'deny', started);
          resolve(decision!);
        }
      };
      const timer = setTimeout(() => finish(this.unavailable(`did not answer within ${this.spec.timeoutMs} ms`)), this.spec.timeoutMs);
      const send = (retry: boolean) => {
        const r = this.transport.request(this.target, {
          method: 'POST',
          agent: this.agent,
          headers: { ...this.spec.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        });
        req = r;
        let answered = false;
        r.on('error', (err: NodeJS.ErrnoException) => {
          // A kept-alive connection the backend closed while idle fails at once on reuse: one new connection.
          if (retry && !answered && r.reusedSocket && err.code === 'ECONNRESET' && !settled) {
            send(false);
            return;
          }
          finish(this.unavailable(`could not be reached (${err.code ?? 'connection failed'})`));
        });
        r.on('response', (res) => {
          answered = true;
          this.read(res, finish);
        });
        r.end(payload);
      };
      send(true);
    });
  }

  /** Reads an answer, at most MAX_ANSWER_BYTES, and turns it into a decision. */
  private read(res: http.IncomingMessage, finish: (err: WireError | undefined, decision?: ProxyDecision) => void): void {
    const status = res.statusCode ?? 0;
    const declared = Number(res.headers['content-length']);
    if (declared > MAX_ANSWER_BYTES) {
      finish(this.unavailable(`answered more than ${MAX_ANSWER_BYTES} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) finish(this.unavailable(`answered more than ${MAX_ANSWER_BYTES} bytes`));
      else chunks.push(chunk);
    });
    const cut = () => finish(this.unavailable('closed the connection before its answer was complete'));
    res.on('error', cut);
    res.on('close', () => {
      if (!res.complete) cut();
    });
    res.on('end', () => {
      if (status !== 200) {
        finish(this.unavailable(`answered HTTP ${status}`));
        return;
      }
      try {
        finish(undefined, this.decide(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        finish(err as WireError);
      }
    });
  }

  private decide(text: string): ProxyDecision {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw this.unavailable('answered a body that is not JSON');
    }
    if (!isObj(doc) || typeof doc['allow'] !== 'boolean') throw this.unavailable('answered JSON without a boolean "allow"');
    if (doc['allow']) {
      const { info, data } = doc;
      if (info !== undefined && !isObj(info)) throw this.unavailable('answered an "info" that is not an object');
      if (data !== undefined && !isObj(data)) throw this.unavailable('answered a "data" that is not an object');
      return { allow: true, ...(info === undefined ? {} : { info }), ...(data === undefined ? {} : { data }) };
    }
    const reason = doc['reason'];
    if (reason === undefined) return { allow: false, reason: DEFAULT_REASON };
    if (typeof reason !== 'string' || reason.length > MAX_REASON_CHARS) throw this.unavailable(`answered a "reason" that is not a string of at most ${MAX_REASON_CHARS} characters`);
    return { allow: false, reason };
  }
}
