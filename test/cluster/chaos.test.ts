// The short CI version of `npm run bench -- chaos-cluster` (issue #21): redis-server with its data kept on
// disk + 2 storywire nodes (child processes) behind a round-robin proxy, 8 users with SDK and raw devices, a
// backend retrying 503s with its Idempotency-Key, sockets reset every second, one Redis restart longer than a
// lease (clients reconnecting during it) and one node SIGKILL. Nothing acked may be lost, nothing handed twice
// or out of order, no live user shown offline, and every SDK store must equal the server's inbox at the end.
import { rmSync } from 'node:fs';
import t from 'tap';
import { hasRedisServer } from '../../bench/chaos-cluster/cluster.js';
import { Device } from '../../bench/chaos-cluster/devices.js';
import { failures, longestGap, runChaosCluster } from '../../bench/chaos-cluster/run.js';
import { skipUnlessRequired } from '../ci-require.js';

// As test/cluster/redis.ts's skipReason, except that REDIS_URL does not help: the run stops and restarts its
// own redis-server. Not imported from there, so that this file loads only the harness and the SDK.
// With CI_REQUIRE=redis a missing redis-server fails the file instead (test/ci-require.ts).
const skip = skipUnlessRequired('redis', hasRedisServer() ? false : '\n\n  !!! SKIPPED: the chaos suite starts its own redis-server: put redis-server on PATH (apt-get install redis-server) !!!\n');
if (skip) process.stderr.write(skip);

t.test('chaos: a persistent Redis restart and a node SIGKILL under resets and retried publishes', { skip, timeout: 90_000 }, async (t) => {
  const log: string[] = [];
  const r = await runChaosCluster({
    variant: 'redis-then-node',
    users: 8,
    rawShare: 0.25,
    durationMs: 10_000,
    ratePerS: 8,
    resetEveryMs: 1000,
    resetShare: 0.1,
    leaseMs: 1500,
    graceMs: 2000,
    readShare: 0.3,
    maxAttempts: 8,
    settleMs: 12_000,
    log: (line) => log.push(line),
  });
  const where = `${r.dir}/details.json`;
  const bad = failures(r);
  if (bad.length === 0) t.teardown(() => rmSync(r.dir, { recursive: true, force: true }));
  else t.comment(`chaos timeline:\n${log.join('\n')}\n${JSON.stringify(r)}`);
  // The chaos happened: without it the zeros below would prove nothing.
  t.ok(r.published >= 40 && r.acked > 0, `${r.published} notifications published, ${r.acked} acked`);
  t.ok(r.resets > 0, `${r.resets} sockets reset`);
  t.equal(r.redisRestarts, 1, 'Redis restarted once');
  t.equal(r.nodeKills, 1, 'a node SIGKILLed once');
  t.ok(r.reconnects > 0, `${r.reconnects} reconnects`);
  t.equal(r.storesChecked, 8, 'every SDK store compared with the server');
  t.ok(r.expected > 0 && r.delivered + r.coveredByRefetch + r.missing === r.expected, 'every acked (notification, device) pair is delivered, covered by a refetch or missing');
  t.same(r.errors, [], 'the run itself went through');
  t.equal(r.missing, 0, `acked but neither delivered nor told to refetch (see ${where})`);
  t.equal(r.duplicates, 0, `same id handed twice (see ${where})`);
  t.equal(r.retryDuplicates, 0, `a retried notification stored twice (see ${where})`);
  t.equal(r.outOfOrder, 0, `offsets going back within an epoch (see ${where})`);
  t.equal(r.falseOffline, 0, `user:offline for a connected user (see ${where})`);
  t.equal(r.storesDiffer, 0, `SDK stores unlike the server's inbox (see ${where})`);
});

t.test('chaos tallies: what counts as out of order, duplicate, and a gap in presence', async (t) => {
  const d = new Device('raw', 'u1', 'raw:u1');
  const n = (id: string, key = id) => ({ id, data: { key } });
  d.hand(n('a'), 'E1', 1);
  d.hand(n('b'), 'E1', 3);
  d.hand(n('c'), 'E1', 2);
  t.equal(d.outOfOrder.length, 1, 'a lower offset after a higher one in the same epoch');
  d.hand(n('a'), 'E1', 1);
  t.equal(d.byId.get('a'), 2, 'the same id twice is a duplicate');
  t.equal(d.outOfOrder.length, 1, '... and not also out of order');
  d.hand(n('d'), 'E2', 1);
  t.equal(d.outOfOrder.length, 1, 'a new epoch starts over');
  d.hand(n('e', 'b'), 'E2', 2);
  t.same([...d.byKey.get('b')!].sort(), ['b', 'e'], 'one key under two ids: a retry stored twice');
  t.same(failures({ missing: 0, duplicates: 1, retryDuplicates: 0, outOfOrder: 0, falseOffline: 2, storesDiffer: 0, errors: ['x'] } as never), ['duplicates 1', 'falseOffline 2', 'x']);

  const conns = [{ openAt: 0, closeAt: 10 }, { openAt: 12, closeAt: 20 }, { openAt: 19 }];
  t.equal(longestGap(conns, 0, 30), 2, 'connections overlapping or open to the end leave only the 10-12 gap');
  t.equal(longestGap(conns.slice(0, 2), 0, 30), 10, 'closed at 20: 10 s without a connection until 30');
  t.equal(longestGap([], 5, 9), 4, 'no connection at all: the whole window');
});
