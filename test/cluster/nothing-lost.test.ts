// "Nothing lost" through Redis outages (issue 21): Redis restarted with its data after its leases expired,
// a node whose subscription dropped while events were stored, a resume made during an outage, and
// publishes retried with an Idempotency-Key.
import t from 'tap';
import { Redis } from 'ioredis';
import { Client, sign, type Frame } from '../helpers.js';
import { API_KEY, skipReason, startNodes, startRedis, until, type Node, type TestRedis, type TestRedisCluster, type TestSentinel } from './redis.js';

type Numbered = Frame & { epoch: string; offset: number };
const needsOwnRedis = skipReason || (process.env['REDIS_URL'] ? 'needs a redis-server it can stop (REDIS_URL is set)' : false);
const LEASE_MS = 1500;

async function post(node: Node, path: string, body: unknown, key?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${node.port}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const notify = (node: Node, userId: string, title: string, key?: string) => post(node, '/v1/notifications', { userId, notification: { title, message: 'm' } }, key);

/** The notifications a raw client was handed, by title, with their offsets. */
function received(c: Client): Map<string, number[]> {
  const seen = new Map<string, number[]>();
  c.ws.on('message', (raw) => {
    const f = JSON.parse(raw.toString()) as Numbered;
    if (f.type === 'notification:received') seen.set(f.data.title, [...(seen.get(f.data.title) ?? []), f.offset]);
  });
  return seen;
}

/** Kills this node's Redis subscriber connection (as a network blip would): it reconnects by itself. */
/** The ports of the servers that hold the node's subscriber connections: the primary, or every primary of a Redis Cluster. */
async function primaries(redis: TestRedis): Promise<number[]> {
  if (redis.backend === 'cluster') return (await (redis as TestRedisCluster).primaries()).map((p) => p.port);
  if (redis.backend === 'sentinel') return [await (redis as TestSentinel).primaryPort()];
  return [Number(new URL(redis.url).port)];
}

/** Closes the node's subscriber connections (with Redis Cluster, its sharded subscriber on every primary). */
async function cutSubscriber(redis: TestRedis, node: Node): Promise<void> {
  let cut = 0;
  for (const port of await primaries(redis)) {
    const raw = new Redis(port, '127.0.0.1');
    try {
      const list = (await raw.client('LIST')) as string;
      for (const line of list.split('\n')) {
        const id = new RegExp(`name=\\S*storywire-${node.backplane.nodeId}-sub `).test(line) ? /id=(\d+)/.exec(line)?.[1] : undefined;
        if (id === undefined) continue;
        await raw.client('KILL', 'ID', id);
        cut++;
      }
    } finally {
      raw.disconnect();
    }
  }
  if (cut === 0) throw new Error('subscriber connection not found');
}

t.test('Redis restarted with its data after every lease expired', { skip: needsOwnRedis }, async (t) => {
  const redis = await startRedis(t, { persistent: true });
  const [a, b] = await startNodes(t, redis, 2, { presenceGraceMs: 3000, nodeLeaseMs: LEASE_MS });
  const bob = await b!.connect('bob');
  const got = received(bob);
  const watcher = await a!.connect('watcher');
  await bob.type('connected');
  t.equal((await watcher.request('subscribe', { topic: 'presence:bob' })).type, 'ack');
  t.equal((await notify(a!, 'bob', 'before')).status, 200);
  await until(() => got.has('before'), 10000, 'bob to get the first one');

  await redis.stop!();
  await until(() => !a!.backplane.up && !b!.backplane.up, 10000, 'both nodes to see the outage');
  // The outage must outlast the leases (their keys expire while Redis is away): that is the case under test.
  await new Promise((r) => setTimeout(r, LEASE_MS * 2));
  await redis.start!();

  // From the first moment on, node A publishes: whatever it answers 200 must reach bob on B, once.
  const answered: string[] = [];
  let refused = 0;
  const deadline = Date.now() + 30_000;
  for (let i = 0; answered.length < 10; i++) {
    if (Date.now() > deadline) throw new Error('delivery did not resume within 30 s');
    if (i > 0) await new Promise((r) => setTimeout(r, 20));
    const r = await notify(a!, 'bob', `after-${i}`);
    if (r.status === 200) answered.push(`after-${i}`);
    else {
      refused++;
      t.equal(r.status, 503);
      t.type(r.body.stored, 'boolean', '503 says whether it was stored');
    }
  }
  await until(() => answered.every((title) => got.has(title)), 10000, 'bob to get every publish answered 200');
  t.ok(answered.every((title) => got.get(title)!.length === 1), `${answered.length} answered 200 (${refused} refused first): each reached bob once`);
  // Past the whole recovery window (a lease, at least 2.5 s) and a sweep: nobody judged B dead.
  await new Promise((r) => setTimeout(r, 3500));
  t.ok(!watcher.frames.some((f) => f.type === 'user:offline'), 'no user:offline for bob, who never left');
  t.equal((await watcher.request('presence:query', { userIds: ['bob'] })).data.online[0], 'bob');
  t.ok(await bob.none((f) => f.type === 'notification:received' && !got.has(f.data.title), 10), 'bob kept his connection');
  const offsets = [...got.values()].flat();
  t.same(offsets, [...offsets].sort((x, y) => x - y), 'in offset order');
  t.equal(new Set(offsets).size, offsets.length, 'no offset twice');
});

t.test('a node that could not hear a topic for a moment gets what was stored meanwhile, in order', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await startNodes(t, redis, 2, { nodeLeaseMs: LEASE_MS });
  const bob = await b!.connect('bob');
  const got = received(bob);
  await bob.type('connected');
  t.equal((await notify(a!, 'bob', 'first')).status, 200);
  await until(() => got.has('first'), 10000, 'bob to get the first one');
  await cutSubscriber(redis, b!);
  const answers: { status: number; body: any }[] = [];
  for (let i = 0; i < 5; i++) answers.push(await notify(a!, 'bob', `gap-${i}`));
  t.ok(answers.some((r) => r.status === 503), 'publishes while B cannot hear the topic are not reported delivered');
  for (const r of answers.filter((r) => r.status === 503)) t.equal(r.body.stored, true, '503 with stored: true (it is in the history)');
  await until(() => [0, 1, 2, 3, 4].every((i) => got.has(`gap-${i}`)), 10000, 'bob to get what B missed');
  t.equal((await notify(a!, 'bob', 'after')).status, 200);
  await until(() => got.has('after'), 10000, 'and what comes after');
  const order = [...got.entries()].map(([title, offs]) => [title, offs.length, offs[0]]);
  t.same(
    order.map((o) => o[0]),
    ['first', 'gap-0', 'gap-1', 'gap-2', 'gap-3', 'gap-4', 'after'],
    'in order, the missed ones first',
  );
  t.ok(order.every((o) => o[1] === 1), 'each once');
  t.equal(bob.ws.readyState, bob.ws.OPEN, 'without a reconnect');
});

