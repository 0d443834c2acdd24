// Story, chapter and profile events: who hears them and what the server stamps on them.
import type { KeyedPublish } from '../pubsub/idempotency.js';
import { emitAll, type PubSub } from '../pubsub/pubsub.js';
import type { UWS } from '../uws.js';
import type { ChapterInput, JsonObject, StoryInput } from '../wire/protocol.js';
import { eventFrame, type EventType } from '../wire/frames.js';
import { STORIES, authorTopic, storyTopic, userTopic } from '../wire/topics.js';

/** Connections on this node the event was handed to, summed over its topics; rejects with PartialDelivery. */
export type BroadcastResult = Promise<number>;

function publishAll(pubsub: PubSub, type: EventType, topics: readonly string[], data: object, except?: UWS.WebSocket<unknown>, keyed?: KeyedPublish): BroadcastResult {
  const ts = Date.now();
  return emitAll(topics.map((topic) => pubsub.emit(type, topic, eventFrame(type, topic, data, ts), except, keyed?.part())));
}

/** `story:new` to `stories` and, when the author is known, `author:<authorId>`. */
export function broadcastNewStory(pubsub: PubSub, story: StoryInput, authorId: string | null, keyed?: KeyedPublish): BroadcastResult {
  const topics = authorId === null ? [STORIES] : [STORIES, authorTopic(authorId)];
  return publishAll(pubsub, 'story:new', topics, { ...story, authorId }, undefined, keyed);
}

/** `story:updated` to `stories`, `story:<id>` and the author's followers. */
export function broadcastStoryUpdated(pubsub: PubSub, story: JsonObject & { id: string }, authorId: string | null, keyed?: KeyedPublish): BroadcastResult {
  const topics = [STORIES, storyTopic(story.id)];
  if (authorId !== null) topics.push(authorTopic(authorId));
  return publishAll(pubsub, 'story:updated', topics, { ...story, authorId }, undefined, keyed);
}

/** `chapter:new` to the story's readers (`story:<storyId>`) and the author's followers. */
export function broadcastNewChapter(pubsub: PubSub, chapter: ChapterInput, authorId: string | null, keyed?: KeyedPublish): BroadcastResult {
  const topics = authorId === null ? [storyTopic(chapter.storyId)] : [storyTopic(chapter.storyId), authorTopic(authorId)];
  return publishAll(pubsub, 'chapter:new', topics, { ...chapter, authorId }, undefined, keyed);
}

/** `profile:updated` to the user's followers and to the user's own other connections. */
export function profileUpdated(pubsub: PubSub, userId: string, profile: JsonObject, except?: UWS.WebSocket<unknown>): BroadcastResult {
  return publishAll(pubsub, 'profile:updated', [authorTopic(userId), userTopic(userId)], { ...profile, userId }, except);
}

/** A client's publication on a channel its namespace lets it publish to (checked by the caller). */
export function publishAs(pubsub: PubSub, channel: string, senderId: string, data: JsonObject): BroadcastResult {
  return publishAll(pubsub, 'publication', [channel], { ...data, senderId });
}
