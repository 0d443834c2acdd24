// Random reads, mark-alls, notifications and cut connections on three SDK devices of one user spread over two
// nodes, around a Redis restart (empty, or with its data): once quiet, every store equals the server's inbox and
// the badges agree.
import t from 'tap';
import { inboxDifferences, type StorywireClient } from '../../src/client/index.js';
import { client, tapped } from '../client/util.js';
import { api, skipReason, startNodes, startRedis, until, type Node } from './redis.js';
import { WAIT_MS } from '../wait.js';

function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const seed = Number(process.env['HAMMER_SEED'] ?? Date.now() % 1_000_000);
const skip = skipReason || (process.env['REDIS_URL'] ? 'needs a redis-server it can stop (REDIS_URL is set)' : false);

for (const persistent of [false, true]) run(persistent);

function run(persistent: boolean): void {
  t.test(`cluster hammer (seed ${seed}): stores converge on the inbox around a Redis restart ${persistent ? 'with its data' : 'empty'}`, { skip }, async (t) => {
    const redis = await startRedis(t, { persistent });
    const nodes = await startNodes(t, redis, 2, { historySize: 12 });
    const random = rng(seed);
    const devices: { c: StorywireClient; cut(): void }[] = [];
    for (let i = 0; i < 3; i++) {
      const node = nodes[i % 2]!;
      const net = tapped();
      const c = client(t, { url: node.url, token: await node.token('bob'), WebSocket: net.WebSocket, reconnect: { minDelayMs: 5, maxDelayMs: 100 }, maxNotifications: i === 2 ? 5 : 12 });
      devices.push({ c, cut: net.cut });
    }
    await Promise.all(devices.map((d) => d.c.whenOpen()));
    let sent = 0;
    const publish = (node: Node) => api(node, 'POST', '/v1/notifications', { userId: 'bob', notification: { title: `n${++sent}`, message: '' } }).catch(() => undefined);

    /** `steps` random actions, at most `publishes` of them notifications. */
    const hammer = async (steps: number, publishes = steps) => {
      const http: Promise<unknown>[] = [];
      for (let step = 0; step < steps; step++) {
        const d = devices[Math.floor(random() * devices.length)]!;
        const x = random();
        if (x < 0.35) {
          if (publishes-- > 0) http.push(publish(nodes[Math.floor(random() * 2)]!));
        }
        else if (x < 0.7) {
          const items = d.c.notifications.items;
          const n = items[Math.floor(random() * items.length)];
          if (n) d.c.markAsRead(n.id).catch(() => {});
        } else if (x < 0.75) d.c.markAllAsRead().catch(() => {});
        else if (x < 0.8) {
          if (d.c.isConnected) d.cut();
        } else if (x < 0.85) d.c.refreshNotifications().catch(() => {});
        if (step % 5 === 0) await new Promise((r) => setTimeout(r, 5));
      }
      await Promise.all(http);
    };

    await hammer(120);
    await redis.stop!();
    await until(() => nodes.every((n) => !n.backplane.up), 10_000, 'the nodes to see the outage');
    await hammer(60);
    await redis.start!();
    await until(() => nodes.every((n) => n.backplane.up), 20_000, 'the nodes to see Redis again');
    // Publish until one is accepted: the cluster refuses publishes for a while after Redis comes back, and the
    // first accepted one tells every connected device that the history was renewed.
    for (const end = Date.now() + WAIT_MS; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
      if ((await api(nodes[0]!, 'POST', '/v1/notifications', { userId: 'bob', notification: { title: 'back', message: '' } })).status === 200) break;
    }
    // Fewer new notifications than the stores hold: what an empty Redis lost must leave the stores by itself, not
    // be pushed out by newer ones.
    await hammer(120, 4);

    let last: string[][] = [];
    try {
      await until(() => devices.every((d) => d.c.isConnected), 10_000, 'all connected');
      const check = async () => {
        last = await Promise.all(devices.map((d) => inboxDifferences(d.c).catch((e: Error) => [`check failed: ${e.message}`])));
        return last.every((l) => l.length === 0);
      };
      for (const end = Date.now() + WAIT_MS; !(await check()) && Date.now() < end; await new Promise((r) => setTimeout(r, 100)));
    } finally {
      t.same(last, [[], [], []], `every store equals the inbox (${sent} publishes tried)`);
    }
    t.same(devices[0]!.c.notifications.items.map((n) => [n.id, n.read]), devices[1]!.c.notifications.items.map((n) => [n.id, n.read]), 'two devices (two nodes, same capacity) agree');
    t.equal(new Set(devices.map((d) => d.c.notifications.unreadCount)).size, 1, 'one badge on every device');
  });
}
