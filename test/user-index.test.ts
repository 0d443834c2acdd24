// UserIndex: one socket held directly, a Set from the second one, back to a single socket, and empty.
import t from 'tap';
import { UserIndex } from '../src/edge/user-index.js';

t.test('add, delete, count, of and forEach through every shape', async (t) => {
  const idx = new UserIndex<{ n: number }>();
  const a = { n: 1 };
  const b = { n: 2 };
  const c = { n: 3 };
  idx.add('u', a);
  idx.add('u', a);
  t.equal(idx.count('u'), 1, 'the same socket twice is one');
  idx.add('u', b);
  idx.add('v', c);
  t.equal(idx.count('u'), 2);
  t.equal(idx.size, 2, 'two users');
  t.same(idx.of('u').map((s) => s.n).sort(), [1, 2]);
  const all: number[] = [];
  idx.forEach((s) => {
    all.push(s.n);
  });
  t.same(all.sort(), [1, 2, 3]);
  idx.delete('u', a);
  t.same(idx.of('u'), [b], 'back to one');
  idx.delete('u', a);
  t.equal(idx.count('u'), 1, 'deleting an absent socket changes nothing');
  idx.delete('u', b);
  t.equal(idx.count('u'), 0);
  t.same(idx.of('u'), []);
  t.equal(idx.size, 1);
  idx.delete('nobody', a);
  t.equal(idx.size, 1);
});

t.test('forEach visits every socket once, also when each visit removes it (a close inside a sweep)', async (t) => {
  const idx = new UserIndex<{ n: number; user: string }>();
  const sockets = Array.from({ length: 7 }, (_, n) => ({ n, user: `u${n % 3}` }));
  for (const s of sockets) idx.add(s.user, s);
  const seen: number[] = [];
  idx.forEach((s) => {
    seen.push(s.n);
  });
  t.same(seen.sort(), [0, 1, 2, 3, 4, 5, 6], 'single-device users and Sets alike');
  const removed: number[] = [];
  idx.forEach((s) => {
    removed.push(s.n);
    idx.delete(s.user, s);
  });
  t.same(removed.sort(), [0, 1, 2, 3, 4, 5, 6]);
  t.equal(idx.size, 0);
});
