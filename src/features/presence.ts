// Online/offline with a multi-device reference count and a grace period against flapping.
import type { Logger } from 'pino';
import type { PresenceStore } from '../backplane/types.js';
import type { PubSub } from '../pubsub.js';
import { eventFrame } from '../serialize.js';
import { PRESENCE_ALL, presenceTopic } from './topics.js';

export interface PresenceOptions {
  graceMs: number;
  broadcast: boolean;
}

export class Presence {
  /** Users whose last connection closed less than graceMs ago: still shown online. */
  private readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly store: PresenceStore,
    private readonly pubsub: PubSub,
    private readonly options: PresenceOptions,
    private readonly log: Logger,
  ) {}

  topicFor(userId: string): string {
    return this.options.broadcast ? PRESENCE_ALL : presenceTopic(userId);
  }

  async open(userId: string, connectionId: string): Promise<void> {
    const first = await this.store.add(userId, connectionId);
    const timer = this.pending.get(userId);
    if (timer) {
      // Came back within the grace period: nobody was told it left, so nobody is told it is back.
      clearTimeout(timer);
      this.pending.delete(userId);
      return;
    }
    if (first) this.emit('user:online', userId);
  }

  async close(userId: string, connectionId: string): Promise<void> {
    const last = await this.store.remove(userId, connectionId);
    if (!last) return;
    if (this.options.graceMs === 0) {
      this.emit('user:offline', userId);
      return;
    }
    const timer = setTimeout(() => {
      this.pending.delete(userId);
      this.store.count(userId).then(
        (n) => n === 0 && this.emit('user:offline', userId),
        (err: unknown) => this.log.error({ err, userId }, 'presence check failed'),
      );
    }, this.options.graceMs);
    timer.unref();
    this.pending.set(userId, timer);
  }

  async online(userIds: readonly string[]): Promise<string[]> {
    const online = new Set(await this.store.online(userIds));
    return userIds.filter((id) => online.has(id) || this.pending.has(id));
  }

  async isOnline(userId: string): Promise<boolean> {
    return (await this.online([userId])).length === 1;
  }

  private emit(type: 'user:online' | 'user:offline', userId: string): void {
    const topic = this.topicFor(userId);
    const data = type === 'user:online' ? { userId } : { userId, lastSeen: Date.now() };
    this.pubsub.emit(type, topic, eventFrame(type, topic, data)).catch((err: unknown) =>
      this.log.warn({ err, userId, type }, 'presence event not sent to other nodes'),
    );
  }

  stop(): void {
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
  }
}
