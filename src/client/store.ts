// The notification store: the last N notifications, newest first, with read state and change events; mirrors the server's inbox when it has one.
import { Emitter } from './emitter.js';
import type { Notification, NotificationsReadEvent } from './types.js';

export interface StoredNotification extends Notification {
  read: boolean;
  /** Its offset in the user's topic, when the server numbers events (servers with history). */
  offset?: number;
  /** The history epoch its offset belongs to (servers with history). */
  epoch?: string;
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

/** One answer of `notifications:list`; `epoch` and `offset` are absent on servers without history. */
export interface InboxPage {
  notifications: readonly StoredNotification[];
  unreadCount: number;
  epoch?: string;
  offset?: number;
}

/** Reads the server's answer may not show yet (not acknowledged, or acknowledged while it was prepared). */
export interface ReadOverrides {
  ids: Iterable<string>;
  /** A "mark all read" not acknowledged yet: everything held is read. */
  all: boolean;
  /** Another device's "all read up to" this offset (of the page's epoch). */
  upTo?: number;
}

export class NotificationStore {
  private list: StoredNotification[] = [];
  private unread = 0;
  /**
   * Unread notifications the server holds that the store does not show (beyond its capacity), by id with their
   * offset: known from a page that listed the whole inbox, or dropped from the store while the server keeps them.
   */
  private hidden = new Map<string, number>();
  /** Unread notifications the server counts and no page listed (its inbox was larger than the page; servers without history). */
  private beyond = 0;
  /**
   * True once a page with a position (epoch, offset) was merged: the store then mirrors the inbox exactly and
   * its unread count follows from its own items and `beyond`; a server count that differs is a sign to refill.
   */
  private exact = false;
  /** How many offsets of the topic the server keeps (`connected.data.limits.historySize`), when known. */
  private historySize: number | undefined;
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
    return this.unread + this.hidden.size + this.beyond;
  }

