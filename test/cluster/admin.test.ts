// The admin view of a cluster: every node with its connections, a user's connections on another node, the
// disconnect reaching them, and what it says while Redis is unreachable.
import t from 'tap';
import { API_KEY, skipReason, startNode, startRedis, until, type Node } from './redis.js';

async function admin(node: Node, path: string, method: 'GET' | 'POST' = 'GET', body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${node.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

t.test('admin view across two nodes', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const a = await startNode(t, redis, { adminUi: 'public', presenceGraceMs: 0 });
  const b = await startNode(t, redis, { adminUi: 'public', presenceGraceMs: 0 });
  const alice = await a.connect('alice');
  const bobs = [await b.connect('bob'), await b.connect('bob')];
  const firstBob = await bobs[0]!.type('connected');
  await Promise.all([alice.type('connected'), bobs[1]!.type('connected')]);

  const ids = [a.server.nodeId, b.server.nodeId].sort();
  const counts = () => admin(a, '/admin/api/stats').then((r) => r.body.nodes.map((n: any) => [n.nodeId, n.alive, n.connections, n.self]));
  // Presence registers connections in Redis after they open: wait until it has all three.
  await until(async () => JSON.stringify((await counts()).map((n: any) => n[2])) === JSON.stringify(ids.map((id) => (id === a.server.nodeId ? 1 : 2))), 10_000, 'both nodes registered');
  t.same(
    await counts(),
    ids.map((id) => [id, true, id === a.server.nodeId ? 1 : 2, id === a.server.nodeId]),
    'every node with its connections, this one marked',
  );
  const stats = (await admin(a, '/admin/api/stats')).body;
  t.same(stats.backplane, { kind: 'redis', single: false, up: true });
  t.equal(stats.connections.open, 1, 'the figures are this node\'s own');

  const bob = (await admin(a, '/admin/api/users/bob')).body;
  t.equal(bob.online, true);
  t.same(bob.connections.map((c: any) => c.nodeId), [b.server.nodeId, b.server.nodeId], 'both of bob\'s connections, on B');
  t.ok(bob.connections.some((c: any) => c.connectionId === firstBob.data.connectionId));
  t.notOk(bob.connections.some((c: any) => 'local' in c), 'no local details for another node\'s connections');
  const onB = (await admin(b, '/admin/api/users/bob')).body;
  t.ok(onB.connections.every((c: any) => c.local !== undefined), 'B has the details of its own');

  t.same((await admin(a, '/admin/api/users/bob/disconnect', 'POST', {})).body, { closed: 2 }, 'a disconnect from A closes them on B');
  for (const c of bobs) t.equal((await c.closed).code, 4409);

  await redis.stop!();
  await until(() => !a.backplane.up, 10_000, 'A sees Redis down');
  const down = (await admin(a, '/admin/api/stats')).body;
  t.same(down.backplane, { kind: 'redis', single: false, up: false });
  t.match(down.clusterError, /cannot be reached/);
  t.same(down.nodes.map((n: any) => n.nodeId), [a.server.nodeId], 'this node only, while the store is unreachable');
  const lookup = (await admin(a, '/admin/api/users/alice')).body;
  t.equal(lookup.connections.length, 1, 'this node\'s connections still listed');
  t.match(lookup.clusterError, /cannot be reached/);
  t.equal(lookup.online, null, 'presence unknown');
});
