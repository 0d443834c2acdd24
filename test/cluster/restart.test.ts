// A Redis connection that ioredis gave up on ('end': it does so when a connect it started is cut short, as when
// the sentinels announce a failover while it asks them for the primary) is started again by the backplane, so a
// node never stays down, answering 503, with Redis reachable.
import t from 'tap';
import pino from 'pino';
import { RedisBackplane } from '../../src/seams/backplane/redis/backplane.js';
import { backplaneTarget, skipReason, startRedis, until } from './redis.js';

t.test('a connection ioredis ended by itself is started again, and the node registers again', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const bp = new RedisBackplane({ ...backplaneTarget(redis), prefix: redis.prefix, nodeId: 'restarted', leaseMs: 1500, graceMs: 200, log: pino({ level: 'silent' }) });
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

t.test('a registration that fails while connected is tried again by itself (no reconnect needed)', { skip: skipReason || (process.env['TEST_REDIS_BACKEND'] === 'cluster' ? 'on a Redis Cluster the next try waits for the sharded subscribers (subscribersReady)' : false) }, async (t) => {
  const redis = await startRedis(t);
  const bp = new RedisBackplane({ ...backplaneTarget(redis), prefix: redis.prefix, nodeId: 'retried', leaseMs: 1500, graceMs: 200, log: pino({ level: 'silent' }) });
  t.teardown(() => bp.close());
  t.ok(await bp.connect(5000), 'registered');
  const cmd = (bp as unknown as { cmd: Record<string, unknown> & { stream: { destroy(): void } } }).cmd;
  // The first registration after the reconnect fails (its first script call errs), once.
  const epoch = cmd['EPOCH'] as (...args: unknown[]) => Promise<unknown>;
  let failed = 0;
  cmd['EPOCH'] = (...args: unknown[]) => {
    if (failed++ === 0) return Promise.reject(new Error('injected: a command timed out'));
    return epoch.apply(cmd, args);
  };
  const states: boolean[] = [];
  bp.onStateChange((up) => states.push(up));
  cmd.stream.destroy();
  await until(() => states.length === 2, 0, 'down, then up again');
  t.same(states, [false, true], 'up again after the failed registration, with no other reconnect');
  t.ok(failed >= 2, `the registration was tried again (${failed} EPOCH calls)`);
});
