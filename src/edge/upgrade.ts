// The WebSocket upgrade: cheap refusals first, then the token, the per-user cap, and the connection's state.
import type { Logger } from 'pino';
import { extractToken, type Principal, type TokenSource, type Verifier } from './auth.js';
import type { Backplane } from '../seams/backplane/types.js';
import type { PresenceStore } from '../seams/presence/types.js';
import type { Config } from '../config.js';
import type { Connections } from './connections.js';
import type { Conn, Held, Refused } from './conn.js';
import { ErrorCode, WireError, errorBody, refusalCloseCode } from '../wire/codes.js';
import type { Position } from '../seams/history/types.js';
import { statusLine } from '../api/http.js';
import { BucketStore, Counts } from './rates.js';
import { ClientAddresses } from './address.js';
import type { ConnectOutcome, Metrics } from '../metrics.js';
import { parseSinceParam } from '../wire/protocol.js';
import type { UWS } from '../uws.js';

export interface UpgradeDeps {
  config: Config;
  /** MAX_CONNECTIONS as the open-files limit allows it (descriptors.ts). */
  maxConnections: number;
  log: Logger;
  metrics: Metrics;
  verifier: Verifier;
  backplane: Backplane;
  presence: PresenceStore;
  connections: Connections;
  /** True from the start of a shutdown: new connections are refused with 503. */
  shuttingDown(): boolean;
}

export interface Upgrades {
  /** The uWS `upgrade` handler. */
  handle(res: UWS.HttpResponse, req: UWS.HttpRequest, context: UWS.us_socket_context_t): void;
  /** Whole seconds a connection has been open. */
  durationS(conn: Conn): number;
}

/** A refusal that names when to try again: `Retry-After` over HTTP, "retry in N s" in its message. */
export class RetryLater extends WireError<'RATE_LIMITED'> {
  constructor(
    what: string,
    readonly retryAfterS: number,
  ) {
    super(ErrorCode.RATE_LIMITED, `${what}: retry in ${retryAfterS} s`, 429);
  }
}

/** A close reason of at most 123 bytes (the WebSocket limit), cut on a character boundary. */
export function closeReason(text: string): string {
  if (Buffer.byteLength(text) <= 123) return text;
  let s = text.slice(0, 120);
  const highSurrogate = () => /[\uD800-\uDBFF]$/.test(s);
  while (Buffer.byteLength(s) > 120 || highSurrogate()) s = s.slice(0, -1);
  return `${s}...`;
}

/** One upgrade's parts, from the request (read before the handler returns: uWS reuses the request). */
interface Attempt {
  readonly res: UWS.HttpResponse;
  readonly context: UWS.us_socket_context_t;
  readonly secKey: string;
  readonly secExtensions: string;
  readonly source: TokenSource;
  readonly ip: string;
}

/** The refusal of an upgrade during a shutdown (before or after its token and budgets were checked). */
const shuttingDown = () => new WireError(ErrorCode.UNAVAILABLE, 'server shutting down: connect to another node', 503);

export function createUpgrades(deps: UpgradeDeps): Upgrades {
  return new UpgradeHandler(deps);
}

/** The uWS upgrade handler of one node: cheap refusals, then the token, the budgets and the caps. */
class UpgradeHandler implements Upgrades {
  private readonly config: Config;
  private readonly connections: Connections;
  private readonly nodeId: string;
  private readonly pendingByUser = new Counts();
  private readonly allowedOrigins: ReadonlySet<string> | undefined;
  private readonly addresses: ClientAddresses;
  /**
   * Single node with a shared-secret key: an upgrade is decided and made in the handler itself, with no
   * promise, timer or abort handler (a third of a handshake's server CPU, profiled).
   */
  private readonly verifyNow: ((token: string) => Principal) | undefined;
  /**
   * Handshake budgets: a token bucket per address (before the token is checked, so that bad tokens cost a
   * signature check only within it) and per user (once verified), kept across attempts; per node.
   */
  private readonly handshakesByIp: BucketStore;
  private readonly handshakesByUser: BucketStore;
  private readonly startedAt = Date.now();
  private connCounter = 0;
  private pendingUpgrades = 0;

