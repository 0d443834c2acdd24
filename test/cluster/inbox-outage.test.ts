// The SDK's notification store through a Redis outage in cluster mode: the inbox answers UNAVAILABLE, the SDK
// retries its refill and its reads until the server can answer, and two devices of one user on two nodes end
// with the server's inbox (issue 21 items 7-9), whether Redis comes back empty or with its data.
import t, { type Test as Tap } from 'tap';
import WebSocket from 'ws';
import { inboxDifferences, type StorywireClient, type WebSocketConstructor } from '../../src/client/index.js';
import { client, next } from '../client/util.js';
import { api, skipReason, startNodes, startRedis, until, type Node, type TestRedis } from './redis.js';
import { WAIT_MS } from '../wait.js';

const needsOwnRedis = skipReason || (process.env['REDIS_URL'] ? 'needs a redis-server it can stop (REDIS_URL is set)' : false);

/** The `ws` class, recording the type of every frame the SDK sends and letting the test cut the last socket. */
function recorded(): { WebSocket: WebSocketConstructor; sent: string[]; cut(): void } {
  const sent: string[] = [];
  const sockets: WebSocket[] = [];
  class Recorded extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
    override send(data: unknown, ...rest: unknown[]): void {
      sent.push((JSON.parse(String(data)) as { type: string }).type);
      (super.send as (...a: unknown[]) => void)(data, ...rest);
    }
  }
  return { WebSocket: Recorded as unknown as WebSocketConstructor, sent, cut: () => sockets[sockets.length - 1]?.terminate() };
}

const count = (sent: string[], type: string) => sent.filter((s) => s === type).length;

/** Two devices of bob, one per node; both stores filled from the inbox. */
async function devices(t: Tap, a: Node, b: Node) {
  const net = recorded();
  const fast = { minDelayMs: 20, maxDelayMs: 200 };
  const phone = client(t, { url: a.url, token: await a.token('bob'), WebSocket: net.WebSocket, reconnect: fast });
  const laptop = client(t, { url: b.url, token: await b.token('bob'), reconnect: fast });
  await Promise.all([phone.whenOpen(), laptop.whenOpen()]);
  return { phone, laptop, net };
}

async function notify(node: Node, title: string): Promise<number> {
  return (await api(node, 'POST', '/v1/notifications', { userId: 'bob', notification: { title, message: 'm' } })).status;
}

/** Publishes until one is answered 200 (the cluster refuses publishes for a while after Redis comes back). */
async function notifyOnce(node: Node, title: string): Promise<void> {
  for (const end = Date.now() + WAIT_MS; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    if ((await notify(node, title)) === 200) return;
  }
  throw new Error(`${title}: no 200 within ${WAIT_MS} ms`);
}

/** Both devices settle on the server's inbox (polled: reads and refills are retried on their own schedule). */
async function settled(t: Tap, phone: StorywireClient, laptop: StorywireClient, what: string): Promise<void> {
  let last: string[] = [];
  try {
    await until(async () => {
      last = [...(await inboxDifferences(phone)).map((d) => `phone: ${d}`), ...(await inboxDifferences(laptop)).map((d) => `laptop: ${d}`)];
      return last.length === 0;
    }, 20_000, what);
  } catch (err) {
    t.same(last, [], `${what}: still differing`);
    throw err;
  }
  t.same(last, [], `${what}: both stores equal the server inbox`);
  t.same(phone.notifications.items.map((n) => [n.id, n.read]), laptop.notifications.items.map((n) => [n.id, n.read]), `${what}: the two devices agree`);
  t.equal(phone.notifications.unreadCount, laptop.notifications.unreadCount, `${what}: same badge`);
}

async function outage(redis: TestRedis, nodes: Node[]): Promise<void> {
  await redis.stop!();
  await until(() => nodes.every((n) => !n.backplane.up), 10_000, 'the nodes to see the outage');
}

async function back(redis: TestRedis, nodes: Node[]): Promise<void> {
  await redis.start!();
  await until(() => nodes.every((n) => n.backplane.up), 20_000, 'the nodes to see Redis again');
}

