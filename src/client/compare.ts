// Compares a client's notification store with the server's inbox (tests, chaos harnesses, support tools).
import type { StorywireClient } from './client.js';
import { inboxLimit } from './inbox.js';
import type { InboxPage, StoredNotification } from './store.js';
import type { RequestOptions } from './types.js';

/**
 * Reads the server's inbox with `notifications:list` on the client's own connection (it does not touch the
 * store) and lists how the store differs from it: notifications missing or extra, read flags, order, the
 * unread count, and reads or a refill still on their way. An empty array means equal. Call it once things are
 * quiet (nothing published or read meanwhile), or poll it until it is empty. Rejects when not connected.
 */
export async function inboxDifferences(client: StorywireClient, opts: RequestOptions = {}): Promise<string[]> {
  const store = client.notifications;
  const all = await client.request<InboxPage>('notifications:list', { limit: inboxLimit(store.capacity, client.user?.limits['historySize']) }, { offline: 'reject', ...opts });
  // The store shows the newest `capacity` of them; the unread count covers them all.
  const page = { ...all, notifications: all.notifications.slice(0, store.capacity) };
  const out: string[] = [];
  const { unacknowledgedReads, refilling } = client.inboxState;
  if (unacknowledgedReads > 0) out.push(`${unacknowledgedReads} read(s) not acknowledged by the server yet`);
  if (refilling) out.push('a refill is on its way');
  const server = new Map<string, StoredNotification>(page.notifications.map((n) => [n.id, n]));
  const local = new Map<string, StoredNotification>(store.items.map((n) => [n.id, n]));
  const where = (n: StoredNotification) => `${n.id} (offset ${n.offset ?? '-'}, "${n.title}")`;
  for (const n of page.notifications) if (!local.has(n.id)) out.push(`missing from the store: ${where(n)}`);
  for (const n of store.items) if (!server.has(n.id)) out.push(`in the store, not on the server: ${where(n)}`);
  for (const n of store.items) {
    const s = server.get(n.id);
    if (s && s.read !== n.read) out.push(`read flag of ${where(n)}: store ${n.read}, server ${s.read}`);
  }
  const common = (ids: string[], other: Map<string, unknown>) => ids.filter((id) => other.has(id)).join(' ');
  if (common([...local.keys()], server) !== common([...server.keys()], local)) out.push('order: the store and the server list the same notifications in another order');
  if (store.unreadCount !== page.unreadCount) out.push(`unreadCount: store ${store.unreadCount}, server ${page.unreadCount}`);
  return out;
}
