// Notification ids: random version-4 UUIDs, as randomUUID() makes them.
import t from 'tap';
import { randomId } from '../src/wire/ids.js';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

t.test('randomId gives distinct version-4 UUIDs across several refills of its pool', async (t) => {
  const seen = new Set<string>();
  let malformed = 0;
  // 512 per refill: 5,000 cross nine of them.
  for (let i = 0; i < 5000; i++) {
    const id = randomId();
    if (!V4.test(id)) malformed++;
    seen.add(id);
  }
  t.equal(malformed, 0, 'every one is 8-4-4-4-12 lower-case hex, version 4, variant 10xx');
  t.equal(seen.size, 5000, 'no two alike');
  // Each hex digit of the random part takes each value: no position stuck (the version and variant excepted).
  const digits = new Set([...seen].map((id) => id[0]));
  t.equal(digits.size, 16, 'the first digit takes all 16 values');
  const variants = new Set([...seen].map((id) => id[19]));
  t.same([...variants].sort(), ['8', '9', 'a', 'b'], 'the variant digit takes its 4 values');
});

t.test('a returned id is its own string: later ids do not change it', async (t) => {
  const first = randomId();
  const copy = `${first}`;
  for (let i = 0; i < 600; i++) randomId();
  t.equal(first, copy);
});
