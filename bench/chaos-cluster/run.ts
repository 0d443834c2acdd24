// One chaos run against a real cluster (redis-server + 2 storywire nodes + a round-robin proxy): devices of
// N users, a backend publishing with idempotency keys, a presence watcher, and the variant's chaos; then the
// tally of what was acked and what each device was handed, and the stores against the server's inbox.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signHs256 } from '../lib/jwt.js';
import { Balancer, NodeProcess, RedisProcess, freePort } from './cluster.js';
import { RawDevice, SdkDevice, Watcher, type Device } from './devices.js';
import { Publisher, type Logical } from './publisher.js';

export const VARIANTS = ['resets', 'node-kill', 'redis-restart-empty', 'redis-restart-persistent', 'all', 'redis-then-node'] as const;
export type Variant = (typeof VARIANTS)[number];

export interface ChaosClusterOptions {
  variant: Variant;
  users: number;
  /** Share of the users (0..1) that also have a raw `ws` device, besides their SDK device. */
  rawShare: number;
  durationMs: number;
  /** Logical notifications per second, all users together. */
  ratePerS: number;
  /** Every resetEveryMs, this share of the client sockets is reset by the proxy. */
  resetEveryMs: number;
  resetShare: number;
  leaseMs: number;
  graceMs: number;
  /** Share of received notifications an SDK app marks read. */
  readShare: number;
  maxAttempts: number;
  /** Longest wait after the last event for the devices to catch up. */
  settleMs: number;
  /** Where the node logs and the run's details go (a new temporary directory when unset). */
  dir?: string;
  log?: (line: string) => void;
}

export interface ChaosClusterResult {
  variant: Variant;
  /** Logical notifications (one Idempotency-Key each). */
  published: number;
  acked: number;
  failed: number;
  attempts: number;
  http503: number;
  /** What the 503 bodies said about `stored`: true, false, null (unknown), or nothing. */
  stored503: { true: number; false: number; null: number; absent: number };
  unreachable: number;
  /** 200s answered `duplicate: true` (a retry of a key already stored), and 4xx answers (the harness only sends valid requests: each is an error of the run). */
  duplicateAnswers: number;
  http4xx: number;
  /** (acked notification, device of its user) pairs, and those the device was handed. */
  expected: number;
  delivered: number;
  missing: number;
  /** Of the missing: the notification is in the user's inbox on the server at the end (stored, not delivered). */
  missingStored: number;
  /** recovered: false (SDK: resync) seen by the devices, and the acked pairs such a refetch covered. */
  toldToRefetch: number;
  coveredByRefetch: number;
  /** The same notification id handed to the app twice by one device. */
  duplicates: number;
  /** One logical notification (one key) handed to one device under two ids: a retry stored twice. */
  retryDuplicates: number;
  outOfOrder: number;
  gaps: number;
  epochChangesLive: number;
  connectedWithoutPosition: number;
  falseOffline: number;
  offlineEvents: number;
  storesChecked: number;
  storesDiffer: number;
  /** Handed to a device although the backend never got a 200 for it (a 503 that was in fact delivered). */
  deliveredUnacked: number;
  unexpected: number;
  resets: number;
  reconnects: number;
  readsSent: number;
  readErrors: number;
  nodeKills: number;
  redisRestarts: number;
  rawStopped: number;
  settledMs: number;
  durationMs: number;
  /** The run's directory: node logs and details.json (every missing, duplicate, false offline, store diff). */
  dir: string;
  errors: string[];
}

const FAILING = ['missing', 'duplicates', 'retryDuplicates', 'outOfOrder', 'falseOffline', 'storesDiffer'] as const;

/** What makes a run fail: the figures that must be 0 and are not, and the errors of the run itself. */
export function failures(r: ChaosClusterResult): string[] {
  return [...FAILING.filter((k) => r[k] !== 0).map((k) => `${k} ${r[k]}`), ...r.errors];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number) => Math.round(x);

