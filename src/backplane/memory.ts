// Single-node backplane: no other nodes, presence counted in this process.
import { randomBytes } from 'node:crypto';
import type { Backplane, PresenceStore } from './types.js';

export class MemoryPresence implements PresenceStore {
  private readonly users = new Map<string, Set<string>>();
  /** Users whose last connection closed and who are not settled yet, with the connection that left last. */
  private readonly leaving = new Map<string, string>();

  async add(userId: string, connectionId: string): Promise<boolean> {
    let conns = this.users.get(userId);
    if (!conns) this.users.set(userId, (conns = new Set()));
    conns.add(connectionId);
    if (conns.size > 1) return false;
    return !this.leaving.delete(userId);
  }

  async remove(userId: string, connectionId: string): Promise<boolean> {
    const conns = this.users.get(userId);
    if (!conns || !conns.delete(connectionId)) return false;
    if (conns.size > 0) return false;
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
    return this.users.get(userId)?.size ?? 0;
  }

  /** One process sees every transition as it happens: nothing to report afterwards. */
  onChange(): void {}
}

export class MemoryBackplane implements Backplane {
  readonly kind = 'memory';
  readonly presence = new MemoryPresence();
  readonly up = true;
  constructor(readonly nodeId: string = randomBytes(4).toString('hex')) {}
  async publish(): Promise<void> {}
  interest(): void {}
  whenListening(): undefined {
    return undefined;
  }
  onFrame(): void {}
  async disconnectUser(): Promise<number> {
    return 0;
  }
  onDisconnect(): void {}
  onStateChange(): void {}
  async close(): Promise<void> {}
}
