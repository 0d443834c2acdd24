// One chaos scenario: N SDK clients, notifications published over HTTP at a fixed rate, random sockets cut; tallies per client.
import WebSocket from 'ws';
import { StorywireClient, type WebSocketConstructor } from '../src/client/index.js';

export interface ChaosOptions {
  /** ws:// URL of the server's WebSocket path, and the base http:// URL of its HTTP API. */
  url: string;
  apiBase: string;
  apiKey: string;
  token(userId: string): Promise<string>;
  clients: number;
  durationMs: number;
  /**
   * The run goes on past `durationMs` until this many sockets were cut and notifications published (for
   * tests, where a busy machine fires timers late: the run is then bounded by what happened, not by time).
   */
  minCuts?: number;
  minPublished?: number;
  /** Notifications published per second, all users together, each to one random user. */
  ratePerS: number;
  /** Every `chaosEveryMs`, this share of the open clients gets its socket cut (terminated: no close frame). */
  chaosEveryMs: number;
  dropShare: number;
  /** The SDK's first reconnect delay after a cut is drawn in [0, awayMs) (its minDelayMs). */
  awayMs: number;
  /** At the end, how long to wait for reconnects and in-flight events before counting. */
  settleMs: number;
  /** The SDK's resume (default); false is the naive reconnect of the Socket.IO layer it replaces. */
  resume: boolean;
}

export interface ChaosResult {
  published: number;
  /** Published notifications the app was handed (unique ids), and their share. */
  delivered: number;
  deliveryPct: number;
  missing: number;
  clientsMissing: number;
  /** Notifications handed to the app more than once, and those never published by this run. */
  duplicates: number;
  unexpected: number;
  outOfOrder: number;
  publishFailures: number;
  cuts: number;
  reconnects: number;
  replayed: number;
  /** The most events one reconnect replayed: compare with the server's HISTORY_SIZE (the bound of a resume). */
  maxReplayed: number;
  resyncs: number;
  /** ms from the new connection's `connected` to having processed every event it had to replay. */
  catchUpMs: { p50: number; p99: number; max: number };
  /** ms from the cut to caught up again (backoff included). */
  outageMs: { p50: number; max: number };
  settledMs: number;
}

