// Random reads, mark-alls, notifications and cut connections on three devices of one user against a live
// node: once quiet, every store equals the server's inbox (items, read flags, unreadCount).
import t from 'tap';
import { startServer } from '../helpers.js';
import { inboxDifferences, type StorywireClient } from '../../src/client/index.js';
import { client, tapped, until } from './util.js';

/** A small seeded generator (mulberry32): a failing run can be replayed with its seed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const seed = Number(process.env['HAMMER_SEED'] ?? Date.now() % 1_000_000);

t.test(`hammer (seed ${seed}): stores converge on the inbox`, async (t) => {
  // A small history and store so that trimming and capacity are exercised too.
  const h = await startServer(t, { historySize: 12, rateLimitBurst: 1000 }); // three devices share one user's budget
  const random = rng(seed);
  const devices: { c: StorywireClient; cut(): void }[] = [];
  for (let i = 0; i < 3; i++) {
    const net = tapped();
    const c = client(t, { url: h.url, token: await h.token('bob'), WebSocket: net.WebSocket, reconnect: { minDelayMs: 5, maxDelayMs: 40 }, maxNotifications: i === 2 ? 5 : 12 });
    devices.push({ c, cut: net.cut });
  }
  await Promise.all(devices.map((d) => d.c.whenOpen()));
  let sent = 0;
  for (let step = 0; step < 300; step++) {
    const d = devices[Math.floor(random() * devices.length)]!;
    const x = random();
    if (x < 0.4) {
      h.server.sendNotificationToUser('bob', { title: `n${++sent}`, message: '', type: 'info', data: undefined });
    } else if (x < 0.75) {
      const items = d.c.notifications.items;
      const n = items[Math.floor(random() * items.length)];
      if (n) d.c.markAsRead(n.id).catch(() => {});
    } else if (x < 0.8) {
      d.c.markAllAsRead().catch(() => {});
    } else if (x < 0.85) {
      if (d.c.isConnected) d.cut();
    } else if (x < 0.9) {
      d.c.refreshNotifications().catch(() => {});
    }
    if (step % 10 === 0) await new Promise((r) => setImmediate(r));
    if (step % 50 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  let last: string[][] = [];
  try {
    await until(() => devices.every((d) => d.c.isConnected), 10_000, 'all connected');
    const check = async () => {
      // A device may be reconnecting, or over its rate limit after the burst: ask again.
      last = await Promise.all(devices.map((d) => inboxDifferences(d.c).catch((e: Error) => [`check failed: ${e.message}`])));
      return last.every((l) => l.length === 0);
    };
    for (const end = Date.now() + 10_000; !(await check()) && Date.now() < end; await new Promise((r) => setTimeout(r, 50)));
  } finally {
    t.same(last, [[], [], []], `every store equals the inbox (${sent} notifications)`);
  }
  const [a, b] = devices;
  t.same(a!.c.notifications.items.map((n) => [n.id, n.read]), b!.c.notifications.items.map((n) => [n.id, n.read]), 'two devices with the same capacity agree');
  t.equal(new Set(devices.map((d) => d.c.notifications.unreadCount)).size, 1, 'one badge on every device');
});
