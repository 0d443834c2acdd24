// Ring: bounded FIFO used by the in-memory history.
import t from 'tap';
import { Ring } from '../src/seams/history/ring.js';

t.test('keeps the newest `capacity` items in order, through wrap-around and drops', async (t) => {
  const r = new Ring<number>(3);
  t.same(r.toArray(), []);
  r.dropOldest();
  t.equal(r.length, 0, 'dropping from an empty ring changes nothing');
  for (let i = 1; i <= 7; i++) r.push(i);
  t.same(r.toArray(), [5, 6, 7], 'full: the oldest go first');
  t.equal(r.at(0), 5);
  t.equal(r.at(2), 7);
  r.dropOldest();
  t.same(r.toArray(), [6, 7]);
  r.push(8);
  r.push(9);
  t.same(r.toArray(), [7, 8, 9], 'refilled after a drop in the middle of a wrap');
  t.throws(() => r.at(3), RangeError, 'no reading past the end');
  t.throws(() => r.at(-1), RangeError);
  t.throws(() => new Ring(0), RangeError, 'capacity must be positive');
});
