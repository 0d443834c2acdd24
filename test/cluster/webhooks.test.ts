// Webhooks and the push fallback across nodes on one Redis (issue #19): a presence transition is one event
// cluster-wide, a push is made once whichever node tracked, received or flushed it, and an event held by a
// node that is killed mid-attempt is sent by a survivor under the same webhook-id.
//
// "Nothing more" is proven by quiescence, not by time: the push store has no user left to flush (`pd` empty)
// and each destination's stream is empty (an entry leaves it only when its event was sent), so every event
// any node made before that point has reached the receiver.
import t, { type Test } from 'tap';
import type { Config } from '../../src/config.js';
import { CLUSTER_PARTITIONS, RedisKeys } from '../../src/seams/backplane/redis/keys.js';
import { streamKey } from '../../src/seams/webhooks/redis.js';
import { generateSecret } from '../../src/webhooks/signing.js';
import { Client, type Frame, sign } from '../helpers.js';
import { type Receiver, startReceiver } from '../webhook-receiver.js';
import { type Node, type RedisClient, type TestRedis, REDIS_BACKEND, redisClient, redisEnv, skipReason as redisMissing, startChildNode, startNodes, startRedis, until } from './redis.js';

const skipReason = redisMissing;

interface Cluster {
  redis: TestRedis;
  /** A client of the suite's Redis, for the quiescence checks. */
  r: RedisClient;
  secret: string;
  /** WEBHOOK_URL's receiver (presence events). */
  app: Receiver;
  /** PUSH_WEBHOOK_URL's receiver. */
  push: Receiver;
}

