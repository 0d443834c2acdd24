// Which history goes with which backplane: both declare it (Backplane.single, HistoryStore.appends), and a
// node's composition checks the pair once, so that pubsub chooses its algorithm from a declared kind.
import type { Backplane, ClusterBackplane, SingleNodeBackplane } from './backplane/types.js';
import type { ClusterHistory, HistoryStore, LocalHistory } from './history/types.js';

export type Topology =
  /** One node: it numbers its own history and delivers in the turn it publishes. */
  | { readonly single: true; readonly backplane: SingleNodeBackplane; readonly history: LocalHistory }
  /** A cluster: numbered frames are appended and published by the backplane, and come back to every node. */
  | { readonly single: false; readonly backplane: ClusterBackplane; readonly history: ClusterHistory };

/** Throws when the history cannot go with the backplane (a local history in a cluster, or the reverse). */
export function topology(backplane: Backplane, history: HistoryStore): Topology {
  if (backplane.single) {
    if (history.appends === 'local') return { single: true, backplane, history };
    throw new Error(`the ${history.kind} history is appended to by a cluster backplane: a single node (${backplane.kind}) needs a local history`);
  }
  if (history.appends === 'backplane') return { single: false, backplane, history };
  throw new Error(`the ${backplane.kind} backplane appends to its cluster's history: a ${history.kind} history numbered by one node cannot go with it`);
}
