// Keeps the notification store in step with the server's inbox: refilled on every connection, reads sent and received.
import { ClientErrorCode, ServerErrorCode, StorywireError } from './codes.js';
import type { NotificationStore, StoredNotification } from './store.js';
import type { NotificationsReadEvent, RequestOptions } from './types.js';

interface InboxPage {
  notifications: StoredNotification[];
  unreadCount: number;
}

type Request = <T>(type: string, data: unknown, opts: RequestOptions) => Promise<T>;

/** Errors that only mean "not now": the read is kept and sent on the next connection. */
const LATER: ReadonlySet<string> = new Set([ClientErrorCode.NOT_CONNECTED, ClientErrorCode.DISCONNECTED, ClientErrorCode.TIMEOUT]);
const GONE: ReadonlySet<string> = new Set([ClientErrorCode.NOT_CONNECTED, ClientErrorCode.DISCONNECTED, ClientErrorCode.CLOSED]);

export class InboxSync {
  /** Reads not yet acknowledged by the server: applied again over a refill, and sent on the next connection. */
  private unsentIds = new Set<string>();
  private unsentAll = false;

  constructor(
    private readonly store: NotificationStore,
    private readonly request: Request,
    private readonly isConnected: () => boolean,
    /** Failures nobody awaits (the automatic refill, reads made through the store). */
    private readonly report: (err: StorywireError) => void,
  ) {
    store.bindSync((change) => {
      this.send(change).catch((err: StorywireError) => this.report(err));
    });
  }

  /** On every connection: load(), with failures reported (a lost connection is not one: the next one loads again). */
  autoLoad(): void {
    this.load().catch((err: StorywireError) => {
      if (!GONE.has(err.code)) this.report(err);
    });
  }

  /**
   * Merges `notifications:list` into the store. A server without an inbox (`UNKNOWN_TYPE`) leaves the store
   * as it is: local only, as with the seed.
   */
  async load(): Promise<void> {
    let page: InboxPage;
    try {
      page = await this.request<InboxPage>('notifications:list', { limit: Math.min(this.store.capacity, 1000) }, { offline: 'reject' });
    } catch (err) {
      if ((err as StorywireError).code === ServerErrorCode.UNKNOWN_TYPE) return;
      throw err;
    }
    this.store.merge(page.notifications, page.unreadCount);
    // Reads made while offline are not in the server's answer yet: show them read and send them now.
    const all = this.unsentAll;
    const ids = [...this.unsentIds];
    this.unsentAll = false;
    this.unsentIds.clear();
    if (all) {
      this.store.setAllRead('local');
      await this.send({ all: true }).catch((e: StorywireError) => this.report(e));
    }
    for (const id of ids) {
      this.store.setRead(id, 'local');
      await this.send({ id }).catch((e: StorywireError) => this.report(e));
    }
  }

  /**
   * Tells the server (already applied to the store). Resolves with the unread count: the server's, or the
   * store's when the read waits for the next connection or the server has no inbox.
   */
  async send(change: { id: string } | { all: true }): Promise<number> {
    if (!this.isConnected()) {
      this.remember(change);
      return this.store.unreadCount;
    }
    try {
      const ack = await this.request<{ unreadCount: number }>('notifications:read', change, { offline: 'reject' });
      this.store.serverUnread(ack.unreadCount);
      return ack.unreadCount;
    } catch (err) {
      const code = (err as StorywireError).code;
      if (LATER.has(code)) this.remember(change);
      // NOT_FOUND: the server no longer holds it (out of its history): nothing to mark there.
      else if (code !== ServerErrorCode.UNKNOWN_TYPE && code !== ServerErrorCode.NOT_FOUND) throw err;
      return this.store.unreadCount;
    }
  }

  /** Another device read notifications. */
  remote(e: NotificationsReadEvent): void {
    this.store.applyRemoteRead(e);
  }

  private remember(change: { id: string } | { all: true }): void {
    if ('all' in change) {
      this.unsentAll = true;
      this.unsentIds.clear();
    } else if (!this.unsentAll) {
      this.unsentIds.add(change.id);
    }
  }
}