async function cluster(t: Test): Promise<Cluster> {
  const redis = await startRedis(t);
  const r = redisClient(redis, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  t.teardown(() => r.disconnect());
  const secret = generateSecret();
  return { redis, r, secret, app: await startReceiver(t, secret), push: await startReceiver(t, secret) };
}

function webhookConfig(c: Cluster, extra: Partial<Config> = {}): Partial<Config> {
  return {
    webhookUrl: c.app.url,
    webhookEvents: ['user.online', 'user.offline'],
    pushWebhookUrl: c.push.url,
    webhookSecret: [c.secret],
    pushDelayMs: 100,
    pushCoalesceMs: 0,
    webhookRetryBaseMs: 20,
    webhookConcurrency: 2,
    ...extra,
  };
}

/** Waits until no user has a push left to make and both destinations' streams are empty: all was sent. */
async function quiet(c: Cluster): Promise<void> {
  const p = c.redis.prefix;
  // On a Redis Cluster: pd and the outbox po in every partition, the streams wh:{<destination>} (keys.ts).
  const tagged = REDIS_BACKEND === 'cluster';
  const parts = tagged ? new RedisKeys(p, CLUSTER_PARTITIONS).parts.map((k) => k.prefix) : [p];
  const pending = async () => (await Promise.all(parts.map(async (k) => (await c.r.zcard(`${k}pd`)) + (await c.r.hlen(`${k}po`))))).reduce((a, b) => a + b, 0);
  const queued = async (d: string) => c.r.xlen(`${p}${streamKey(d, tagged)}`);
  await until(async () => (await pending()) === 0 && (await queued('push')) === 0 && (await queued('app')) === 0, 0, 'no push pending and every queued event sent');
}

const count = (rx: Receiver, type: string, userId: string) => rx.delivered(type).filter((d) => d.data.userId === userId).length;

t.test('presence webhooks: one user.online and one user.offline cluster-wide, however the devices move', { skip: skipReason }, async (t) => {
  const c = await cluster(t);
  const [a, b] = await startNodes(t, c.redis, 2, webhookConfig(c, { presenceGraceMs: 300 }));
  // Bob on both nodes, then gone from both: B's close is the last one.
  const bobA = await a!.connect('bob');
  await bobA.type('connected');
  const bobB = await b!.connect('bob');
  await bobB.type('connected');
  await c.app.wait((d) => d.type === 'user.online' && d.data.userId === 'bob', 'bob online');
  bobA.close();
  await bobA.closed;
  bobB.close();
  await bobB.closed;
  // Carol leaves A and comes back on B within the grace, then leaves B: two grace timers on two nodes, and
  // the store lets one of them end in offline.
  const carolA = await a!.connect('carol');
  await carolA.type('connected');
  await c.app.wait((d) => d.type === 'user.online' && d.data.userId === 'carol', 'carol online');
  carolA.close();
  await carolA.closed;
  const carolB = await b!.connect('carol');
  await carolB.type('connected');
  carolB.close();
  await carolB.closed;
  const offline = await c.app.wait((d) => d.type === 'user.offline' && d.data.userId === 'carol', 'carol offline');
  await c.app.wait((d) => d.type === 'user.offline' && d.data.userId === 'bob', 'bob offline');
  // A sentinel leaving after both of Carol's timers fired: her offline and any second one were queued first.
  const dave = await a!.connect('dave');
  await dave.type('connected');
  dave.close();
  await dave.closed;
  await c.app.wait((d) => d.type === 'user.offline' && d.data.userId === 'dave', 'dave offline');
  await quiet(c);
  for (const id of ['bob', 'dave']) {
    t.equal(count(c.app, 'user.online', id), 1, `${id}: one user.online`);
    t.equal(count(c.app, 'user.offline', id), 1, `${id}: one user.offline`);
  }
  // Carol's return beat the grace unless the machine stalled past it: then she went offline and online once
  // more. Either way her events alternate, starting online and ending offline: never one timer's offline twice.
  const carols = c.app.delivered().filter((d) => d.data.userId === 'carol').sort((x, y) => Date.parse(x.timestamp) - Date.parse(y.timestamp));
  const kinds = carols.map((d) => d.type);
  t.ok(kinds.length === 2 || kinds.length === 4, `carol: ${kinds.join(', ')}`);
  t.same(kinds, kinds.map((_, i) => (i % 2 === 0 ? 'user.online' : 'user.offline')), 'carol: online and offline alternate');
  t.ok(offline.data.lastSeen >= Date.parse(offline.timestamp) - 5000 && offline.data.lastSeen <= Date.parse(offline.timestamp), 'lastSeen: when the last connection closed, before the event was made');
  t.equal(new Set(c.app.requests.map((d) => d.id)).size, c.app.delivered().length, 'a webhook-id per event');
  t.same(c.app.bad, [], 'every request verified');
});

t.test('the push fallback across nodes: tracked on one, received on another, each push made once', { skip: skipReason }, async (t) => {
  const c = await cluster(t);
  const [a, b] = await startNodes(t, c.redis, 2, webhookConfig(c, { webhookEvents: [] }));
  // Ten users with a device on B that acknowledges; their notifications are sent from A.
  const online = Array.from({ length: 10 }, (_, i) => `on${i}`);
  const offline = Array.from({ length: 20 }, (_, i) => `off${i}`);
  const devices = new Map<string, Client>();
  for (const id of online) {
    const dev = await b!.connect(id);
    await dev.type('connected');
    devices.set(id, dev);
  }
  const notify = (n: Node, userId: string, title: string) => n.server.sendNotificationToUser(userId, { title, message: `for ${userId}`, type: 'info', data: undefined }).notification;
  const acked: string[] = [];
  await Promise.all(
    online.map(async (id) => {
      const sent = notify(a!, id, 'seen');
      const dev = devices.get(id)!;
      const f = (await dev.next((fr) => fr.type === 'notification:received' && fr.data.id === sent.id)) as Frame & { epoch: string; offset: number };
      t.equal((await dev.request('notifications:received', { epoch: f.epoch, offsets: [f.offset] })).type, 'ack');
      acked.push(sent.id);
    }),
  );
  // Twenty users with no device, their notifications sent from both nodes in turn; two each for the first five.
  const sentTo = new Map<string, string[]>();
  offline.forEach((id, i) => {
    const ids = [notify(i % 2 === 0 ? a! : b!, id, 'unseen').id];
    if (i < 5) ids.push(notify(i % 2 === 0 ? b! : a!, id, 'unseen again').id);
    sentTo.set(id, ids);
  });
  await until(() => new Set(c.push.delivered('notification.unread').map((d) => d.data.userId)).size >= offline.length, 0, 'a push for every offline user');
  await quiet(c);
  const pushes = c.push.delivered('notification.unread');
  t.equal(pushes.length, offline.length, 'one push per offline user, none for an acknowledged notification');
  t.same(pushes.filter((d) => d.data.userId.startsWith('on')), [], 'no push for the users whose device acknowledged');
  t.equal(new Set(pushes.map((d) => d.id)).size, pushes.length, 'no webhook-id twice');
  for (const id of offline) {
    const got = pushes.filter((d) => d.data.userId === id);
    const pushed = got.flatMap((d) => d.data.notifications.map((n: { notification: { id: string } }) => n.notification.id)).sort();
    // Coalescing may put both of a user's notifications in one push or leave them in two: never one twice.
    t.same(pushed, [...sentTo.get(id)!].sort(), `${id}: each notification pushed once`);
  }
  t.equal(acked.length, online.length);
  t.same(c.push.bad, [], 'every request verified');
});

t.test('kill -9 of the node holding an event mid-attempt: a survivor sends it, same webhook-id', { skip: skipReason }, async (t) => {
  const c = await cluster(t);
  const CLAIM_IDLE_MS = 1000;
  // The doomed node runs alone first, so that it is the one holding the event.
  const doomed = await startChildNode(t, {
    ...redisEnv(c.redis),
    REDIS_PREFIX: c.redis.prefix,
    NODE_ID: 'doomed',
    NODE_LEASE_MS: '1500',
    PRESENCE_GRACE_MS: '300',
    WEBHOOK_URL: c.app.url,
    WEBHOOK_EVENTS: 'user.online,user.offline,connection.opened,connection.closed',
    WEBHOOK_SECRET: c.secret,
    WEBHOOK_CLAIM_IDLE_MS: String(CLAIM_IDLE_MS),
    WEBHOOK_TIMEOUT_MS: '60000',
  });
  const port = doomed.port;

  // The receiver leaves the first attempt of Bob's user.online unanswered.
  let hung = false;
  c.app.answer = (d) => {
    if (!hung && d.type === 'user.online') {
      hung = true;
      return 'hang';
    }
    return 200;
  };
  const bob = await Client.open(`ws://127.0.0.1:${port}/ws?token=${await sign('bob')}`);
  t.teardown(() => bob.close());
  await bob.type('connected');
  await until(() => c.app.requests.some((d) => d.status === -1), 0, 'the doomed node to be in the middle of an attempt');
  const held = c.app.requests.find((d) => d.status === -1)!;
  t.match(held, { type: 'user.online', data: { userId: 'bob' } });

  // A survivor joins, then the holder dies with the event unacknowledged.
  const [survivor] = await startNodes(t, c.redis, 1, {
    ...webhookConfig(c, { webhookEvents: ['user.online', 'user.offline', 'connection.opened', 'connection.closed'] }),
    webhookClaimIdleMs: CLAIM_IDLE_MS,
    presenceGraceMs: 300,
    nodeLeaseMs: 1500,
  });
  const watcher = await survivor!.connect('watcher');
  t.equal((await watcher.request('subscribe', { topic: 'presence:bob' })).type, 'ack');
  const killedAt = Date.now();
  doomed.child.kill('SIGKILL');
  await doomed.exited;

  const resent = await c.app.wait((d) => d.id === held.id && d.status === 200, 'the held event, from the survivor');
  t.match(resent, { type: 'user.online', data: { userId: 'bob' } });
  // When depends on the dead node's last renewal (every WEBHOOK_CLAIM_IDLE_MS / 3): printed, not asserted.
  process.stdout.write(`# kill -9 -> the held event sent by the survivor: ${resent.at - killedAt} ms (WEBHOOK_CLAIM_IDLE_MS=${CLAIM_IDLE_MS})\n`);
  // Bob's connection died with its node: the survivor's sweep ends it in one user.offline.
  await c.app.wait((d) => d.type === 'user.offline' && d.data.userId === 'bob', 'bob offline after the crash');
  await watcher.next((f) => f.type === 'user:offline' && f.data.userId === 'bob');
  await quiet(c);
  t.equal(c.app.requests.filter((d) => d.id === held.id).length, 2, 'two attempts of the held event: the lost one and the survivor\'s');
  t.equal(count(c.app, 'user.online', 'bob'), 1, 'delivered once');
  t.equal(count(c.app, 'user.offline', 'bob'), 1, 'one user.offline for the dead node\'s user');
  // The dead node could not say its connection closed: the node that swept it does, once, in its name.
  const opened = c.app.delivered('connection.opened').filter((d) => d.data.userId === 'bob');
  const closed = c.app.delivered('connection.closed').filter((d) => d.data.userId === 'bob');
  t.equal(opened.length, 1, "bob's connection opened once");
  t.match(opened[0]?.data, { nodeId: 'doomed' });
  t.same(closed.map((d) => d.data), [{ userId: 'bob', connectionId: opened[0]?.data.connectionId, nodeId: 'doomed', code: 1006 }], 'its connection.closed, sent by the survivor: 1006, the dead node named');
  t.same(c.app.bad, [], 'every request verified');
});
