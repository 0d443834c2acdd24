// Nothing lost on reconnect, across nodes: history in Redis, resume on another node, after a kill -9,
// offsets in order whichever node publishes, and publications during a replay.
import { spawn } from 'node:child_process';
import t from 'tap';
import { Client, SECRET, sign, type Frame } from '../helpers.js';
import { API_KEY, api, redisClient, redisEnv, skipReason, startNodes, startRedis, until, type Node } from './redis.js';

type Numbered = Frame & { epoch: string; offset: number };
const MAIN = new URL('../../src/main.ts', import.meta.url).pathname;

async function resumeOn(node: Node, sub: string, since: { epoch: string; offset: number }): Promise<Client> {
  const c = await Client.open(`${node.url}?token=${await sign(sub)}&since=${since.epoch}:${since.offset}`);
  return c;
}

async function collect(c: Client, n: number, type = 'notification:received'): Promise<Numbered[]> {
  const out: Numbered[] = [];
  for (let i = 0; i < n; i++) out.push((await c.type(type)) as Numbered);
  return out;
}

t.test('cluster recovery', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const [a, b, c] = await startNodes(t, redis, 3);

  t.test('one epoch and one sequence of offsets per topic, whichever node publishes', async (t) => {
    const bob = await c!.connect('bob');
    const start = (await bob.type('connected')).data.topics['user:bob'];
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < 30; i++) {
      const node = i % 2 === 0 ? a! : b!;
      sends.push(node.server.sendNotificationToUser('bob', { title: `x${i}`, message: '', type: 'info', data: undefined }).delivered);
    }
    await Promise.all(sends);
    const got = await collect(bob, 30);
    t.same(
      got.map((f) => f.offset),
      Array.from({ length: 30 }, (_, i) => start.offset + i + 1),
      'offsets arrive consecutive and in order although two nodes publish concurrently',
    );
    // (A topic with no history yet is told the empty epoch; its history has an epoch of its own.)
    t.ok(got.every((f) => f.epoch === got[0]!.epoch), 'one epoch');
    t.ok(await bob.none((f) => f.type === 'notification:received', 300), 'no duplicate');
  });

  t.test('reconnect to another node: exactly the missed ones, in order, then live', async (t) => {
    const first = await a!.connect('carol');
    await first.type('connected');
    await a!.server.sendNotificationToUser('carol', { title: 'seen', message: '', type: 'info', data: undefined }).delivered;
    const seen = (await first.type('notification:received')) as Numbered;
    first.close();
    await first.closed;
    for (let i = 1; i <= 5; i++) {
      const r = await api(i % 2 ? b! : c!, 'POST', '/v1/notifications', { userId: 'carol', notification: { title: `missed ${i}`, message: '' } });
      t.equal(r.status, 200);
    }
    const again = await resumeOn(b!, 'carol', seen);
    t.teardown(() => again.close());
    t.match((await again.type('connected')).data.topics['user:carol'], { epoch: seen.epoch, recovered: true, replayed: 5 });
    const missed = await collect(again, 5);
    t.same(missed.map((f) => f.data.title), ['missed 1', 'missed 2', 'missed 3', 'missed 4', 'missed 5']);
    t.same(missed.map((f) => f.offset), [2, 3, 4, 5, 6].map((n) => n + seen.offset - 1));
    await c!.server.sendNotificationToUser('carol', { title: 'live', message: '', type: 'info', data: undefined }).delivered;
    t.equal((await again.type('notification:received')).data.title, 'live');
    t.ok(await again.none((f) => f.type === 'notification:received', 300), 'no duplicate');
  });

  t.test('story topics resume on another node with subscribe.since', async (t) => {
    const reader = await a!.connect('reader');
    await reader.type('connected');
    const sub = await reader.request('subscribe', { topic: 'story:5' });
    await b!.server.broadcastNewChapter({ storyId: '5', id: 'c1', title: '1' }, 'victor');
    const c1 = (await reader.type('chapter:new')) as Numbered;
    t.equal(c1.offset, sub.data.offset + 1, 'the first chapter after the join (its epoch is the new history\'s)');
    reader.close();
    for (let i = 2; i <= 4; i++) await c!.server.broadcastNewChapter({ storyId: '5', id: `c${i}`, title: `${i}` }, 'victor');
    const back = await b!.connect('reader');
    const ack = await back.request('subscribe', { topic: 'story:5', since: { epoch: c1.epoch, offset: c1.offset } });
    t.match(ack.data, { recovered: true, replayed: 3 });
    t.same((await collect(back, 3, 'chapter:new')).map((f) => f.data.id), ['c2', 'c3', 'c4']);
  });

  t.test('publishing during the replay on another node: no gap, no duplicate', async (t) => {
    let published = 0;
    let stop = false;
    const pump = (async () => {
      while (!stop && published < 300) {
        await (published % 2 ? a! : c!).server.sendNotificationToUser('dora', { title: String(++published), message: '', type: 'info', data: undefined }).delivered;
      }
    })();
    const received: number[] = [];
    let since: { epoch: string; offset: number } | undefined;
    for (let round = 0; round < 5; round++) {
      const node = [a!, b!, c!][round % 3]!;
      const cl = since ? await resumeOn(node, 'dora', since) : await node.connect('dora');
      const hello = await cl.type('connected');
      const pos = hello.data.topics['user:dora'];
      if (since) t.equal(pos.recovered, true, `round ${round}: recovered on another node`);
      await new Promise((r) => setTimeout(r, 40));
      cl.close();
      await cl.closed;
      for (const f of cl.frames.splice(0)) if (f.type === 'notification:received') received.push((f as Numbered).offset);
      since = { epoch: pos.epoch, offset: received.length ? received[received.length - 1]! : pos.offset };
    }
    stop = true;
    await pump;
    const last = await resumeOn(b!, 'dora', since!);
    t.teardown(() => last.close());
    await last.type('connected');
    await until(
      () => {
        for (const f of last.frames.splice(0)) if (f.type === 'notification:received') received.push((f as Numbered).offset);
        return received[received.length - 1] === published;
      },
      8000,
      'every publication',
    );
    const first = received[0]!;
    t.same(received, Array.from({ length: published - first + 1 }, (_, i) => first + i), `${received.length} consecutive offsets across 6 connections on 3 nodes`);
  });

  t.test('kill -9 of the node the client was on: reconnect elsewhere and recover', async (t) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
      env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: '0', JWT_SECRET: SECRET, API_KEY, ...redisEnv(redis), REDIS_PREFIX: redis.prefix, NODE_ID: 'doomed', NODE_LEASE_MS: '1500' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.teardown(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    await until(() => /"port":(\d+)/.test(out), 15000, 'the child node to listen');
    const port = Number(/"port":(\d+)/.exec(out)![1]);
    const onDoomed = await Client.open(`ws://127.0.0.1:${port}/ws?token=${await sign('erin')}`);
    await onDoomed.type('connected');
    t.equal((await api(a!, 'POST', '/v1/notifications', { userId: 'erin', notification: { title: 'before', message: '' } })).status, 200);
    const seen = (await onDoomed.type('notification:received')) as Numbered;
    child.kill('SIGKILL');
    await onDoomed.closed;
    // Until the dead node's lease expires, publishes to topics it listened to are refused (maybe not
    // delivered everywhere); they are stored all the same, so nothing is lost for the client.
    const statuses: number[] = [];
    for (let i = 1; i <= 3; i++) statuses.push((await api(b!, 'POST', '/v1/notifications', { userId: 'erin', notification: { title: `after ${i}`, message: '' } })).status);
    t.ok(statuses.every((s) => s === 200 || s === 503), `answered ${statuses.join(', ')}`);
    const back = await resumeOn(c!, 'erin', seen);
    t.teardown(() => back.close());
    t.match((await back.type('connected')).data.topics['user:erin'], { epoch: seen.epoch, recovered: true, replayed: 3 });
    t.same((await collect(back, 3)).map((f) => f.data.title), ['after 1', 'after 2', 'after 3']);
  });

  t.test('inbox and read state are shared by the nodes', async (t) => {
    const phone = await a!.connect('fred');
    const laptop = await c!.connect('fred');
    await Promise.all([phone.type('connected'), laptop.type('connected')]);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await b!.server.sendNotificationToUser('fred', { title: `n${i}`, message: '', type: 'info', data: undefined })).notification.id);
    t.equal((await laptop.request('notifications:list')).data.unreadCount, 3);
    t.same((await phone.request('notifications:read', { id: ids[0] })).data, { unreadCount: 2 });
    t.match((await laptop.type('notifications:read')).data, { ids: [ids[0]], unreadCount: 2 }, 'pushed to the device on another node');
    t.same((await laptop.request('notifications:list')).data.notifications.map((n: { read: boolean }) => n.read), [false, false, true]);
  });
});

