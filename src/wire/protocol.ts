// The client -> server message union and the checks of its fields (each message type's spec is in messages.ts).
import { ID_PATTERN } from '../edge/auth.js';
import { ErrorCode, WireError } from './codes.js';
import type { Position } from '../seams/history/types.js';

export type RequestId = string | number;
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export interface NotificationInput {
  title: string;
  message: string;
  type: string;
  data: JsonObject | undefined;
}
export interface StoryInput extends JsonObject {
  id: string;
  title: string;
}
export interface ChapterInput extends JsonObject {
  storyId: string;
  id: string;
  title: string;
}

/** A chat message as a client sends it (protocol.md section 14); its byte limits are checked by the chat feature. */
export interface ChatSendInput {
  channel: string;
  clientMsgId: string;
  text: string;
  data: JsonObject | undefined;
}

export interface ChatEditInput {
  channel: string;
  messageId: string;
  text: string;
  data: JsonObject | undefined;
}

/** Every message a client may send. messages.ts has a spec for each member, or it does not compile. */
export type ClientMessage =
  | { type: 'ping'; id: RequestId | undefined }
  | { type: 'auth'; id: RequestId | undefined; data: { token: string } }
  | { type: 'send:notification'; id: RequestId | undefined; data: { userId: string; notification: NotificationInput } }
  | { type: 'typing:start'; id: RequestId | undefined; data: { target: string } }
  | { type: 'typing:stop'; id: RequestId | undefined; data: { target: string } }
  | { type: 'story:published'; id: RequestId | undefined; data: StoryInput }
  | { type: 'chapter:published'; id: RequestId | undefined; data: ChapterInput }
  | { type: 'profile:updated'; id: RequestId | undefined; data: JsonObject }
  | { type: 'publish'; id: RequestId | undefined; data: { channel: string; data: JsonObject } }
  | { type: 'subscribe'; id: RequestId | undefined; data: { topic: string; since: Position | undefined; token: string | undefined } }
  | { type: 'unsubscribe'; id: RequestId | undefined; data: { topic: string } }
  | { type: 'presence:query'; id: RequestId | undefined; data: { userIds: string[] } }
  | { type: 'presence:channel'; id: RequestId | undefined; data: { channel: string } }
  | { type: 'notifications:list'; id: RequestId | undefined; data: { limit: number | undefined } }
  | { type: 'notifications:read'; id: RequestId | undefined; data: { id: string } | { all: true } }
  | { type: 'notifications:received'; id: RequestId | undefined; data: { epoch: string; offsets: number[] } }
  | { type: 'chat:send'; id: RequestId | undefined; data: ChatSendInput }
  | { type: 'chat:edit'; id: RequestId | undefined; data: ChatEditInput }
  | { type: 'chat:delete'; id: RequestId | undefined; data: { channel: string; messageId: string } }
  | { type: 'chat:read'; id: RequestId | undefined; data: { channel: string; offset: number } }
  | { type: 'chat:unread'; id: RequestId | undefined; data: { channels: string[] } };

export type ClientType = ClientMessage['type'];

export interface Limits {
  maxNotificationBytes: number;
  maxStoryBytes: number;
  maxPresenceIds: number;
}

/** The size limits of a configuration (MAX_NOTIFICATION_BYTES, MAX_STORY_BYTES, MAX_PRESENCE_IDS). */
export const limitsOf = (c: Limits): Limits => ({ maxNotificationBytes: c.maxNotificationBytes, maxStoryBytes: c.maxStoryBytes, maxPresenceIds: c.maxPresenceIds });

export const invalid = (message: string): WireError => new WireError(ErrorCode.INVALID_PAYLOAD, message);

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function object(v: unknown, path: string): JsonObject {
  if (!isObject(v)) throw invalid(`${path} must be an object`);
  return v;
}

export function string(v: unknown, path: string, max: number, min = 1): string {
  if (typeof v !== 'string') throw invalid(`${path} must be a string`);
  if (v.length < min || v.length > max) throw invalid(`${path} must be ${min}-${max} characters long`);
  return v;
}

/** User, story and chapter ids: a string of [A-Za-z0-9_.@|+=-]{1,128} or a non-negative integer, sent on as a string. */
/** string() of `o[key]`, its error's path (`<path>.<key>`) built only when the field is wrong (the hot path builds none). */
export function stringField(o: JsonObject, path: string, key: string, max: number, min = 1): string {
  const v = o[key];
  if (typeof v === 'string' && v.length >= min && v.length <= max) return v;
  return string(v, `${path}.${key}`, max, min);
}

