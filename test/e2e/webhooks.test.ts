// Webhooks and the push fallback end to end (issue #19): one node, a real HTTP receiver that verifies every
// signature. With WEBHOOK_CONCURRENCY=1 a destination's events arrive in the order they were queued, so
// "no push for X" is proven by waiting for a push queued after X's would have been.
import t, { type Test } from 'tap';
import { ConfigError, loadConfig } from '../../src/config.js';
import { generateSecret } from '../../src/webhooks/signing.js';
import { type Client, type Frame, type Harness, SECRET, startServer, until } from '../helpers.js';
import { type Delivery, type Receiver, startReceiver } from '../webhook-receiver.js';

const API_KEY = 'webhooks-e2e-api-key-0123456789';

interface Setup {
  h: Harness;
  secret: string;
  /** PUSH_WEBHOOK_URL's receiver. */
  push: Receiver;
  /** WEBHOOK_URL's receiver. */
  app: Receiver;
  metrics(): Promise<string>;
}

/** A node sending pushes to one receiver and the app's events (`events`) to another. */
async function setup(t: Test, env: Record<string, string> = {}, events = 'user.online,user.offline'): Promise<Setup> {
  const secret = generateSecret();
  const push = await startReceiver(t, secret);
  const app = await startReceiver(t, secret);
  const h = await startServer(t, { apiKey: API_KEY }, {
    PUSH_WEBHOOK_URL: push.url,
    WEBHOOK_URL: app.url,
    WEBHOOK_EVENTS: events,
    WEBHOOK_SECRET: secret,
    PUSH_DELAY_MS: '100',
    PUSH_COALESCE_MS: '0',
    WEBHOOK_RETRY_BASE_MS: '20',
    WEBHOOK_CONCURRENCY: '1',
    PRESENCE_GRACE_MS: '0',
    ...env,
  });
  const metrics = async () => (await fetch(`http://127.0.0.1:${h.port}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).text();
  return { h, secret, push, app, metrics };
}

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

const notify = (s: Setup, userId: string, title: string) => s.h.server.sendNotificationToUser(userId, { title, message: `for ${userId}`, type: 'info', data: undefined }).notification;
const pushesOf = (rx: Receiver, userId: string): Delivery[] => rx.delivered('notification.unread').filter((d) => d.data.userId === userId);
const pushFor = (rx: Receiver, userId: string) => rx.wait((d) => d.type === 'notification.unread' && d.data.userId === userId, `the push of ${userId}`);

/** The notification frame a client got, with its position in the personal topic. */
async function got(c: Client, id: string): Promise<Frame & { epoch: string; offset: number }> {
  return (await c.next((f) => f.type === 'notification:received' && f.data.id === id)) as Frame & { epoch: string; offset: number };
}

t.test('the push fallback: none for what a device received; online false/true for what none did', async (t) => {
  const s = await setup(t);
  const bob = await s.h.connect('bob');
  await bob.type('connected');
  const toBob = notify(s, 'bob', 'seen');
  const f = await got(bob, toBob.id);
  t.equal((await bob.request('notifications:received', { epoch: f.epoch, offsets: [f.offset] })).type, 'ack');
  // Carol has no device: her push is queued after Bob's would have been (it fell due earlier).
  const toCarol = notify(s, 'carol', 'unseen');
  const carol = await pushFor(s.push, 'carol');
  t.same(pushesOf(s.push, 'bob'), [], 'no push for the notification Bob\'s device received');
  t.match(carol.data, { userId: 'carol', count: 1, unreadCount: 1, online: false, notifications: [{ offset: 1, received: false, notification: { id: toCarol.id, title: 'unseen', message: 'for carol' } }] });
  t.type(carol.data.notifications[0].epoch, 'string');
  t.ok(Date.parse(carol.timestamp) >= toCarol.ts + 100, 'pushed no earlier than PUSH_DELAY_MS after it was sent');

  // Dave's device gets it but sends no receipt: pushed, and the push says a device is online.
  const dave = await s.h.connect('dave');
  await dave.type('connected');
  const toDave = notify(s, 'dave', 'ignored');
  await got(dave, toDave.id);
  const pushed = await pushFor(s.push, 'dave');
  t.match(pushed.data, { userId: 'dave', count: 1, online: true, notifications: [{ received: false, notification: { id: toDave.id } }] });
  t.equal(s.push.requests.length, 2, 'two pushes in all, each sent once');
});

t.test('coalescing: a burst of 5 is one push of count 5, newest first', async (t) => {
  const s = await setup(t, { PUSH_COALESCE_MS: '300' });
  const sent = [1, 2, 3, 4, 5].map((i) => notify(s, 'erin', `n${i}`));
  const p = await pushFor(s.push, 'erin');
  t.equal(p.data.count, 5);
  t.same(p.data.notifications.map((n: any) => n.notification.id), sent.map((n) => n.id).reverse(), 'newest first');
  t.same(p.data.notifications.map((n: any) => n.offset), [5, 4, 3, 2, 1]);
  t.equal(p.data.unreadCount, 5);
  // Anything more of Erin's would be queued before this later push.
  notify(s, 'sentinel', 'after');
  await pushFor(s.push, 'sentinel');
  t.equal(pushesOf(s.push, 'erin').length, 1, 'one push for the burst');
});

t.test('read before PUSH_DELAY_MS ({id} and {all: true}): no push', async (t) => {
  const DELAY = 1000;
  const s = await setup(t, { PUSH_DELAY_MS: String(DELAY) });
  const frank = await s.h.connect('frank');
  const gina = await s.h.connect('gina');
  await Promise.all([frank.type('connected'), gina.type('connected')]);
  const one = notify(s, 'frank', 'read by id');
  await got(frank, one.id);
  const a = await frank.request('notifications:read', { id: one.id });
  t.same(a.data, { unreadCount: 0 });
  const two = [notify(s, 'gina', 'g1'), notify(s, 'gina', 'g2')];
  for (const n of two) await got(gina, n.id);
  const b = await gina.request('notifications:read', { all: true });
  t.same(b.data, { unreadCount: 0 });
  // The precondition of this test: both reads were made before the notifications fell due.
  t.ok(Date.now() < one.ts + DELAY, 'the reads happened before PUSH_DELAY_MS');
  notify(s, 'sentinel', 'after');
  await pushFor(s.push, 'sentinel');
  t.same(pushesOf(s.push, 'frank'), [], 'read by id: no push');
  t.same(pushesOf(s.push, 'gina'), [], 'read all: no push');
});

t.test('PUSH_UNREAD_DELAY_MS: received but not read is pushed (received: true); received then read is not', async (t) => {
  const UNREAD = 600;
  const s = await setup(t, { PUSH_UNREAD_DELAY_MS: String(UNREAD) });
  const ivan = await s.h.connect('ivan');
  const helen = await s.h.connect('helen');
  await Promise.all([ivan.type('connected'), helen.type('connected')]);
  const toIvan = notify(s, 'ivan', 'read soon');
  const fi = await got(ivan, toIvan.id);
  await ivan.request('notifications:received', { epoch: fi.epoch, offsets: [fi.offset] });
  await ivan.request('notifications:read', { id: toIvan.id });
  const toHelen = notify(s, 'helen', 'never read');
  const fh = await got(helen, toHelen.id);
  const receiptAt = Date.now();
  await helen.request('notifications:received', { epoch: fh.epoch, offsets: [fh.offset] });
  // Helen's reminder falls due after Ivan's would have: its arrival proves Ivan's never came.
  const p = await pushFor(s.push, 'helen');
  t.match(p.data, { userId: 'helen', count: 1, online: true, notifications: [{ received: true, notification: { id: toHelen.id } }] });
  t.ok(p.at >= receiptAt + UNREAD, 'no earlier than PUSH_UNREAD_DELAY_MS after the receipt');
  t.same(pushesOf(s.push, 'ivan'), [], 'received then read: no push');
});

t.test('retries: 503 then 200 (same webhook-id, one sent), 400 not retried, a receiver down for a while loses nothing', async (t) => {
  const s = await setup(t, {}, 'connection.opened');
  const opened = (c: { connectionId: string }) => s.app.wait((d) => d.type === 'connection.opened' && d.data.connectionId === c.connectionId, 'connection.opened');
  const attemptsOf = (id: string) => s.app.requests.filter((d) => d.id === id).map((d) => d.status);

  s.app.answer = (d) => (s.app.requests.some((r) => r.id === d.id) ? 200 : 503);
  const first = (await (await s.h.connect('u1')).type('connected')).data;
  const d1 = await opened(first);
  t.same(attemptsOf(d1.id), [503, 200], 'retried after 503 with the same webhook-id');

  s.app.answer = (d) => (d.data.userId === 'u2' ? 400 : 200);
  const second = (await (await s.h.connect('u2')).type('connected')).data;
  const rejectedId = await until(() => s.app.requests.some((d) => d.status === 400), 'the 400').then(() => s.app.requests.find((d) => d.status === 400)!.id);
  const third = (await (await s.h.connect('u3')).type('connected')).data;
  await opened(third);
  // One at a time: a retry of the 400 would have come before the next event.
  t.same(attemptsOf(rejectedId), [400], '400: one attempt, not retried');
  t.equal(s.app.requests.find((d) => d.id === rejectedId)!.data.connectionId, second.connectionId);

  let m = await s.metrics();
  t.equal(metric(m, 'storywire_webhook_sends_total', 'destination="app",outcome="sent"'), 2, 'two events sent');
  t.equal(metric(m, 'storywire_webhook_sends_total', 'destination="app",outcome="retried"'), 1);
  t.equal(metric(m, 'storywire_webhook_sends_total', 'destination="app",outcome="rejected"'), 1);

  // Down: the port is closed while three events are queued; they wait in the queue, retried.
  await s.app.close();
  const down = [];
  for (const u of ['d1', 'd2', 'd3']) down.push((await (await s.h.connect(u)).type('connected')).data);
  await until(async () => metric(await s.metrics(), 'storywire_webhook_attempts_total', 'destination="app",result="network"') >= 3, 'failed attempts while down');
  m = await s.metrics();
  t.equal(metric(m, 'storywire_webhook_queue_depth', 'destination="app"'), 3, 'the three wait in the queue');
  await s.app.listen();
  for (const c of down) await opened(c);
  const ids = down.map((c) => s.app.delivered().find((d) => d.data.connectionId === c.connectionId)!.id);
  t.equal(new Set(ids).size, 3, 'three events, each its own webhook-id');
  for (const c of down) t.equal(s.app.delivered().filter((d) => d.data.connectionId === c.connectionId).length, 1, 'delivered once');
  await until(async () => metric(await s.metrics(), 'storywire_webhook_queue_depth', 'destination="app"') === 0, 'an empty queue');
  t.equal(metric(await s.metrics(), 'storywire_webhook_sends_total', 'destination="app",outcome="sent"'), 5);
});

t.test('presence, connection and channel events: once per transition, with their fields', async (t) => {
  const s = await setup(t, {}, 'user.online,user.offline,connection.opened,connection.closed,channel.subscribed,channel.unsubscribed');
  const of = (type: string) => s.app.delivered(type).filter((d) => d.data.userId === 'jane');
  const nodeId = s.h.server.nodeId;
  const c1 = await s.h.connect('jane');
  const c2 = await s.h.connect('jane');
  const [i1, i2] = [(await c1.type('connected')).data, (await c2.type('connected')).data];
  t.equal((await c1.request('subscribe', { topic: 'presence:kim' })).type, 'ack');
  t.equal((await c1.request('unsubscribe', { topic: 'presence:kim' })).type, 'ack');
  c1.close();
  await s.app.wait((d) => d.type === 'connection.closed' && d.data.connectionId === i1.connectionId, 'c1 closed');
  const beforeLast = Date.now();
  c2.close();
  const off = await s.app.wait((d) => d.type === 'user.offline' && d.data.userId === 'jane', 'jane offline');
  t.ok(off.data.lastSeen >= beforeLast - 1000 && off.data.lastSeen <= Date.now(), 'lastSeen: when the last connection closed');
  t.same(Object.keys(off.data).sort(), ['lastSeen', 'userId']);
  t.equal(off.timestamp, new Date(off.data.lastSeen).toISOString());

  t.equal(of('user.online').length, 1, 'online once for two connections');
  t.same(of('user.online')[0]!.data, { userId: 'jane' });
  t.same(of('connection.opened').map((d) => d.data), [i1, i2].map((i) => ({ userId: 'jane', connectionId: i.connectionId, nodeId })));
  t.same(of('channel.subscribed').map((d) => d.data), [{ userId: 'jane', connectionId: i1.connectionId, channel: 'presence:kim' }]);
  t.same(of('channel.unsubscribed').map((d) => d.data), [{ userId: 'jane', connectionId: i1.connectionId, channel: 'presence:kim' }]);
  const closed = of('connection.closed').map((d) => d.data);
  t.same(closed.map((d) => d.connectionId), [i1.connectionId, i2.connectionId]);
  for (const d of closed) t.match(d, { userId: 'jane', nodeId, code: Number });

  // Back and gone again: a second transition each way.
  const c3 = await s.h.connect('jane');
  await c3.type('connected');
  c3.close();
  await until(() => of('user.offline').length === 2, 'the second user.offline');
  t.equal(of('user.online').length, 2);
  t.same(s.app.requests.map((d) => d.type).filter((x) => x.startsWith('user.')), ['user.online', 'user.offline', 'user.online', 'user.offline'], 'in order');
  t.equal(new Set(s.app.requests.map((d) => d.id)).size, s.app.requests.length, 'each event sent once');
  const m = await s.metrics();
  t.equal(metric(m, 'storywire_webhook_sends_total', 'destination="app",outcome="sent"'), s.app.requests.length);
  t.match(m, /# TYPE storywire_webhook_queue_depth gauge/);
  t.equal(metric(m, 'storywire_webhook_queue_depth', 'destination="app"'), 0);
});

t.test('WEBHOOK_EVENTS filters: only the listed types reach WEBHOOK_URL', async (t) => {
  const s = await setup(t, {}, 'user.offline');
  const c = await s.h.connect('lena');
  t.equal((await c.request('subscribe', { topic: 'presence:kim' })).type, 'ack');
  c.close();
  await s.app.wait((d) => d.type === 'user.offline' && d.data.userId === 'lena', 'lena offline');
  t.same(s.app.requests.map((d) => d.type), ['user.offline'], 'nothing else was sent');
  t.same(s.push.requests, [], 'nothing to the push receiver either');
});

t.test('config: WEBHOOK_URL without a secret, plain http to another host, a bad secret: refused outside dev mode', async (t) => {
  const base = { JWT_SECRET: SECRET, HOST: '127.0.0.1' };
  const refused = (env: Record<string, string>): readonly string[] => {
    try {
      loadConfig({ ...base, ...env });
    } catch (err) {
      t.ok(err instanceof ConfigError, 'a ConfigError');
      return (err as ConfigError).problems;
    }
    return [];
  };
  t.match(refused({ WEBHOOK_URL: 'https://hooks.example.com/x' }), [/WEBHOOK_SECRET/], 'no secret');
  t.match(refused({ PUSH_WEBHOOK_URL: 'https://hooks.example.com/x' }), [/WEBHOOK_SECRET/], 'no secret for pushes either');
  t.match(refused({ WEBHOOK_URL: 'http://hooks.example.com/x', WEBHOOK_SECRET: generateSecret() }), [/WEBHOOK_URL must be https/]);
  t.match(refused({ PUSH_WEBHOOK_URL: 'http://10.0.0.1/x', WEBHOOK_SECRET: generateSecret() }), [/PUSH_WEBHOOK_URL must be https/]);
  t.match(refused({ WEBHOOK_URL: 'https://hooks.example.com/x', WEBHOOK_SECRET: 'whsec_dG9vIHNob3J0' }), [/WEBHOOK_SECRET must be/], 'a key under 24 bytes');
  t.match(refused({ WEBHOOK_URL: 'https://hooks.example.com/x', WEBHOOK_SECRET: 'not-a-secret!' }), [/WEBHOOK_SECRET must be/]);
  t.match(refused({ WEBHOOK_URL: 'https://hooks.example.com/x', WEBHOOK_SECRET: generateSecret(), WEBHOOK_EVENTS: 'user.online,nope' }), [/WEBHOOK_EVENTS/]);
  t.match(refused({ PUSH_WEBHOOK_URL: 'https://hooks.example.com/x', WEBHOOK_SECRET: generateSecret(), PUSH_DELAY_MS: '-1' }), [/PUSH_DELAY_MS/]);
  // What is accepted: https anywhere, http on loopback, with a secret; dev mode without one.
  t.same(refused({ WEBHOOK_URL: 'https://hooks.example.com/x', WEBHOOK_SECRET: generateSecret() }), []);
  t.same(refused({ WEBHOOK_URL: 'http://127.0.0.1:9/x', WEBHOOK_SECRET: `${generateSecret()},${generateSecret()}` }), []);
  t.same(refused({ WEBHOOK_URL: 'http://hooks.example.com/x', STORYWIRE_DEV: '1' }), []);
});
