// The read-state contract of src/seams/readstate/types.ts, run against every implementation.
import t, { type Test } from 'tap';
import pino from 'pino';
import { Redis } from 'ioredis';
import { RedisBackplane } from '../src/seams/backplane/redis/backplane.js';
import { MemoryHistory } from '../src/seams/history/memory.js';
import { MemoryReadState } from '../src/seams/readstate/memory.js';
import type { ReadStateStore } from '../src/seams/readstate/types.js';
import { skipReason, redisPerTest, startRedis, type TestRedis } from './cluster/redis.js';

interface Fixture {
  store: ReadStateStore;
  /** A notification appended to `user:<id>`'s history. */
  notify(userId: string): Promise<void>;
  /** `user:<id>`'s history lost (evicted, expired): its next notification opens a new epoch. */
  lose(userId: string): Promise<void>;
  /** Users with read state stored. */
  held(): Promise<number>;
}

interface Impl {
  name: string;
  make(t: Test): Promise<Fixture>;
  skip?: string | false;
}

const frameHead = (userId: string) => `{"type":"notification:received","topic":"user:${userId}"`;
const MAX_TOPICS = 10;

let redis: TestRedis | undefined;
const impls: Impl[] = [
  {
    name: 'memory',
    async make() {
      const history = new MemoryHistory({ size: 10, ttlMs: 60_000, maxTopics: MAX_TOPICS });
      const store = MemoryReadState.alongside(history, { maxUsers: MAX_TOPICS, maxIds: 20 });
      return {
        store,
        held: async () => store.size,
        notify: async (userId) => void history.append(`user:${userId}`, frameHead(userId), ',"data":{}}'),
        async lose(userId) {
          for (let i = 0; i < MAX_TOPICS; i++) history.append(`story:filler-${i}`, `{"type":"x","topic":"story:filler-${i}"`, '}');
          if ((await history.position(`user:${userId}`)).offset !== 0) throw new Error(`user:${userId} was not evicted`);
        },
      };
    },
  },
  {
    name: 'redis',
    skip: skipReason,
    async make(t) {
      const prefix = redis!.prefix;
      const bp = new RedisBackplane({ url: redis!.url, prefix, nodeId: 'r', leaseMs: 1500, graceMs: 200, log: pino({ level: 'silent' }) });
      t.teardown(() => bp.close());
      t.ok(await bp.connect(5000), 'the node joins the cluster');
      const raw = new Redis(redis!.url);
      t.teardown(() => raw.disconnect());
      return {
        store: bp.stores.readState,
        notify: async (userId) => void (await bp.publishRecorded(`user:${userId}`, frameHead(userId), ',"data":{}}')),
        lose: async (userId) => void (await raw.del(`${prefix}h:user:${userId}`, `${prefix}s:user:${userId}`)),
        held: async () => new Set([...(await raw.keys(`${prefix}r:*`)), ...(await raw.keys(`${prefix}ri:*`))].map((k) => k.slice(k.lastIndexOf(':') + 1))).size,
      };
    },
  },
];

const ids = (s: { ids: ReadonlySet<string> }) => [...s.ids].sort();

