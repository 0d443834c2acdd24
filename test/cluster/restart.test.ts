// A Redis connection that ioredis gave up on ('end': it does so when a connect it started is cut short, as when
// the sentinels announce a failover while it asks them for the primary) is started again by the backplane, so a
// node never stays down, answering 503, with Redis reachable.
import t from 'tap';
import pino from 'pino';
import { RedisBackplane } from '../../src/seams/backplane/redis/backplane.js';
import { skipReason, startRedis, until } from './redis.js';

t.test('a connection ioredis ended by itself is started again, and the node registers again', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const bp = new RedisBackplane({ ...(redis.backend === 'single' ? { url: redis.url } : redis.backend === 'sentinel' ? { sentinel: (redis as any).sentinel } : { cluster: { nodes: (redis as any).cluster } }), prefix: redis.prefix, nodeId: 'restarted', leaseMs: 1500, graceMs: 200, log: pino({ level: 'silent' }) });
  t.teardown(() => bp.close());
  t.ok(await bp.connect(5000), 'registered');
  const states: boolean[] = [];
  bp.onStateChange((up) => states.push(up));
  for (const conn of ['cmd', 'sub'] as const) {
    const c = (bp as unknown as Record<typeof conn, { disconnect(): void; status: string }>)[conn];
    // As ioredis does when it gives up: the connection ends without the backplane closing it.
    c.disconnect();
    await until(() => states.at(-1) === false, 0, `${conn}: down once it ended`);
    await until(() => bp.up, 0, `${conn}: up again`);
    t.equal(c.status, 'ready', `${conn}: connected again`);
  }
  t.same(states, [false, true, false, true], 'down, then up again, each time');
});
