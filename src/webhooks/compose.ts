// The webhook side of one node: its destinations (the app's WEBHOOK_URL, the push sender's PUSH_WEBHOOK_URL,
// or in dev mode with DEV_WEBHOOKS the server's own receiver), their queues and senders, the events, and the
// push fallback's tracking. Queues and the push store are the cluster's when there is one.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Push } from '../features/push.js';
import type { ClusterStores } from '../seams/backplane/types.js';
import type { PushStoreOptions, PushTarget } from '../seams/pushes/types.js';
import { MemoryPushStore } from '../seams/pushes/memory.js';
import { MemoryWebhookQueue } from '../seams/webhooks/memory.js';
import type { ClusterWebhookQueue, WebhookEvent, WebhookQueue } from '../seams/webhooks/types.js';
import { Webhooks, type Destination } from './events.js';
import { WebhookMetrics } from './metrics.js';
import { WEBHOOK_EVENT_TYPES, type WebhookConfig, type WebhookEventType } from './options.js';
import { WebhookSender } from './sender.js';
import { generateSecret } from './signing.js';

/** Where a cluster keeps its queues and pushes (the Redis backplane); absent on one node. */
export type ClusterWebhookStores = Pick<ClusterStores, 'webhookQueue' | 'pushes'>;

export interface WebhookDeps {
  readonly config: WebhookConfig & { readonly dev: boolean };
  readonly log: Logger;
  readonly nodeId: string;
  readonly registry: Registry;
  readonly cluster: ClusterWebhookStores | undefined;
  /** `notification.unread` gets these when it is first sent. */
  unreadCount(userId: string): Promise<number>;
  online(userId: string): Promise<boolean>;
}

interface Planned {
  name: 'app' | 'push';
  events: ReadonlySet<WebhookEventType>;
  /** The URL; the dev receiver's follows the port listened on. */
  url: (port: number) => string;
}

/** The dev receiver's path (api/demo.ts serves it). */
export const DEV_WEBHOOK_PATH = '/dev/webhooks';

/** The destinations a configuration sends to (their names). */
export const plannedDestinations = (config: WebhookDeps['config']): string[] => plan(config).map((p) => p.name);

function plan(config: WebhookDeps['config']): Planned[] {
  const out: Planned[] = [];
  if (config.webhookUrl !== undefined) out.push({ name: 'app', events: new Set(config.webhookEvents), url: () => config.webhookUrl! });
  if (config.pushWebhookUrl !== undefined) out.push({ name: 'push', events: new Set(['notification.unread']), url: () => config.pushWebhookUrl! });
  if (out.length === 0 && config.dev && config.devWebhooks) out.push({ name: 'app', events: new Set(WEBHOOK_EVENT_TYPES), url: (port) => `http://127.0.0.1:${port}${DEV_WEBHOOK_PATH}` });
  return out;
}

export class NodeWebhooks {
  readonly webhooks: Webhooks;
  readonly push: Push | undefined;
  readonly metrics: WebhookMetrics;
  /** The secrets events are signed with (the dev receiver verifies with them). */
  readonly secrets: readonly string[];
  private readonly planned: Planned[];
  private readonly queues = new Map<string, WebhookQueue>();
  /** The same queues in cluster mode (the push store on Redis Cluster hands them due pushes itself). */
  private readonly clusterQueues = new Map<string, ClusterWebhookQueue>();
  private senders: WebhookSender[] = [];

