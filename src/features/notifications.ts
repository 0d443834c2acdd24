// sendNotificationToUser: a notification to each user's personal topic, on all of their connections.
import { randomUUID } from 'node:crypto';
import type { PubSub } from '../pubsub.js';
import type { NotificationInput } from '../protocol.js';
import { eventFrame } from '../serialize.js';
import { userTopic } from './topics.js';

export interface Notification extends NotificationInput {
  id: string;
  from: string | null;
  ts: number;
}

export interface SendResult {
  /** The notification as delivered (id and ts stamped by the server). */
  notification: Notification;
  /** Connections on this node that received it, over all target users. */
  delivered: number;
  /** Settles when the other nodes have it. */
  remote: Promise<void>;
}

export function sendNotification(pubsub: PubSub, userIds: readonly string[], input: NotificationInput, from: string | null): SendResult {
  const ts = Date.now();
  const notification: Notification = { id: randomUUID(), title: input.title, message: input.message, type: input.type, data: input.data, from, ts };
  let delivered = 0;
  const remotes: Promise<void>[] = [];
  for (const userId of new Set(userIds)) {
    const topic = userTopic(userId);
    const r = pubsub.publish('notification:received', topic, eventFrame('notification:received', topic, notification, ts));
    delivered += r.local;
    remotes.push(r.remote);
  }
  return { notification, delivered, remote: Promise.all(remotes).then(() => undefined) };
}
