// sendNotificationToUser: a notification to each user's personal topic, on all of their connections; one a
// user sent (`origin: "user"`) is stored only into a history that exists (or for a recipient known to be real:
// approved by the notify proxy, or online now), within the user-sent share of it.
import { idFromKey, type KeyedPublish } from '../pubsub/idempotency.js';
import { emitAll, type PubSub, type StoreOption } from '../pubsub/pubsub.js';
import type { NotificationInput } from '../wire/protocol.js';
import type { Position } from '../seams/history/types.js';
import { notificationHead, notificationTail } from '../wire/frames.js';
import { randomId } from '../wire/ids.js';
import { userTopic } from '../wire/topics.js';

/** `system`: the backend API or an embedded helper; `user`: a client's `send:notification`. */
export type Origin = 'user' | 'system';

export interface Notification extends NotificationInput {
  id: string;
  from: string | null;
  origin: Origin;
  ts: number;
}

/** What a send may add: its idempotency key, who sent it, and who follows what got stored (push tracking). */
export interface SendOptions {
  keyed?: KeyedPublish | undefined;
  origin?: Origin;
  /** A user-sent notification may begin the recipient's history (the backend approved the pair, or the recipient is online). */
  mayBeginHistory?: boolean;
  /** Called once per recipient whose history stored it, with its position (features/push.ts). */
  onStored?: ((userId: string, at: Position, notification: Notification) => void) | undefined;
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
  options: SendOptions = {},
): { notification: Notification; delivered: Promise<number> } {
  const r = sendNotificationNow(pubsub, userIds, input, from, options);
  const d = r.delivered;
  return { notification: r.notification, delivered: typeof d === 'number' ? Promise.resolve(d) : d };
}

/**
 * sendNotification(), its delivery settled in the turn when it can be (a single node in memory): then a number,
 * not a promise (a client's `send:notification`, the hot path).
 */
export function sendNotificationNow(
  pubsub: PubSub,
  userIds: readonly string[],
  input: NotificationInput,
  from: string | null,
  options: SendOptions = {},
): { notification: Notification; delivered: number | Promise<number> } {
  const { keyed, origin = 'system', mayBeginHistory = false, onStored } = options;
  const ts = Date.now();
  const id = keyed === undefined ? randomId() : idFromKey('notification', keyed.key);
  const notification: Notification = { id, title: input.title, message: input.message, type: input.type, data: input.data, from, origin, ts };
  // The same for every recipient: only the head names the topic.
  const tail = notificationTail(notification);
  const emit = (userId: string): number | Promise<number> => {
    const topic = userTopic(userId);
    const head = notificationHead(topic);
    // A user cannot make a history for a made-up recipient (nor flush one): live only without one unless the
    // recipient is known to be real, and a share of it.
    let store: StoreOption | undefined = origin === 'user' ? { ifStreamExists: !mayBeginHistory, user: true, stored: undefined } : undefined;
    if (onStored === undefined) return pubsub.emitParts('notification:received', topic, head, tail, undefined, keyed?.part(), store);
    // Stored as without the option: it is there only to be told the position.
    store ??= { ifStreamExists: false, stored: undefined };
    const s = store;
    const told = (n: number): number => {
      if (s.at !== undefined) onStored(userId, s.at, notification);
      return n;
    };
    const r = pubsub.emitParts('notification:received', topic, head, tail, undefined, keyed?.part(), s);
    return typeof r === 'number' ? told(r) : r.then(told);
  };
  // One recipient (every client-sent notification) needs no gathering of results.
  const delivered = userIds.length === 1 ? emit(userIds[0]!) : emitAll([...new Set(userIds)].map(emit));
  return { notification, delivered };
}
