// The declared pairing of a backplane with its history (src/seams/topology.ts): checked once, at composition.
import t from 'tap';
import { MemoryBackplane } from '../src/seams/backplane/memory.js';
import type { ClusterBackplane } from '../src/seams/backplane/types.js';
import { MemoryHistory } from '../src/seams/history/memory.js';
import type { ClusterHistory } from '../src/seams/history/types.js';
import { topology } from '../src/seams/topology.js';

const clusterHistory = { kind: 'fake-cluster', appends: 'backplane' } as ClusterHistory;
const clusterBackplane = { kind: 'fake', single: false } as ClusterBackplane;

t.test('a single node goes with a local history; a cluster backplane with its cluster history', async (t) => {
  const local = new MemoryHistory({ size: 5, ttlMs: 60_000, maxTopics: 10 });
  t.match(topology(new MemoryBackplane('n1'), local), { single: true, history: local });
  t.match(topology(clusterBackplane, clusterHistory), { single: false, history: clusterHistory });
});

t.test('any other pair is refused when the node is composed', async (t) => {
  t.throws(() => topology(new MemoryBackplane('n1'), clusterHistory), /single node \(memory\) needs a local history/);
  t.throws(() => topology(clusterBackplane, new MemoryHistory({ size: 5, ttlMs: 60_000, maxTopics: 10 })), /a memory history numbered by one node cannot go with it/);
});