/** May this attempt have stored the notification? A 503 that says `stored: false` did not. */
const mayHaveStored = (a: Logical['attempts'][number]) => a.status === 200 || a.status === 0 || (a.status >= 500 && a.stored !== false);

export async function runChaosCluster(o: ChaosClusterOptions): Promise<ChaosClusterResult> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), `storywire-chaos-${o.variant}-`));
  const t0 = performance.now();
  const rel = (at: number) => Math.round(at - t0) / 1000;
  const timeline: { t: number; what: string }[] = [];
  const note = (what: string) => {
    timeline.push({ t: rel(performance.now()), what });
    o.log?.(`[chaos ${o.variant} +${rel(performance.now()).toFixed(1)}s] ${what}`);
  };
  const errors: string[] = [];
  const secret = `chaos-${randomBytes(12).toString('hex')}-secret`;
  const apiKey = `chaos-api-${randomBytes(8).toString('hex')}`;
  const persistent = o.variant === 'redis-restart-persistent' || o.variant === 'all' || o.variant === 'redis-then-node';
  // Three distinct ports (two free ports asked in a row may be the same one).
  const taken = new Set<number>();
  while (taken.size < 3) taken.add(await freePort());
  const [redisPort, ...ports] = [...taken] as [number, number, number];
  const redis = new RedisProcess(redisPort, persistent, dir, note);
  const nodes = ports.map(
    (port, i) =>
      new NodeProcess(
        {
          name: `node-${'ab'[i]}`,
          port,
          redisUrl: redis.url,
          secret,
          apiKey,
          leaseMs: o.leaseMs,
          graceMs: o.graceMs,
          logFile: join(dir, `node-${'ab'[i]}.log`),
          env: { MAX_SUBSCRIPTIONS: String(o.users + 10), MAX_CONNECTIONS_PER_IP: String(o.users * 4 + 50) },
        },
        note,
      ),
  );
  const proxy = new Balancer(() => ports);
  const token = (sub: string) => signHs256(secret, { sub, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3 * 3600 });
  const users = Array.from({ length: o.users }, (_, i) => `u${i}`);
  const devices: (SdkDevice | RawDevice)[] = [];
  const sdk: SdkDevice[] = [];
  const raw: RawDevice[] = [];
  // Watching presence:<id> needs the id in the `watch` claim in production (protocol.md, "Channels").
  const watchers = ports.map((_, i) => new Watcher(() => ports, signHs256(secret, { sub: `watcher${i}`, watch: users, exp: Math.floor(Date.now() / 1000) + 3 * 3600 }), users, i));
  const publisher = new Publisher({ apiKey, ports: () => ports, users, ratePerS: o.ratePerS, maxAttempts: o.maxAttempts, backoffMs: 200, runId: randomBytes(3).toString('hex') });
  let resets = 0;
  let nodeKills = 0;
  let resetTimer: NodeJS.Timeout | undefined;
  let endAt = Infinity;

  try {
    await redis.start();
    await Promise.all(nodes.map((n) => n.start()));
    await Promise.all(nodes.map((n) => n.ready(20_000)));
    await proxy.start();
    const url = `ws://127.0.0.1:${proxy.port}/ws`;
    for (let i = 0; i < o.users; i++) {
      const d = new SdkDevice(users[i]!, { url, token });
      sdk.push(d);
      devices.push(d);
      if (i < Math.round(o.users * o.rawShare)) {
        const r = new RawDevice(users[i]!, { url, token });
        raw.push(r);
        devices.push(r);
      }
    }
    for (const d of devices) d.connect();
    await Promise.all(sdk.map((d) => d.client.whenOpen(30_000)));
    await waitFor(() => raw.every((r) => r.connected), 30_000, 'the raw devices to connect');
    await Promise.all(watchers.map((w) => w.start()));
    note(`${sdk.length} SDK and ${raw.length} raw devices connected through the proxy; a watcher on each node on presence:<id> of ${users.length} users`);

    // ---- the chaos ----
    const start = performance.now();
    const at = async (share: number) => {
      const due = start + share * o.durationMs - performance.now();
      if (due > 0) await sleep(due);
    };
    const burst = (share: number, why: string) => {
      const n = proxy.reset(share);
      resets += n;
      note(`reset ${n} sockets (${why})`);
    };
    const killNode = async (i: number, downMs: number) => {
      note(`SIGKILL ${nodes[i]!.o.name}`);
      await nodes[i]!.kill('SIGKILL');
      nodeKills++;
      await sleep(downMs);
      await nodes[i]!.start();
    };
    const outage = async (ms: number, sig: 'SIGKILL' | 'SIGTERM', withNodeKill: boolean) => {
      note(`redis ${sig} for ${ms} ms (${persistent ? 'restarts with its data' : 'restarts empty'})${withNodeKill ? ', a node killed during it' : ''}`);
      const began = performance.now();
      await redis.stop(sig);
      await sleep(ms / 3);
      burst(0.3, 'clients reconnect during the outage');
      let restarted: Promise<void> | undefined;
      if (withNodeKill) {
        const i = Math.floor(Math.random() * nodes.length);
        restarted = killNode(i, Math.max(200, ms / 3));
      }
      await sleep(Math.max(0, began + ms - performance.now()));
      await redis.start();
      await restarted;
    };
    publisher.start();
    for (const d of sdk) d.readShare = o.readShare;
    if (o.resetShare > 0) resetTimer = setInterval(() => (resets += proxy.reset(o.resetShare)), o.resetEveryMs);
    const L = o.leaseMs;
    const long = 2 * L + 500;
    const short = Math.max(300, Math.round(L / 2));
    const chaos = (async () => {
      switch (o.variant) {
        case 'resets':
          return;
        case 'node-kill':
          await at(0.3);
          await killNode(Math.floor(Math.random() * 2), L + 500);
          return;
        case 'redis-restart-empty':
        case 'redis-restart-persistent':
          await at(0.2);
          await outage(long, 'SIGKILL', false);
          await at(0.6);
          await outage(short, 'SIGTERM', false);
          return;
        case 'all':
          await at(0.15);
          await outage(long, 'SIGKILL', true);
          await at(0.55);
          await killNode(Math.floor(Math.random() * 2), L + 500);
          await at(0.75);
          await outage(short, 'SIGTERM', false);
          return;
        case 'redis-then-node':
          await at(0.15);
          await outage(long, 'SIGKILL', false);
          await at(0.6);
          await killNode(Math.floor(Math.random() * 2), L + 500);
          return;
      }
    })();
    await at(1);
    await chaos;
    clearInterval(resetTimer);
    for (const d of sdk) d.readShare = 0;
    note('chaos over: no more resets, kills or outages');
    await publisher.stop();
    note(`publisher done: ${publisher.all.length} logical notifications`);
    try {
      await Promise.all(nodes.map((n) => n.ready(30_000)));
    } catch (err) {
      errors.push(`after the chaos: ${(err as Error).message}`);
    }

    // ---- settle: every device back and handed everything acked (or told to refetch), or quiet ----
    const acked = publisher.all.filter((l) => l.outcome === 'acked');
    const byUser = new Map<string, Logical[]>();
    for (const l of acked) {
      if (!byUser.has(l.user)) byUser.set(l.user, []);
      byUser.get(l.user)!.push(l);
    }
    const covered = (d: Device, l: Logical) => {
      const from = l.attempts.find(mayHaveStored)?.at ?? l.firstAt;
      return d.refetches.some((r) => r.at > from);
    };
    const complete = (d: Device) => d.connected && (byUser.get(d.user) ?? []).every((l) => d.byKey.has(l.key) || covered(d, l));
    const settleStart = performance.now();
    const lastHanded = () => Math.max(0, ...devices.map((d) => d.received[d.received.length - 1]?.at ?? 0));
    for (;;) {
      const now = performance.now();
      if (devices.every(complete)) break;
      if (now - settleStart > o.settleMs) break;
      if (now - settleStart > 2000 && devices.every((d) => d.connected) && now - lastHanded() > 2000) break;
      await sleep(50);
    }
    const settledMs = performance.now() - settleStart;
    note(`settled in ${round(settledMs)} ms (${devices.filter(complete).length} of ${devices.length} devices complete)`);

    // ---- the server's inbox per user, and each SDK store against it ----
    const inbox = new Map<string, { ids: Set<string>; notifications: { id: string; read: boolean; offset?: number }[]; unreadCount: number; epoch?: string }>();
    const storeDiffs: unknown[] = [];
    const lastDiff = new Map<SdkDevice, unknown>();
    const check = async (d: SdkDevice): Promise<boolean> => {
      try {
        const page = await d.client.request<{ notifications: { id: string; read: boolean; offset?: number }[]; unreadCount: number; epoch?: string }>(
          'notifications:list',
          { limit: d.client.notifications.capacity },
          { offline: 'reject', timeoutMs: 5000 },
        );
        inbox.set(d.user, { ids: new Set(page.notifications.map((n) => n.id)), notifications: page.notifications, unreadCount: page.unreadCount, ...(page.epoch ? { epoch: page.epoch } : {}) });
        const diff = storeDiff(d, page);
        lastDiff.set(d, diff);
        return diff === undefined;
      } catch (err) {
        lastDiff.set(d, { error: String((err as { code?: string }).code ?? (err as Error).message) });
        return false;
      }
    };
    // A few rounds, half a second apart: a read acknowledged a moment late is not a difference.
    let pending = [...sdk];
    for (let round = 0; round < 6 && pending.length > 0; round++) {
      if (round > 0) await sleep(500);
      const same = await Promise.all(pending.map(check));
      pending = pending.filter((_, i) => !same[i]);
    }
    const storesChecked = sdk.length;
    for (const d of pending) storeDiffs.push({ device: d.name, ...(lastDiff.get(d) as object) });
    endAt = performance.now();
    for (const w of watchers) w.close();
    for (const d of devices) d.close();

    // ---- the tally ----
    const missing: unknown[] = [];
    let expected = 0;
    let delivered = 0;
    let coveredByRefetch = 0;
    let missingStored = 0;
    const keyed = new Map(publisher.all.map((l) => [l.key, l]));
    for (const d of devices) {
      for (const l of byUser.get(d.user) ?? []) {
        expected++;
        if (d.byKey.has(l.key)) delivered++;
        else if (covered(d, l)) coveredByRefetch++;
        else {
          const ids = l.attempts.map((a) => a.id).filter((x): x is string => x !== undefined);
          const held = inbox.get(d.user)?.notifications.find((n) => ids.includes(n.id));
          if (held) missingStored++;
          missing.push({
            device: d.name,
            key: l.key,
            ids,
            inServerInbox: held !== undefined,
            serverPosition: held ? { epoch: inbox.get(d.user)?.epoch, offset: held.offset } : null,
            /** What the device was handed of this user's topic, in arrival order. */
            handed: d.received.map((x) => `${rel(x.at)}@${x.epoch ?? '-'}:${x.offset ?? '-'}`),
            firstAt: rel(l.firstAt),
            ackedAt: rel(l.ackedAt ?? 0),
            attempts: l.attempts.map((a) => ({ t: rel(a.at), node: a.node, status: a.status, id: a.id, delivered: a.delivered, stored: a.stored, duplicate: a.duplicate, error: a.error })),
            conns: d.conns.map((c) => ({ open: rel(c.openAt), close: c.closeAt === undefined ? null : rel(c.closeAt), id: c.connectionId, since: c.since, joined: c.joined })),
            refetches: d.refetches.map((r) => ({ t: rel(r.at), reason: r.reason, from: r.from, to: r.to })),
          });
        }
      }
    }
    let duplicates = 0;
    let retryDuplicates = 0;
    let outOfOrder = 0;
    let unexpected = 0;
    let deliveredUnacked = 0;
    const dupDetail: unknown[] = [];
    for (const d of devices) {
      for (const [id, n] of d.byId) {
        if (n > 1) {
          duplicates += n - 1;
          dupDetail.push({ device: d.name, id, times: n, kind: 'same id', key: d.received.find((r) => r.id === id)?.key });
        }
      }
      for (const [key, ids] of d.byKey) {
        const l = keyed.get(key);
        if (!l) unexpected++;
        else if (l.outcome !== 'acked') deliveredUnacked++;
        if (ids.size > 1) {
          retryDuplicates += ids.size - 1;
          dupDetail.push({ device: d.name, key, ids: [...ids], kind: 'one key, several ids', attempts: l?.attempts.map((a) => ({ t: rel(a.at), status: a.status, id: a.id, delivered: a.delivered, stored: a.stored })) });
        }
      }
      outOfOrder += d.outOfOrder.length;
    }

    // False offline: see bench/README.md ("chaos-cluster"): connected since 500 ms before, and past the grace.
    const falseOffline: unknown[] = [];
    const lookback = o.graceMs + o.leaseMs + 2000;
    // One offline seen by both watchers counts once (same user, same lastSeen).
    const offline = [...new Map(watchers.flatMap((w) => w.offline).map((ev) => [`${ev.user}:${ev.lastSeen}`, ev])).values()];
    for (const ev of offline) {
      const mine = devices.filter((d) => d.user === ev.user).flatMap((d) => d.conns);
      const through = mine.find((c) => c.openAt <= ev.at - 500 && (c.closeAt ?? Infinity) >= Math.min(ev.at + o.graceMs, endAt));
      if (!through) continue;
      if (longestGap(mine, ev.at - lookback, ev.at) >= o.graceMs) continue;
      falseOffline.push({ user: ev.user, t: rel(ev.at), watcher: ev.watcher, lastSeen: ev.lastSeen, connection: { id: through.connectionId, open: rel(through.openAt), close: through.closeAt === undefined ? null : rel(through.closeAt) } });
    }

    const attempts = publisher.all.flatMap((l) => l.attempts);
    const r503 = attempts.filter((a) => a.status === 503);
    const refused = attempts.filter((a) => a.status >= 400 && a.status < 500);
    if (refused.length > 0) errors.push(`${refused.length} publish attempts answered 4xx (first: ${refused[0]!.status} ${refused[0]!.error ?? ''})`);
    const result: ChaosClusterResult = {
      variant: o.variant,
      published: publisher.all.length,
      acked: acked.length,
      failed: publisher.all.filter((l) => l.outcome === 'failed').length,
      attempts: attempts.length,
      http503: r503.length,
      stored503: {
        true: r503.filter((a) => a.stored === true).length,
        false: r503.filter((a) => a.stored === false).length,
        null: r503.filter((a) => a.stored === null).length,
        absent: r503.filter((a) => a.stored === undefined).length,
      },
      unreachable: attempts.filter((a) => a.status === 0).length,
      duplicateAnswers: attempts.filter((a) => a.duplicate === true).length,
      http4xx: attempts.filter((a) => a.status >= 400 && a.status < 500).length,
      expected,
      delivered,
      missing: missing.length,
      missingStored,
      toldToRefetch: devices.reduce((s, d) => s + d.refetches.length, 0),
      coveredByRefetch,
      duplicates,
      retryDuplicates,
      outOfOrder,
      gaps: devices.reduce((s, d) => s + d.gaps, 0),
      epochChangesLive: devices.reduce((s, d) => s + d.epochChanges.length, 0),
      connectedWithoutPosition: devices.reduce((s, d) => s + d.noPosition, 0),
      falseOffline: falseOffline.length,
      offlineEvents: offline.length,
      storesChecked,
      storesDiffer: storeDiffs.length,
      deliveredUnacked,
      unexpected,
      resets,
      reconnects: devices.reduce((s, d) => s + Math.max(0, d.conns.length - 1), 0),
      readsSent: sdk.reduce((s, d) => s + d.readsSent, 0),
      readErrors: sdk.reduce((s, d) => s + d.readErrors.length, 0),
      nodeKills,
      redisRestarts: Math.max(0, redis.starts - 1),
      rawStopped: raw.filter((r) => r.stoppedBy !== undefined).length,
      settledMs: round(settledMs),
      durationMs: round(performance.now() - t0),
      dir,
      errors,
    };
    writeFileSync(
      join(dir, 'details.json'),
      JSON.stringify(
        {
          options: { ...o, log: undefined },
          result,
          timeline,
          missing,
          duplicates: dupDetail,
          outOfOrder: devices.flatMap((d) => d.outOfOrder.map((x) => ({ device: d.name, ...x, at: rel(x.at) }))),
          falseOffline,
          storeDiffs,
          epochChanges: devices.flatMap((d) => d.epochChanges.map((x) => ({ device: d.name, t: rel(x.at), from: x.from, to: x.to }))),
          readErrors: sdk.flatMap((d) => d.readErrors.map((e) => ({ device: d.name, t: rel(e.at), id: e.id, error: e.code }))),
          watchersAway: watchers.map((w) => w.away.map((a) => ({ from: rel(a.from), to: a.to === undefined ? null : rel(a.to) }))),
        },
        null,
        1,
      ),
    );
    return result;
  } finally {
    clearInterval(resetTimer);
    for (const w of watchers) w.close();
    for (const d of devices) d.close();
    await proxy.close();
    await Promise.all(nodes.map((n) => n.close()));
    await redis.stop('SIGKILL');
  }
}

