// The publish driver: how the bench injects stories and notifications into the server under test.
//
// Today it is a few WebSocket clients holding the `stories:publish` role, for every server, used round-robin
// (one connection would meet storywire's per-connection rate limits, which exist precisely for clients).
// When the HTTP publish API (POST /v1/stories, POST /v1/notifications, `Authorization: Bearer <API_KEY>`)
// is to be measured, add `via: 'http'` in createPublisher below: an implementation of the same methods.
// Nothing else in the bench changes: scenarios only see Publisher.
import type WebSocket from 'ws';
import { PUBLISH_ROLE, benchToken } from './jwt.js';
import { benchTag, notifyFrame, openClient, storyFrame, type Endpoint } from './wire.js';

export interface Publisher {
  /** Broadcasts story `seq` to the `stories` topic (every connection), stamped with t0 (µs, monotonic). */
  story(seq: number, t0Us: number): void;
  /** Sends a notification to every connection of `userId`. */
  notify(userId: string, seq: number, t0Us: number): void;
  /** Bytes the driver has queued and the server has not taken yet: grows when the server stops reading. */
  backlog(): number;
  /** Publishes the server refused (error replies), with a sample of the first ones. */
  refused(): { count: number; sample: string[] };
  close(): Promise<void>;
}

export type PublishVia = 'ws';

export interface PublisherOptions {
  via: PublishVia;
  secret: string;
  /** Extra story bytes (a `body` field), to size payloads like real stories. */
  payloadBytes: number;
  /** Publisher connections used round-robin. */
  connections: number;
}

export const PUBLISHER_USER = 'bench-publisher';

const ERROR_JSON = Buffer.from('{"type":"error"');
const ERROR_SIO = Buffer.from('42["error"');

export async function createPublisher(ep: Endpoint, opts: PublisherOptions): Promise<Publisher> {
  const body = opts.payloadBytes > 0 ? 'x'.repeat(opts.payloadBytes) : undefined;
  const refused = { count: 0, sample: [] as string[] };
  // Publishers receive what every connection receives (stories) and ignore it; error replies are counted.
  const onMessage = (data: Buffer) => {
    if (data.subarray(0, ERROR_JSON.length).equals(ERROR_JSON) || data.subarray(0, ERROR_SIO.length).equals(ERROR_SIO)) {
      refused.count++;
      if (refused.sample.length < 3) refused.sample.push(data.toString().slice(0, 200));
    }
  };
  const sockets: WebSocket[] = [];
  try {
    for (let i = 0; i < Math.max(1, opts.connections); i++) {
      const ws = await openClient(ep, benchToken(opts.secret, `${PUBLISHER_USER}-${i}`, [PUBLISH_ROLE]), { timeoutMs: 10_000 }, onMessage);
      ws.on('error', () => {});
      ws.on('close', (code) => {
        refused.count++;
        if (refused.sample.length < 3) refused.sample.push(`publisher connection closed (${code})`);
      });
      sockets.push(ws);
    }
  } catch (err) {
    for (const ws of sockets) ws.terminate();
    throw err;
  }
  const kind = ep.kind;
  let next = 0;
  const pick = () => sockets[next++ % sockets.length]!;
  return {
    story(seq, t0Us) {
      const bench = benchTag(seq, t0Us);
      pick().send(storyFrame(kind, body === undefined ? { id: String(seq), title: 'Bench story', bench } : { id: String(seq), title: 'Bench story', body, bench }));
    },
    notify(userId, seq, t0Us) {
      pick().send(notifyFrame(kind, userId, { title: 'Bench', message: 'A bench notification', data: { bench: benchTag(seq, t0Us) } }));
    },
    backlog: () => sockets.reduce((n, ws) => n + ws.bufferedAmount, 0),
    refused: () => ({ count: refused.count, sample: [...refused.sample] }),
    close: async () => {
      await Promise.all(
        sockets.map(
          (ws) =>
            new Promise<void>((resolve) => {
              ws.removeAllListeners('close');
              if (ws.readyState === ws.CLOSED) return resolve();
              ws.once('close', () => resolve());
              ws.terminate();
            }),
        ),
      );
    },
  };
}
