// Read-only queries over the cluster's Redis layout (keys.ts) for the admin view: the registered nodes with
// their connection counts, and where a user's connections are. Nothing here writes.
import type { ClusterNode, UserConnection } from '../types.js';
import type { Link } from './link.js';
import { unavailable } from './scripts.js';

/** Every node in `nodes`, with whether its lease is live and how many connections it registered (conns:<node>). */
export async function clusterNodes(link: Link): Promise<ClusterNode[]> {
  const { cmd, keys } = link;
  if (!link.up) throw unavailable('the cluster view');
  try {
    // Every node registers in every partition: the first one's set and leases; connections in every partition.
    const first = keys.parts[0]!;
    const nodes = (await cmd.smembers(first.nodes)).sort();
    if (nodes.length === 0) return [];
    const alive = await cmd.mget(...nodes.map((n) => first.lease(n)));
    const counts = await Promise.all(keys.parts.map(async (part) => {
      const m = cmd.pipeline();
      for (const node of nodes) m.hlen(part.conns(node));
      return ((await m.exec()) ?? []).map(([err, n]) => (err ? 0 : Number(n)));
    }));
    return nodes.map((nodeId, i) => ({ nodeId, alive: alive[i] !== null, connections: counts.reduce((sum, c) => sum + (c[i] ?? 0), 0) }));
  } catch {
    throw unavailable('the cluster view');
  }
}

/** A user's connections on every node, as presence registered them (user:<user>: connection id -> node id). */
export async function userConnections(link: Link, userId: string): Promise<UserConnection[]> {
  const { cmd, keys } = link;
  if (!link.up) throw unavailable('the cluster view');
  try {
    const entries = Object.entries(await cmd.hgetall(keys.user(userId)));
    return entries.map(([connectionId, nodeId]) => ({ connectionId, nodeId })).sort((a, b) => a.connectionId.localeCompare(b.connectionId));
  } catch {
    throw unavailable('the cluster view');
  }
}
