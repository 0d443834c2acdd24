// HTTP plumbing under uWS: capped body reading, abort-safe JSON responses, API key check.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { UWS } from '../uws.js';
import { ErrorCode, WireError, errorBody, errorSpec } from '../wire/codes.js';

const STATUS: Record<number, string> = {
  200: '200 OK',
  202: '202 Accepted',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  408: '408 Request Timeout',
  411: '411 Length Required',
  413: '413 Payload Too Large',
  422: '422 Unprocessable Content',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
};

export function statusLine(status: number): string {
  return STATUS[status] ?? `${status} Status`;
}

/** A response that knows whether it was aborted; every late write is corked and skipped after abort. */
export class Reply {
  aborted = false;
  done = false;

  constructor(readonly res: UWS.HttpResponse) {
    res.onAborted(() => {
      this.aborted = true;
    });
  }

  json(status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.raw(status, JSON.stringify(body), { 'content-type': 'application/json', ...headers });
  }

  /** closeConnection: after a 413, whose body may not have been read to its end (it cannot be mistaken for the next request). */
  raw(status: number, body: string, headers: Record<string, string>, closeConnection = false): void {
    if (this.aborted || this.done) return;
    this.done = true;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      for (const [k, v] of Object.entries(headers)) this.res.writeHeader(k, v);
      this.res.end(body, closeConnection);
    });
  }

  /** An error answer with the code's own status (wire/codes.ts) and the one error body. */
  fail(code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
    this.errorWith(errorSpec(code).status, code, message, headers);
  }

  /** A WireError with its status; anything else is a bug, answered INTERNAL without its message. */
  error(err: unknown): void {
    if (err instanceof WireError) this.errorWith(err.status, err.code, err.message, {});
    else this.fail(ErrorCode.INTERNAL, 'internal error');
  }

  private errorWith(status: number, code: ErrorCode, message: string, headers: Record<string, string>): void {
    this.raw(status, JSON.stringify(errorBody(code, message)), { 'content-type': 'application/json', ...headers }, status === 413);
  }
}

/** A body over the limit is still read and dropped, up to the larger of this and 4x the limit... */
export const DISCARD_MIN_BYTES = 16 * 1024 * 1024;
/** ...and for at most this long, before the 413 is sent and the connection closed. */
export const DISCARD_MS = 5000;

/**
 * Reads the whole body (plain or chunked) up to maxBytes; the Reply must already be created (it registers
 * onAborted). A larger body is refused with 413, but only once it was read to its end and dropped (never
 * kept): a client that writes its whole body before it reads (Node's http and fetch, Python's urllib, curl
 * without `Expect`) would otherwise meet a closed socket (EPIPE, ECONNRESET) instead of the answer, like
 * nginx's lingering close. Dropping is bounded: past max(DISCARD_MIN_BYTES, 4 x maxBytes) bytes, declared or
 * read, or DISCARD_MS, the 413 goes at once (the connection is closed after any 413).
 */
export function readBody(reply: Reply, contentLength: string, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = contentLength === '' ? Number.NaN : Number(contentLength);
    const dropAtMost = Math.max(DISCARD_MIN_BYTES, 4 * maxBytes);
    let refusal: WireError | undefined;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const refuse = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(refusal);
    };
    const startDropping = (message: string) => {
      refusal = new WireError(ErrorCode.PAYLOAD_TOO_LARGE, message, 413);
      timer = setTimeout(refuse, DISCARD_MS).unref();
    };
    if (declared > maxBytes) {
      startDropping(`body is ${contentLength} bytes, the limit is ${maxBytes}`);
      if (declared > dropAtMost) {
        refuse();
        return;
      }
    }
    const chunks: Buffer[] = [];
    let size = 0;
    reply.res.onData((chunk, isLast) => {
      if (settled) return;
      size += chunk.byteLength;
      if (refusal === undefined && size > maxBytes) {
        startDropping(`body is over the limit of ${maxBytes} bytes`);
        chunks.length = 0;
      }
      if (refusal !== undefined) {
        if (isLast || size > dropAtMost) refuse();
        return;
      }
      // uWS neuters the ArrayBuffer after the callback: copy it.
      chunks.push(Buffer.from(new Uint8Array(chunk).slice()));
      if (isLast) {
        settled = true;
        resolve(Buffer.concat(chunks, size));
      }
    });
  });
}

export async function readJson(reply: Reply, contentLength: string, maxBytes: number): Promise<unknown> {
  const body = await readBody(reply, contentLength, maxBytes);
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new WireError(ErrorCode.BAD_JSON, 'body is not valid JSON', 400);
  }
}

/** Compares `Authorization: Bearer <key>` with the API key in constant time. */
export function checkApiKey(authorization: string, apiKey: string | undefined): void {
  if (apiKey === undefined) throw new WireError(ErrorCode.UNAVAILABLE, 'the HTTP API is disabled: set API_KEY', 503);
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  const digest = (s: string) => createHash('sha256').update(s).digest();
  if (!m || !timingSafeEqual(digest(m[1]!), digest(apiKey))) {
    throw new WireError(ErrorCode.UNAUTHORIZED, 'missing or wrong API key (Authorization: Bearer <API_KEY>)', 401);
  }
}
