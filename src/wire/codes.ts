// The two code tables of the wire protocol: reply error codes and WebSocket close codes.
// protocol.md lists the same codes; test/errors.test.ts fails when the two disagree.

/** Codes carried by `{"type":"error","error":{"code":...}}` replies and HTTP error bodies. */
export const ErrorCode = {
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
  IDEMPOTENCY_CONFLICT: 'IDEMPOTENCY_CONFLICT',
  TIMEOUT: 'TIMEOUT',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Close codes. The range tells a client what to do:
 *   4000-4099 reconnect at once (small random delay),
 *   4100-4199 reconnect with exponential backoff,
 *   4400-4499 do not reconnect with the same credentials (get a new token first, or stop).
 * 1000/1001/1006/1009 are the standard codes a client may also see (see protocol.md).
 */
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
  UNAVAILABLE: 4104,
  TOKEN_INVALID: 4400,
  TOKEN_EXPIRED: 4401,
  FORBIDDEN: 4403,
  TOKEN_REVOKED: 4409,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export type ReconnectPolicy = 'now' | 'backoff' | 'stop' | 'standard';

export function reconnectPolicy(code: number): ReconnectPolicy {
  if (code >= 4000 && code <= 4099) return 'now';
  if (code >= 4100 && code <= 4199) return 'backoff';
  if (code >= 4400 && code <= 4499) return 'stop';
  return 'standard';
}

/** An error that knows how it is shown to a client. */
export class WireError extends Error {
  override name = 'WireError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** HTTP status when the error answers an HTTP request or an upgrade. */
    readonly status = 400,
  ) {
    super(message);
  }
}