  constructor(private readonly deps: UpgradeDeps) {
    const { config } = deps;
    this.config = config;
    this.connections = deps.connections;
    this.nodeId = deps.backplane.nodeId;
    this.allowedOrigins = config.allowedOrigins && !config.allowedOrigins.includes('*') ? new Set(config.allowedOrigins) : undefined;
    this.addresses = new ClientAddresses(config.trustedProxies, config.trustProxyHeader);
    this.verifyNow = deps.backplane.single ? deps.verifier.verifyNow : undefined;
    this.handshakesByIp = new BucketStore({ ratePerS: config.handshakesPerSPerIp, burst: config.handshakeBurstPerIp }, config.rateBudgetMaxKeys);
    this.handshakesByUser = new BucketStore({ ratePerS: config.handshakesPerSPerUser, burst: config.handshakeBurstPerUser }, config.rateBudgetMaxKeys);
  }

  durationS(conn: Conn): number {
    return ((Date.now() - this.startedAt) / 1000 - conn.openedS) | 0;
  }

  readonly handle = (res: UWS.HttpResponse, req: UWS.HttpRequest, context: UWS.us_socket_context_t): void => {
    const origin = this.allowedOrigins ? req.getHeader('origin') : '';
    const sinceParam = req.getQuery('since') ?? '';
    const a: Attempt = {
      res,
      context,
      secKey: req.getHeader('sec-websocket-key'),
      secExtensions: req.getHeader('sec-websocket-extensions'),
      source: extractToken(req.getHeader('authorization'), req.getHeader('sec-websocket-protocol'), req.getQuery('token') ?? ''),
      ip: this.addresses.of(res, req),
    };
    let resumeFrom: Position | undefined;
    try {
      this.cheapChecks(a, origin);
      resumeFrom = parseSinceParam(sinceParam);
      if (!a.source.token) throw new WireError(ErrorCode.TOKEN_MISSING, 'no token: send Authorization: Bearer <jwt>, ?token=<jwt> or the bearer.<jwt> subprotocol', 401);
    } catch (err) {
      this.refuse(a, err as WireError);
      return;
    }
    if (this.verifyNow) this.upgradeNow(a, this.verifyNow, resumeFrom);
    else this.upgradeLater(a, resumeFrom);
  };

  /** The refusals that cost no signature check, cheapest first; throws the refusal. */
  private cheapChecks(a: Attempt, origin: string): void {
    const { config, connections } = this;
    if (this.deps.shuttingDown()) throw shuttingDown();
    if (this.allowedOrigins && origin && !this.allowedOrigins.has(origin)) throw new WireError(ErrorCode.ORIGIN_FORBIDDEN, `origin ${origin.slice(0, 200)} is not allowed`, 403);
    if (connections.size + this.pendingUpgrades >= this.deps.maxConnections) throw new WireError(ErrorCode.CONNECTION_LIMIT, 'server full: try another node or later', 503);
    if (connections.byAddress.get(a.ip) >= config.maxConnectionsPerIp) throw new WireError(ErrorCode.CONNECTION_LIMIT, `too many connections from ${a.ip}`, 429);
    const fromIp = this.handshakesByIp.get(a.ip);
    if (!fromIp.take()) throw new RetryLater(`too many connection attempts from ${a.ip}: at most ${config.handshakesPerSPerIp} per second`, fromIp.retryS());
  }

  /** One node, shared secret: decided and upgraded in this turn. */
  private upgradeNow(a: Attempt, verifyNow: (token: string) => Principal, resumeFrom: Position | undefined): void {
    let principal: Principal;
    try {
      principal = verifyNow(a.source.token!);
      this.userHandshake(principal.userId);
      // One node: its own connections are all the user's connections.
      if (this.connections.of(principal.userId) >= this.config.maxConnectionsPerUser) throw this.tooManyForUser();
    } catch (err) {
      this.refuse(a, asAuthError(err));
      return;
    }
    this.connections.byAddress.inc(a.ip);
    a.res.upgrade<Held>({ conn: this.newConn(principal, a.ip, resumeFrom) }, a.secKey, a.source.protocol, a.secExtensions, a.context);
  }

