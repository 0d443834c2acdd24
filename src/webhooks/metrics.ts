// The webhook senders' Prometheus metrics, one set per registry shared by every destination (label
// `destination`). The queue depth is read from each queue at scrape time.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { WebhookQueue } from '../seams/webhooks/types.js';

/** What became of an event: sent (2xx), retried (one retry scheduled), rejected (3xx/4xx, not retried), exhausted (maxAttempts failed), dropped (queue full at enqueue). */
export type SendOutcome = 'sent' | 'retried' | 'rejected' | 'exhausted' | 'dropped';
/** One HTTP attempt's result. */
export type AttemptResult = '2xx' | '3xx' | '4xx' | '5xx' | 'timeout' | 'network';

export class WebhookMetrics {
  private readonly sends: Counter<'destination' | 'outcome'>;
  private readonly attempts: Counter<'destination' | 'result'>;
  private readonly duration: Histogram<'destination'>;
  private readonly queues = new Map<string, { queue: WebhookQueue; last: number }>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.sends = new Counter({ name: 'storywire_webhook_sends_total', help: 'Webhook events by outcome: sent, retried (a retry scheduled), rejected, exhausted, dropped (queue full)', labelNames: ['destination', 'outcome'], registers });
    this.attempts = new Counter({ name: 'storywire_webhook_attempts_total', help: 'Webhook HTTP attempts by result: 2xx, 3xx, 4xx, 5xx, timeout, network', labelNames: ['destination', 'result'], registers });
    this.duration = new Histogram({
      name: 'storywire_webhook_duration_seconds',
      help: 'Duration of one webhook HTTP attempt, until its answer, timeout or error',
      labelNames: ['destination'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    const queues = this.queues;
    new Gauge({
      name: 'storywire_webhook_queue_depth',
      help: 'Webhook events queued per destination, held or not (the last value read while the queue cannot be reached)',
      labelNames: ['destination'],
      registers,
      async collect() {
        await Promise.all(
          [...queues].map(async ([destination, q]) => {
            q.last = await q.queue.depth().catch(() => q.last);
            this.labels(destination).set(q.last);
          }),
        );
      },
    });
  }

  /** The queue whose depth the gauge reads for `destination`. */
  watch(destination: string, queue: WebhookQueue): void {
    this.queues.set(destination, { queue, last: 0 });
  }

  unwatch(destination: string): void {
    this.queues.delete(destination);
  }

  outcome(destination: string, outcome: SendOutcome): void {
    this.sends.labels(destination, outcome).inc();
  }

  /** The enqueue side: the queue was full and the event is not sent. */
  dropped(destination: string): void {
    this.outcome(destination, 'dropped');
  }

  attempt(destination: string, result: AttemptResult, seconds: number): void {
    this.attempts.labels(destination, result).inc();
    this.duration.labels(destination).observe(seconds);
  }
}