t.test('Redis restarted empty: refill retried until the server answers, then the stores hold only the new inbox', { skip: needsOwnRedis }, async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await startNodes(t, redis, 2);
  const { phone, laptop, net } = await devices(t, a!, b!);
  for (let i = 1; i <= 5; i++) t.equal(await notify(a!, `old${i}`), 200);
  await until(() => phone.notifications.items.length === 5 && laptop.notifications.items.length === 5, 10_000, 'both got them');
  await phone.markAsRead(phone.notifications.items[4]!.id);
  await settled(t, phone, laptop, 'before the outage');

  await outage(redis, [a!, b!]);
  t.match(await phone.refreshNotifications().catch((e: Error) => e), { code: 'UNAVAILABLE' }, 'the inbox answers UNAVAILABLE during the outage');
  const read = phone.notifications.items[0]!.id;
  t.equal(await phone.markAsRead(read), 3, 'a read refused with UNAVAILABLE resolves with the local count');
  t.equal(phone.inboxState.unacknowledgedReads, 1, 'and is kept');

  // The phone reconnects during the outage: its refill is refused and retried while connected.
  const lists = count(net.sent, 'notifications:list');
  net.cut();
  await next(phone, 'open', () => true, 10_000);
  await until(() => count(net.sent, 'notifications:list') >= lists + 2, 10_000, 'the refill retried during the outage');
  t.ok(phone.inboxState.refilling, 'still refilling');
  t.equal(phone.notifications.items.length, 5, 'meanwhile the store shows what it had');

  await back(redis, [a!, b!]);
  // The phone's retried refill finds the new, empty inbox; its kept read is answered NOT_FOUND (the server
  // no longer holds it) and dropped. The laptop, connected all along, learns of the new history from the
  // first live event of the new epoch.
  await until(() => phone.notifications.items.length === 0 && !phone.inboxState.refilling, 20_000, 'the phone refilled by itself once Redis is back');
  t.equal(phone.notifications.unreadCount, 0, 'no badge for notifications the server no longer holds');
  await notifyOnce(b!, 'new1');
  await notifyOnce(a!, 'new2');
  await notifyOnce(b!, 'new3');
  await until(() => laptop.notifications.items.every((n) => n.title.startsWith('new')) && laptop.notifications.items.length === 3, 20_000, 'the laptop dropped the old epoch');
  await until(() => phone.notifications.items.length === 3, 20_000, 'the phone got the new ones');
  await laptop.markAsRead(laptop.notifications.items.find((n) => n.title === 'new2')!.id);
  await settled(t, phone, laptop, 'after Redis came back empty');
  t.same(phone.notifications.items.map((n) => `${n.title}${n.read ? '+' : ''}`), ['new3', 'new2+', 'new1']);
  t.equal(phone.notifications.unreadCount, 2);
});

t.test('Redis restarted with its data: a read refused with UNAVAILABLE is retried and reaches the server and the other device', { skip: needsOwnRedis }, async (t) => {
  const redis = await startRedis(t, { persistent: true });
  const [a, b] = await startNodes(t, redis, 2);
  const { phone, laptop, net } = await devices(t, a!, b!);
  for (let i = 1; i <= 3; i++) t.equal(await notify(a!, `n${i}`), 200);
  await until(() => phone.notifications.items.length === 3 && laptop.notifications.items.length === 3, 10_000, 'both got them');
  await settled(t, phone, laptop, 'before the outage');

  await outage(redis, [a!, b!]);
  const target = phone.notifications.items.find((n) => n.title === 'n2')!.id;
  const reads = count(net.sent, 'notifications:read');
  t.equal(await phone.markAsRead(target), 2, 'refused with UNAVAILABLE: the local count');
  await until(() => count(net.sent, 'notifications:read') >= reads + 2, 10_000, 'the read retried while connected');
  t.equal(phone.inboxState.unacknowledgedReads, 1, 'kept while the server cannot take it');
  t.equal(laptop.notifications.items.find((n) => n.id === target)!.read, false, 'the other device does not know yet');

  await back(redis, [a!, b!]);
  await until(() => phone.inboxState.unacknowledgedReads === 0, 20_000, 'the read acknowledged once Redis is back');
  await until(() => laptop.notifications.items.find((n) => n.id === target)!.read, 20_000, 'the other device was told');
  await settled(t, phone, laptop, 'after Redis came back with its data');
  t.same(phone.notifications.items.map((n) => `${n.title}${n.read ? '+' : ''}`), ['n3', 'n2+', 'n1']);
  t.equal(phone.notifications.unreadCount, 2);
});
