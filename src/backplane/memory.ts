// Single-node backplane: no other nodes, presence counted in this process.
import type { Backplane, PresenceStore } from './types.js';

export class MemoryPresence implements PresenceStore {
  private readonly users = new Map<string, Set<string>>();

  async add(userId: string, connectionId: string): Promise<boolean> {
    let conns = this.users.get(userId);
    if (!conns) this.users.set(userId, (conns = new Set()));
    conns.add(connectionId);
    return conns.size === 1;
  }

  async remove(userId: string, connectionId: string): Promise<boolean> {
    const conns = this.users.get(userId);
    if (!conns || !conns.delete(connectionId)) return false;
    if (conns.size > 0) return false;
    this.users.delete(userId);
    return true;
  }

  async online(userIds: readonly string[]): Promise<string[]> {
    return userIds.filter((id) => this.users.has(id));
  }

  async count(userId: string): Promise<number> {
    return this.users.get(userId)?.size ?? 0;
  }
}

export class MemoryBackplane implements Backplane {
  readonly kind = 'memory';
  readonly presence = new MemoryPresence();
  async publish(): Promise<void> {}
  interest(): void {}
  onFrame(): void {}
  async close(): Promise<void> {}
}
