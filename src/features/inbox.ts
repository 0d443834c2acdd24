// The notification inbox: the user's recent notifications from the personal topic's history, their read
// state from the read-state store, and read changes pushed to the user's other devices.
import { ErrorCode, WireError } from '../wire/codes.js';
import type { HistoryStore } from '../seams/history/types.js';
import type { ReadStateStore } from '../seams/readstate/types.js';
import type { PubSub } from '../pubsub/pubsub.js';
import type { UWS } from '../uws.js';
import { eventFrame } from '../wire/frames.js';
import { userTopic } from '../wire/topics.js';

export interface InboxItem {
  id: string;
  offset: number;
  read: boolean;
  [k: string]: unknown;
}

export interface InboxPage {
  notifications: InboxItem[];
  unreadCount: number;
  epoch: string;
  offset: number;
}

interface StoredFrame {
  type: string;
  offset: number;
  data: { id: string; [k: string]: unknown };
}

export class Inbox {
  constructor(
    private readonly history: HistoryStore,
    private readonly reads: ReadStateStore,
    private readonly pubsub: PubSub,
    /** How many frames of the personal topic are kept: the inbox cannot hold more. */
    private readonly historySize: number,
    /** User-sent notifications (`origin: "user"`) shown at most, the newest (NOTIFY_USER_SHARE of HISTORY_SIZE). */
    private readonly userShare: number = historySize,
  ) {}

  private async all(userId: string): Promise<{ items: InboxItem[]; epoch: string; offset: number }> {
    const topic = userTopic(userId);
    const [frames, read, position] = await Promise.all([this.history.latest(topic, this.historySize), this.reads.get(userId), this.history.position(topic)]);
    const items: InboxItem[] = [];
    // Newest first: past the share, older user-sent ones are left out (a history that holds more than its
    // share, such as one written before the bound, still shows only the share beside the system ones).
    let users = 0;
    for (const f of frames) {
      const parsed = JSON.parse(f) as StoredFrame;
      if (parsed.type !== 'notification:received') continue;
      if (parsed.data['origin'] === 'user' && ++users > this.userShare) continue;
      items.push({ ...parsed.data, offset: parsed.offset, read: parsed.offset <= read.allUpTo || read.ids.has(parsed.data.id) });
    }
    return { items, ...position };
  }

  /** The newest `limit` notifications (default 50), newest first, with the unread count of all stored ones. */
  async list(userId: string, limit = 50): Promise<InboxPage> {
    const { items, epoch, offset } = await this.all(userId);
    return { notifications: items.slice(0, limit), unreadCount: items.filter((i) => !i.read).length, epoch, offset };
  }

  /** Marks one notification or all of them read; tells the user's other connections; returns the new unread count. */
  async markRead(userId: string, change: { id: string } | { all: true }, from?: UWS.WebSocket<unknown>): Promise<number> {
    const topic = userTopic(userId);
    // One read of the inbox: the new unread count follows from it and the change.
    const { items, offset } = await this.all(userId);
    let event: { ids?: string[]; allUpTo?: number };
    let stillUnread: (i: InboxItem) => boolean;
    if ('all' in change) {
      await this.reads.mark(userId, { allUpTo: offset });
      event = { allUpTo: offset };
      stillUnread = (i) => !i.read && i.offset > offset;
    } else {
      if (!items.some((i) => i.id === change.id)) throw new WireError(ErrorCode.NOT_FOUND, `no notification ${change.id} in the inbox`, 404);
      await this.reads.mark(userId, { id: change.id });
      event = { ids: [change.id] };
      stillUnread = (i) => !i.read && i.id !== change.id;
    }
    const unreadCount = items.filter(stillUnread).length;
    await this.pubsub.emit('notifications:read', topic, eventFrame('notifications:read', topic, { ...event, unreadCount }), from);
    return unreadCount;
  }
}
