// The webhook-queue contract of src/seams/webhooks/types.ts, run against memory and Redis; then what only a
// cluster has: several consumers on one stream, a dead node's events taken over, a Redis that lost everything.
import t, { type Test } from 'tap';
import pino from 'pino';
import { Redis } from 'ioredis';
import { MemoryWebhookQueue } from '../src/seams/webhooks/memory.js';
import { RedisWebhookQueue, streamKey } from '../src/seams/webhooks/redis.js';
import type { WebhookEvent, WebhookQueue, WebhookQueueOptions } from '../src/seams/webhooks/types.js';
import { skipReason, redisPerTest, type TestRedis } from './cluster/redis.js';
import { until } from './wait.js';

const CLAIM_IDLE_MS = 300;
const OPTIONS: WebhookQueueOptions = { maxDepth: 5, claimIdleMs: CLAIM_IDLE_MS };

let seq = 0;
const ev = (type = 'user.online'): WebhookEvent => ({ id: `evt_${++seq}`, type, ts: 1_700_000_000_000 + seq, data: { userId: `u${seq}` } });

/** A command connection as the backplane opens it: nothing queued while Redis is away. */
function connect(t: Test, redis: TestRedis): Redis {
  const r = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  r.on('error', () => {});
  t.teardown(() => r.disconnect());
  return r;
}

async function ready(r: Redis): Promise<void> {
  await until(() => r.status === 'ready', 'the Redis connection');
}

let redis: TestRedis | undefined;
interface Impl {
  name: string;
  skip?: string | false;
  make(t: Test, options?: WebhookQueueOptions): Promise<WebhookQueue>;
}
const impls: Impl[] = [
  { name: 'memory', make: async (_t, options = OPTIONS) => new MemoryWebhookQueue('app', options) },
  {
    name: 'redis',
    skip: skipReason,
    async make(t, options = OPTIONS) {
      const cmd = connect(t, redis!);
      await ready(cmd);
      const prefix = redis!.prefix;
      const q = new RedisWebhookQueue(cmd, (n) => prefix + n, 'node-a', 'app', options, pino({ level: 'silent' }));
      t.teardown(() => q.close());
      return q;
    },
  },
];

const ids = (held: { event: WebhookEvent }[]) => held.map((h) => h.event.id);

for (const impl of impls) {
  t.test(impl.name, { skip: impl.skip ?? false }, async (t) => {
    if (impl.name === 'redis') redis = await redisPerTest(t);

    t.test('FIFO: take hands out the oldest first, the event as enqueued', async (t) => {
      const q = await impl.make(t);
      const es = [ev(), ev('user.offline'), ev('notification.unread')];
      for (const e of es) t.equal(await q.enqueue(e), true);
      const first = await q.take(2);
      t.same(first, [{ event: es[0], attempts: 0 }, { event: es[1], attempts: 0 }]);
      t.same(ids(await q.take(5)), [es[2]!.id]);
      t.same(await q.take(5), [], 'nothing left that nobody holds');
    });

    t.test('bounded by maxDepth, held events included', async (t) => {
      const q = await impl.make(t);
      for (let i = 0; i < OPTIONS.maxDepth; i++) t.equal(await q.enqueue(ev()), true);
      t.equal(await q.enqueue(ev()), false, 'full: refused');
      t.equal(await q.depth(), OPTIONS.maxDepth, 'nothing added');
      const [h] = await q.take(1);
      t.equal(await q.enqueue(ev()), false, 'a held event still counts');
      await q.ack(h!.event.id);
      t.equal(await q.enqueue(ev()), true, 'an ack makes room');
    });

    t.test('take does not hand a held event twice; ack removes; depth counts held and not', async (t) => {
      const q = await impl.make(t);
      const [a, b] = [ev(), ev()];
      await q.enqueue(a);
      await q.enqueue(b);
      t.same(ids(await q.take(1)), [a.id]);
      t.same(ids(await q.take(5)), [b.id], 'the held one is not handed again');
      t.same(await q.take(5), []);
      t.equal(await q.depth(), 2);
      await q.ack(a.id);
      t.equal(await q.depth(), 1);
      await q.ack(b.id);
      t.equal(await q.depth(), 0);
      t.same(await q.take(5), [], 'acked events do not come back');
    });

    t.test('failed counts the attempts of a held event', async (t) => {
      const q = await impl.make(t);
      const e = ev();
      await q.enqueue(e);
      await q.take(1);
      t.equal(await q.failed(e.id), 1);
      t.equal(await q.failed(e.id), 2);
      t.equal(await q.depth(), 1, 'a failed event stays queued');
      await q.ack(e.id);
      t.equal(await q.depth(), 0);
    });
  });
}

