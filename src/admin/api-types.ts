// The JSON of /admin/api/ (README, "Admin view"): what view.ts answers and app.ts reads. No imports, so that
// the page's script (DOM only, tsconfig.browser.json) and the server share one definition.

/** Counters by label, as the metric names them (cumulative since the node started: the page makes rates). */
export type ByLabel = Record<string, number>;

export interface Stats {
  nodeId: string;
  /** When the figures were read (ms since the epoch): the page divides differences by differences of it. */
  ts: number;
  backplane: { kind: string; single: boolean; up: boolean };
  nodes: { nodeId: string; alive: boolean; connections: number; self: boolean }[];
  /** Why `nodes` lists this node only in cluster mode (the store is unreachable). */
  clusterError?: string;
  connections: { open: number; onlineUsers: number };
  eventLoopLagP99S: number;
  residentBytes: number;
  counters: {
    connections: ByLabel;
    closes: ByLabel;
    messagesIn: ByLabel;
    messagesOut: number;
    publishes: ByLabel;
    notificationsDelivered: number;
    rejected: ByLabel;
    backpressureCloses: number;
    backplaneErrors: number;
    proxyRequests: ByLabel;
  };
}

export interface TopTopics {
  /** This node's subscribers of each topic, most first. */
  topics: { topic: string; subscribers: number }[];
  /** Distinct topics with a subscriber on this node. */
  distinct: number;
  ts: number;
}

export interface UserView {
  userId: string;
  /** Online on any node (or within its presence grace period); null when presence cannot be read. */
  online: boolean | null;
  connections: {
    connectionId: string;
    nodeId: string;
    /** On this node: the details only this node knows. */
    local?: { ip: string; openS: number; topics: string[]; bufferedBytes: number };
  }[];
  /** Why only this node's connections are listed (cluster mode, the store unreachable). */
  clusterError?: string;
}
