// What the admin view shows, read from the node: its metrics (the same figures /metrics exports), the cluster's
// nodes, the topics with the most subscribers here, and a user's connections on every node.
import type { Metrics } from '../metrics.js';
import type { Backplane, UserConnection } from '../seams/backplane/types.js';
import type { ByLabel, Stats, TopTopics, UserView } from './api-types.js';
import type { Conn, Socket } from '../edge/conn.js';
import { WireError } from '../wire/codes.js';

/** What the admin view reads of a node. */
export interface AdminSource {
  readonly nodeId: string;
  readonly metrics: Metrics;
  readonly backplane: Backplane;
  readonly connections: {
    readonly size: number;
    socketsOf(userId: string): Socket[];
    forEachSocket(fn: (ws: Socket) => void): void;
  };
  onlineUsers(userIds: readonly string[]): Promise<string[]>;
  /** Seconds a connection has been open. */
  durationS(conn: Conn): number;
}

type MetricJson = Awaited<ReturnType<Metrics['registry']['getMetricsAsJSON']>>[number];

function sumBy(metric: MetricJson | undefined, label: string | undefined): ByLabel {
  const out: ByLabel = {};
  for (const v of metric?.values ?? []) {
    const key = label === undefined ? 'total' : String(v.labels[label] ?? '');
    out[key] = (out[key] ?? 0) + v.value;
  }
  return out;
}

const total = (metric: MetricJson | undefined): number => sumBy(metric, undefined)['total'] ?? 0;

/** The node's figures, read through prom-client's collect (what a scrape reads, at the same instant). */
export async function readStats(source: AdminSource): Promise<Stats> {
  const { backplane } = source;
  const all = new Map((await source.metrics.registry.getMetricsAsJSON()).map((m) => [m.name, m]));
  const m = (name: string) => all.get(`storywire_${name}`);
  const open = total(m('connections_open'));
  const stats: Stats = {
    nodeId: source.nodeId,
    ts: Date.now(),
    backplane: { kind: backplane.kind, single: backplane.single, up: backplane.up },
    nodes: [{ nodeId: source.nodeId, alive: true, connections: open, self: true }],
    connections: { open, onlineUsers: total(m('presence_online_users')) },
    eventLoopLagP99S: total(m('nodejs_eventloop_lag_p99_seconds')),
    residentBytes: total(m('process_resident_memory_bytes')),
    counters: {
      connections: sumBy(m('connections_total'), 'outcome'),
      closes: sumBy(m('connection_closes_total'), 'code'),
      messagesIn: sumBy(m('messages_in_total'), 'type'),
      messagesOut: total(m('messages_out_total')),
      publishes: sumBy(m('publishes_total'), 'type'),
      notificationsDelivered: total(m('notifications_delivered_total')),
      rejected: sumBy(m('messages_rejected_total'), 'reason'),
      backpressureCloses: total(m('backpressure_closes_total')),
      backplaneErrors: total(m('backplane_errors_total')),
      proxyRequests: sumBy(m('proxy_requests_total'), 'outcome'),
    },
  };
  if (!backplane.single) {
    try {
      stats.nodes = (await backplane.nodes()).map((n) => ({ ...n, self: n.nodeId === source.nodeId }));
    } catch (err) {
      stats.clusterError = err instanceof WireError ? err.message : 'the cluster view failed';
    }
  }
  return stats;
}

/**
 * The topics with the most subscribers on this node, counted over every open socket's topics. That pass costs
 * a native call per socket, so its result is kept for `maxAgeMs`: any number of open admin pages cost one
 * pass per second at most.
 */
export class TopicCounts {
  private last: { at: number; sorted: [string, number][] } | undefined;

  constructor(
    private readonly source: AdminSource,
    private readonly maxAgeMs = 1000,
  ) {}

  top(limit: number, now = Date.now()): TopTopics {
    if (this.last === undefined || now - this.last.at >= this.maxAgeMs) this.last = { at: now, sorted: this.count() };
    const { at, sorted } = this.last;
    return { topics: sorted.slice(0, limit).map(([topic, subscribers]) => ({ topic, subscribers })), distinct: sorted.length, ts: at };
  }

  private count(): [string, number][] {
    const counts = new Map<string, number>();
    this.source.connections.forEachSocket((ws) => {
      if (ws.getUserData().conn.closed) return;
      for (const topic of ws.getTopics()) counts.set(topic, (counts.get(topic) ?? 0) + 1);
    });
    return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  }
}

/** A user's connections on every node (details for this node's), and whether presence has them online. */
export async function lookupUser(source: AdminSource, userId: string): Promise<UserView> {
  const view: UserView = { userId, online: null, connections: [] };
  for (const ws of source.connections.socketsOf(userId)) {
    const conn = ws.getUserData().conn;
    if (conn.closed) continue;
    const local = { ip: conn.ip, openS: source.durationS(conn), topics: ws.getTopics().sort(), bufferedBytes: ws.getBufferedAmount() };
    view.connections.push({ connectionId: conn.id, nodeId: source.nodeId, local });
  }
  const [online, elsewhere] = await Promise.allSettled([source.onlineUsers([userId]), source.backplane.single ? Promise.resolve([]) : source.backplane.userConnections(userId)]);
  if (online.status === 'fulfilled') view.online = online.value.includes(userId);
  if (elsewhere.status === 'rejected') {
    view.clusterError = elsewhere.reason instanceof WireError ? elsewhere.reason.message : 'the cluster view failed';
  } else {
    const here = new Set(view.connections.map((c) => c.connectionId));
    const others: UserConnection[] = elsewhere.value.filter((c) => !here.has(c.connectionId) && c.nodeId !== source.nodeId);
    view.connections.push(...others.map((c) => ({ connectionId: c.connectionId, nodeId: c.nodeId })));
  }
  return view;
}
