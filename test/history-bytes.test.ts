// History that cannot be inflated (issue #15, item 6): no history for a made-up id (reads never create one,
// ifStreamExists stores only into an existing one), and HISTORY_MAX_BYTES kept exact in Redis's books.
import t from 'tap';
import pino from 'pino';
import { Redis } from 'ioredis';
import { Metrics } from '../src/metrics.js';
import { IdempotencyStore } from '../src/pubsub/idempotency.js';
import { PubSub, type StoreOption } from '../src/pubsub/pubsub.js';
import { MemoryBackplane } from '../src/seams/backplane/memory.js';
import { RedisBackplane } from '../src/seams/backplane/redis/backplane.js';
import { MemoryHistory } from '../src/seams/history/memory.js';
import type { RedisHistory } from '../src/seams/history/redis.js';
import { topology } from '../src/seams/topology.js';
import type { UWS } from '../src/uws.js';
import { Client, sign, startServer } from './helpers.js';
import { api, skipReason, startNode, startRedis, until } from './cluster/redis.js';

const note = (title: string) => `{"type":"notification:received","topic":"user:%","data":{"title":"${title}"}}`;
const frameFor = (user: string, title: string) => note(title).replace('%', user);
const ifExists = (): StoreOption => ({ ifStreamExists: true, stored: undefined });
/** No local subscriber: PubSub only counts and publishes through the app. */
const app = { numSubscribers: () => 0, publish: () => true } as unknown as UWS.TemplatedApp;

t.test('memory: made-up users cannot evict real histories at HISTORY_MAX_TOPICS', async (t) => {
  const history = new MemoryHistory({ size: 10, ttlMs: 60_000, maxTopics: 3 });
  const h = await startServer(t, { historyMaxTopics: 3 }, {}, { history });
  const real = await h.connect('real');
  const welcome = await real.type('connected');
  await h.server.sendNotificationToUser('real', { title: 'from the backend', message: '', type: 'info', data: undefined }).delivered;
  const n: any = await real.type('notification:received');
  // Twenty made-up users connect, join a story, resume it and their inbox, and read their inbox.
  for (let i = 0; i < 20; i++) {
    const c = await Client.open(`${h.url}?token=${await sign(`ghost-${i}`)}&since=${welcome.data.topics['user:real'].epoch}:0`);
    await c.type('connected');
    await c.request('subscribe', { topic: `story:made-up-${i}`, since: { epoch: 'whatever', offset: 0 } });
    await c.request('notifications:list');
    c.close();
  }
  t.same(history.heldTopics(), ['user:real'], 'no history was created for anyone else');
  real.close();
  const back = await Client.open(`${h.url}?token=${await sign('real')}&since=${n.epoch}:0`);
  t.teardown(() => back.close());
  const again = await back.type('connected');
  t.match(again.data.topics['user:real'], { recovered: true, replayed: 1 }, 'the real history is still there');
});

t.test('PubSub ifStreamExists on one node: live only where there is no history, stored where there is', async (t) => {
  const history = new MemoryHistory({ size: 10, ttlMs: 60_000, maxTopics: 100 });
  const pubsub = new PubSub(app, topology(new MemoryBackplane('n'), history), new Metrics(), 1 << 20, { checkAll() {}, checkUser() {} }, new IdempotencyStore(60_000, 100));
  const made = ifExists();
  t.equal(await pubsub.emit('notification:received', 'user:made-up', frameFor('made-up', 'x'), undefined, undefined, made), 0);
  t.equal(made.stored, false, 'the result says it was not stored');
  t.same(history.heldTopics(), [], 'and no stream was created');
  await pubsub.emit('notification:received', 'user:real', frameFor('real', 'system'));
  const real = ifExists();
  await pubsub.emit('notification:received', 'user:real', frameFor('real', 'user'), undefined, undefined, real);
  t.equal(real.stored, true);
  t.same((await history.latest('user:real', 5)).map((f) => JSON.parse(f).offset), [2, 1], 'numbered after the backend\'s');
  const live = ifExists();
  await pubsub.emit('user:typing', 'user:real', '{"type":"user:typing","topic":"user:real","data":{}}', undefined, undefined, live);
  t.equal(live.stored, false, 'a live-only event is never stored');
});

