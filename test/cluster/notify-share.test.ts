// NOTIFY_USER_SHARE in cluster mode (issue #15, item 4): user-sent notifications flooding a recipient through
// two nodes and Redis never push the backend's out of the recipient's inbox or resume window.
import t from 'tap';
import type { Frame } from '../helpers.js';
import { api, skipReason, startNodes, startRedis } from './redis.js';

/** A stored notification carries its position. */
type Numbered = Frame & { epoch: string; offset: number };

const note = (userId: string, i: number) => ({ userId, notification: { title: `junk ${i}`, message: 'm', type: 'message' } });

t.test('5 users flood a recipient across 2 nodes: the system notification stays listed and resumable', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await startNodes(t, redis, 2, { notifyPolicy: 'any', historySize: 10, notifyUserShare: 50, notifyBurst: 10 });
  const bob = await b!.connect('bob');
  await bob.type('connected');
  // The backend's notification (sent through node A) opens bob's history: user-sent ones may be stored after it.
  const sent = await api(a!, 'POST', '/v1/notifications', { userId: 'bob', notification: { title: 'Votre paiement', message: '', type: 'billing' } });
  t.equal(sent.status, 200);
  const billing = (await bob.next((f) => f.type === 'notification:received' && f.data.title === 'Votre paiement')) as Numbered;
  t.match(billing, { data: { origin: 'system' }, offset: 1 });
  const names = ['s1', 's2', 's3', 's4', 's5'];
  const spammers = await Promise.all(names.map((s, i) => (i < 3 ? a! : b!).connect(s)));
  for (const [k, s] of spammers.entries()) for (let i = 0; i < 10; i++) t.equal((await s.request('send:notification', note('bob', i))).type, 'ack', `${names[k]} #${i} accepted`);
  // The backend's next notification, after the flood, through node B.
  await api(b!, 'POST', '/v1/notifications', { userId: 'bob', notification: { title: 'Nouveau chapitre', message: '', type: 'chapter' } });
  const chapter = (await bob.next((f) => f.type === 'notification:received' && f.data.title === 'Nouveau chapitre')) as Numbered;
  t.equal(chapter.offset, 52, 'every notification was numbered in the one history');

  for (const node of [a!, b!]) {
    const reader = await node.connect('bob');
    const list = await reader.request('notifications:list');
    const items = list.data.notifications as { title: string; origin: string }[];
    t.ok(items.some((n) => n.title === 'Votre paiement' && n.origin === 'system'), 'the first system notification is still in the inbox, 50 user-sent ones later');
    t.ok(items.some((n) => n.title === 'Nouveau chapitre'), 'and the second');
    t.equal(items.filter((n) => n.origin === 'user').length, 5, 'user-sent ones hold at most NOTIFY_USER_SHARE of HISTORY_SIZE');
    t.equal(list.data.epoch, billing.epoch);
  }

  // Resumes on the other node: across deleted user-sent ones never a silent gap; the system ones are replayed.
  const resume = async (offset: number) => {
    const c = await a!.connect('bob');
    await c.type('connected');
    return { c, ack: await c.request('subscribe', { topic: 'user:bob', since: { epoch: billing.epoch, offset } }) };
  };
  t.match((await resume(0)).ack, { type: 'ack', data: { recovered: false } }, 'from before the flood: recovered false (the client refetches the inbox)');
  const { c, ack } = await resume(51);
  t.match(ack, { type: 'ack', data: { recovered: true } }, 'from just before the last system notification: recovered');
  const replayed = (await c.next((f) => f.type === 'notification:received' && f.data.title === 'Nouveau chapitre')) as Numbered;
  t.equal(replayed.offset, 52, 'and replayed');
});
