// The read-state contract of src/seams/readstate/types.ts, run against every implementation.
import t, { type Test } from 'tap';
import pino from 'pino';
import { Redis } from 'ioredis';
import { RedisBackplane } from '../src/seams/backplane/redis/backplane.js';
import { MemoryHistory } from '../src/seams/history/memory.js';
import { MemoryReadState } from '../src/seams/readstate/memory.js';
import type { ReadStateStore } from '../src/seams/readstate/types.js';
import { skipReason, redisPerTest, type TestRedis } from './cluster/redis.js';

interface Fixture {
  store: ReadStateStore;
  /** A notification appended to `user:<id>`'s history. */
  notify(userId: string): Promise<void>;
  /** `user:<id>`'s history lost (evicted, expired): its next notification opens a new epoch. */
  lose(userId: string): Promise<void>;
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
      const store = new MemoryReadState({ maxUsers: MAX_TOPICS, maxIds: 20 }, async (userId) => (await history.position(`user:${userId}`)).epoch);
      return {
        store,
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

t.test('memory: ids marked one by one are bounded per user, the oldest dropped', async (t) => {
  const store = new MemoryReadState({ maxUsers: 2, maxIds: 2 }, () => 'E');
  for (const id of ['a', 'b', 'c']) await store.mark('u1', { id });
  t.same(ids(await store.get('u1')), ['b', 'c']);
  await store.mark('u2', { id: 'x' });
  await store.mark('u3', { id: 'y' });
  t.same(ids(await store.get('u1')), [], 'the least recently marked user is dropped beyond maxUsers');
});
