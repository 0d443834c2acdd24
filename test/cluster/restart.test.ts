// A Redis connection that ioredis gave up on ('end': it does so when a connect it started is cut short, as when
// the sentinels announce a failover while it asks them for the primary) is started again by the backplane, so a
// node never stays down, answering 503, with Redis reachable.
import { once } from 'node:events';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import net from 'node:net';
import t from 'tap';
import pino from 'pino';
import { RedisBackplane } from '../../src/seams/backplane/redis/backplane.js';
import { Cluster } from 'ioredis';
import { closeForGood } from '../../src/seams/backplane/redis/ioredis-fix.js';
import { REDIS_BACKEND, backplaneTarget, skipReason, startRedis, until } from './redis.js';

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

t.test('a registration that fails while connected is tried again by itself (no reconnect needed)', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const bp = new RedisBackplane({ ...backplaneTarget(redis), prefix: redis.prefix, nodeId: 'retried', leaseMs: 1500, graceMs: 200, log: pino({ level: 'silent' }) });
  t.teardown(() => bp.close());
  t.ok(await bp.connect(5000), 'registered');
  const cmd = (bp as unknown as { cmd: Record<string, unknown> & { disconnect(reconnect: boolean): void } }).cmd;
  // The first registration after the reconnect fails (its first script call errs), once.
  const epoch = cmd['EPOCH'] as (...args: unknown[]) => Promise<unknown>;
  let failed = 0;
  cmd['EPOCH'] = (...args: unknown[]) => {
    if (failed++ === 0) return Promise.reject(new Error('injected: a command timed out'));
    return epoch.apply(cmd, args);
  };
  const states: boolean[] = [];
  bp.onStateChange((up) => states.push(up));
  // Dropped, and connected again by ioredis (a Redis, or every node of a Redis Cluster).
  cmd.disconnect(true);
  await until(() => states.length === 2, 0, 'down, then up again');
  t.same(states, [false, true], 'up again after the failed registration, with no other reconnect');
  t.ok(failed >= 2, `the registration was tried again (${failed} EPOCH calls)`);
});

// ioredis 6.0.0 (Redis Cluster's sharded subscribers): a subscriber stopped while it connects never settled its
// start(), so its subscriber group stayed "resetting" for good and never made a sharded subscriber again (a node
// stayed down after a restart of the whole Redis Cluster). src/seams/backplane/redis/ioredis-fix.ts settles it.
t.test("ioredis' sharded subscriber stopped while it connects settles its start (the group goes on)", async (t) => {
  await import('../../src/seams/backplane/redis/backplane.js');
  const { default: ShardedSubscriber } = createRequire(import.meta.url)('ioredis/built/cluster/ShardedSubscriber.js') as {
    default: new (emitter: EventEmitter, options: { host: string; port: number }, redisOptions: object) => { start(): Promise<void>; stop(): void };
  };
  // A TCP listener that never answers: the subscriber is stopped once its connection is on its way.
  const server = net.createServer(() => {}).listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  for (const when of ['in the same turn', 'a turn later'] as const) {
    const sub = new ShardedSubscriber(new EventEmitter(), { host: '127.0.0.1', port }, {});
    const started = sub.start().then(
      () => 'resolved',
      (err: Error) => `rejected: ${err.message}`,
    );
    if (when === 'in the same turn') sub.stop();
    else setImmediate(() => sub.stop());
    // Resolved (a stopped subscriber has nothing to resubscribe): a rejection would make the group schedule a
    // slots refresh, which reconnects a Cluster closed meanwhile.
    t.equal(await started, 'resolved', `stopped ${when}: its start() settles`);
  }
});

// ioredis 6.0.0: a Cluster disconnected while a periodic slots refresh is in flight schedules the next round from
// that refresh's callback and refreshes for good (a timer that kept test processes alive). closeForGood() ends it.
t.test('a Redis Cluster connection closed during a slots refresh refreshes no more', { skip: skipReason || (REDIS_BACKEND === 'cluster' ? false : 'Redis Cluster only (TEST_REDIS_BACKEND=cluster)') }, async (t) => {
  const redis = await startRedis(t);
  const target = backplaneTarget(redis);
  if (!('cluster' in target)) throw new Error('a Redis Cluster was expected');
  type Refresh = (callback?: (err?: Error) => void) => void;
  type Internals = { refreshSlotsCache: Refresh; isRefreshing: boolean; slotsTimer: (NodeJS.Timeout & { _destroyed?: boolean }) | null };
  const c = new Cluster(target.cluster.nodes.map((n) => ({ host: n.host, port: n.port })), { lazyConnect: true, slotsRefreshInterval: 100 });
  t.teardown(() => c.disconnect());
  await c.connect();
  const internals = c as unknown as Internals;
  // The first periodic refresh (the one given a callback: the next round) is closed in flight.
  const refresh = internals.refreshSlotsCache;
  let closedInFlight: () => void = () => {};
  const closed = new Promise<void>((r) => {
    closedInFlight = r;
  });
  internals.refreshSlotsCache = function (this: Internals, callback) {
    refresh.call(this, callback);
    if (callback === undefined) return;
    closeForGood(c as never);
    closedInFlight();
  };
  await closed;
  await until(() => !internals.isRefreshing, 0, 'the refresh in flight to end');
  // Its callback scheduled one more round; once that round ran, nothing schedules another.
  const last = internals.slotsTimer;
  if (last !== null) await until(() => last._destroyed === true, 0, 'the round it scheduled to run');
  await until(() => !internals.isRefreshing, 0, 'no refresh running');
  t.ok(internals.slotsTimer === last, 'no round scheduled after it');
});
