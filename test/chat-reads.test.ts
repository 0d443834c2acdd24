// The chat-reads contract of src/seams/chat-reads/types.ts, run against every implementation.
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import { MemoryChatReads } from '../src/seams/chat-reads/memory.js';
import { RedisChatReads } from '../src/seams/chat-reads/redis.js';
import type { ChatReadStore } from '../src/seams/chat-reads/types.js';
import { skipReason, redisPerTest, type TestRedis } from './cluster/redis.js';

interface Fixture {
  store: ChatReadStore;
  /** Positions held for the user (memory: entries of that user; Redis: fields of its hash). */
  held(userId: string): Promise<number>;
  /** The store's time to live for the user, ms (-1: none; memory keeps by count: undefined). */
  ttl(userId: string): Promise<number | undefined>;
}

interface Impl {
  name: string;
  make(t: Test, maxEntries: number): Promise<Fixture>;
  skip?: string | false;
}

const TTL = 60_000;
let redis: TestRedis | undefined;
const impls: Impl[] = [
  {
    name: 'memory',
    async make(_t, maxEntries) {
      const store = new MemoryChatReads(maxEntries);
      return { store, held: async () => store.size, ttl: async () => undefined };
    },
  },
  {
    name: 'redis',
    skip: skipReason,
    async make(t) {
      const raw = new Redis(redis!.url);
      t.teardown(() => raw.disconnect());
      const prefix = redis!.prefix;
      const store = new RedisChatReads(raw, (name) => prefix + name);
      return { store, held: async (u) => raw.hlen(`${prefix}cr:${u}`), ttl: async (u) => raw.pttl(`${prefix}cr:${u}`) };
    },
  },
];

for (const impl of impls) {
  t.test(impl.name, { skip: impl.skip ?? false }, async (t) => {
    if (impl.name === 'redis') redis = await redisPerTest(t);
    const A = { channel: 'conversation:a', epoch: 'e1' };
    const B = { channel: 'conversation:b', epoch: 'e1' };

    t.test('never marked reads 0; a position moves forward only', async (t) => {
      const { store } = await impl.make(t, 100);
      t.same(await store.get('u1', [A, B]), [0, 0]);
      t.same(await store.advance('u1', A.channel, 'e1', 3, TTL), { offset: 3, moved: true });
      t.same(await store.advance('u1', A.channel, 'e1', 2, TTL), { offset: 3, moved: false }, 'a lower position changes nothing');
      t.same(await store.advance('u1', A.channel, 'e1', 3, TTL), { offset: 3, moved: false }, 'the same one neither');
      t.same(await store.advance('u1', A.channel, 'e1', 7, TTL), { offset: 7, moved: true });
      t.same(await store.get('u1', [B, A]), [0, 7], 'in the order asked');
    });

    t.test('users and channels are apart', async (t) => {
      const { store } = await impl.make(t, 100);
      await store.advance('u1', A.channel, 'e1', 5, TTL);
      await store.advance('u2', B.channel, 'e1', 2, TTL);
      t.same(await store.get('u1', [A, B]), [5, 0]);
      t.same(await store.get('u2', [A, B]), [0, 2]);
    });

    t.test('a position of another epoch counts for nothing, and a new one replaces it', async (t) => {
      const { store } = await impl.make(t, 100);
      await store.advance('u1', A.channel, 'e1', 9, TTL);
      t.same(await store.get('u1', [{ channel: A.channel, epoch: 'e2' }]), [0], 'read in the new epoch: 0');
      t.same(await store.advance('u1', A.channel, 'e2', 1, TTL), { offset: 1, moved: true }, 'a lower offset of the new epoch moves it');
      t.same(await store.get('u1', [{ channel: A.channel, epoch: 'e2' }, A]), [1, 0]);
    });

    t.test('offset 0 stores nothing', async (t) => {
      const { store, held } = await impl.make(t, 100);
      t.same(await store.advance('u3', A.channel, 'e1', 0, TTL), { offset: 0, moved: false });
      t.equal(await held('u3'), 0);
    });

    t.test('bounded', async (t) => {
      const { store, ttl } = await impl.make(t, 2);
      await store.advance('u1', A.channel, 'e1', 1, TTL);
      const kept = await ttl('u1');
      if (kept === undefined) {
        // Memory: by count, the least recently marked forgotten first.
        await store.advance('u2', A.channel, 'e1', 1, TTL);
        await store.advance('u1', A.channel, 'e1', 2, TTL);
        await store.advance('u3', A.channel, 'e1', 1, TTL);
        t.same(await store.get('u2', [A]), [0], 'the least recently marked is forgotten');
        t.same(await store.get('u1', [A]), [2], 'a position marked again is kept');
      } else {
        t.ok(kept > TTL - 5000 && kept <= TTL, `kept for the channel's history TTL (${kept} ms)`);
        await store.advance('u1', B.channel, 'e1', 1, 1000);
        t.ok((await ttl('u1'))! > 5000, 'a channel with a shorter TTL does not shorten it');
        await store.advance('u1', B.channel, 'e1', 2, TTL * 2);
        t.ok((await ttl('u1'))! > TTL, 'a longer one lengthens it');
      }
    });
  });
}