  /** Adds a notification; one already held (same id) is ignored. Returns whether it was added. */
  add(n: Notification, offset?: number, epoch?: string): boolean {
    if (this.list.some((x) => x.id === n.id)) return false;
    const stored: StoredNotification = { ...n, read: false };
    if (offset !== undefined) stored.offset = offset;
    if (epoch !== undefined) stored.epoch = epoch;
    const next = [stored, ...this.list];
    for (const dropped of next.splice(this.capacity)) {
      if (dropped.read) continue;
      this.unread--;
      // Still in the server's history (it keeps more than the store): still unread there.
      if (dropped.offset !== undefined && this.serverHolds(dropped, epoch, offset)) this.hidden.set(dropped.id, dropped.offset);
    }
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
    this.hidden.clear();
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

  /** @internal The server's history size, from `connected`: what falls out of the store may still be in its inbox. */
  serverKeeps(historySize: number | undefined): void {
    this.historySize = historySize;
  }

  /** @internal Marks one read without telling the server. */
  setRead(id: string, source: NotificationChange['source']): boolean {
    const i = this.list.findIndex((x) => x.id === id);
    const current = this.list[i];
    if (!current) {
      if (this.hidden.delete(id)) this.emit('synced', source);
      return false;
    }
    if (current.read) return false;
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
    const before = this.unreadCount;
    for (const [id, offset] of this.hidden) if (upTo === undefined || offset <= upTo) this.hidden.delete(id);
    if (upTo === undefined) this.beyond = 0;
    if (n === 0) {
      if (this.unreadCount !== before) this.emit('synced', source);
      return 0;
    }
    this.list = this.list.map((x) => (hit(x) ? { ...x, read: true } : x));
    this.unread -= n;
    this.emit('all-read', source);
    return n;
  }

  /** @internal Applies another device's `notifications:read`; returns serverUnread()'s verdict on its count. */
  applyRemoteRead(e: NotificationsReadEvent): boolean {
    for (const id of e.ids ?? []) this.setRead(id, 'server');
    if (typeof e.allUpTo === 'number') {
      this.setAllRead('server', e.allUpTo);
      // Everything the store does not hold is older than what it holds, hence at or below allUpTo.
      this.beyond = 0;
    }
    return this.serverUnread(e.unreadCount);
  }

  /**
   * @internal The server's unread count (a read ack or event). Once the store mirrors a positioned inbox its
   * own count is exact and a different server count is not adopted (it may be older or newer than what the
   * store has applied): false says they differ, and the client refills when nothing is in flight. Before that
   * (servers without history), the part the store does not hold becomes `beyond`.
   */
  serverUnread(count: number): boolean {
    if (this.exact) return count === this.unreadCount;
    const before = this.unreadCount;
    this.beyond = Math.max(0, count - this.unread);
    if (this.unreadCount !== before) this.emit('synced', 'server');
    return true;
  }

  /**
   * @internal Drops what the server's history no longer holds: notifications of `epoch` at or below `upTo`
   * (the server keeps the newest `historySize` offsets of the topic). Whatever lies beyond the store is older
   * still, so it goes too.
   */
  trim(epoch: string, upTo: number): void {
    if (!this.exact) return;
    const gone = (n: StoredNotification) => n.epoch === epoch && n.offset !== undefined && n.offset <= upTo;
    const before = this.unreadCount;
    // Hidden ones belong to the epoch of the last page, the one trimmed (the client refills on another).
    for (const [id, offset] of this.hidden) if (offset <= upTo) this.hidden.delete(id);
    if (this.list.some(gone)) {
      this.list = this.list.filter((n) => !gone(n));
      this.unread = this.list.filter((n) => !n.read).length;
      this.beyond = 0;
    }
    if (this.unreadCount !== before) this.emit('synced', 'server');
  }

  /**
   * @internal Refills from the server's inbox. With a position (epoch, offset), the store becomes exactly the
   * page, plus the notifications of the same epoch numbered above the page's offset (they arrived after the
   * server answered); anything else it held is gone from the server (another epoch, or trimmed). Then the
   * reads the page may not show yet (`overrides`) are applied again, with one `synced` change for all of it.
   * Without a position (servers without history), the server's copy wins for every id it holds and the
   * others stay, as before.
   */
  merge(page: InboxPage, overrides: ReadOverrides = { ids: [], all: false }): void {
    const { epoch, offset } = page;
    if (typeof epoch !== 'string' || typeof offset !== 'number') {
      this.mergeLocal(page, overrides);
      return;
    }
    this.exact = true;
    const fromServer = new Set(page.notifications.map((n) => n.id));
    const later = this.list.filter((n) => !fromServer.has(n.id) && n.epoch === epoch && n.offset !== undefined && n.offset > offset);
    const merged = [...later, ...page.notifications.map((n) => ({ ...n, epoch }))].sort((a, b) => (b.offset ?? 0) - (a.offset ?? 0));
    this.list = merged.slice(0, this.capacity);
    this.hidden = new Map(merged.slice(this.capacity).flatMap((n) => (!n.read && n.offset !== undefined ? [[n.id, n.offset] as const] : [])));
    // Unread ones the page did not even list (the inbox is larger than the page).
    this.beyond = Math.max(0, page.unreadCount - page.notifications.filter((n) => !n.read).length);
    this.override(overrides);
    this.unread = this.list.filter((n) => !n.read).length;
    this.emit('synced', 'server');
  }

  private mergeLocal(page: InboxPage, overrides: ReadOverrides): void {
    const fromServer = new Set(page.notifications.map((n) => n.id));
    const localOnly = this.list.filter((n) => !fromServer.has(n.id));
    const merged = [...page.notifications.map((n) => ({ ...n })), ...localOnly].sort((a, b) => b.ts - a.ts || (b.offset ?? 0) - (a.offset ?? 0));
    this.list = merged.slice(0, this.capacity);
    this.unread = this.list.filter((n) => !n.read).length;
    this.hidden.clear();
    const held = new Set(this.list.map((n) => n.id));
    this.beyond = Math.max(0, page.unreadCount + localOnly.filter((n) => !n.read && held.has(n.id)).length - this.unread);
    this.override(overrides);
    this.unread = this.list.filter((n) => !n.read).length;
    this.emit('synced', 'server');
  }

  /** Whether the server's inbox still holds `n` once it holds `offset` of `epoch` (it keeps the newest historySize offsets). */
  private serverHolds(n: StoredNotification, epoch: string | undefined, offset: number | undefined): boolean {
    if (!this.exact || this.historySize === undefined || epoch === undefined || offset === undefined) return false;
    return n.epoch === epoch && n.offset !== undefined && n.offset > offset - this.historySize;
  }

  private override(o: ReadOverrides): void {
    const ids = new Set(o.ids);
    const upTo = o.upTo;
    const read = (n: StoredNotification) =>
      o.all || ids.has(n.id) || (upTo !== undefined && n.offset !== undefined && n.offset <= upTo);
    if (o.all || upTo !== undefined) this.beyond = 0;
    for (const [id, offset] of this.hidden) if (o.all || ids.has(id) || (upTo !== undefined && offset <= upTo)) this.hidden.delete(id);
    this.list = this.list.map((n) => (!n.read && read(n) ? { ...n, read: true } : n));
  }

  private emit(kind: NotificationChange['kind'], source: NotificationChange['source'], notification?: StoredNotification): void {
    this.events.emit('change', notification ? { kind, source, notification } : { kind, source }, this);
  }
}