  /** A JWKS or public key, or a cluster (the user's connections are counted in Redis): decided later. */
  private upgradeLater(a: Attempt, resumeFrom: Position | undefined): void {
    const { res, ip } = a;
    const byAddress = this.connections.byAddress;
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    this.pendingUpgrades++;
    byAddress.inc(ip);
    let userId: string | undefined;
    const upgrade = async (): Promise<void> => {
      const principal = await this.verifyWithin(a.source.token!);
      const user = principal.userId;
      this.userHandshake(user);
      userId = user;
      this.pendingByUser.inc(user);
      // Cluster-wide count; while Redis is unreachable, this node's own count (new connections are still
      // accepted then: a node keeps serving, and the limit still holds on the node).
      const others = await this.deps.presence.count(user).catch(() => this.connections.of(user));
      if (others + this.pendingByUser.get(user) - 1 >= this.config.maxConnectionsPerUser) throw this.tooManyForUser();
      if (aborted) {
        byAddress.dec(ip);
        return;
      }
      // A shutdown that began meanwhile has drained the connections already: one opened now would outlive it.
      if (this.deps.shuttingDown()) throw shuttingDown();
      // open() runs inside upgrade(), so the address stays counted without a gap.
      res.cork(() => res.upgrade<Held>({ conn: this.newConn(principal, ip, resumeFrom) }, a.secKey, a.source.protocol, a.secExtensions, a.context));
    };
    upgrade()
      .catch((err: unknown) => {
        byAddress.dec(ip);
        if (aborted) return;
        res.cork(() => this.refuse(a, asAuthError(err)));
      })
      .finally(() => {
        this.pendingUpgrades--;
        if (userId !== undefined) this.pendingByUser.dec(userId);
      });
  }

  /**
   * Refuses an upgrade: an HTTP error with a JSON body, or, for a client that offered
   * `storywire.close-on-refusal`, a socket closed at once with a close code and `<CODE>: <message>`
   * (browsers cannot read the HTTP status). Which code, or HTTP anyway (a forbidden origin gets no socket):
   * refusalCloseCode in wire/codes.ts.
   */
  private refuse(a: Attempt, err: WireError): void {
    const { res, source } = a;
    this.deps.metrics.connection(String(err.status) as ConnectOutcome);
    this.deps.log.info({ ip: a.ip, reason: err.code }, 'upgrade rejected');
    const code = source.closeOnRefusal ? refusalCloseCode(err, this.deps.shuttingDown()) : undefined;
    if (code !== undefined) {
      res.upgrade<Refused>({ refusal: { code, reason: closeReason(`${err.code}: ${err.message}`) } }, a.secKey, source.protocol, a.secExtensions, a.context);
      return;
    }
    res.writeStatus(statusLine(err.status));
    if (err instanceof RetryLater) res.writeHeader('retry-after', String(err.retryAfterS));
    res.writeHeader('content-type', 'application/json').end(JSON.stringify(errorBody(err.code, err.message)), true);
  }

  /** Verification bounded in time: a slow JWKS cannot hold an upgrade open. */
  private verifyWithin(token: string): Promise<Principal> {
    const { verifier } = this.deps;
    // A timer per upgrade cost ~10 us of a ~60 us handshake (profiled); only a JWKS fetch can be slow.
    if (verifier.local) return verifier.verify(token);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new WireError(ErrorCode.TIMEOUT, 'token verification timed out', 503)), this.config.upgradeTimeoutMs);
      verifier.verify(token).then(
        (p) => {
          clearTimeout(timer);
          resolve(p);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  /** Throws RATE_LIMITED when the user's handshake bucket is empty (taking a token otherwise). */
  private userHandshake(userId: string): void {
    const b = this.handshakesByUser.get(userId);
    if (!b.take()) throw new RetryLater(`too many connection attempts for this user: at most ${this.config.handshakesPerSPerUser} per second`, b.retryS());
  }

  private tooManyForUser(): WireError {
    return new WireError(ErrorCode.CONNECTION_LIMIT, `at most ${this.config.maxConnectionsPerUser} connections per user`, 429);
  }

  /** A connection's state (held by uWS behind one property: see `Held`). */
  private newConn(principal: Principal, ip: string, resumeFrom: Position | undefined): Conn {
    return {
      userId: principal.userId,
      permissions: principal.permissions,
      exp: principal.exp,
      claims: principal.claims,
      id: `${this.nodeId}-${(++this.connCounter).toString(36)}`,
      ip,
      openedS: ((Date.now() - this.startedAt) / 1000) | 0,
      subscriptions: undefined,
      personalEpoch: resumeFrom?.epoch,
      personalOffset: resumeFrom?.offset ?? 0,
      rates: undefined,
      slowStrikes: 0,
      slowCheck: 0,
      typing: undefined,
      closed: false,
    };
  }
}

const asAuthError = (err: unknown): WireError => (err instanceof WireError ? err : new WireError(ErrorCode.TOKEN_INVALID, 'token invalid', 401));
