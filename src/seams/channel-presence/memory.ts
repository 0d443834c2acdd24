// Channel presence of a single node: the users subscribed to each channel in this process.
import type { ChannelMembers, ChannelPresenceStore } from './types.js';

export class MemoryChannelPresence implements ChannelPresenceStore {
  /** Channel -> user -> that user's connections counted in it. Empty maps and sets are removed. */
  private readonly channels = new Map<string, Map<string, Set<string>>>();

  add(channel: string, userId: string, connectionId: string): void {
    let users = this.channels.get(channel);
    if (users === undefined) {
      users = new Map();
      this.channels.set(channel, users);
    }
    const conns = users.get(userId);
    if (conns === undefined) users.set(userId, new Set([connectionId]));
    else conns.add(connectionId);
  }

  remove(channel: string, userId: string, connectionId: string): void {
    const users = this.channels.get(channel);
    const conns = users?.get(userId);
    if (!conns?.delete(connectionId) || conns.size > 0) return;
    users!.delete(userId);
    if (users!.size === 0) this.channels.delete(channel);
  }

  async read(channel: string, max: number): Promise<ChannelMembers> {
    const users = this.channels.get(channel);
    if (users === undefined) return { count: 0, members: [] };
    const members: string[] = [];
    if (max > 0) for (const id of users.keys()) if (members.push(id) >= max) break;
    return { count: users.size, members };
  }

  /** Channels with at least one connection counted (for tests and metrics). */
  get size(): number {
    return this.channels.size;
  }
}
