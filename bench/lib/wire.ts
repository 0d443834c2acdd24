// The client side of each server's wire protocol: URLs, handshakes and the few frames the bench sends.
// storywire and the raw uWS floor speak storywire's JSON envelopes; the Socket.IO seed is spoken at the
// Engine.IO v4 / Socket.IO v5 packet level over a plain WebSocket (open `0{...}`, connect `40{auth}`,
// events `42[...]`, server ping `2` answered with `3`), so all three face identical `ws` clients.
import WebSocket from 'ws';

export const SERVER_KINDS = ['uws', 'storywire', 'socketio'] as const;
export type ServerKind = (typeof SERVER_KINDS)[number];

export const SERVER_LABELS: Record<ServerKind, string> = {
  uws: 'raw uWS.js',
  storywire: 'storywire',
  socketio: 'Socket.IO seed',
};

export interface Endpoint {
  kind: ServerKind;
  host: string;
  port: number;
}

export function wsUrl(ep: Endpoint, token: string): string {
  if (ep.kind === 'socketio') return `ws://${ep.host}:${ep.port}/socket.io/?EIO=4&transport=websocket`;
  return `ws://${ep.host}:${ep.port}/ws?token=${token}`;
}

// Every measured message carries "bench":"<seq>:<t0 µs>" (t0 on the system-wide monotonic clock), in a
// field each server passes through untouched: story payloads and notification `data`.
export const BENCH_MARK = Buffer.from('"bench":"');
// Pong replies echo the ping id, which the bench makes "p<n>" (no other id the servers send starts with p).
export const PONG_MARK = Buffer.from('"id":"p');

/**
 * Microseconds on the system-wide monotonic clock (process.hrtime is CLOCK_MONOTONIC), comparable between
 * the bench's processes. Not performance.now(): its origin differs from process to process by up to a
 * millisecond (measured), which shifted cross-process latencies.
 */
export function nowUs(): number {
  const t = process.hrtime();
  return t[0] * 1e6 + t[1] / 1e3;
}

export function benchTag(seq: number, t0Us: number): string {
  return `${seq}:${Math.round(t0Us)}`;
}

/** Reads the unsigned integer starting at `at`; returns it and leaves the end index in pos[0]. */
export function readUint(buf: Buffer, at: number, pos: Int32Array): number {
  let n = 0;
  let i = at;
  for (; i < buf.length; i++) {
    const c = buf[i]! - 48;
    if (c < 0 || c > 9) break;
    n = n * 10 + c;
  }
  pos[0] = i;
  return n;
}

export function pingFrame(kind: ServerKind, id: string): string {
  return kind === 'socketio' ? `42["ping",{"id":"${id}"}]` : `{"type":"ping","id":"${id}"}`;
}

export function storyFrame(kind: ServerKind, story: object): string {
  const data = JSON.stringify(story);
  return kind === 'socketio' ? `42["story:published",${data}]` : `{"type":"story:published","data":${data}}`;
}

export function notifyFrame(kind: ServerKind, userId: string, notification: object): string {
  const data = JSON.stringify({ userId, notification });
  return kind === 'socketio' ? `42["send:notification",${data}]` : `{"type":"send:notification","data":${data}}`;
}

export interface OpenOptions {
  localAddress?: string | undefined;
  timeoutMs: number;
}

export type OnMessage = (data: Buffer) => void;

const CONNECTED = Buffer.from('{"type":"connected"');

/**
 * Opens one authenticated connection and resolves once the server has it fully registered: storywire's
 * `connected` frame, the Socket.IO connect ack `40{...}`, or the 101 for raw uWS (whose open handler,
 * subscriptions included, runs inside the upgrade). Afterwards every frame goes to onMessage, except
 * Engine.IO pings, answered here.
 */
export function openClient(ep: Endpoint, token: string, opts: OpenOptions, onMessage: OnMessage): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(ep, token), {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      handshakeTimeout: opts.timeoutMs,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    let settled = false;
    const timer = setTimeout(() => fail(`no ready signal within ${opts.timeoutMs} ms`), opts.timeoutMs);
    function fail(reason: string): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.removeAllListeners('message');
      ws.on('error', () => {});
      ws.terminate();
      reject(new Error(reason));
    }
    function ready(): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.removeAllListeners('message');
      if (ep.kind === 'socketio') {
        ws.on('message', (data: Buffer) => {
          if (data.length === 1 && data[0] === 0x32) ws.send('3');
          else onMessage(data);
        });
      } else {
        ws.on('message', onMessage);
      }
      resolve(ws);
    }
    ws.on('error', (err) => fail(err.message));
    ws.on('unexpected-response', (_req, res) => fail(`HTTP ${res.statusCode}`));
    ws.on('close', (code) => fail(`closed ${code} before ready`));
    if (ep.kind === 'uws') {
      ws.on('open', ready);
    } else if (ep.kind === 'storywire') {
      ws.on('message', (data: Buffer) => {
        if (data.subarray(0, CONNECTED.length).equals(CONNECTED)) ready();
        else fail(`unexpected first frame ${data.toString().slice(0, 200)}`);
      });
    } else {
      ws.on('message', (data: Buffer) => {
        const s = data.toString();
        if (s.startsWith('0{')) ws.send(`40${JSON.stringify({ token })}`);
        else if (s.startsWith('40')) ready();
        else if (s === '2') ws.send('3');
        else fail(`socket.io refused: ${s.slice(0, 200)}`);
      });
    }
  });
}
