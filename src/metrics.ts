// Prometheus metrics (prom-client), one registry per server so that several servers can share a process.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { CloseCode } from './wire/codes.js';

/** How often the event-loop lag metrics take a sample (ms). */
export const LAG_SAMPLE_MS = 50;

/** Close codes kept as labels: any other one a client sends would be a new time series each. */
const KNOWN_CLOSE_CODES: ReadonlySet<number> = new Set([...Array.from({ length: 16 }, (_, i) => 1000 + i), ...Object.values(CloseCode)]);

export type ConnectOutcome = 'accepted' | '400' | '401' | '403' | '429' | '503';

/** A count kept as a plain number on the hot path and added to its prom-client counter at each scrape. */
export class Tally {
  n = 0;
  inc(by = 1): void {
    this.n += by;
  }
}

type Labelled = Counter<string>;

/** A counter whose increments are tallied (per label, for a labelled one) and flushed when scraped. */
function tallied(name: string, help: string, registers: Registry[], labelName?: string): { counter: Counter<string>; tally: Tally; byLabel: Map<string, Tally> } {
  const tally = new Tally();
  const byLabel = new Map<string, Tally>();
  const counter: Labelled = new Counter({
    name,
    help,
    registers,
    labelNames: labelName ? [labelName] : [],
    collect() {
      if (tally.n > 0) {
        this.inc(tally.n);
        tally.n = 0;
      }
      for (const [label, t] of byLabel) {
        if (t.n === 0) continue;
        this.labels(label).inc(t.n);
        t.n = 0;
      }
    },
  });
  return { counter, tally, byLabel };
}

export class Metrics {
  readonly registry = new Registry();
  readonly connectionsOpen: Gauge;
  /** Frames handed to local connections. */
  readonly messagesOut: Tally;
  readonly notificationsDelivered: Tally;
  readonly backpressureCloses: Counter;
  readonly presenceOnline: Gauge;
  readonly backplaneErrors: Counter;
  readonly backplaneUp: Gauge;
  readonly backplanePartial: Gauge;
  private readonly connectionsTotal: Map<string, Tally>;
  private readonly messagesIn: Map<string, Tally>;
  private readonly publishes: Map<string, Tally>;
  private readonly rejected: Map<string, Tally>;
  private readonly closes: Map<string, Tally>;
  /** Where the two state gauges are read from (the connection registry, once it exists). */
  private readonly gauges = { open: () => 0, online: () => 0 };

  constructor() {
    const registers = [this.registry];
    // The event-loop lag is sampled every 50 ms, not prom-client's 10: its timer woke an idle node ~200 times a
    // second (~1 % of a core doing nothing); 50 ms still shows the lags the alerts look for (> 100 ms).
    collectDefaultMetrics({ register: this.registry, prefix: 'storywire_', eventLoopMonitoringPrecision: LAG_SAMPLE_MS });
    // Gauges of state the server holds anyway are read at scrape time, not set on every connect and close.
    const gauges = this.gauges;
    const readAtScrape = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    this.connectionsOpen = readAtScrape('storywire_connections_open', 'Open WebSocket connections on this node', () => gauges.open());
    // Counters on the message path are plain numbers, added to prom-client at each scrape: a prom-client
    // increment (argument checks, label hashing) was ~1 us of a notification's server time (profiled).
    this.connectionsTotal = tallied('storywire_connections_total', 'Upgrade attempts by outcome', registers, 'outcome').byLabel;
    this.messagesIn = tallied('storywire_messages_in_total', 'Valid client messages by type', registers, 'type').byLabel;
    this.messagesOut = tallied('storywire_messages_out_total', 'Frames handed to local connections (direct replies and topic deliveries)', registers).tally;
    this.publishes = tallied('storywire_publishes_total', 'Events published to a topic, by event type', registers, 'type').byLabel;
    this.notificationsDelivered = tallied('storywire_notifications_delivered_total', 'Notification frames handed to local connections (client, HTTP and embedded senders)', registers).tally;
    this.rejected = tallied('storywire_messages_rejected_total', 'Client messages answered with an error, by error code (RATE_LIMITED included)', registers, 'reason').byLabel;
    this.closes = tallied('storywire_connection_closes_total', 'Closed connections by close code', registers, 'code').byLabel;
    this.backpressureCloses = new Counter({ name: 'storywire_backpressure_closes_total', help: 'Connections dropped because their outgoing buffer passed MAX_BACKPRESSURE_BYTES', registers });
    this.presenceOnline = readAtScrape('storywire_presence_online_users', 'Users with at least one connection on this node', () => gauges.online());
    this.backplaneErrors = new Counter({ name: 'storywire_backplane_errors_total', help: 'Publishes that could not be handed to the other nodes', registers });
    this.backplaneUp = new Gauge({ name: 'storywire_backplane_up', help: '1 while this node reaches the other nodes (always 1 on a single node), 0 while degraded', registers });
    this.backplanePartial = new Gauge({
      name: 'storywire_backplane_partial',
      help: "1 while a Redis Cluster shard's topics are not heard by this node (its subscriber lost; the other shards' go on), 0 otherwise",
      registers,
    });
  }

  /** Reads the open-connections and online-users gauges from `source` at every scrape. */
  readGaugesFrom(source: { open(): number; online(): number }): void {
    this.gauges.open = () => source.open();
    this.gauges.online = () => source.online();
  }

  private static count(byLabel: Map<string, Tally>, label: string): void {
    let t = byLabel.get(label);
    if (!t) {
      t = new Tally();
      byLabel.set(label, t);
    }
    t.n++;
  }

  messageIn(type: string): void {
    Metrics.count(this.messagesIn, type);
  }

  published(type: string): void {
    Metrics.count(this.publishes, type);
  }

  rejectedFor(reason: string): void {
    Metrics.count(this.rejected, reason);
  }

  connection(outcome: ConnectOutcome): void {
    Metrics.count(this.connectionsTotal, outcome);
  }

  /** The close code's label: a code of RFC 6455 (1000-1015) or storywire's own, else `other` (a client picks it). */
  closed(code: number): void {
    Metrics.count(this.closes, KNOWN_CLOSE_CODES.has(code) ? String(code) : 'other');
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
