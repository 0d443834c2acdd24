// Stream: one topic's events in the memory history, as parallel arrays in a ring that grows up to its size.
import t from 'tap';
import { Stream } from '../src/seams/history/memory-stream.js';

/** Every held event as offset:frame:bytes:user:key, oldest first. */
const held = (s: Stream) =>
  Array.from({ length: s.length }, (_, i) => `${s.offsetAt(i)}:${s.frameAt(i)}:${s.bytesAt(i)}:${s.isUser(i) ? 'u' : 's'}:${s.keyAt(i) ?? '-'}`);

/** Pushes offset n as frame fn, n bytes, at n ms, user-sent when even. */
const push = (s: Stream, n: number, key?: string) => s.push(`f${n}`, n, n, n, n % 2 === 0, key);

t.test('holds events in order while it grows, through wrap-around', async (t) => {
  const s = new Stream('e', 5, 1000);
  t.equal(s.length, 0);
  for (let n = 1; n <= 3; n++) push(s, n);
  t.same(held(s), ['1:f1:1:s:-', '2:f2:2:u:-', '3:f3:3:s:-'], 'grown from one slot, in order');
  s.shift();
  push(s, 4);
  push(s, 5);
  push(s, 6);
  t.same(held(s).map((h) => h.split(':')[0]), ['2', '3', '4', '5', '6'], 'full at its size');
  s.shift();
  s.shift();
  push(s, 7);
  push(s, 8);
  t.same(held(s).map((h) => h.split(':')[0]), ['4', '5', '6', '7', '8'], 'wrapped around the end of its arrays');
  t.equal(s.atOf(0), 4);
  t.equal(s.indexOf(6), 2, 'found by offset');
  t.equal(s.indexOf(3), -1, 'a dropped offset is not held');
  t.equal(s.indexOf(9), -1);
});

t.test('an event removed from the middle leaves the others in order, keys with them', async (t) => {
  const s = new Stream('e', 4, 1000);
  push(s, 1, 'a');
  push(s, 2);
  push(s, 3, 'c');
  push(s, 4);
  s.shift();
  push(s, 5, 'e');
  // Full, and wrapped: the slots hold 5 2 3 4, the oldest (2) in the second.
  t.same(held(s).map((h) => h.split(':')[0]), ['2', '3', '4', '5']);
  s.removeAt(1);
  t.same(held(s), ['2:f2:2:u:-', '4:f4:4:u:-', '5:f5:5:s:e'], 'the later events moved up one place with their fields, across the wrap');
  t.equal(s.indexOf(3), -1);
  t.equal(s.indexOf(5), 2);
  s.setFrame(1, 'g4', 9);
  t.same(held(s)[1], '4:g4:9:u:-', 'a frame replaced in place keeps its offset');
  push(s, 6);
  s.removeAt(3);
  t.same(held(s).map((h) => h.split(':')[0]), ['2', '4', '5'], 'the newest removed');
  s.removeAt(0);
  t.same(held(s).map((h) => h.split(':')[0]), ['4', '5']);
  push(s, 7, 'g');
  push(s, 8);
  t.same(held(s), ['4:g4:9:u:-', '5:f5:5:s:e', '7:f7:7:s:g', '8:f8:8:u:-'], 'keys follow their events after removals');
});

t.test('a stream of size 1 holds one event', async (t) => {
  const s = new Stream('e', 1, 1000);
  push(s, 1);
  t.same(held(s), ['1:f1:1:s:-']);
  s.shift();
  push(s, 2);
  t.same(held(s), ['2:f2:2:u:-']);
});