t.test('read state in Redis belongs to an epoch of the personal topic', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const [a] = await startNodes(t, redis, 1);
  const gina = await a!.connect('gina');
  await gina.type('connected');
  for (let i = 0; i < 2; i++) await a!.server.sendNotificationToUser('gina', { title: `old ${i}`, message: '', type: 'info', data: undefined }).delivered;
  t.same((await gina.request('notifications:read', { all: true })).data, { unreadCount: 0 });
  // The position and stream expire (or Redis loses them) while the read state lives on: offsets restart.
  const raw = redisClient(redis);
  t.teardown(() => raw.disconnect());
  // The keys of the topic's partition (with Redis Cluster they carry its hash tag: backplane/redis/keys.ts).
  const part = a!.backplane.keys.forTopic('user:gina');
  await raw.del(part.key('h:user:gina'), part.key('s:user:gina'));
  const old = (await gina.type('notification:received')) as Numbered;
  await gina.type('notification:received');
  await a!.server.sendNotificationToUser('gina', { title: 'new', message: '', type: 'info', data: undefined }).delivered;
  // Her positions now name a history that is gone: she is not handed the new epoch as if it went on.
  t.match(await gina.closed, { code: 4001 }, 'the live connection is closed to resume');
  t.ok(!gina.frames.some((f) => f.data?.title === 'new'), 'before any frame of the new epoch');
  const again = await resumeOn(a!, 'gina', { epoch: old.epoch, offset: 2 });
  t.teardown(() => again.close());
  t.match((await again.type('connected')).data.topics['user:gina'], { recovered: false, offset: 1 }, 'and told what it cannot recover');
  const list = await again.request('notifications:list');
  t.match(list.data, { unreadCount: 1, notifications: [{ title: 'new', offset: 1, read: false }] }, 'the old allUpTo does not mark the new epoch read');
});