t.test('a resume made while Redis is down is closed with 4001 once it is back, and resumes then', { skip: needsOwnRedis }, async (t) => {
  const redis = await startRedis(t, { persistent: true });
  const [a] = await startNodes(t, redis, 1, { nodeLeaseMs: LEASE_MS });
  const first = await a!.connect('carol');
  await first.type('connected');
  t.equal((await notify(a!, 'carol', 'seen')).status, 200);
  const seen = (await first.type('notification:received')) as Numbered;
  first.close();
  await first.closed;
  for (const title of ['missed-1', 'missed-2']) t.equal((await notify(a!, 'carol', title)).status, 200);

  await redis.stop!();
  await until(() => !a!.backplane.up, 10000, 'the node to see the outage');
  const during = await Client.open(`${a!.url}?token=${await sign('carol')}&since=${seen.epoch}:${seen.offset}`);
  t.same((await during.type('connected')).data.topics, {}, 'no position can be given while Redis is down');
  await redis.start!();
  t.match(await during.closed, { code: 4001 }, 'closed to resume once the node is registered again');

  const again = await Client.open(`${a!.url}?token=${await sign('carol')}&since=${seen.epoch}:${seen.offset}`);
  t.teardown(() => again.close());
  t.match((await again.type('connected')).data.topics['user:carol'], { epoch: seen.epoch, recovered: true, replayed: 2 });
  t.same([(await again.type('notification:received')).data.title, (await again.type('notification:received')).data.title], ['missed-1', 'missed-2']);
});

