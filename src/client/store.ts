// The notification store: the last N notifications, newest first, with read state and change events; mirrors the server's inbox when it has one.
import { Emitter } from './emitter.js';
import type { Notification, NotificationsReadEvent } from './types.js';

export interface StoredNotification extends Notification {
  read: boolean;
  /** Its offset in the user's topic, when the server numbers events (servers with history). */
  offset?: number;
}

export interface NotificationChange {
  /** synced: the store was refilled from the server's inbox (on every connection) or its unread count corrected. */
  kind: 'added' | 'read' | 'all-read' | 'cleared' | 'synced';
  /** local: this client's call; server: the server's inbox, or another device of the user. */
  source: 'local' | 'server';
  /** The notification added or marked read (absent for all-read, cleared and synced). */
  notification?: StoredNotification;
}

/** What the store asks the server to do when the app marks notifications read (set by the client). */
export type ReadSync = (change: { id: string } | { all: true }) => void;

export class NotificationStore {
  private list: StoredNotification[] = [];
  private unread = 0;
  /** Unread notifications the server counts that the store does not hold (beyond its capacity). */
  private beyond = 0;
  private sync: ReadSync | undefined;
  private readonly events = new Emitter<{ change: [change: NotificationChange, store: NotificationStore] }>();

  constructor(readonly capacity = 50) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('maxNotifications must be an integer >= 1');
  }

  /** Newest first; a new array on every change, so it can be handed to a UI as is. */
  get items(): readonly StoredNotification[] {
    return this.list;
  }

  /** The server's count when it gives one (inbox, read acks, other devices), kept up to date locally in between. */
  get unreadCount(): number {
    return this.unread + this.beyond;
  }

  /** Adds a notification; one already held (same id) is ignored. Returns whether it was added. */
  add(n: Notification, offset?: number): boolean {
    if (this.list.some((x) => x.id === n.id)) return false;
    const stored: StoredNotification = offset === undefined ? { ...n, read: false } : { ...n, offset, read: false };
    const next = [stored, ...this.list];
    for (const dropped of next.splice(this.capacity)) if (!dropped.read) this.unread--;
    this.list = next;
    this.unread++;
    this.emit('added', 'local', stored);
    return true;
  }

  /** Marks one notification read, here and (through the client) on the server; false when unknown or already read. */
  markAsRead(id: string): boolean {
    const changed = this.setRead(id, 'local');
    if (changed) this.sync?.({ id });
    return changed;
  }

  /** Marks every notification read, here and on the server; returns how many changed here. */
  markAllAsRead(): number {
    const n = this.setAllRead('local');
    if (n > 0) this.sync?.({ all: true });
    return n;
  }

  clear(): void {
    this.list = [];
    this.unread = 0;
    this.beyond = 0;
    this.emit('cleared', 'local');
  }

  /** Called on every change with what changed and the store; returns a function that removes the listener. */
  onChange(fn: (change: NotificationChange, store: NotificationStore) => void): () => void {
    return this.events.on('change', fn);
  }

  // ---- for the client (not for apps) ----

  /** @internal Where markAsRead()/markAllAsRead() are sent; unset, the store is local only. */
  bindSync(sync: ReadSync | undefined): void {
    this.sync = sync;
  }

  /** @internal Marks one read without telling the server. */
  setRead(id: string, source: NotificationChange['source']): boolean {
    const i = this.list.findIndex((x) => x.id === id);
    const current = this.list[i];
    if (!current || current.read) return false;
    const updated = { ...current, read: true };
    this.list = this.list.map((x, j) => (j === i ? updated : x));
    this.unread--;
    this.emit('read', source, updated);
    return true;
  }

  /** @internal Marks all read (or those at or below `upTo`) without telling the server; returns how many changed. */
  setAllRead(source: NotificationChange['source'], upTo?: number): number {
    const hit = (x: StoredNotification) => !x.read && (upTo === undefined || x.offset === undefined || x.offset <= upTo);
    const n = this.list.filter(hit).length;
    if (upTo === undefined) this.beyond = 0;
    if (n === 0) return 0;
    this.list = this.list.map((x) => (hit(x) ? { ...x, read: true } : x));
    this.unread -= n;
    this.emit('all-read', source);
    return n;
  }

  /** @internal Applies another device's `notifications:read`. */
  applyRemoteRead(e: NotificationsReadEvent): void {
    for (const id of e.ids ?? []) this.setRead(id, 'server');
    if (typeof e.allUpTo === 'number') this.setAllRead('server', e.allUpTo);
    this.serverUnread(e.unreadCount);
  }

  /** @internal The server's unread count (a read ack or event): the part the store does not hold is `beyond`. */
  serverUnread(count: number): void {
    const before = this.unreadCount;
    this.beyond = Math.max(0, count - this.unread);
    if (this.unreadCount !== before) this.emit('synced', 'server');
  }

  /**
   * @internal Merges the server's inbox (with read flags and the server's unread count): the server's copy wins
   * for every id it holds; notifications it does not hold (they arrived after it answered, or its history was
   * lost with a restart) stay as they are. Newest first by `ts`, then capped.
   */
  merge(inbox: readonly StoredNotification[], unreadCount: number): void {
    const fromServer = new Set(inbox.map((n) => n.id));
    const localOnly = this.list.filter((n) => !fromServer.has(n.id));
    const merged = [...inbox.map((n) => ({ ...n })), ...localOnly].sort((a, b) => b.ts - a.ts || (b.offset ?? 0) - (a.offset ?? 0));
    this.list = merged.slice(0, this.capacity);
    this.unread = this.list.filter((n) => !n.read).length;
    const held = new Set(this.list.map((n) => n.id));
    this.beyond = Math.max(0, unreadCount + localOnly.filter((n) => !n.read && held.has(n.id)).length - this.unread);
    this.emit('synced', 'server');
  }

  private emit(kind: NotificationChange['kind'], source: NotificationChange['source'], notification?: StoredNotification): void {
    this.events.emit('change', notification ? { kind, source, notification } : { kind, source }, this);
  }
}
