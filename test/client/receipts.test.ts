// SDK delivery receipts: notifications:received batched per epoch (unit, on a manual clock), sent for live and
// replayed notifications, counted by the server, and what they change: a notification an SDK got is not pushed.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import WebSocket from 'ws';
import { Receipts, RECEIPT_BATCH, RECEIPT_DELAY_MS } from '../../src/client/receipts.js';
import type { WebSocketConstructor } from '../../src/client/index.js';
import { generateSecret, verify } from '../../src/webhooks/signing.js';
import { startServer, type Harness } from '../helpers.js';
import { startReceiver } from '../webhook-receiver.js';
import { WAIT_MS } from '../wait.js';
import { ManualClock, client, gate, next, note, until } from './util.js';

type Sent = { epoch: string; offsets: number[] };

/** A `ws` WebSocket that records the receipts the SDK writes, and can be cut. */
function spied(): { WebSocket: WebSocketConstructor; receipts: Sent[]; cut(): void } {
  const receipts: Sent[] = [];
  const sockets: WebSocket[] = [];
  class Spied extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
    override send(data: unknown, ...rest: unknown[]): void {
      const f = JSON.parse(String(data)) as { type: string; data: Sent };
      if (f.type === 'notifications:received') receipts.push(f.data);
      (super.send as (d: unknown, ...r: unknown[]) => void)(data, ...rest);
    }
  }
  return { WebSocket: Spied, receipts, cut: () => sockets[sockets.length - 1]?.terminate() };
}

