// Where a numbered frame carries its position: `head + ',"epoch":"<epoch>","offset":<offset>' + tail`
// (history/types.ts), written by both history stores and by the RECORD script (history/redis.ts).
import type { Position } from '../seams/history/types.js';

const EPOCH = ',"epoch":"';
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