t.test('cluster', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);

  t.test('a read-only position query never creates a key: join, resume, inbox of users that never got anything', async (t) => {
    redis.prefix = `${redis.prefix}ro:`;
    const raw = new Redis(redis.url);
    t.teardown(() => raw.disconnect());
    const node = await startNode(t, redis);
    const before = new Set(await raw.keys(`${redis.prefix}*`));
    for (let i = 0; i < 10; i++) {
      const c = await Client.open(`${node.url}?token=${await sign(`ghost-${i}`)}&since=someepoch:0`);
      await c.type('connected');
      t.equal((await c.request('subscribe', { topic: `story:made-up-${i}` })).type, 'ack');
      t.equal((await c.request('subscribe', { topic: `story:other-${i}`, since: { epoch: 'x', offset: 3 } })).type, 'ack');
      t.equal((await c.request('notifications:list')).type, 'ack');
      c.close();
    }
    const made = (await raw.keys(`${redis.prefix}*`)).filter((k) => !before.has(k) && /:(h|s):(user|story):/.test(k));
    t.same(made, [], 'no h:/s: key for any of them');
    // The backend's first notification still opens a history, which a client told the empty position resumes.
    const bob = await node.connect('bob');
    const empty = (await bob.type('connected')).data.topics['user:bob'];
    t.equal(empty.offset, 0);
    bob.close();
    t.equal((await api(node, 'POST', '/v1/notifications', { userId: 'bob', notification: { title: 'first', message: '' } })).status, 200);
    const back = await Client.open(`${node.url}?token=${await sign('bob')}&since=${empty.epoch}:0`);
    t.teardown(() => back.close());
    t.match((await back.type('connected')).data.topics['user:bob'], { recovered: true, replayed: 1, offset: 1 });
    t.match((await back.type('notification:received')).data, { title: 'first' });
  });

  t.test('PubSub ifStreamExists in a cluster: not stored and sent live to the other nodes; stored where a history is', async (t) => {
    const prefix = `${redis.prefix}ps:`;
    const log = pino({ level: 'silent' });
    const mk = (id: string) => new RedisBackplane({ url: redis.url, prefix, nodeId: id, leaseMs: 1500, graceMs: 200, log });
    const [a, b] = [mk('a'), mk('b')];
    t.teardown(() => Promise.all([a.close(), b.close()]));
    t.ok((await a.connect(5000)) && (await b.connect(5000)));
    const got: string[] = [];
    b.onFrame((_topic, frame) => got.push(frame));
    b.interest('user:made-up', true);
    b.interest('user:real', true);
    await b.whenListening(['user:made-up', 'user:real']);
    const history = a.stores.history as RedisHistory;
    const pubsub = new PubSub(app, topology(a, history), new Metrics(), 1 << 20, { checkAll() {}, checkUser() {} }, new IdempotencyStore(60_000, 100));
    const made = ifExists();
    await pubsub.emit('notification:received', 'user:made-up', frameFor('made-up', 'junk'), undefined, undefined, made);
    t.equal(made.stored, false);
    await until(() => got.length === 1, 2000, 'the live frame on the other node');
    t.equal(got[0], frameFor('made-up', 'junk'), 'delivered live, without a position');
    const raw = new Redis(redis.url);
    t.teardown(() => raw.disconnect());
    t.same(await raw.keys(`${prefix}*made-up*`), ['interest:user:made-up'].map((k) => prefix + k), 'no history keys');
    await pubsub.emit('notification:received', 'user:real', frameFor('real', 'system'));
    const real = ifExists();
    await pubsub.emit('notification:received', 'user:real', frameFor('real', 'user'), undefined, undefined, real);
    t.equal(real.stored, true);
    t.same((await history.latest('user:real', 5)).map((f) => JSON.parse(f).offset), [2, 1]);
  });

  t.test('one turn of plain events is one RECORD_MANY per partition, leaving the state the same events recorded one by one leave', async (t) => {
    const log = pino({ level: 'silent' });
    const raw = new Redis(redis.url);
    t.teardown(() => raw.disconnect());
    const limits = { size: 6, ttlMs: 60_000, userSize: 3 };
    const node = async (name: string, maxBytes = 1 << 30) => {
      const bp = new RedisBackplane({ url: redis.url, prefix: `${redis.prefix}${name}:`, nodeId: name, leaseMs: 1500, graceMs: 200, log, history: { ...limits, maxBytes } });
      t.teardown(() => bp.close());
      t.ok(await bp.connect(5000));
      return bp;
    };
    const [one, many, bounded] = await Promise.all([node('one'), node('many'), node('bounded', 6000)]);
    // 5 topics, events of both kinds (user-sent within a share of 3), past the count bound.
    const pad = 'z'.repeat(300);
    const events = Array.from({ length: 60 }, (_, i) => ({ topic: `user:u${i % 5}`, user: i % 3 === 0, i }));
    const send = (bp: RedisBackplane, e: (typeof events)[number]) =>
      bp.publishRecorded(e.topic, `{"type":"notification:received","topic":"${e.topic}"`, `,"pad":"${pad}","i":${e.i}}`, undefined, undefined, { user: e.user });
    for (const e of events) await send(one, e);
    const calls = async () => {
      const info = await raw.info('commandstats');
      return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0) + Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0);
    };
    const before = await calls();
    const appended = await Promise.all(events.map((e) => send(many, e)));
    const used = (await calls()) - before;
    // 60 events in one turn, 128 at most per call: one call (a lease renewal may run meanwhile).
    t.ok(used >= 1 && used <= 3, `one script call for the turn's 60 events (${used} EVALSHA)`);
    const perTopic = new Map<string, number[]>();
    for (const [k, a] of appended.entries()) {
      const offsets = perTopic.get(events[k]!.topic) ?? [];
      offsets.push((a as { offset: number }).offset);
      perTopic.set(events[k]!.topic, offsets);
    }
    for (const [topic, offsets] of perTopic) t.same(offsets, offsets.map((_, j) => j + 1), `${topic}: numbered in publish order`);
    const state = async (prefix: string) => {
      const topics: Record<string, unknown> = {};
      let bytes = 0;
      for (let u = 0; u < 5; u++) {
        const entries = await raw.xrange(`${prefix}s:user:u${u}`, '-', '+');
        const frames = entries.map(([, f]) => f[3]!.replace(/"epoch":"[^"]*"/, '"epoch":"E"'));
        for (const [, f] of entries) bytes += Buffer.byteLength(f[3]!);
        const userIds = await raw.lrange(`${prefix}hu:user:u${u}`, 0, -1);
        const heldUser = userIds.filter((id) => entries.some(([eid]) => eid === id));
        const age = await raw.zscore(`${prefix}hage`, `user:u${u}`);
        const uage = await raw.zscore(`${prefix}huage`, `user:u${u}`);
        const size = Number((await raw.hget(`${prefix}hsizes`, `user:u${u}`)) ?? 0);
        topics[`user:u${u}`] = {
          frames,
          sizeIsHeld: size === entries.reduce((n, [, f]) => n + Buffer.byteLength(f[3]!), 0),
          // The indexes point at the oldest entry and the oldest user-sent one.
          ageIsOldest: entries.length === 0 ? age === null : Number(age) === Number(entries[0]![0].split('-')[0]),
          userHeld: heldUser.length,
          // The user age index's place is never later than the oldest held user-sent entry (the bound would
          // pass it over); an earlier one (its entry left by a trim) is put right when the bound or a sweep
          // reaches it.
          uageOk: heldUser.length === 0 || (uage !== null && Number(uage) <= Number(heldUser[0]!.split('-')[0])),
        };
      }
      return { topics, total: Number(await raw.get(`${prefix}hbytes`)) === bytes };
    };
    const a = await state(`${redis.prefix}one:`);
    t.match(a, { total: true, topics: { 'user:u0': { sizeIsHeld: true, ageIsOldest: true, uageOk: true } } }, 'one by one: books and indexes right');
    t.same(await state(`${redis.prefix}many:`), a, 'batched: the same frames, books and indexes as one RECORD per event');
    // Past the byte bound, trimmed when the batch ends (one by one, after each event: which ones go differs).
    await Promise.all(events.map((e) => send(bounded, e)));
    const c = await state(`${redis.prefix}bounded:`);
    const held = Number(await raw.get(`${redis.prefix}bounded:hbytes`));
    t.ok(held <= 6000 && held > 4000, `batched: within HISTORY_MAX_BYTES (${held} of 6000)`);
    t.equal(c.total, true, 'batched: the byte total is what the streams hold');
    for (const [topic, v] of Object.entries(c.topics)) t.match(v, { sizeIsHeld: true, ageIsOldest: true, uageOk: true }, `batched, bounded: ${topic}'s books and indexes`);
  });

  t.test('Redis books: hbytes is what the streams hold, through count, age, byte and expiry trims', async (t) => {
    const prefix = `${redis.prefix}books:`;
    const log = pino({ level: 'silent' });
    const bp = new RedisBackplane({ url: redis.url, prefix, nodeId: 'k', leaseMs: 1500, graceMs: 200, log, history: { size: 5, ttlMs: 300, maxBytes: 6000 } });
    t.teardown(() => bp.close());
    t.ok(await bp.connect(5000));
    const raw = new Redis(redis.url);
    t.teardown(() => raw.disconnect());
    const history = bp.stores.history as RedisHistory;
    const held = async () => {
      let n = 0;
      for (const k of await raw.keys(`${prefix}s:*`)) for (const [, f] of await raw.xrange(k, '-', '+')) n += Buffer.byteLength(f[3]!);
      return n;
    };
    const pad = 'y'.repeat(400);
    for (let i = 0; i < 40; i++) await bp.publishRecorded(`story:b${i % 4}`, `{"type":"x","topic":"story:b${i % 4}"`, `,"pad":"${pad}","i":${i}}`);
    const bytes = await history.storedBytes();
    t.equal(bytes, await held(), 'the counter matches the streams after count and byte trims');
    t.ok(bytes <= 6000, `within the bound (${bytes})`);
    // Every topic expires (ttl 300 ms); the next record sweeps their books.
    await until(async () => (await raw.keys(`${prefix}s:story:b*`)).length === 0, 3000, 'the topics expire');
    for (let i = 0; i < 3; i++) await bp.publishRecorded('story:after', '{"type":"x","topic":"story:after"', '}');
    t.equal(await history.storedBytes(), await held(), 'expired topics leave the books');
    t.same(await raw.hkeys(`${prefix}hsizes`), ['story:after']);
    t.same(await raw.zrange(`${prefix}hage`, '0', '-1'), ['story:after']);
  });
});
