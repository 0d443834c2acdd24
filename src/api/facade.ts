// The embedded API: what the app's backend calls in-process (the seed's sendNotificationToUser,
// broadcastNewStory, ...), and what the HTTP API (routes.ts) calls for each route.
import type { Connections } from '../edge/connections.js';
import type { Presence } from '../features/presence.js';
import { sendNotification, type Notification } from '../features/notifications.js';
import { broadcastNewChapter, broadcastNewStory, broadcastStoryUpdated, type BroadcastResult } from '../features/stories.js';
import { keyedFrom, type KeyedPublish, type PublishOptions } from '../pubsub/idempotency.js';
import type { PubSub } from '../pubsub/pubsub.js';
import type { Backplane } from '../seams/backplane/types.js';
import type { Position } from '../seams/history/types.js';
import { CloseCode, ErrorCode, WireError } from '../wire/codes.js';
import { rawEventFrame } from '../wire/frames.js';
import { parseNotification, type ChapterInput, type JsonObject, type Limits, type NotificationInput, type StoryInput } from '../wire/protocol.js';

/**
 * Publishing operations resolve with the number of connections on this node handed the event, once the
 * other nodes have it too; they reject with a PartialDelivery (UNAVAILABLE, `.delivered`, `.stored`) otherwise.
 * `options.idempotencyKey` (or a KeyedPublish, whose `duplicate` tells afterwards): a retry with the same key
 * within IDEMPOTENCY_TTL_S stores and delivers nothing new and resolves with 0 delivered.
 */
export interface Facade {
  sendNotificationToUser(userIds: string | readonly string[], notification: NotificationInput, from?: string | null, options?: PublishOptions | KeyedPublish): { notification: Notification; delivered: Promise<number> };
  broadcastNewStory(story: StoryInput, authorId?: string | null, options?: PublishOptions | KeyedPublish): BroadcastResult;
  broadcastStoryUpdated(story: JsonObject & { id: string }, authorId?: string | null, options?: PublishOptions | KeyedPublish): BroadcastResult;
  broadcastNewChapter(chapter: ChapterInput, authorId?: string | null, options?: PublishOptions | KeyedPublish): BroadcastResult;
  /** A backend-defined event on any topic (no schema; `data` passed through). */
  publish(topic: string, type: string, data: object, options?: PublishOptions | KeyedPublish): BroadcastResult;
  isOnline(userId: string): Promise<boolean>;
  onlineUsers(userIds: readonly string[]): Promise<string[]>;
  /** Closes every connection of the user with `code`, on every node; resolves with how many were closed. */
  disconnectUser(userId: string, code?: number, reason?: string): Promise<number>;
  /**
   * Ends the user's subscription to a channel on every node (a revocation): each subscribed connection gets an
   * `unsubscribed` event with SUBSCRIPTION_REVOKED. Resolves with how many connections were unsubscribed.
   */
  unsubscribeUser(userId: string, channel: string, reason?: string): Promise<number>;
  /** Open connections of a user on this node. */
  connectionsOf(userId: string): number;
}

/**
 * A notification from embedding code, which no parser has seen (plain JavaScript may leave `type` out or pass a
 * number as `title`): one that is not already well-formed goes through the wire's parser, which fills the
 * defaults (`type` "info") or throws INVALID_PAYLOAD naming the field, so that nothing unserializable is stored.
 * Sizes are the caller's business here (the HTTP route has checked them already).
 */
function checked(n: NotificationInput): NotificationInput {
  if (typeof n === 'object' && n !== null && typeof n.title === 'string' && typeof n.message === 'string' && typeof n.type === 'string') return n;
  return parseNotification(n, 'notification', UNBOUNDED);
}

const UNBOUNDED: Limits = { maxNotificationBytes: Infinity, maxStoryBytes: Infinity, maxPresenceIds: Infinity };

/** Ends a user's subscription to a channel on this node; returns how many connections were subscribed. */
export type Revoke = (userId: string, channel: string, reason: string) => number;

/** Called once per recipient whose history stored a notification (the push fallback's tracking). */
export type OnStored = (userId: string, at: Position, notification: Notification) => void;

export function createFacade(pubsub: PubSub, presence: Presence, connections: Connections, backplane: Backplane, revoke: Revoke, onStored?: OnStored): Facade {
  return {
    sendNotificationToUser(userIds, notification, from = null, options) {
      const ids = typeof userIds === 'string' ? [userIds] : userIds;
      notification = checked(notification);
      return sendNotification(pubsub, ids, notification, from, { keyed: keyedFrom(options, 'notification', [ids, notification, from]), onStored });
    },
    broadcastNewStory: (story, authorId = null, options) => broadcastNewStory(pubsub, story, authorId, keyedFrom(options, 'story:new', [story, authorId])),
    broadcastStoryUpdated: (story, authorId = null, options) => broadcastStoryUpdated(pubsub, story, authorId, keyedFrom(options, 'story:updated', [story, authorId])),
    broadcastNewChapter: (chapter, authorId = null, options) => broadcastNewChapter(pubsub, chapter, authorId, keyedFrom(options, 'chapter:new', [chapter, authorId])),
    publish(topic, type, data, options) {
      const keyed = keyedFrom(options, 'publish', [topic, type, data]);
      return pubsub.emit(type, topic, rawEventFrame(type, topic, data), undefined, keyed?.part());
    },
    isOnline: (userId) => presence.isOnline(userId),
    onlineUsers: (userIds) => presence.online(userIds),
    async disconnectUser(userId, code = CloseCode.TOKEN_REVOKED, reason = 'disconnected by the server') {
      const local = connections.disconnect(userId, code, reason);
      try {
        return local + (await backplane.disconnectUser(userId, code, reason));
      } catch {
        throw new WireError(ErrorCode.UNAVAILABLE, `closed ${local} connection(s) on this node; the other nodes could not be reached`, 503);
      }
    },
    async unsubscribeUser(userId, channel, reason = 'subscription revoked by the server') {
      const local = revoke(userId, channel, reason);
      try {
        return local + (await backplane.unsubscribeUser(userId, channel, reason));
      } catch {
        throw new WireError(ErrorCode.UNAVAILABLE, `unsubscribed ${local} connection(s) on this node; the other nodes could not be reached`, 503);
      }
    },
    connectionsOf: (userId) => connections.of(userId),
  };
}