t.test('Idempotency-Key: a retry stores and delivers nothing new, on any node', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await startNodes(t, redis, 2, { nodeLeaseMs: LEASE_MS });
  const bob = await b!.connect('bob');
  const got = received(bob);
  const reader = await a!.connect('reader');
  await bob.type('connected');
  await reader.type('connected');
  t.equal((await reader.request('subscribe', { topic: 'stories' })).type, 'ack');

  const first = await notify(a!, 'bob', 'once', 'key-1');
  t.equal(first.status, 200);
  t.notOk(first.body.duplicate);
  const retryElsewhere = await notify(b!, 'bob', 'once', 'key-1');
  t.same([retryElsewhere.status, retryElsewhere.body.id, retryElsewhere.body.duplicate, retryElsewhere.body.delivered], [200, first.body.id, true, 0], 'the same id, marked duplicate, delivered to nobody');
  const conflict = await notify(a!, 'bob', 'another body', 'key-1');
  t.same([conflict.status, conflict.body.error.code], [422, 'IDEMPOTENCY_CONFLICT'], 'a key stands for one request');
  await until(() => got.has('once'), 10000, 'bob to get it');
  t.equal((await notify(a!, 'bob', 'marker')).status, 200);
  await until(() => got.has('marker'), 10000, 'a later one');
  t.same(got.get('once')!.length, 1, 'bob got it once');
  t.notOk(got.has('another body'), 'the conflicting request published nothing');

  // Stored while B could not hear the topic: 503 stored:true; the retry once B listens again is 200, and
  // bob still gets it once (B fills the gap from the history, the retry adds nothing).
  await cutSubscriber(redis, b!);
  const partial = await notify(a!, 'bob', 'retried', 'key-2');
  t.same([partial.status, partial.body.stored], [503, true]);
  await until(async () => (await notify(a!, 'bob', 'retried', 'key-2')).status === 200, 10000, 'the retry to be answered 200');
  await until(() => got.has('retried'), 10000, 'bob to get it');
  t.equal((await notify(a!, 'bob', 'marker-2')).status, 200);
  await until(() => got.has('marker-2'), 10000, 'a later one');
  t.same(got.get('retried')!.length, 1, 'once');

  // Live-only topics: a keyed retry reaches no node twice.
  const story = { topic: 'stories', type: 'story:liked', data: { id: 's1' } };
  t.equal((await post(a!, '/v1/publish', story, 'key-3')).status, 200);
  const again = await post(b!, '/v1/publish', story, 'key-3');
  t.equal(again.status, 200);
  await reader.next((f) => f.type === 'story:liked');
  t.ok(await reader.none((f) => f.type === 'story:liked', 500), 'the retry through another node is not delivered again');

  const bad = await notify(a!, 'bob', 'x', 'has space');
  t.same([bad.status, bad.body.error.code], [400, 'INVALID_PAYLOAD']);

  await redis.stop!();
  await until(() => !a!.backplane.up, 10000, 'the node to see the outage');
  const down = await notify(a!, 'bob', 'down', 'key-4');
  t.same([down.status, down.body.stored, down.body.delivered], [503, false, 0], 'not stored: a retry is needed, and safe');
});
