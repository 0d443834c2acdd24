// The code tables of the wire protocol as data: error codes with their HTTP status and close code, the close
// codes and their reconnect ranges, the one error body, and which close code tells a refused upgrade.
// protocol.md (sections 1, 6 and 7) shows the same tables: test/protocol-doc.test.ts fails when they disagree
// (test/codes.test.ts holds the rest of the tree to them).
// This file imports nothing: browsers load it alone as /wire/codes.js (the SDK takes its codes from here).

/**
 * Close codes. The range tells a client what to do (CLOSE_CODE_RANGES):
 *   4000-4099 reconnect at once (small random delay),
 *   4100-4199 reconnect with exponential backoff,
 *   4400-4499 do not reconnect with the same credentials (get a new token first, or stop).
 * 1000/1001/1005/1006/1009 are the standard codes a client may also see (see protocol.md).
 */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  MESSAGE_TOO_BIG: 1009,
  SHUTDOWN: 4000,
  RECONNECT: 4001,
  RATE_LIMITED: 4100,
  SLOW_CONSUMER: 4101,
  PROTOCOL_ERROR: 4102,
  CONNECTION_LIMIT: 4103,
  UNAVAILABLE: 4104,
  TOKEN_INVALID: 4400,
  TOKEN_EXPIRED: 4401,
  FORBIDDEN: 4403,
  TOKEN_REVOKED: 4409,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export type ReconnectPolicy = 'now' | 'backoff' | 'stop' | 'standard';

/** The close codes left to applications (RFC 6455, 7.4.2): storywire's own codes are all in it. */
export const APPLICATION_CLOSE_CODES = { from: 4000, to: 4999 } as const;

/** What a client does after a close code in each range; any other code is 'standard'. */
export const CLOSE_CODE_RANGES: readonly { readonly from: number; readonly to: number; readonly policy: ReconnectPolicy }[] = [
  { from: 4000, to: 4099, policy: 'now' },
  { from: 4100, to: 4199, policy: 'backoff' },
  { from: 4400, to: 4499, policy: 'stop' },
];

export function isApplicationCloseCode(code: number): boolean {
  return code >= APPLICATION_CLOSE_CODES.from && code <= APPLICATION_CLOSE_CODES.to;
}

export function reconnectPolicy(code: number): ReconnectPolicy {
  for (const range of CLOSE_CODE_RANGES) if (code >= range.from && code <= range.to) return range.policy;
  return 'standard';
}

interface ErrorSpec {
  /** The HTTP status when the error answers an HTTP request or refuses an upgrade; `new WireError`'s default. */
  readonly status: number;
  /** The other status this code has in another situation; a throw names it (protocol.md section 6). */
  readonly otherStatus?: number;
  /** The close code when this error closes a connection: a refused upgrade told in band, or a hard limit. */
  readonly close?: CloseCode;
  /** Refused over HTTP even to a client that asks for refusals in band: no socket at all. */
  readonly neverInBand?: true;
}

