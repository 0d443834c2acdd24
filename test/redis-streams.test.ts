// TopicStreams: a node's in-order delivery of numbered frames, gaps filled from a history, losses reported.
import t from 'tap';
import pino from 'pino';
import { TopicStreams } from '../src/seams/backplane/redis/streams.js';
import { framePosition } from '../src/wire/position.js';
import type { RedisHistory } from '../src/seams/history/redis.js';
import type { Replay } from '../src/seams/history/types.js';
import { WAIT_MS } from './wait.js';

type History = Pick<RedisHistory, 'since' | 'rewound'>;

const frame = (epoch: string, offset: number, title = `n${offset}`) => `{"type":"notification:received","topic":"user:bob","epoch":"${epoch}","offset":${offset},"data":{"title":"${title}"}}`;

/** A history whose since() answers are released by the test, one at a time. */
function history(stored: Map<number, string>, epoch = 'E1') {
  const calls: { from: number; upTo: number; release(ok?: boolean): void }[] = [];
  const rewound: [string, number][] = [];
  const store: History = {
    async rewound(_topic: string, e: string, delivered: number) {
      rewound.push([e, delivered]);
      return true;
    },
    since(_topic: string, e: string, from: number, upTo: number): Promise<Replay> {
      return new Promise((resolve, reject) => {
        calls.push({
          from,
          upTo,
          release(ok = true) {
            if (!ok) return reject(new Error('redis down'));
            const offsets = [...stored.keys()].filter((o) => o > from && o <= upTo).sort((x, y) => x - y);
            // As SINCE: a position past the head (offsets went back) cannot be recovered.
            const head = Math.max(0, ...stored.keys());
            const recovered = e === epoch && from <= head && (from === head || offsets[0] === from + 1);
            resolve({ recovered, frames: recovered ? offsets.map((o) => stored.get(o)!) : [], position: { epoch, offset: Math.max(0, ...stored.keys()) } });
          },
        });
      });
    },
  };
  return { store, calls, rewound };
}

function streams(h: History) {
  const delivered: string[] = [];
  const lost: string[] = [];
  const s = new TopicStreams(h, (_topic, f) => delivered.push(f), (topic) => lost.push(topic), pino({ level: 'silent' }));
  const offsets = () => delivered.map((f) => framePosition(f)!.offset);
  return { s, delivered, lost, offsets };
}

const flush = () => new Promise((r) => setImmediate(r));

t.test('framePosition reads what both history stores and RECORD write', async (t) => {
  t.same(framePosition(frame('Xk3v9QaB', 17)), { epoch: 'Xk3v9QaB', offset: 17 });
  t.equal(framePosition('{"type":"user:typing","topic":"user:bob","data":{}}'), undefined, 'unnumbered');
  t.equal(framePosition('{"type":"x","topic":"user:bob","epoch":"E","offset":}'), undefined, 'no digits');
});

t.test('in order: the next offset is delivered, one seen before is dropped', async (t) => {
  const { s, offsets } = streams(history(new Map()).store);
  for (const o of [1, 2, 2, 1, 3]) s.receive('user:bob', frame('E1', o));
  t.same(offsets(), [1, 2, 3]);
});

t.test('a gap is filled from the history before anything after it', async (t) => {
  const stored = new Map([1, 2, 3, 4, 5, 6].map((o) => [o, frame('E1', o)]));
  const h = history(stored);
  const { s, offsets, lost } = streams(h.store);
  s.receive('user:bob', frame('E1', 1));
  s.receive('user:bob', frame('E1', 4));
  s.receive('user:bob', frame('E1', 5));
  let barrier = false;
  s.after('user:bob', { epoch: 'E1', offset: 5 }, () => (barrier = true));
  t.same(offsets(), [1], 'held while the gap is read');
  t.notOk(barrier, 'a join barrier waits for the held frames');
  t.same([h.calls[0]!.from, h.calls[0]!.upTo], [1, 3], 'reads exactly the gap');
  h.calls[0]!.release();
  await flush();
  t.same(offsets(), [1, 2, 3, 4, 5]);
  t.ok(barrier);
  s.receive('user:bob', frame('E1', 6));
  t.same(offsets(), [1, 2, 3, 4, 5, 6]);
  t.same(lost, []);
});

