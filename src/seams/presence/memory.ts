// Presence of a single node: connections per user counted in this process.
import type { PresenceStore } from './types.js';

export class MemoryPresence implements PresenceStore {
  // One connection id per user is the common case: a string, promoted to a Set for a second device and
  // demoted again at one, so a single-device user holds no Set (~175 bytes with its table).
  private readonly users = new Map<string, string | Set<string>>();
  /** Users whose last connection closed and who are not settled yet, with the connection that left last. */
  private readonly leaving = new Map<string, string>();

  add(userId: string, connectionId: string): boolean {
    const conns = this.users.get(userId);
    if (conns === undefined) this.users.set(userId, connectionId);
    else if (typeof conns === 'string') {
      if (conns !== connectionId) {
        this.users.set(userId, new Set([conns, connectionId]));
        return false;
      }
    } else {
      conns.add(connectionId);
      return false;
    }
    return !this.leaving.delete(userId);
  }

  remove(userId: string, connectionId: string): boolean {
    const conns = this.users.get(userId);
    if (conns === undefined) return false;
    if (typeof conns !== 'string') {
      // A Set always holds two or more: back to a plain id at one, so it never empties here.
      if (conns.delete(connectionId) && conns.size === 1) this.users.set(userId, conns.values().next().value as string);
      return false;
    }
    if (conns !== connectionId) return false;
    this.users.delete(userId);
    this.leaving.set(userId, connectionId);
    return true;
  }

  async settle(userId: string, connectionId: string): Promise<boolean> {
    if (this.leaving.get(userId) !== connectionId || this.users.has(userId)) return false;
    this.leaving.delete(userId);
    return true;
  }

  async online(userIds: readonly string[]): Promise<string[]> {
    return userIds.filter((id) => this.users.has(id) || this.leaving.has(id));
  }

  async count(userId: string): Promise<number> {
    const conns = this.users.get(userId);
    return conns === undefined ? 0 : typeof conns === 'string' ? 1 : conns.size;
  }

  /** One process sees every transition as it happens: nothing to report afterwards. */
  onChange(): void {}

  /** No other node whose connections could be lost. */
  onConnectionsLost(): void {}
}