for (const impl of impls) {
  t.test(impl.name, { skip: impl.skip ?? false }, async (t) => {
    if (impl.name === 'redis') redis = await redisPerTest(t);

    t.test('a user never marked has nothing read', async (t) => {
      const { store, notify } = await impl.make(t);
      await notify('u1');
      const s = await store.get('u1');
      t.equal(s.allUpTo, 0);
      t.same(ids(s), []);
    });

    t.test('one by one, then everything up to an offset', async (t) => {
      const { store, notify } = await impl.make(t);
      for (let i = 0; i < 3; i++) await notify('u1');
      await store.mark('u1', { id: 'n2' });
      await store.mark('u1', { id: 'n3' });
      t.same(ids(await store.get('u1')), ['n2', 'n3'], 'ids marked one by one');
      t.equal((await store.get('u1')).allUpTo, 0);
      await store.mark('u1', { allUpTo: 2 });
      let s = await store.get('u1');
      t.equal(s.allUpTo, 2);
      t.same(ids(s), [], 'covered ids are forgotten');
      await store.mark('u1', { allUpTo: 1 });
      t.equal((await store.get('u1')).allUpTo, 2, 'allUpTo never goes down');
      await store.mark('u1', { id: 'n9' });
      s = await store.get('u1');
      t.match({ allUpTo: s.allUpTo, ids: ids(s) }, { allUpTo: 2, ids: ['n9'] }, 'an id above allUpTo adds to it');
    });

    t.test('users are apart', async (t) => {
      const { store, notify } = await impl.make(t);
      await notify('u1');
      await notify('u2');
      await store.mark('u1', { allUpTo: 1 });
      await store.mark('u1', { id: 'x' });
      const s = await store.get('u2');
      t.equal(s.allUpTo, 0);
      t.same(ids(s), []);
    });

    t.test('a mark while user:<id> has no history stores nothing (issue #17, item 8)', async (t) => {
      const { store, notify, held } = await impl.make(t);
      await store.mark('u8', { allUpTo: 5 });
      await store.mark('u9', { id: 'n1' });
      t.equal(await held(), 0, 'no read state for users with nothing to read');
      await notify('u8');
      t.equal((await store.get('u8')).allUpTo, 0, 'the first notification after it is unread');
      await store.mark('u8', { allUpTo: 1 });
      t.equal(await held(), 1);
    });

    t.test('a new epoch of user:<id> starts with nothing read up to an offset', async (t) => {
      const { store, notify, lose } = await impl.make(t);
      for (let i = 0; i < 3; i++) await notify('u1');
      await store.mark('u1', { allUpTo: 3 });
      t.equal((await store.get('u1')).allUpTo, 3);
      await lose('u1');
      await notify('u1');
      t.equal((await store.get('u1')).allUpTo, 0, 'the old allUpTo: 3 does not cover offset 1 of the new epoch');
      await store.mark('u1', { allUpTo: 1 });
      t.equal((await store.get('u1')).allUpTo, 1, 'and counts in the new one');
    });
  });
}

t.test('memory: read state goes in the turn its topic is evicted, and no other user\'s goes for room (issue #17, item 8)', async (t) => {
  const history = new MemoryHistory({ size: 10, ttlMs: 60_000, maxTopics: 3 });
  const store = MemoryReadState.alongside(history, { maxUsers: 3, maxIds: 20 });
  const notify = (u: string) => history.append(`user:${u}`, frameHead(u), ',"data":{}}');
  notify('alice');
  await store.mark('alice', { allUpTo: 1 });
  // Three other users notified and read: alice's topic is the least recently used, evicted for room.
  for (const u of ['bob', 'carol', 'dave']) {
    notify(u);
    await store.mark(u, { allUpTo: 1 });
  }
  t.equal((await history.position('user:alice')).offset, 0, "alice's history was evicted");
  t.equal(store.size, 3, "alice's read state went with it, at once (not when she next asks)");
  t.same((await Promise.all(['bob', 'carol', 'dave'].map((u) => store.get(u)))).map((s) => s.allUpTo), [1, 1, 1], 'the others keep theirs');
});

t.test('redis: read state expires with the personal topic\'s own history TTL, not HISTORY_TTL_S (issue #17, item 8)', { skip: skipReason }, async (t) => {
  const r = await startRedis(t);
  const perTopic = (topic: string) => (topic.startsWith('user:') ? { size: 10, ttlMs: 3_600_000 } : undefined);
  const bp = new RedisBackplane({ url: r.url, prefix: r.prefix, nodeId: 'r', leaseMs: 1500, graceMs: 200, log: pino({ level: 'silent' }), history: { size: 10, ttlMs: 60_000, perTopic } });
  t.teardown(() => bp.close());
  t.ok(await bp.connect(5000));
  const raw = new Redis(r.url);
  t.teardown(() => raw.disconnect());
  await bp.publishRecorded('user:u1', frameHead('u1'), ',"data":{}}');
  await bp.stores.readState.mark('u1', { allUpTo: 1 });
  await bp.stores.readState.mark('u1', { id: 'n2' });
  const [history, read, ids] = await Promise.all([raw.pttl(`${r.prefix}h:user:u1`), raw.pttl(`${r.prefix}r:u1`), raw.pttl(`${r.prefix}ri:u1`)]);
  t.ok(history > 60_000, `the history lives the user namespace's hour (${history} ms)`);
  t.ok(read > 60_000 && ids > 60_000, `and so does its read state (${read}, ${ids} ms), not HISTORY_TTL_S's minute`);
});

t.test('memory: ids marked one by one are bounded per user, the oldest dropped', async (t) => {
  const store = new MemoryReadState({ maxUsers: 2, maxIds: 2 }, () => ({ epoch: 'E', offset: 1 }));
  for (const id of ['a', 'b', 'c']) await store.mark('u1', { id });
  t.same(ids(await store.get('u1')), ['b', 'c']);
  await store.mark('u2', { id: 'x' });
  await store.mark('u3', { id: 'y' });
  t.same(ids(await store.get('u1')), [], 'the least recently marked user is dropped beyond maxUsers');
});