t.test('a gap the history cannot fill is reported lost, before the next frame is delivered', async (t) => {
  const stored = new Map([5, 6].map((o) => [o, frame('E1', o)]));
  const h = history(stored);
  const { s, offsets, lost } = streams(h.store);
  s.receive('user:bob', frame('E1', 1));
  s.receive('user:bob', frame('E1', 6));
  h.calls[0]!.release();
  await flush();
  t.same(lost, ['user:bob']);
  t.same(offsets(), [1, 6], 'the subscribers were told first; later frames go on');
});

t.test('a new epoch under live subscribers: they are told it is lost', async (t) => {
  const { s, offsets, lost } = streams(history(new Map()).store);
  s.receive('user:bob', frame('E1', 1));
  s.receive('user:bob', frame('E2', 1));
  t.same(lost, ['user:bob']);
  t.same(offsets(), [1, 1]);
});

t.test('Redis lost during a fill: frames stay held until catchUp(), which reads up to the head', async (t) => {
  const stored = new Map([1, 2, 3, 4, 5].map((o) => [o, frame('E1', o)]));
  const h = history(stored);
  const { s, offsets } = streams(h.store);
  s.receive('user:bob', frame('E1', 1));
  s.receive('user:bob', frame('E1', 3));
  h.calls[0]!.release(false);
  await flush();
  t.same(offsets(), [1], 'nothing skipped');
  s.receive('user:bob', frame('E1', 4));
  s.catchUp();
  t.equal(h.calls[1]!.upTo, Number.MAX_SAFE_INTEGER);
  h.calls[1]!.release();
  await flush();
  t.same(offsets(), [1, 2, 3, 4, 5], 'up to the head, the held ones not twice');
});

t.test('catchUp after a reconnect delivers what was published while this node could not hear it', async (t) => {
  const stored = new Map([1, 2, 3].map((o) => [o, frame('E1', o)]));
  const h = history(stored);
  const { s, offsets } = streams(h.store);
  s.after('user:bob', { epoch: 'E1', offset: 1 }, () => {});
  s.catchUp();
  h.calls[0]!.release();
  await flush();
  t.same(offsets(), [2, 3], 'measured from the position a join saw');
  s.forget('user:bob');
  s.catchUp();
  t.equal(h.calls.length, 1, 'a forgotten topic is not read');
});

t.test('offsets that went back within an epoch: the epoch is retired and the subscribers told', async (t) => {
  const stored = new Map([1, 2].map((o) => [o, frame('E1', o)]));
  const h = history(stored);
  const { s, lost } = streams(h.store);
  for (const o of [1, 2, 3, 4]) s.receive('user:bob', frame('E1', o));
  s.catchUp();
  h.calls[0]!.release();
  await flush();
  t.same(h.rewound, [['E1', 4]], 'Redis holds offset 2 of an epoch this node delivered up to 4');
  t.same(lost, ['user:bob']);
});

t.test('a history read that fails is tried again by itself, up to the head, with the frames held meanwhile', async (t) => {
  const stored = new Map([1, 2, 3, 4].map((o) => [o, frame('E1', o)]));
  const h = history(stored);
  const { s, offsets } = streams(h.store);
  s.receive('user:bob', frame('E1', 1));
  s.receive('user:bob', frame('E1', 3));
  h.calls[0]!.release(false);
  const deadline = Date.now() + WAIT_MS;
  while (h.calls.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.equal(h.calls.length, 2, 'retried without a reconnect');
  t.same(offsets(), [1], 'nothing skipped meanwhile');
  t.equal(h.calls[1]!.upTo, Number.MAX_SAFE_INTEGER);
  h.calls[1]!.release();
  await flush();
  t.same(offsets(), [1, 2, 3, 4]);
});