interface Tally {
  user: string;
  client: StorywireClient;
  /** The SDK's current socket, kept so the chaos loop can cut it like a network would. */
  net: { socket?: WebSocket };
  published: Set<string>;
  seen: Map<string, number>;
  lastOffset: number;
  lastEpoch: string;
  outOfOrder: number;
  cutAt: number | undefined;
  openAt: number;
  target: number | undefined;
}

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const tallies: Tally[] = [];
  const catchUps: number[] = [];
  const outages: number[] = [];
  let cuts = 0;
  let reconnects = 0;
  let replayed = 0;
  let maxReplayed = 0;
  let resyncs = 0;
  let lastDelivery = 0;

  const caughtUp = (x: Tally) => {
    if (x.target === undefined) return;
    const now = performance.now();
    if ((x.client.positions[`user:${x.user}`]?.offset ?? 0) < x.target) return;
    x.target = undefined;
    catchUps.push(now - x.openAt);
    if (x.cutAt !== undefined) outages.push(now - x.cutAt);
    x.cutAt = undefined;
  };

  for (let i = 0; i < o.clients; i++) {
    const user = `u${i}`;
    const net: Tally['net'] = {};
    class Tapped extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        net.socket = this;
      }
    }
    const client = new StorywireClient({
      url: o.url,
      token: () => o.token(user),
      WebSocket: Tapped as WebSocketConstructor,
      resume: o.resume,
      reconnect: { minDelayMs: o.awayMs, maxDelayMs: o.awayMs * 4 },
      autoConnect: false,
    });
    const x: Tally = { user, client, net, published: new Set(), seen: new Map(), lastOffset: 0, lastEpoch: '', outOfOrder: 0, cutAt: undefined, openAt: 0, target: undefined };
    x.client.on('open', (info) => {
      x.openAt = performance.now();
      const joined = info.topics?.[`user:${user}`];
      replayed += joined?.replayed ?? 0;
      maxReplayed = Math.max(maxReplayed, joined?.replayed ?? 0);
      if (x.cutAt !== undefined) reconnects++;
      x.target = joined?.offset ?? 0;
      caughtUp(x);
    });
    x.client.on('disconnected', () => (x.cutAt ??= performance.now()));
    x.client.on('resync', () => resyncs++);
    x.client.onNotification((n, meta) => {
      lastDelivery = performance.now();
      x.seen.set(n.id, (x.seen.get(n.id) ?? 0) + 1);
      if (meta.epoch === x.lastEpoch && (meta.offset ?? 0) <= x.lastOffset) x.outOfOrder++;
      x.lastEpoch = meta.epoch ?? '';
      x.lastOffset = meta.offset ?? 0;
      caughtUp(x);
    });
    tallies.push(x);
  }
  for (let i = 0; i < tallies.length; i += 50) {
    const batch = tallies.slice(i, i + 50);
    for (const x of batch) x.client.connect();
    await Promise.all(batch.map((x) => x.client.whenOpen(30_000)));
  }
  for (const x of tallies) x.cutAt = undefined;
  catchUps.length = 0;

  // Publisher: a fixed rate kept by a schedule, not by timer luck; every POST is awaited before counting.
  let publishFailures = 0;
  let seq = 0;
  const inFlight = new Set<Promise<void>>();
  const publish = () => {
    const x = tallies[Math.floor(Math.random() * tallies.length)]!;
    const n = ++seq;
    const p = fetch(`${o.apiBase}/v1/notifications`, {
      method: 'POST',
      headers: { authorization: `Bearer ${o.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ userId: x.user, notification: { title: `n${n}`, message: 'chaos', type: 'chaos' } }),
    })
      .then(async (r) => {
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        x.published.add(((await r.json()) as { id: string }).id);
      })
      .catch(() => void publishFailures++)
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  const started = performance.now();
  let sent = 0;
  const publisher = setInterval(() => {
    const due = Math.floor(((performance.now() - started) / 1000) * o.ratePerS);
    for (; sent < due; sent++) publish();
  }, 5);

  const chaos = setInterval(() => {
    const open = tallies.filter((x) => x.client.isConnected);
    const n = Math.max(o.dropShare > 0 ? 1 : 0, Math.round(open.length * o.dropShare));
    for (let k = 0; k < n && open.length > 0; k++) {
      const x = open.splice(Math.floor(Math.random() * open.length), 1)[0]!;
      x.cutAt = performance.now();
      x.net.socket?.terminate();
      cuts++;
    }
  }, o.chaosEveryMs);

  await sleep(o.durationMs);
  while (cuts < (o.minCuts ?? 0) || sent < (o.minPublished ?? 0)) await sleep(20);
  clearInterval(chaos);
  clearInterval(publisher);
  while (inFlight.size > 0) await Promise.all([...inFlight]);

  // Settled: everything delivered; or everyone back, caught up, and nothing delivered for a second (what is missing then never comes).
  const settleStart = performance.now();
  const back = (x: Tally) => x.client.isConnected && x.target === undefined;
  const complete = (x: Tally) => back(x) && [...x.published].every((id) => x.seen.has(id));
  for (;;) {
    const now = performance.now();
    if (tallies.every(complete) || now - settleStart > o.settleMs || (tallies.every(back) && now - lastDelivery > 1000)) break;
    await sleep(20);
  }
  const settledMs = performance.now() - settleStart;
  for (const x of tallies) x.client.close();

  let published = 0;
  let delivered = 0;
  let duplicates = 0;
  let unexpected = 0;
  let clientsMissing = 0;
  let outOfOrder = 0;
  for (const x of tallies) {
    published += x.published.size;
    const got = [...x.published].filter((id) => x.seen.has(id)).length;
    delivered += got;
    if (got < x.published.size) clientsMissing++;
    for (const [id, count] of x.seen) {
      duplicates += count - 1;
      if (!x.published.has(id)) unexpected++;
    }
    outOfOrder += x.outOfOrder;
  }
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    published,
    delivered,
    deliveryPct: published === 0 ? 100 : round((100 * delivered) / published),
    missing: published - delivered,
    clientsMissing,
    duplicates,
    unexpected,
    outOfOrder,
    publishFailures,
    cuts,
    reconnects,
    replayed,
    maxReplayed,
    resyncs,
    catchUpMs: { p50: round(quantile(catchUps, 0.5)), p99: round(quantile(catchUps, 0.99)), max: round(Math.max(0, ...catchUps)) },
    outageMs: { p50: round(quantile(outages, 0.5)), max: round(Math.max(0, ...outages)) },
    settledMs: Math.round(settledMs),
  };
}
