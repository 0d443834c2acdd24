// The notification store: the last N notifications, newest first, with read state and change events.
import { Emitter } from './emitter.js';
import type { Notification } from './types.js';

export interface StoredNotification extends Notification {
  read: boolean;
}

export interface NotificationChange {
  kind: 'added' | 'read' | 'all-read' | 'cleared';
  /** The notification added or marked read (absent for all-read and cleared). */
  notification?: StoredNotification;
}

export class NotificationStore {
  private list: StoredNotification[] = [];
  private unread = 0;
  private readonly events = new Emitter<{ change: [change: NotificationChange, store: NotificationStore] }>();

  constructor(readonly capacity = 50) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('maxNotifications must be an integer >= 1');
  }

  /** Newest first; a new array on every change, so it can be handed to a UI as is. */
  get items(): readonly StoredNotification[] {
    return this.list;
  }

  get unreadCount(): number {
    return this.unread;
  }

  /** Adds a notification; one already held (same id) is ignored. Returns whether it was added. */
  add(n: Notification): boolean {
    if (this.list.some((x) => x.id === n.id)) return false;
    const stored: StoredNotification = { ...n, read: false };
    const next = [stored, ...this.list];
    for (const dropped of next.splice(this.capacity)) if (!dropped.read) this.unread--;
    this.list = next;
    this.unread++;
    this.events.emit('change', { kind: 'added', notification: stored }, this);
    return true;
  }

  /** Marks one notification read; returns false when it is unknown or already read. */
  markAsRead(id: string): boolean {
    const i = this.list.findIndex((x) => x.id === id);
    const current = this.list[i];
    if (!current || current.read) return false;
    const updated = { ...current, read: true };
    this.list = this.list.map((x, j) => (j === i ? updated : x));
    this.unread--;
    this.events.emit('change', { kind: 'read', notification: updated }, this);
    return true;
  }

  /** Marks every notification read; returns how many changed. */
  markAllAsRead(): number {
    const n = this.unread;
    if (n === 0) return 0;
    this.list = this.list.map((x) => (x.read ? x : { ...x, read: true }));
    this.unread = 0;
    this.events.emit('change', { kind: 'all-read' }, this);
    return n;
  }

  clear(): void {
    this.list = [];
    this.unread = 0;
    this.events.emit('change', { kind: 'cleared' }, this);
  }

  /** Called on every change with what changed and the store; returns a function that removes the listener. */
  onChange(fn: (change: NotificationChange, store: NotificationStore) => void): () => void {
    return this.events.on('change', fn);
  }
}