export function id(v: unknown, path: string): string {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return String(v);
  if (typeof v === 'string' && ID_PATTERN.test(v)) return v;
  throw invalid(`${path} must be an id: a non-negative integer or a string of 1-128 characters [A-Za-z0-9_.@|+=-]`);
}

/**
 * Refuses a value whose JSON is over `maxBytes`. `sourceBound`, when known, bounds that size from the
 * input it was parsed from (see parseFrame): under the limit, nothing is re-serialized.
 */
export function capped<T>(v: T, path: string, maxBytes: number, sourceBound = Infinity): T {
  if (sourceBound <= maxBytes) return v;
  const bytes = Buffer.byteLength(JSON.stringify(v));
  if (bytes > maxBytes) throw new WireError(ErrorCode.PAYLOAD_TOO_LARGE, `${path} is ${bytes} bytes, the limit is ${maxBytes}`, 400);
  return v;
}

export function requestId(v: unknown): RequestId | undefined {
  if (v === undefined) return undefined;
  if ((typeof v === 'string' && v.length >= 1 && v.length <= 64) || (typeof v === 'number' && Number.isSafeInteger(v))) return v;
  throw new WireError(ErrorCode.BAD_MESSAGE, 'id must be a string of 1-64 characters or an integer');
}

export function parseNotification(v: unknown, path: string, limits: Limits, sourceBound = Infinity): NotificationInput {
  const n = object(v, path);
  const data = n['data'] === undefined || n['data'] === null ? undefined : object(n['data'], `${path}.data`);
  capped(n, path, limits.maxNotificationBytes, sourceBound);
  return {
    title: stringField(n, path, 'title', 200),
    message: stringField(n, path, 'message', 2000, 0),
    type: n['type'] === undefined ? 'info' : stringField(n, path, 'type', 64),
    data,
  };
}

export function parseStory(v: unknown, path: string, limits: Limits, sourceBound = Infinity): StoryInput {
  const s = object(v, path);
  capped(s, path, limits.maxStoryBytes, sourceBound);
  return { ...s, id: id(s['id'], `${path}.id`), title: string(s['title'], `${path}.title`, 300) };
}

export function parseChapter(v: unknown, path: string, limits: Limits, sourceBound = Infinity): ChapterInput {
  const c = object(v, path);
  capped(c, path, limits.maxStoryBytes, sourceBound);
  if (c['number'] !== undefined && !(typeof c['number'] === 'number' && Number.isSafeInteger(c['number']) && c['number'] >= 0)) {
    throw invalid(`${path}.number must be a non-negative integer`);
  }
  return { ...c, storyId: id(c['storyId'], `${path}.storyId`), id: id(c['id'], `${path}.id`), title: string(c['title'], `${path}.title`, 300) };
}

export function parseUserIds(v: unknown, path: string, limits: Limits): string[] {
  if (!Array.isArray(v)) throw invalid(`${path} must be an array of ids`);
  if (v.length > limits.maxPresenceIds) throw new WireError(ErrorCode.TOO_MANY_IDS, `${path} has ${v.length} ids, the limit is ${limits.maxPresenceIds}`);
  return v.map((x, i) => id(x, `${path}[${i}]`));
}

/** A resume position: `{epoch, offset}` as the server sent them. */
export function parsePosition(v: unknown, path: string): Position {
  const o = object(v, path);
  const epoch = string(o['epoch'], `${path}.epoch`, 64);
  if (typeof o['offset'] !== 'number' || !Number.isSafeInteger(o['offset']) || o['offset'] < 0) throw invalid(`${path}.offset must be a non-negative integer`);
  return { epoch, offset: o['offset'] };
}

/** `?since=<epoch>:<offset>` of an upgrade; undefined when absent, INVALID_PAYLOAD when malformed. */
export function parseSinceParam(v: string): Position | undefined {
  if (!v) return undefined;
  const m = /^([A-Za-z0-9_-]{1,64}):(\d{1,15})$/.exec(v);
  if (!m) throw new WireError(ErrorCode.INVALID_PAYLOAD, 'since must be <epoch>:<offset>', 400);
  return { epoch: m[1]!, offset: Number(m[2]) };
}

/** What parse() found wrong, with the request id when it could still be read. */
export class FrameError extends WireError {
  constructor(
    err: WireError,
    readonly requestId: RequestId | undefined,
  ) {
    super(err.code, err.message, err.status);
  }
}