/** Polls an async condition every 10 ms; rejects after WAIT_MS. */
async function eventually(pred: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A node with a push destination (a receiver that verifies and answers 200): it asks for receipts. */
async function pushServer(t: Parameters<typeof startServer>[0] & { fail(m: string): void }): Promise<Harness> {
  const secret = generateSecret();
  const rx = await startReceiver(t, secret);
  return startServer(t, {}, { PUSH_WEBHOOK_URL: rx.url, WEBHOOK_SECRET: secret });
}

async function receiptsIn(h: Harness): Promise<number> {
  const text = await h.server.metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith('storywire_messages_in_total{type="notifications:received"} '));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

t.test('Receipts: one frame per epoch after the delay, at most 100 offsets each, kept while the socket is closed', async (t) => {
  const clock = new ManualClock();
  const frames: Sent[] = [];
  let open = true;
  const r = new Receipts(clock, (text) => {
    if (!open) return false;
    const f = JSON.parse(text) as { type: string; id?: unknown; data: Sent };
    t.equal(f.type, 'notifications:received');
    t.notOk('id' in f, 'no request id: nothing waits for the ack');
    frames.push(f.data);
    return true;
  });
  for (let i = 1; i <= 5; i++) r.add('e1', i);
  r.add('e2', 1);
  t.same(frames, [], 'gathered, not sent yet');
  t.same(clock.pending(), [RECEIPT_DELAY_MS], 'one timer for the batch');
  clock.advance(RECEIPT_DELAY_MS);
  t.same(frames, [{ epoch: 'e1', offsets: [1, 2, 3, 4, 5] }, { epoch: 'e2', offsets: [1] }]);

  frames.length = 0;
  for (let i = 1; i <= RECEIPT_BATCH + 20; i++) r.add('e1', 100 + i);
  t.equal(frames.length, 1, 'a full batch goes at once');
  t.equal(frames[0]!.offsets.length, RECEIPT_BATCH);
  clock.advance(RECEIPT_DELAY_MS);
  t.same(frames[1], { epoch: 'e1', offsets: Array.from({ length: 20 }, (_, i) => 201 + i) }, 'the rest after the delay');

  frames.length = 0;
  open = false;
  r.add('e1', 300);
  clock.advance(RECEIPT_DELAY_MS);
  r.lost();
  t.equal(r.waiting, 1, 'not written while closed: kept');
  t.same(clock.pending(), [], 'no timer while offline');
  open = true;
  r.flush();
  t.same(frames, [{ epoch: 'e1', offsets: [300] }], 'sent on the next connection');
  r.add('e1', 301);
  r.clear();
  clock.advance(RECEIPT_DELAY_MS);
  t.equal(frames.length, 1, 'clear() (the client closed) drops what waits');
  t.equal(r.waiting, 0);
});

t.test('live notifications are acknowledged in a few frames, and the server counts them', async (t) => {
  const h = await pushServer(t);
  const spy = spied();
  const alice = client(t, { url: h.url, WebSocket: spy.WebSocket, token: await h.token('alice') });
  await alice.whenOpen();
  const n = 30;
  const got: number[] = [];
  alice.onNotification((_n, m) => got.push(m.offset!));
  await Promise.all(Array.from({ length: n }, (_, i) => h.server.sendNotificationToUser('alice', note(`n${i}`)).delivered));
  await until(() => spy.receipts.flatMap((r) => r.offsets).length === n, undefined, 'every notification acknowledged');
  t.same(spy.receipts.flatMap((r) => r.offsets).sort((a, b) => a - b), got.sort((a, b) => a - b), 'each offset once');
  t.ok(spy.receipts.length <= 10, `${n} notifications, ${spy.receipts.length} receipt frames`);
  t.same(new Set(spy.receipts.map((r) => r.epoch)), new Set([alice.positions['user:alice']!.epoch]));
  await eventually(async () => (await receiptsIn(h)) === spy.receipts.length, 'the server read each frame');
  // Nothing was answered with an error (a receipt without id gets no ack, and an invalid one an error frame).
  let errors = 0;
  alice.on('error', () => errors++);
  await h.server.sendNotificationToUser('alice', note('last')).delivered;
  await until(() => spy.receipts.flatMap((r) => r.offsets).length === n + 1);
  t.equal(errors, 0);
});

t.test('notifications replayed on resume are acknowledged; receipts: false sends none', async (t) => {
  const h = await pushServer(t);
  const spy = spied();
  const away = gate();
  const alice = client(t, {
    url: h.url,
    WebSocket: spy.WebSocket,
    reconnect: { minDelayMs: 10, maxDelayMs: 50 },
    token: async (ctx) => {
      if (ctx.reason === 'reconnect') await away.wait();
      return h.token('alice');
    },
  });
  await alice.whenOpen();
  await h.server.sendNotificationToUser('alice', note('n0')).delivered;
  await until(() => spy.receipts.length === 1, undefined, 'n0 acknowledged');
  away.close();
  const lost = next(alice, 'disconnected');
  spy.cut();
  await lost;
  await until(() => h.server.connectionsOf('alice') === 0, undefined, 'the server saw alice go');
  for (let i = 1; i <= 5; i++) await h.server.sendNotificationToUser('alice', note(`n${i}`)).delivered;
  const before = await receiptsIn(h);
  away.open();
  await alice.whenOpen();
  await until(() => spy.receipts.flatMap((r) => r.offsets).length === 6, undefined, 'the replayed ones acknowledged');
  t.same(spy.receipts.flatMap((r) => r.offsets), [1, 2, 3, 4, 5, 6]);
  t.ok(spy.receipts.length - 1 <= 2, `5 replayed, ${spy.receipts.length - 1} frames`);
  await eventually(async () => (await receiptsIn(h)) - before === spy.receipts.length - 1, 'the server read them');

  const quiet = spied();
  const bob = client(t, { url: h.url, WebSocket: quiet.WebSocket, token: await h.token('bob'), receipts: false });
  await bob.whenOpen();
  const seen = next(bob, 'notification:received');
  await h.server.sendNotificationToUser('bob', note('b0')).delivered;
  await seen;
  // Asserting that nothing is sent: a short wait of its own, past the batching delay.
  await new Promise((r) => setTimeout(r, 4 * RECEIPT_DELAY_MS));
  t.same(quiet.receipts, [], 'no receipt with receipts: false');
});

t.test('a server without a push destination does not ask for receipts (`connected` has no `receipts`): the SDK sends none', async (t) => {
  const h = await startServer(t);
  const spy = spied();
  const alice = client(t, { url: h.url, WebSocket: spy.WebSocket, token: await h.token('alice') });
  const [info] = await next(alice, 'open');
  t.notOk('receipts' in info, 'not asked for');
  const pushing = await pushServer(t);
  const bob = client(t, { url: pushing.url, WebSocket, token: await pushing.token('bob') });
  t.equal((await next(bob, 'open'))[0].receipts, true, 'asked for by a node with PUSH_WEBHOOK_URL');
  // The SDK decides when the frame arrives (before the event handlers run): nothing is even waiting.
  const waiting = new Promise<number>((resolve) => alice.onNotification(() => resolve((alice as unknown as { receipts: Receipts }).receipts.waiting)));
  await h.server.sendNotificationToUser('alice', note('n0')).delivered;
  t.equal(await waiting, 0, 'no receipt kept for a server that did not ask');
  const later = new Promise<number>((resolve) => bob.onNotification(() => resolve((bob as unknown as { receipts: Receipts }).receipts.waiting)));
  await pushing.server.sendNotificationToUser('bob', note('b0')).delivered;
  t.equal(await later, 1, 'one kept for the one that did, until the batch goes');
  await until(() => spy.receipts.length === 0 && (bob as unknown as { receipts: Receipts }).receipts.waiting === 0, undefined, "bob's receipt sent");
  t.same(spy.receipts, [], 'none written to the server that did not ask');
});

t.test('with PUSH_WEBHOOK_URL: a notification an SDK received is not pushed; an offline user\'s is, and so is one to receipts: false', async (t) => {
  const secret = generateSecret();
  const pushes: { userId: string; titles: string[] }[] = [];
  let refused = 0;
  const receiver = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (!verify(secret, req.headers, body).ok) {
        refused++;
        res.writeHead(401).end();
        return;
      }
      const e = JSON.parse(body) as { type: string; data: { userId: string; notifications: { notification: { title: string } }[] } };
      if (e.type === 'notification.unread') pushes.push({ userId: e.data.userId, titles: e.data.notifications.map((n) => n.notification.title) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  t.teardown(() => receiver.close());
  const env = {
    PUSH_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/push`,
    WEBHOOK_SECRET: secret,
    // Long enough for an SDK on a busy machine to answer; one request at a time: pushes arrive in queue order.
    PUSH_DELAY_MS: '2000',
    PUSH_COALESCE_MS: '0',
    WEBHOOK_CONCURRENCY: '1',
  };
  const h = await startServer(t, {}, env);
  const alice = client(t, { url: h.url, WebSocket, token: await h.token('alice') });
  const carol = client(t, { url: h.url, WebSocket, token: await h.token('carol'), receipts: false });
  await Promise.all([alice.whenOpen(), carol.whenOpen()]);
  const aliceGot = next(alice, 'notification:received');
  // Alice's first: if it were pushed, it would fall due first and reach the receiver before the others.
  await h.server.sendNotificationToUser('alice', note('for alice')).delivered;
  await aliceGot;
  await h.server.sendNotificationToUser('carol', note('for carol')).delivered;
  await h.server.sendNotificationToUser('bob', note('for bob')).delivered;
  await until(() => pushes.length >= 2, undefined, 'the pushes of bob (offline) and carol (no receipts)');
  t.same(pushes.map((p) => p.userId).sort(), ['bob', 'carol']);
  t.same(pushes.find((p) => p.userId === 'bob')?.titles, ['for bob']);
  t.equal(refused, 0, 'every push verified');
  t.ok((await receiptsIn(h)) >= 1, 'alice\'s receipt reached the server');
});