async function waitFor(ok: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** The longest stretch of [from, to] during which none of the connections was open. */
export function longestGap(conns: readonly { openAt: number; closeAt?: number }[], from: number, to: number): number {
  const spans = conns.map((c) => [c.openAt, c.closeAt ?? Infinity] as const).filter(([a, b]) => b > from && a < to).sort((x, y) => x[0] - y[0]);
  let cursor = from;
  let longest = 0;
  for (const [a, b] of spans) {
    if (a > cursor) longest = Math.max(longest, a - cursor);
    cursor = Math.max(cursor, b);
    if (cursor >= to) return longest;
  }
  return Math.max(longest, to - cursor);
}

/** How an SDK store differs from the server's inbox page (undefined: the same items, read flags and unread count). */
function storeDiff(d: SdkDevice, page: { notifications: { id: string; read: boolean }[]; unreadCount: number }): object | undefined {
  const store = d.client.notifications;
  const mine = new Map(store.items.map((n) => [n.id, n.read]));
  const theirs = new Map(page.notifications.map((n) => [n.id, n.read]));
  const onlyInStore = [...mine.keys()].filter((id) => !theirs.has(id));
  const onlyOnServer = [...theirs.keys()].filter((id) => !mine.has(id));
  const readDiffers = [...mine].filter(([id, read]) => theirs.has(id) && theirs.get(id) !== read).map(([id, read]) => ({ id, store: read, server: theirs.get(id) }));
  if (onlyInStore.length === 0 && onlyOnServer.length === 0 && readDiffers.length === 0 && store.unreadCount === page.unreadCount) return undefined;
  return { onlyInStore, onlyOnServer, readDiffers, unreadCount: { store: store.unreadCount, server: page.unreadCount } };
}
