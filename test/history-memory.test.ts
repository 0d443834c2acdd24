// MemoryHistory's own bound: whole topics evicted for room (the history contract is test/history.test.ts).
import t from 'tap';
import { MemoryHistory } from '../src/seams/history/memory.js';

const head = (topic: string) => `{"type":"x","topic":"${topic}"`;

t.test('a topic evicted for room comes back under a new epoch', async (t) => {
  const h = new MemoryHistory({ size: 5, ttlMs: 60_000, maxTopics: 2 });
  const a = h.append('user:a', head('user:a'), '}');
  h.append('user:b', head('user:b'), '}');
  h.append('user:c', head('user:c'), '}');
  const a2 = await h.position('user:a');
  if (a2.offset === 0) t.not(a2.epoch, a.epoch, 'an evicted topic comes back under a new epoch');
  else t.equal(a2.epoch, a.epoch, 'or it was the one kept');
  t.equal((await h.position('user:b')).offset + a2.offset, 1, 'exactly one of a and b was evicted');
});
