// sendNotificationToUser: a notification to each user's personal topic, on all of their connections; one a
// user sent (`origin: "user"`) is stored only into a history that exists (or for a recipient known to be real:
// approved by the notify proxy, or online now), within the user-sent share of it.
import { randomUUID } from 'node:crypto';
import { idFromKey, type KeyedPublish } from '../pubsub/idempotency.js';
import { emitAll, type PubSub, type StoreOption } from '../pubsub/pubsub.js';
import type { NotificationInput } from '../wire/protocol.js';
import { notificationFrame } from '../wire/frames.js';
import { userTopic } from '../wire/topics.js';

/** `system`: the backend API or an embedded helper; `user`: a client's `send:notification`. */
export type Origin = 'user' | 'system';

export interface Notification extends NotificationInput {
  id: string;
  from: string | null;
  origin: Origin;
  ts: number;
}

/**
 * Builds the notification (id and ts stamped by the server) and the delivery of it to every user. Under an
 * idempotency key the id is the key's, so that every retry names the same notification.
 */
export function sendNotification(
  pubsub: PubSub,
  userIds: readonly string[],
  input: NotificationInput,
  from: string | null,
  keyed?: KeyedPublish,
  origin: Origin = 'system',
  /** A user-sent notification may begin the recipient's history (the backend approved the pair, or the recipient is online). */
  mayBeginHistory = false,
): { notification: Notification; delivered: Promise<number> } {
  const ts = Date.now();
  const id = keyed === undefined ? randomUUID() : idFromKey('notification', keyed.key);
  const notification: Notification = { id, title: input.title, message: input.message, type: input.type, data: input.data, from, origin, ts };
  const emit = (userId: string) => {
    const topic = userTopic(userId);
    // A user cannot make a history for a made-up recipient (nor flush one): live only without one unless the
    // recipient is known to be real, and a share of it.
    const store: StoreOption | undefined = origin === 'user' ? { ifStreamExists: !mayBeginHistory, user: true, stored: undefined } : undefined;
    return pubsub.emit('notification:received', topic, notificationFrame(topic, notification), undefined, keyed?.part(), store);
  };
  // One recipient (every client-sent notification) needs no gathering of results.
  const delivered = userIds.length === 1 ? emit(userIds[0]!) : emitAll([...new Set(userIds)].map(emit));
  return { notification, delivered };
}
