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
import { BucketStore, Counts, clientAddress } from './rates.js';
import type { ConnectOutcome, Metrics } from '../metrics.js';
import { parseSinceParam } from '../wire/protocol.js';
import type { UWS } from '../uws.js';

export interface UpgradeDeps {
  config: Config;
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

export function createUpgrades(deps: UpgradeDeps): Upgrades {
  const { config, log, metrics, verifier, backplane, connections } = deps;
  const nodeId = backplane.nodeId;
  const byAddress = connections.byAddress;
  const pendingByUser = new Counts();
  const allowedOrigins = config.allowedOrigins && !config.allowedOrigins.includes('*') ? new Set(config.allowedOrigins) : undefined;
  const proxyHeader = config.trustProxyHeader?.toLowerCase();
  // Single node with a shared-secret key: an upgrade is decided and made in the handler itself, with no
  // promise, timer or abort handler (a third of a handshake's server CPU, profiled).
  const verifyNow = backplane.single ? verifier.verifyNow : undefined;
  // Handshake budgets: a token bucket per address (before the token is checked, so that bad tokens cost a
  // signature check only within it) and per user (once verified), kept across attempts; per node.
  const handshakesByIp = new BucketStore({ ratePerS: config.handshakesPerSPerIp, burst: config.handshakeBurstPerIp }, config.rateBudgetMaxKeys);
  const handshakesByUser = new BucketStore({ ratePerS: config.handshakesPerSPerUser, burst: config.handshakeBurstPerUser }, config.rateBudgetMaxKeys);
  const startedAt = Date.now();
  let connCounter = 0;
  let pendingUpgrades = 0;

  /**
   * Refuses an upgrade: an HTTP error with a JSON body, or, for a client that offered
   * `storywire.close-on-refusal`, a socket closed at once with a close code and `<CODE>: <message>`
   * (browsers cannot read the HTTP status). Which code, or HTTP anyway (a forbidden origin gets no socket):
   * refusalCloseCode in wire/codes.ts.
   * The upgrade's parts come one by one (not in an object made per upgrade): most upgrades are not refused.
   */
  function refuse(
    res: UWS.HttpResponse,
    err: WireError,
    ip: string,
    source: TokenSource,
    secKey: string,
    secExtensions: string,
    context: UWS.us_socket_context_t,
  ): void {
    metrics.connection(String(err.status) as ConnectOutcome);
    log.info({ ip, reason: err.code }, 'upgrade rejected');
    const code = source.closeOnRefusal ? refusalCloseCode(err, deps.shuttingDown()) : undefined;
    if (code !== undefined) {
      res.upgrade<Refused>({ refusal: { code, reason: closeReason(`${err.code}: ${err.message}`) } }, secKey, source.protocol, secExtensions, context);
      return;
    }
    res.writeStatus(statusLine(err.status));
    if (err instanceof RetryLater) res.writeHeader('retry-after', String(err.retryAfterS));
    res.writeHeader('content-type', 'application/json').end(JSON.stringify(errorBody(err.code, err.message)), true);
  }

  /** Verification bounded in time: a slow JWKS cannot hold an upgrade open. */
  function verifyWithin(token: string): Promise<Principal> {
    // A timer per upgrade cost ~10 us of a ~60 us handshake (profiled); only a JWKS fetch can be slow.
    if (verifier.local) return verifier.verify(token);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new WireError(ErrorCode.TIMEOUT, 'token verification timed out', 503)), config.upgradeTimeoutMs);
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

  const asAuthError = (err: unknown): WireError => (err instanceof WireError ? err : new WireError(ErrorCode.TOKEN_INVALID, 'token invalid', 401));
  /** RATE_LIMITED when the user's handshake bucket is empty (taking a token otherwise). */
  function userHandshake(userId: string): RetryLater | undefined {
    const b = handshakesByUser.get(userId);
    return b.take() ? undefined : new RetryLater(`too many connection attempts for this user: at most ${config.handshakesPerSPerUser} per second`, b.retryS());
  }
  const tooManyForUser = () => new WireError(ErrorCode.CONNECTION_LIMIT, `at most ${config.maxConnectionsPerUser} connections per user`, 429);

  /** A connection's state (held by uWS behind one property: see `Held`). */
  function newConn(principal: Principal, ip: string, resumeFrom: Position | undefined): Conn {
    return {
      userId: principal.userId,
      permissions: principal.permissions,
      exp: principal.exp,
      claims: principal.claims,
      id: `${nodeId}-${(++connCounter).toString(36)}`,
      ip,
      openedS: ((Date.now() - startedAt) / 1000) | 0,
      subscriptions: undefined,
      personalEpoch: resumeFrom?.epoch,
      personalOffset: resumeFrom?.offset ?? 0,
      rates: undefined,
      slowStrikes: 0,
      typing: undefined,
      closed: false,
    };
  }

