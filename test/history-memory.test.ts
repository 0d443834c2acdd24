// MemoryHistory: offsets, the count and age bounds, replay, eviction with a new epoch.
import t from 'tap';
import { MemoryHistory } from '../src/seams/history/memory.js';

const head = (topic: string) => `{"type":"x","topic":"${topic}"`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('offsets count up; since replays what is still held, in order', async (t) => {
  const h = new MemoryHistory({ size: 3, ttlMs: 60_000, maxTopics: 10 });
  const p0 = await h.position('user:a');
  t.equal(p0.offset, 0);
  const frames = [1, 2, 3, 4, 5].map((i) => h.append('user:a', head('user:a'), `,"n":${i}}`));
  t.same(frames.map((f) => f.offset), [1, 2, 3, 4, 5]);
  t.equal(frames[0]!.epoch, p0.epoch, 'a new topic starts in the epoch its empty position announced');
  t.match(frames[4]!.frame, /"epoch":"[^"]+","offset":5,"n":5}$/);
  const r = await h.since('user:a', p0.epoch, 2, 5);
  t.same(r, { recovered: true, frames: [frames[2]!.frame, frames[3]!.frame, frames[4]!.frame], position: { epoch: p0.epoch, offset: 5 } });
  t.equal((await h.since('user:a', p0.epoch, 1, 5)).recovered, false, 'offset 2 fell out of a history of 3');
  t.equal((await h.since('user:a', 'other', 4, 5)).recovered, false, 'another epoch');
  t.same(await h.latest('user:a', 2), [frames[4]!.frame, frames[3]!.frame], 'newest first');
});

t.test('entries older than the age limit are never replayed', async (t) => {
  const h = new MemoryHistory({ size: 10, ttlMs: 40, maxTopics: 10 });
  const a = h.append('story:1', head('story:1'), '}');
  await sleep(80);
  const b = h.append('story:1', head('story:1'), '}');
  const r = await h.since('story:1', a.epoch, 0, b.offset);
  t.equal(r.recovered, false, 'offset 1 is too old: not recoverable');
  const r2 = await h.since('story:1', a.epoch, 1, b.offset);
  t.same(r2.frames, [b.frame], 'what is young enough still is');
  t.same(await h.latest('story:1', 10), [b.frame]);
});

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
