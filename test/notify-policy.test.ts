// NOTIFY_POLICY, NOTIFY_TYPES, origin and the user-sent share of the inbox: who may notify whom is the app's call.
import t from 'tap';
import pino from 'pino';
import { ConfigError, loadConfig } from '../src/config.js';
import { createServer } from '../src/edge/server.js';
import { appBackend } from './app-backend.js';
import { SECRET, startServer } from './helpers.js';

const PROD = { STORYWIRE_DEV: '0' };
const note = (userId: string, type = 'message') => ({ userId, notification: { title: 'salut', message: 'm', type } });

t.test('defaults: backend unless dev mode, any in dev mode', async (t) => {
  t.equal(loadConfig({ JWT_SECRET: SECRET }).notifyPolicy, 'backend');
  t.equal(loadConfig({ NODE_ENV: 'development', JWT_SECRET: SECRET }).notifyPolicy, 'backend', 'NODE_ENV plays no part');
  t.equal(loadConfig({ STORYWIRE_DEV: '1' }).notifyPolicy, 'any');
  t.equal(loadConfig({ STORYWIRE_DEV: '1', NOTIFY_POLICY: 'backend' }).notifyPolicy, 'backend');
  t.throws(() => loadConfig({ STORYWIRE_DEV: '1', NOTIFY_POLICY: 'everyone' }), /NOTIFY_POLICY must be one of backend, proxy, any/);
  t.throws(() => loadConfig({ STORYWIRE_DEV: '1', NOTIFY_POLICY: 'proxy' }), /NOTIFY_POLICY=proxy needs NOTIFY_PROXY/);
});

t.test('production default: a client cannot notify anyone; the backend still can, origin "system"', async (t) => {
  const h = await startServer(t, {}, PROD);
  const mallory = await h.connect('mallory');
  const bob = await h.connect('bob');
  const refused = await mallory.request('send:notification', note('bob'));
  t.match(refused, { type: 'error', error: { code: 'FORBIDDEN', message: /NOTIFY_POLICY=backend/ } });
  t.ok(await bob.none((f) => f.type === 'notification:received'), 'nothing reaches bob');
  await h.server.sendNotificationToUser('bob', { title: 'Nouveau follower', message: '', type: 'follower', data: undefined }).delivered;
  const n = await bob.type('notification:received');
  t.match(n.data, { title: 'Nouveau follower', from: null, origin: 'system' });
});

t.test('any: a client notification says origin "user", and its ack does not tell the device count', async (t) => {
  const h = await startServer(t, {}, { NOTIFY_POLICY: 'any' });
  const alice = await h.connect('alice');
  const bob = await h.connect('bob');
  await h.connect('bob');
  const ack = await alice.request('send:notification', note('bob'));
  t.same(Object.keys(ack.data), ['id']);
  t.match((await bob.type('notification:received')).data, { id: ack.data.id, from: 'alice', origin: 'user' });
});

t.test('NOTIFY_TYPES: a client-chosen type outside the list is refused; no type is info', async (t) => {
  const h = await startServer(t, {}, { NOTIFY_POLICY: 'any', NOTIFY_TYPES: 'like,follower' });
  const alice = await h.connect('alice');
  t.match(await alice.request('send:notification', note('bob', 'security-alert')), { type: 'error', error: { code: 'INVALID_PAYLOAD', message: /"security-alert" is not allowed \(allowed: like, follower, info\)/ } });
  t.match(await alice.request('send:notification', note('bob', 'like')), { type: 'ack' });
  t.match(await alice.request('send:notification', { userId: 'bob', notification: { title: 't', message: '' } }), { type: 'ack' });
  t.same(loadConfig({ JWT_SECRET: SECRET }).notifyTypes, ['follower', 'like', 'comment', 'message'], "the default: the seed's types");
});