  function handle(res: UWS.HttpResponse, req: UWS.HttpRequest, context: UWS.us_socket_context_t): void {
    const secKey = req.getHeader('sec-websocket-key');
    const secExtensions = req.getHeader('sec-websocket-extensions');
    const origin = allowedOrigins ? req.getHeader('origin') : '';
    const source = extractToken(req.getHeader('authorization'), req.getHeader('sec-websocket-protocol'), req.getQuery('token') ?? '');
    const sinceParam = req.getQuery('since') ?? '';
    const ip = clientAddress(Buffer.from(res.getRemoteAddressAsText()).toString(), proxyHeader ? req.getHeader(proxyHeader) : '');
    // Cheap refusals first: none of these costs a signature check.
    if (deps.shuttingDown()) {
      refuse(res, new WireError(ErrorCode.UNAVAILABLE, 'server shutting down: connect to another node', 503), ip, source, secKey, secExtensions, context);
      return;
    }
    if (allowedOrigins && origin && !allowedOrigins.has(origin)) {
      refuse(res, new WireError(ErrorCode.ORIGIN_FORBIDDEN, `origin ${origin.slice(0, 200)} is not allowed`, 403), ip, source, secKey, secExtensions, context);
      return;
    }
    if (connections.size + pendingUpgrades >= config.maxConnections) {
      refuse(res, new WireError(ErrorCode.CONNECTION_LIMIT, 'server full: try another node or later', 503), ip, source, secKey, secExtensions, context);
      return;
    }
    if (byAddress.get(ip) >= config.maxConnectionsPerIp) {
      refuse(res, new WireError(ErrorCode.CONNECTION_LIMIT, `too many connections from ${ip}`, 429), ip, source, secKey, secExtensions, context);
      return;
    }
    const fromIp = handshakesByIp.get(ip);
    if (!fromIp.take()) {
      refuse(res, new RetryLater(`too many connection attempts from ${ip}: at most ${config.handshakesPerSPerIp} per second`, fromIp.retryS()), ip, source, secKey, secExtensions, context);
      return;
    }
    let resumeFrom: Position | undefined;
    try {
      resumeFrom = parseSinceParam(sinceParam);
    } catch (err) {
      refuse(res, err as WireError, ip, source, secKey, secExtensions, context);
      return;
    }
    if (!source.token) {
      refuse(res, new WireError(ErrorCode.TOKEN_MISSING, 'no token: send Authorization: Bearer <jwt>, ?token=<jwt> or the bearer.<jwt> subprotocol', 401), ip, source, secKey, secExtensions, context);
      return;
    }
    if (verifyNow) {
      let principal: Principal;
      try {
        principal = verifyNow(source.token);
      } catch (err) {
        refuse(res, asAuthError(err), ip, source, secKey, secExtensions, context);
        return;
      }
      const limited = userHandshake(principal.userId);
      if (limited) {
        refuse(res, limited, ip, source, secKey, secExtensions, context);
        return;
      }
      // One node: its own connections are all the user's connections.
      if (connections.of(principal.userId) >= config.maxConnectionsPerUser) {
        refuse(res, tooManyForUser(), ip, source, secKey, secExtensions, context);
        return;
      }
      byAddress.inc(ip);
      res.upgrade<Held>({ conn: newConn(principal, ip, resumeFrom) }, secKey, source.protocol, secExtensions, context);
      return;
    }
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    pendingUpgrades++;
    byAddress.inc(ip);
    let userId: string | undefined;
    const upgrade = async (): Promise<void> => {
      const principal = await verifyWithin(source.token!);
      const user = principal.userId;
      const limited = userHandshake(user);
      if (limited) throw limited;
      userId = user;
      pendingByUser.inc(user);
      // Cluster-wide count; while Redis is unreachable, this node's own count (new connections are still
      // accepted then: a node keeps serving, and the limit still holds on the node).
      const others = await deps.presence.count(user).catch(() => connections.of(user));
      if (others + pendingByUser.get(user) - 1 >= config.maxConnectionsPerUser) throw tooManyForUser();
      if (aborted) {
        byAddress.dec(ip);
        return;
      }
      // open() runs inside upgrade(), so the address stays counted without a gap.
      res.cork(() => res.upgrade<Held>({ conn: newConn(principal, ip, resumeFrom) }, secKey, source.protocol, secExtensions, context));
    };
    upgrade()
      .catch((err: unknown) => {
        byAddress.dec(ip);
        if (aborted) return;
        res.cork(() => refuse(res, asAuthError(err), ip, source, secKey, secExtensions, context));
      })
      .finally(() => {
        pendingUpgrades--;
        if (userId !== undefined) pendingByUser.dec(userId);
      });
  }

  return {
    handle,
    durationS: (conn) => ((Date.now() - startedAt) / 1000 - conn.openedS) | 0,
  };
}
