// The byte layout of a numbered frame: `head + ',"epoch":"<epoch>","offset":<offset>' + tail`, where head is
// `{"type":<type>,"topic":<topic>` and tail the rest of the envelope. Written here for the memory history and
// by the RECORD script of seams/history/redis.ts, which mirrors numberedFrame() (test/position.test.ts runs
// both and compares); read here by pubsub and by each node's ordered streams.
import type { Position } from '../seams/history/types.js';

const EPOCH = ',"epoch":"';

/** A frame numbered `offset` in `epoch` (the frame as stored in history and sent to subscribers). */
export const numberedFrame = (head: string, epoch: string, offset: number, tail: string): string => `${head}${EPOCH}${epoch}","offset":${offset}${tail}`;
const OFFSET = '","offset":';

/**
 * The position a numbered frame carries, or undefined for an unnumbered one. The head (type and topic) holds
 * no such sequence (types and ids are checked words), so the first occurrence is the position.
 */
export function framePosition(frame: string): Position | undefined {
  const e = frame.indexOf(EPOCH);
  if (e < 0) return undefined;
  const start = e + EPOCH.length;
  const o = frame.indexOf(OFFSET, start);
  if (o < 0) return undefined;
  let i = o + OFFSET.length;
  let offset = 0;
  for (let c = frame.charCodeAt(i); c >= 48 && c <= 57; c = frame.charCodeAt(++i)) offset = offset * 10 + (c - 48);
  if (i === o + OFFSET.length) return undefined;
  return { epoch: frame.slice(start, o), offset };
}
