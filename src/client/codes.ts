// The SDK's copy of the wire code tables (close-code ranges -> reconnect policy) and its one error class.
// The server's src/errors.ts is the source of truth; test/client/codes.test.ts fails when the two disagree.
// This file must stay free of Node imports: browsers load it as /client/codes.js.

/** Close codes the server sends, and what each range asks of a client. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  MESSAGE_TOO_BIG: 1009,
  SHUTDOWN: 4000,
  RECONNECT: 4001,
  RATE_LIMITED: 4100,
  SLOW_CONSUMER: 4101,
  PROTOCOL_ERROR: 4102,
  CONNECTION_LIMIT: 4103,
  TOKEN_EXPIRED: 4401,
  FORBIDDEN: 4403,
  TOKEN_REVOKED: 4409,
} as const;

/** `now`: reconnect after a small random delay; `backoff`: exponential backoff; `stop`: not with the same credentials. */
export type ReconnectPolicy = 'now' | 'backoff' | 'stop' | 'standard';

/** The server's ranges: 4000-4099 now, 4100-4199 backoff, 4400-4499 stop; anything else is a standard code. */
export function reconnectPolicy(code: number): ReconnectPolicy {
  if (code >= 4000 && code <= 4099) return 'now';
  if (code >= 4100 && code <= 4199) return 'backoff';
  if (code >= 4400 && code <= 4499) return 'stop';
  return 'standard';
}

/** Reply error codes the server may put in `{"type":"error","error":{"code":...}}`. */
export const ServerErrorCode = {
  BAD_JSON: 'BAD_JSON',
  BAD_MESSAGE: 'BAD_MESSAGE',
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  INVALID_PAYLOAD: 'INVALID_PAYLOAD',
  BINARY_NOT_SUPPORTED: 'BINARY_NOT_SUPPORTED',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FORBIDDEN: 'FORBIDDEN',
  INVALID_TOPIC: 'INVALID_TOPIC',
  TOPIC_FORBIDDEN: 'TOPIC_FORBIDDEN',
  SUBSCRIPTION_LIMIT: 'SUBSCRIPTION_LIMIT',
  TOO_MANY_IDS: 'TOO_MANY_IDS',
  RATE_LIMITED: 'RATE_LIMITED',
  TOKEN_MISSING: 'TOKEN_MISSING',
  TOKEN_INVALID: 'TOKEN_INVALID',
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  TOKEN_SUBJECT_MISMATCH: 'TOKEN_SUBJECT_MISMATCH',
  ORIGIN_FORBIDDEN: 'ORIGIN_FORBIDDEN',
  CONNECTION_LIMIT: 'CONNECTION_LIMIT',
  UNAUTHORIZED: 'UNAUTHORIZED',
  NOT_FOUND: 'NOT_FOUND',
  METHOD_NOT_ALLOWED: 'METHOD_NOT_ALLOWED',
  UNAVAILABLE: 'UNAVAILABLE',
  TIMEOUT: 'TIMEOUT',
  INTERNAL: 'INTERNAL',
} as const;

/** Codes the SDK itself raises; none of them was sent by the server. */
export const ClientErrorCode = {
  /** No ack, error or pong within the request's timeout (see `sent` to know whether it left). */
  TIMEOUT: 'TIMEOUT',
  /** Not connected and the call asked to be rejected rather than queued. */
  NOT_CONNECTED: 'NOT_CONNECTED',
  /** Not connected and the offline queue is full. */
  QUEUE_FULL: 'QUEUE_FULL',
  /** The connection dropped after the request was sent and before its reply: it may or may not have been applied. */
  DISCONNECTED: 'DISCONNECTED',
  /** The client was closed (by close() or by a close code that forbids reconnecting). */
  CLOSED: 'CLOSED',
  /** The token provider threw or returned something that is not a non-empty string. */
  TOKEN_PROVIDER: 'TOKEN_PROVIDER',
  /** A subscribe() still waiting for its answer was undone by unsubscribe(). */
  CANCELLED: 'CANCELLED',
  /** The server sent a frame that is not a JSON text envelope (reported on the `error` event). */
  BAD_FRAME: 'BAD_FRAME',
} as const;

export type ServerErrorCode = (typeof ServerErrorCode)[keyof typeof ServerErrorCode];
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

/** Every failure the SDK reports: a server `error` reply (fromServer) or one of ClientErrorCode. */
export class StorywireError extends Error {
  override name = 'StorywireError';
  constructor(
    readonly code: ServerErrorCode | ClientErrorCode | (string & {}),
    message: string,
    /** True when the server sent this error as the reply to a request. */
    readonly fromServer: boolean,
    /** True when the frame was written to a socket (a TIMEOUT or DISCONNECTED request may have been applied). */
    readonly sent: boolean,
  ) {
    super(message);
  }
}
