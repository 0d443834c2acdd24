// The SDK's error codes and its one error class; the wire code tables come from the server's src/wire/codes.ts.
// This file must stay free of Node imports: browsers load it as /client/codes.js.

// The code tables and the reconnect policy are the server's own (src/wire/codes.ts has no imports, so browsers
// load it as /wire/codes.js next to /client/*.js): one source of truth, nothing to keep in step.
import { CloseCode, ErrorCode, httpRefusalPolicy, isApplicationCloseCode, reconnectPolicy, type ReconnectPolicy } from '../wire/codes.js';

export { CloseCode, httpRefusalPolicy, isApplicationCloseCode, reconnectPolicy, type ReconnectPolicy };

/** Reply error codes the server may put in `{"type":"error","error":{"code":...}}`. */
export const ServerErrorCode = ErrorCode;

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