t.test('proxy: the backend approves each sender -> recipient pair, asked once per pair', async (t) => {
  const app = await appBackend(t, (b) => (b['user'] === 'alice' ? { allow: true } : { allow: false, reason: 'bob blocked you' }));
  const h = await startServer(t, {}, { ...PROD, NOTIFY_POLICY: 'proxy', NOTIFY_PROXY: 'app', CHANNELS_FILE: app.channelsFile });
  const alice = await h.connect('alice');
  const mallory = await h.connect('mallory');
  const bob = await h.connect('bob');
  t.match(await alice.request('send:notification', note('bob')), { type: 'ack' });
  t.match(await alice.request('send:notification', note('bob')), { type: 'ack' });
  t.equal((await bob.type('notification:received')).data.origin, 'user');
  t.match(await mallory.request('send:notification', note('bob')), { type: 'error', error: { code: 'FORBIDDEN', message: /not allowed to notify bob/ } });
  t.equal(app.asked.length, 2, 'alice -> bob decided once, then from the cache');
  t.match(app.asked[0], { kind: 'notify', user: 'alice', recipient: 'bob', connection: { id: String, ip: '127.0.0.1' } });
  t.match(app.asked[1], { kind: 'notify', user: 'mallory', recipient: 'bob' });
});

t.test('proxy: NOTIFY_PROXY naming no proxy of CHANNELS_FILE stops the start', async (t) => {
  const app = await appBackend(t, () => ({ allow: true }));
  const log = pino({ level: 'silent' });
  const config = loadConfig({ JWT_SECRET: SECRET, PORT: '0', NOTIFY_POLICY: 'proxy', NOTIFY_PROXY: 'nope', CHANNELS_FILE: app.channelsFile });
  t.throws(() => createServer(config, { logger: log }), new ConfigError(['NOTIFY_PROXY "nope" is not a proxy of CHANNELS_FILE (NOTIFY_POLICY=proxy; proxies: app)']));
  const noFile = loadConfig({ JWT_SECRET: SECRET, PORT: '0', NOTIFY_POLICY: 'proxy', NOTIFY_PROXY: 'app' });
  t.throws(() => createServer(noFile, { logger: log }), /NOTIFY_PROXY "app" is not a proxy of CHANNELS_FILE \(NOTIFY_POLICY=proxy; CHANNELS_FILE is not set\)/);
});

t.test('a user-sent notification begins no history for a recipient who is nobody yet, and does for one online', async (t) => {
  const h = await startServer(t, {}, { NOTIFY_POLICY: 'any' });
  const alice = await h.connect('alice');
  // "ghost" has never connected and the backend never wrote to them: a made-up id, nothing may be kept.
  t.match(await alice.request('send:notification', note('ghost')), { type: 'ack' });
  const ghost = await h.connect('ghost');
  const none = await ghost.request('notifications:list');
  t.same(none.data.notifications, [], 'nothing stored for a made-up recipient');
  // bob is online (a verified token): he is real, the notification begins his history and stays in his inbox.
  const bob = await h.connect('bob');
  await bob.type('connected');
  t.match(await alice.request('send:notification', note('bob')), { type: 'ack' });
  const live = await bob.type('notification:received');
  t.equal(live.data.origin, 'user');
  t.equal(typeof (live as { offset?: unknown }).offset, 'number', 'stored: it carries a position');
  const list = await bob.request('notifications:list');
  t.equal(list.data.notifications.length, 1, "in the online recipient's inbox");
});

t.test('inbox flush: 50 junk notifications from 5 users never push a system one out', async (t) => {
  const h = await startServer(t, {}, { NOTIFY_POLICY: 'any', HISTORY_SIZE: '10', NOTIFY_USER_SHARE: '50', NOTIFY_BURST: '10' });
  const bob = await h.connect('bob');
  const { notification } = h.server.sendNotificationToUser('bob', { title: 'Votre paiement', message: '', type: 'billing', data: undefined });
  await bob.type('notification:received');
  const spammers = await Promise.all(['s1', 's2', 's3', 's4', 's5'].map((s) => h.connect(s)));
  for (const s of spammers) for (let i = 0; i < 10; i++) t.equal((await s.request('send:notification', note('bob'))).type, 'ack');
  const list = await bob.request('notifications:list');
  const items = list.data.notifications as { id: string; origin: string }[];
  t.ok(items.some((n) => n.id === notification.id), 'the system notification is still in the inbox');
  t.equal(items.filter((n) => n.origin === 'user').length, 5, 'user-sent ones hold at most NOTIFY_USER_SHARE of HISTORY_SIZE');
  t.equal(list.data.unreadCount, 6);
  // A resume across the dropped junk is never a silent gap: recovered false, so the client refetches the inbox.
  const again = await h.connect('bob');
  const r = await again.request('subscribe', { topic: 'user:bob', since: { epoch: list.data.epoch, offset: 0 } });
  t.match(r, { type: 'ack', data: { recovered: false } });
});