  constructor(private readonly deps: WebhookDeps) {
    const { config, log } = deps;
    this.planned = plan(config);
    // Dev mode signs with a throwaway secret when none is set (config refuses that outside dev mode).
    this.secrets = config.webhookSecret ?? (this.planned.length > 0 ? [generateSecret()] : []);
    this.metrics = new WebhookMetrics(deps.registry);
    const queueOptions = { maxDepth: config.webhookQueueMax, claimIdleMs: config.webhookClaimIdleMs };
    const destinations: Destination[] = this.planned.map((p) => {
      const clusterQueue = deps.cluster?.webhookQueue(p.name, queueOptions);
      if (clusterQueue !== undefined) this.clusterQueues.set(p.name, clusterQueue);
      const queue = clusterQueue ?? new MemoryWebhookQueue(p.name, queueOptions);
      this.queues.set(p.name, queue);
      this.metrics.watch(p.name, queue);
      return { queue, events: p.events };
    });
    this.webhooks = new Webhooks(deps.nodeId, destinations, { dropped: (d) => this.metrics.dropped(d) }, log);
    const pushing = this.planned.filter((p) => p.events.has('notification.unread'));
    this.push = pushing.length === 0 ? undefined : this.makePush(pushing.map((p) => p.name));
  }

  private makePush(names: string[]): Push {
    const { config, log, cluster } = this.deps;
    const options: PushStoreOptions = {
      coalesceMs: config.pushCoalesceMs,
      maxPerUser: 100,
      // A receipt may reach another node before the publishing node tracks the notification; a minute is ample.
      receiptMemoryMs: 60_000,
    };
    const ttlMs = 2 * (config.pushDelayMs + config.pushUnreadDelayMs + config.pushCoalesceMs) + 60_000;
    const store = cluster?.pushes({ ...options, ttlMs, maxDepth: config.webhookQueueMax, claimMs: config.webhookClaimIdleMs }) ?? new MemoryPushStore({ ...options, maxTracked: 1_000_000 });
    const queues = names.map((n) => this.queues.get(n)!);
    const target: PushTarget = {
      destinations: names,
      ...(cluster === undefined ? {} : { queues: names.map((n) => this.clusterQueues.get(n)!) }),
      // In this process: every destination's queue takes it, or it stays pending.
      enqueue: (event: WebhookEvent) => {
        const memory = queues as MemoryWebhookQueue[];
        if (memory.some((q) => !q.hasRoom())) return false;
        for (const q of memory) q.offer(event);
        return true;
      },
    };
    const counters = {
      failed: (op: string) => log.debug({ op }, 'push tracking write failed'),
      made: () => {},
    };
    return new Push(store, target, { delayMs: config.pushDelayMs, unreadDelayMs: config.pushUnreadDelayMs, pollMs: cluster ? 250 : 100, batch: 100 }, counters, log);
  }

  /** The destinations' names (metrics, the admin view). */
  get destinations(): string[] {
    return this.planned.map((p) => p.name);
  }

  /** After listen: the senders start (the dev receiver's URL needs the port). */
  start(port: number): void {
    const { config, log } = this.deps;
    this.senders = this.planned.map(
      (p) =>
        new WebhookSender({
          name: p.name,
          url: p.url(port),
          secrets: this.secrets,
          queue: this.queues.get(p.name)!,
          log,
          metrics: this.metrics,
          timeoutMs: config.webhookTimeoutMs,
          maxAttempts: config.webhookMaxAttempts,
          retryBaseMs: config.webhookRetryBaseMs,
          retryMaxMs: config.webhookRetryMaxMs,
          concurrency: config.webhookConcurrency,
          pollMs: this.deps.cluster ? 200 : 50,
          prepare: (event) => this.prepare(event),
        }),
    );
    for (const s of this.senders) s.start();
    this.push?.start();
  }

  /** `notification.unread` gets the user's unread count and whether a device is online, read when first sent. */
  private async prepare(event: WebhookEvent): Promise<WebhookEvent> {
    if (event.type !== 'notification.unread') return event;
    const userId = event.data['userId'] as string;
    const [unreadCount, online] = await Promise.all([this.deps.unreadCount(userId), this.deps.online(userId)]);
    return { ...event, data: { ...event.data, unreadCount, online } };
  }

  async stop(): Promise<void> {
    this.push?.stop();
    this.webhooks.stop();
    await Promise.all(this.senders.map((s) => s.stop()));
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
