// ExpiryWheel: items bucketed by second; the caller gives the second back on removal.
import t from 'tap';
import { ExpiryWheel } from '../src/edge/rates.js';

t.test('due returns and forgets every item at or before the second, and no other', async (t) => {
  const w = new ExpiryWheel<string>();
  w.add('a', 10);
  w.add('b', 10);
  w.add('c', 12);
  w.add('none', undefined);
  w.add('a', 10);
  t.equal(w.size, 3, 'an item without a second is not held; the same item twice is one');
  t.same(w.due(9), [], 'nothing due before its second');
  t.same(w.due(10).sort(), ['a', 'b']);
  t.equal(w.size, 1);
  t.same(w.due(10), [], 'returned once');
  t.same(w.due(100), ['c']);
  t.equal(w.size, 0);
});

t.test('remove with the second an item was added with; a refresh moves it', async (t) => {
  const w = new ExpiryWheel<string>();
  w.add('a', 10);
  w.add('b', 10);
  w.remove('a', 11);
  t.equal(w.size, 2, 'the wrong second removes nothing');
  w.remove('a', 10);
  w.remove('a', 10);
  t.equal(w.size, 1, 'removed once');
  w.remove('b', 10);
  w.add('b', 20);
  t.same(w.due(15), [], 'not due at its old second');
  t.same(w.due(20), ['b']);
  w.remove('nothing', undefined);
  t.equal(w.size, 0);
});