t.test('redis only', { skip: skipReason }, async (t) => {
  redis = await redisPerTest(t);
  const silent = pino({ level: 'silent' });
  const queue = (t: Test, cmd: Redis, nodeId: string, options = OPTIONS) => {
    const q = new RedisWebhookQueue(cmd, (n) => redis!.prefix + n, nodeId, 'app', options, silent);
    t.teardown(() => q.close());
    return q;
  };
  const two = async (t: Test, options = OPTIONS) => {
    const ca = connect(t, redis!);
    const cb = connect(t, redis!);
    await ready(ca);
    await ready(cb);
    return { a: queue(t, ca, 'node-a', options), b: queue(t, cb, 'node-b', options), raw: ca };
  };

  t.test('two consumers: each event goes to one', async (t) => {
    const { a, b } = await two(t, { maxDepth: 100, claimIdleMs: 60_000 });
    const es = Array.from({ length: 20 }, () => ev());
    for (const e of es) await a.enqueue(e);
    const got: string[] = [];
    for (let i = 0; i < 10; i++) {
      got.push(...ids(await a.take(1)), ...ids(await b.take(2)));
    }
    t.equal(got.length, 20);
    t.same([...got].sort(), es.map((e) => e.id).sort(), 'every event once');
  });

  t.test('a dead node: its held event goes to another after claimIdleMs, with its attempts', async (t) => {
    const { a, b } = await two(t);
    const e = ev();
    await a.enqueue(e);
    t.same(ids(await a.take(1)), [e.id]);
    t.equal(await a.failed(e.id), 1);
    t.equal(await a.failed(e.id), 2);
    await a.close(); // dead: no ack, no renewal
    const started = Date.now();
    let got: Awaited<ReturnType<typeof b.take>> = [];
    await until(async () => {
      got = await b.take(5);
      return got.length > 0;
    }, 'the takeover');
    t.ok(Date.now() - started >= CLAIM_IDLE_MS - 50, 'not before claimIdleMs');
    t.same(got, [{ event: e, attempts: 2 }], 'the attempts A recorded');
    t.equal(await b.failed(e.id), 3, 'the count continues');
    await b.ack(e.id);
    t.equal(await b.depth(), 0);
  });

  t.test('a held event renewed by its holder is not stolen', async (t) => {
    const { a, b } = await two(t);
    const e = ev();
    await a.enqueue(e);
    t.same(ids(await a.take(1)), [e.id]);
    // A is alive (renewing every claimIdleMs/3) while it retries slowly: B keeps finding nothing.
    const end = Date.now() + CLAIM_IDLE_MS * 4;
    while (Date.now() < end) {
      t.same(await b.take(5), [], 'B takes nothing');
      if (Date.now() < end) await new Promise((r) => setTimeout(r, CLAIM_IDLE_MS / 2));
    }
    await a.ack(e.id);
    t.equal(await a.depth(), 0);
  });

  t.test('an entry XADDed by hand in the documented shape is read; a malformed one is dropped and counted', async (t) => {
    const { a, raw } = await two(t);
    const stream = redis!.prefix + streamKey('app');
    await a.take(1); // the group exists
    await raw.xadd(stream, '*', 'e', 'not json');
    await raw.xadd(stream, '*', 'e', JSON.stringify({ id: 'push_1', type: 'push.sent', ts: 1_700_000_000_000, data: { to: 'u1' } }));
    await raw.xadd(stream, '*', 'x', '{}');
    const got = await a.take(5);
    t.same(got, [{ event: { id: 'push_1', type: 'push.sent', ts: 1_700_000_000_000, data: { to: 'u1' } }, attempts: 0 }]);
    t.equal(a.invalid, 2, 'the two malformed entries counted');
    t.equal(await a.depth(), 1, 'and deleted');
  });

  t.test('entries XADDed before the group exists are read', async (t) => {
    const { a, raw } = await two(t);
    await raw.xadd(redis!.prefix + streamKey('app'), '*', 'e', JSON.stringify({ id: 'early', type: 'user.online', ts: 1, data: {} }));
    t.same(ids(await a.take(5)), ['early']);
  });

  t.test('Redis down: every method rejects (the caller retries later)', { skip: redis.stop ? false : 'REDIS_URL: not ours to stop' }, async (t) => {
    const { a } = await two(t);
    const e = ev();
    await a.enqueue(e);
    await a.take(1);
    await redis!.stop!();
    await t.rejects(a.enqueue(ev()));
    await t.rejects(a.ack(e.id));
    await t.rejects(a.take(1));
    await t.rejects(a.depth());
    await t.rejects(a.failed(e.id));
    await redis!.start!();
  });

  t.test('Redis restarted empty: the group is recreated and the queue works', { skip: redis.stop ? false : 'REDIS_URL: not ours to stop' }, async (t) => {
    const { a } = await two(t);
    const e = ev();
    await a.enqueue(e);
    t.same(ids(await a.take(1)), [e.id]);
    await redis!.stop!();
    await redis!.start!();
    const after = ev();
    await until(async () => (await a.enqueue(after).catch(() => false)) === true, 'an enqueue after the restart');
    t.equal(await a.depth(), 1, 'the event held before the restart is gone with Redis');
    t.same(ids(await a.take(5)), [after.id], 'read through the recreated group');
    await a.ack(e.id); // an ack of a lost event does no harm
    await a.ack(after.id);
    t.equal(await a.depth(), 0);
  });
});