/** Every error code, the key, with how it is shown. The order is protocol.md's (section 6). */
export const ERRORS = {
  BAD_JSON: { status: 400 },
  BAD_MESSAGE: { status: 400 },
  UNKNOWN_TYPE: { status: 400 },
  // A malformed upgrade (`?since=`) refused in band closes with PROTOCOL_ERROR; a reply never closes.
  INVALID_PAYLOAD: { status: 400, close: CloseCode.PROTOCOL_ERROR },
  BINARY_NOT_SUPPORTED: { status: 400 },
  // 413 for a request body or raw event data over its limit; 400 for a notification, story or chapter.
  PAYLOAD_TOO_LARGE: { status: 413, otherStatus: 400 },
  FORBIDDEN: { status: 403, close: CloseCode.FORBIDDEN },
  INVALID_TOPIC: { status: 400 },
  TOPIC_FORBIDDEN: { status: 403 },
  // Carried by an `unsubscribed` event (the backend revoked the subscription); 403 if ever answered over HTTP.
  SUBSCRIPTION_REVOKED: { status: 403 },
  // Carried by an `unsubscribed` event: the subscription token's `exp` passed with no fresher token sent.
  SUBSCRIPTION_EXPIRED: { status: 403 },
  SUBSCRIPTION_TOKEN_INVALID: { status: 403 },
  SUBSCRIPTION_LIMIT: { status: 400 },
  TOO_MANY_IDS: { status: 400 },
  RATE_LIMITED: { status: 429, close: CloseCode.RATE_LIMITED },
  TOKEN_MISSING: { status: 401, close: CloseCode.TOKEN_INVALID },
  TOKEN_INVALID: { status: 401, close: CloseCode.TOKEN_INVALID },
  TOKEN_EXPIRED: { status: 401, close: CloseCode.TOKEN_EXPIRED },
  TOKEN_SUBJECT_MISMATCH: { status: 403 },
  ORIGIN_FORBIDDEN: { status: 403, neverInBand: true },
  // 429 for a user's or an address's limit; 503 when the node is full (try another node).
  CONNECTION_LIMIT: { status: 429, otherStatus: 503, close: CloseCode.CONNECTION_LIMIT },
  UNAUTHORIZED: { status: 401 },
  NOT_FOUND: { status: 404 },
  METHOD_NOT_ALLOWED: { status: 405 },
  UNAVAILABLE: { status: 503, close: CloseCode.UNAVAILABLE },
  IDEMPOTENCY_CONFLICT: { status: 422 },
  // A chat message to edit or delete that the conversation's history does not hold (unknown, deleted, trimmed).
  MESSAGE_NOT_FOUND: { status: 404 },
  TIMEOUT: { status: 503, close: CloseCode.UNAVAILABLE },
  INTERNAL: { status: 500 },
} as const satisfies Record<string, ErrorSpec>;

type Errors = typeof ERRORS;

/** Codes carried by `{"type":"error","error":{"code":...}}` replies and HTTP error bodies. */
export const ErrorCode = Object.fromEntries(Object.keys(ERRORS).map((code) => [code, code])) as { readonly [C in keyof Errors]: C };
export type ErrorCode = keyof Errors;

/** The statuses an error with code C may have: its default, and its other status if it has one. */
export type StatusOf<C extends ErrorCode> = C extends ErrorCode ? Errors[C]['status'] | (Errors[C] extends { otherStatus: infer S } ? S : never) : never;

/** How an error with this code is shown (its status, close code). */
export const errorSpec = (code: ErrorCode): ErrorSpec => ERRORS[code];

/** The one shape of an error: an HTTP error body, and the `error` member of an error reply frame. */
export function errorBody(code: ErrorCode, message: string): { error: { code: ErrorCode; message: string } } {
  return { error: { code, message } };
}

/**
 * The close code of an upgrade refused in band (for clients that offered `storywire.close-on-refusal`; the
 * reason names the error code), or undefined when this refusal is always answered over HTTP. While the node
 * is going away (`shuttingDown`), "cannot check the token now" becomes SHUTDOWN: reconnect to another node
 * now. A code with no close code of its own is a malformed upgrade request.
 */
export function refusalCloseCode(err: { readonly code: ErrorCode }, shuttingDown: boolean): CloseCode | undefined {
  const spec = errorSpec(err.code);
  if (spec.neverInBand) return undefined;
  const close = spec.close ?? CloseCode.PROTOCOL_ERROR;
  return shuttingDown && close === CloseCode.UNAVAILABLE ? CloseCode.SHUTDOWN : close;
}

/**
 * The policy after an upgrade refused over HTTP (a server or proxy that does not tell refusals in band):
 * the statuses of a bad token or a missing permission stop, like 4400-4499; any other status backs off.
 */
export function httpRefusalPolicy(status: number): ReconnectPolicy {
  return status === ERRORS.TOKEN_INVALID.status || status === ERRORS.FORBIDDEN.status ? 'stop' : 'backoff';
}

/** An error that knows how it is shown to a client: its code, and the HTTP status from ERRORS unless named. */
export class WireError<C extends ErrorCode = ErrorCode> extends Error {
  override name = 'WireError';
  constructor(
    readonly code: C,
    message: string,
    /** HTTP status when the error answers an HTTP request or an upgrade: the code's, or its other one. */
    readonly status: StatusOf<C> = ERRORS[code].status as StatusOf<C>,
  ) {
    super(message);
  }
}
