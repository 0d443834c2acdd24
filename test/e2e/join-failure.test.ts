// A personal-topic join that fails (the history store throws) closes that connection with 4001 and
// leaves the server, the other connections and presence as they should be.
import t from 'tap';
import { MemoryHistory } from '../../src/seams/history/memory.js';
import { startServer } from '../helpers.js';

t.test('a history that throws on join: 4001 for that user, others unaffected, nobody left online', async (t) => {
  const history = new MemoryHistory({ size: 10, ttlMs: 60_000, maxTopics: 100 });
  const now = history.now;
  // The same store, but reading the position of user:broken throws (synchronously, as a bug would).
  Object.defineProperty(history, 'now', {
    value: {
      position: (topic: string) => {
        if (topic === 'user:broken') throw new Error('store exploded');
        return now.position(topic);
      },
      since: now.since,
    },
  });
  const h = await startServer(t, { presenceGraceMs: 0 }, {}, { history });
  const broken = await h.connect('broken');
  const closed = await Promise.race([broken.closed, new Promise<{ code: number }>((r) => setTimeout(() => r({ code: -1 }), 5000).unref())]);
  t.equal(closed.code, 4001, 'closed with RECONNECT');
  const ok = await h.connect('fine');
  t.equal((await ok.type('connected')).data.userId, 'fine', 'the server still accepts others');
  t.equal(h.server.connectionsOf('broken'), 0, 'the broken connection is not counted');
  t.same(await h.server.onlineUsers(['broken', 'fine']), ['fine'], 'and not reported online');
});
