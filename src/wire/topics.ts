// The topic registry: which topic families exist and their id rules, who may subscribe, which are
// recoverable (numbered, kept in history: HISTORY_SIZE / HISTORY_TTL_S) and which events are never stored,
// where typing may go, and the automatic topics. No other module knows topic rules.
import { ID_PATTERN } from '../edge/auth.js';
import { ErrorCode, WireError } from './codes.js';

export const STORIES = 'stories';
export const PRESENCE_ALL = 'presence';

export const userTopic = (id: string): string => `user:${id}`;
export const storyTopic = (id: string): string => `story:${id}`;
export const authorTopic = (id: string): string => `author:${id}`;
export const presenceTopic = (id: string): string => `presence:${id}`;

const PREFIXED = new Set(['user', 'story', 'author', 'presence']);

export interface ParsedTopic {
  kind: 'stories' | 'user' | 'story' | 'author' | 'presence';
  id: string | undefined;
}

/** Parses a topic a client names; INVALID_TOPIC when it is not one of the documented forms. */
export function parseTopic(topic: string): ParsedTopic {
  if (topic === STORIES) return { kind: 'stories', id: undefined };
  const colon = topic.indexOf(':');
  const prefix = colon === -1 ? '' : topic.slice(0, colon);
  const id = topic.slice(colon + 1);
  if (!PREFIXED.has(prefix) || !ID_PATTERN.test(id)) {
    throw new WireError(ErrorCode.INVALID_TOPIC, `unknown topic "${topic.slice(0, 140)}": use stories, story:<id>, author:<id>, presence:<id> or user:<your id>`);
  }
  return { kind: prefix as ParsedTopic['kind'], id };
}

/** Topics whose events carry offsets and are kept in history (HISTORY_SIZE, HISTORY_TTL_S): they can be resumed. */
export function isRecoverable(topic: string): boolean {
  return topic.startsWith('user:') || topic.startsWith('story:');
}

/** Events that are never stored nor numbered, even on recoverable topics: they are only true now. */
const EPHEMERAL: ReadonlySet<string> = new Set(['user:typing', 'user:stopped_typing', 'notifications:read']);

/** An event of this type on this topic is numbered and stored. */
export const isNumbered = (type: string, topic: string): boolean => isRecoverable(topic) && !EPHEMERAL.has(type);

/** `user:<id>` for a direct conversation, `story:<id>` for a story's comment thread. */
export function checkTypingTarget(target: string): string {
  const t = parseTopic(target);
  if (t.kind !== 'user' && t.kind !== 'story') {
    throw new WireError(ErrorCode.INVALID_TOPIC, 'typing target must be user:<id> or story:<id>');
  }
  return target;
}

/** Throws unless `userId` may subscribe to `topic`. Returns true when the topic is one joined automatically. */
export function checkSubscribe(topic: string, userId: string): ParsedTopic {
  const parsed = parseTopic(topic);
  if (parsed.kind === 'user' && parsed.id !== userId) {
    throw new WireError(ErrorCode.TOPIC_FORBIDDEN, 'the personal topic of another user is private');
  }
  return parsed;
}
