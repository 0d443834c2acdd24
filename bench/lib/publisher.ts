// The publish driver: how the bench injects stories and notifications into the server under test.
//
// Today it is a WebSocket client holding the `stories:publish` role, for every server. When storywire's
// backend HTTP API lands (POST /v1/stories, POST /v1/notifications, `Authorization: Bearer <API_KEY>`),
// add `via: 'http'` in createPublisher below: an implementation of the same three methods. Nothing else in
// the bench changes: scenarios only see Publisher.
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
  close(): Promise<void>;
}

export type PublishVia = 'ws';

export interface PublisherOptions {
  via: PublishVia;
  secret: string;
  /** Extra story bytes (a `body` field), to size payloads like real stories. */
  payloadBytes: number;
}

export const PUBLISHER_USER = 'bench-publisher';

export async function createPublisher(ep: Endpoint, opts: PublisherOptions): Promise<Publisher> {
  const body = opts.payloadBytes > 0 ? 'x'.repeat(opts.payloadBytes) : undefined;
  const token = benchToken(opts.secret, PUBLISHER_USER, [PUBLISH_ROLE]);
  // The publisher is a connection like any other: it receives the stories it publishes, and ignores them.
  const ws: WebSocket = await openClient(ep, token, { timeoutMs: 10_000 }, () => {});
  ws.on('error', () => {});
  const kind = ep.kind;
  return {
    story(seq, t0Us) {
      const story = body === undefined ? { id: String(seq), title: 'Bench story', bench: benchTag(seq, t0Us) } : { id: String(seq), title: 'Bench story', body, bench: benchTag(seq, t0Us) };
      ws.send(storyFrame(kind, story));
    },
    notify(userId, seq, t0Us) {
      ws.send(notifyFrame(kind, userId, { title: 'Bench', message: 'A bench notification', data: { bench: benchTag(seq, t0Us) } }));
    },
    backlog: () => ws.bufferedAmount,
    close: () =>
      new Promise<void>((resolve) => {
        if (ws.readyState === ws.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.terminate();
      }),
  };
}
