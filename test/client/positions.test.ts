// PositionTracker: de-duplication by offset within an epoch, late frames, epoch changes, and the answers to joins.
import t from 'tap';
import { checkPosition, PositionTracker } from '../../src/client/positions.js';

t.test('accept: new, duplicate, late (a hole below the highest), another epoch', async (t) => {
  const p = new PositionTracker();
  t.same([1, 2, 2, 1].map((o) => p.accept('user:a', 'E', o)), ['new', 'new', 'duplicate', 'duplicate']);
  t.equal(p.accept('user:a', 'E', 5), 'new');
  t.same([4, 3, 4, 5].map((o) => p.accept('user:a', 'E', o)), ['new', 'new', 'duplicate', 'duplicate'], 'skipped offsets are accepted once when they come late');
  t.equal(p.accept('user:a', 'F', 1), 'new', 'offset 1 of another epoch is not a duplicate');
  t.same(p.get('user:a'), { epoch: 'F', offset: 1 });
  t.equal(p.accept('user:a', 'E', 6), 'new', 'epochs are compared, not ordered');
  p.accept('user:a', 'E', 10_000);
  t.equal(p.accept('user:a', 'E', 7), 'duplicate', 'holes are bounded (256 below the highest)');
  t.equal(p.accept('user:a', 'E', 9_999), 'new');
});

t.test('joined: adopt without resume, keep on recovered, report and adopt on recovered: false', async (t) => {
  const p = new PositionTracker({ 'story:1': { epoch: 'E', offset: 3 } });
  t.equal(p.joined('user:a', { epoch: 'E', offset: 7 }, undefined), undefined);
  t.same(p.get('user:a'), { epoch: 'E', offset: 7 }, 'a first join adopts the server position');

  t.equal(p.joined('story:1', { epoch: 'E', offset: 9, recovered: true, replayed: 6 }, { epoch: 'E', offset: 3 }), undefined);
  t.same(p.get('story:1'), { epoch: 'E', offset: 3 }, 'recovered: the replayed events move it, not the answer');

  t.same(p.joined('story:1', { epoch: 'F', offset: 2, recovered: false }, { epoch: 'E', offset: 3 }), { from: { epoch: 'E', offset: 3 }, reason: 'epoch' });
  t.same(p.get('story:1'), { epoch: 'F', offset: 2 });

  p.accept('user:a', 'E', 12);
  t.same(p.joined('user:a', { epoch: 'E', offset: 10, recovered: false }, { epoch: 'E', offset: 7 }), { from: { epoch: 'E', offset: 7 }, reason: 'gap' });
  t.same(p.get('user:a'), { epoch: 'E', offset: 12 }, 'live events that came before the answer are not undone');
  p.joined('user:a', { epoch: 'E', offset: 4, recovered: false }, { epoch: 'E', offset: 12 });
  t.same(p.get('user:a'), { epoch: 'E', offset: 4 }, 'a position ahead of the server is dropped for the server one');
  t.same(p.snapshot(), { 'story:1': { epoch: 'F', offset: 2 }, 'user:a': { epoch: 'E', offset: 4 } });
});

t.test('seeds and positions are validated', async (t) => {
  t.same(checkPosition({ epoch: 'Xk3v9QaB', offset: 0 }, 'p'), { epoch: 'Xk3v9QaB', offset: 0 });
  for (const bad of [null, {}, { epoch: 'a:b', offset: 1 }, { epoch: 'e', offset: -1 }, { epoch: 'e', offset: 1.5 }, { epoch: '', offset: 1 }]) {
    t.throws(() => checkPosition(bad, 'p'), TypeError, JSON.stringify(bad));
  }
  // Which namespaces keep history is the server's to say: any channel with an id may be seeded, not a lone channel.
  t.throws(() => new PositionTracker({ stories: { epoch: 'e', offset: 1 } }), TypeError);
  t.same(new PositionTracker({ 'conversation:c1': { epoch: 'e', offset: 3 } }).snapshot(), { 'conversation:c1': { epoch: 'e', offset: 3 } });
});
