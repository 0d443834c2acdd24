// Online/offline with a multi-device reference count and a grace period against flapping.
import type { Logger } from 'pino';
import type { PresenceStore } from '../seams/presence/types.js';
import type { PubSub } from '../pubsub/pubsub.js';
import { eventFrame } from '../wire/frames.js';
import { PRESENCE_ALL, presenceTopic } from '../wire/topics.js';

export interface PresenceOptions {
  graceMs: number;
  broadcast: boolean;
  /** Told every transition, once cluster-wide, watched or not (the `user.online` / `user.offline` webhooks). */
  onTransition?: ((type: 'user:online' | 'user:offline', userId: string, at: number) => void) | undefined;
}

export class Presence {
  /** Grace timers of leaves seen on this node; the store decides, cluster-wide, whether each ends in offline. */
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly store: PresenceStore,
    private readonly pubsub: PubSub,
    private readonly options: PresenceOptions,
    private readonly log: Logger,
  ) {
    // Transitions found by the store itself: the users of a crashed node, a leave whose node died.
    store.onChange((type, userId) => this.emit(type, userId));
  }

  topicFor(userId: string): string {
    return this.options.broadcast ? PRESENCE_ALL : presenceTopic(userId);
  }

  /** Synchronous with a store in this process; a promise otherwise. */
  open(userId: string, connectionId: string): void | Promise<void> {
    const first = this.store.add(userId, connectionId);
    // false also when the user comes back within the grace period: nobody was told it left.
    if (first instanceof Promise) return first.then((f) => {
        if (f) this.emit('user:online', userId);
      });
    if (first) this.emit('user:online', userId);
  }

  close(userId: string, connectionId: string): void | Promise<void> {
    const last = this.store.remove(userId, connectionId);
    if (last instanceof Promise) return last.then((l) => (l ? this.leaving(userId, connectionId) : undefined));
    if (last) return this.leaving(userId, connectionId);
  }

  private leaving(userId: string, connectionId: string): void | Promise<void> {
    // Last seen when the last connection closed, not when the grace ran out.
    const at = Date.now();
    if (this.options.graceMs === 0) return this.settle(userId, connectionId, at);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.settle(userId, connectionId, at).catch((err: unknown) => this.log.error({ err, userId }, 'presence settle failed'));
    }, this.options.graceMs);
    timer.unref();
    this.timers.add(timer);
  }

  private async settle(userId: string, connectionId: string, at: number): Promise<void> {
    if (await this.store.settle(userId, connectionId)) this.emit('user:offline', userId, at);
  }

  async online(userIds: readonly string[]): Promise<string[]> {
    const online = new Set(await this.store.online(userIds));
    return userIds.filter((id) => online.has(id));
  }

  async isOnline(userId: string): Promise<boolean> {
    return (await this.online([userId])).length === 1;
  }

  private emit(type: 'user:online' | 'user:offline', userId: string, at = Date.now()): void {
    this.options.onTransition?.(type, userId, at);
    const topic = this.topicFor(userId);
    // Most users have no watcher: no frame is built for nobody.
    if (!this.pubsub.hasAudience(topic)) {
      this.pubsub.unheard(type);
      return;
    }
    const data = type === 'user:online' ? { userId } : { userId, lastSeen: at };
    this.pubsub.emit(type, topic, eventFrame(type, topic, data)).catch((err: unknown) =>
      this.log.debug({ err, userId, type }, 'presence event not sent to other nodes'),
    );
  }

  /** Pending leaves are left to the store: in a cluster a surviving node settles them. */
  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
