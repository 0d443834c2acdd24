// Epochs: distinct within a process, URL- and `since=`-safe, short.
import t from 'tap';
import { newEpoch } from '../src/seams/history/epoch.js';

t.test('every epoch is new, [A-Za-z0-9_-] and at most 15 characters', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 10_000; i++) seen.add(newEpoch());
  t.equal(seen.size, 10_000);
  for (const e of seen) if (!/^[A-Za-z0-9_-]{9,15}$/.test(e)) t.fail(`bad epoch ${e}`);
});
