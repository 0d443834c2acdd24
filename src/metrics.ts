// Prometheus metrics (prom-client), one registry per server so that several servers can share a process.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export type ConnectOutcome = 'accepted' | '400' | '401' | '403' | '429' | '503';

export class Metrics {
  readonly registry = new Registry();
  readonly connectionsOpen: Gauge;
  readonly connectionsTotal: Counter<'outcome'>;
  readonly messagesIn: Counter<'type'>;
  readonly messagesOut: Counter;
  readonly publishes: Counter<'type'>;
  readonly notificationsDelivered: Counter;
  readonly rejected: Counter<'reason'>;
  readonly closes: Counter<'code'>;
  readonly backpressureCloses: Counter;
  readonly presenceOnline: Gauge;
  readonly backplaneErrors: Counter;
  readonly backplaneUp: Gauge;
  private readonly children = new Map<Counter<string>, Map<string, Counter.Internal>>();
  /** Where the two state gauges are read from (the connection registry, once it exists). */
  private readonly gauges = { open: () => 0, online: () => 0 };

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'storywire_' });
    // Gauges of state the server holds anyway are read at scrape time, not set on every connect and close.
    const gauges = this.gauges;
    this.connectionsOpen = new Gauge({
      name: 'storywire_connections_open',
      help: 'Open WebSocket connections on this node',
      registers,
      collect() {
        this.set(gauges.open());
      },
    });
    this.connectionsTotal = new Counter({ name: 'storywire_connections_total', help: 'Upgrade attempts by outcome', labelNames: ['outcome'], registers });
    this.messagesIn = new Counter({ name: 'storywire_messages_in_total', help: 'Valid client messages by type', labelNames: ['type'], registers });
    this.messagesOut = new Counter({ name: 'storywire_messages_out_total', help: 'Frames handed to local connections (direct replies and topic deliveries)', registers });
    this.publishes = new Counter({ name: 'storywire_publishes_total', help: 'Events published to a topic, by event type', labelNames: ['type'], registers });
    this.notificationsDelivered = new Counter({ name: 'storywire_notifications_delivered_total', help: 'Notification frames handed to local connections (client, HTTP and embedded senders)', registers });
    this.rejected = new Counter({ name: 'storywire_messages_rejected_total', help: 'Client messages answered with an error, by error code (RATE_LIMITED included)', labelNames: ['reason'], registers });
    this.closes = new Counter({ name: 'storywire_connection_closes_total', help: 'Closed connections by close code', labelNames: ['code'], registers });
    this.backpressureCloses = new Counter({ name: 'storywire_backpressure_closes_total', help: 'Connections dropped because their outgoing buffer passed MAX_BACKPRESSURE_BYTES', registers });
    this.presenceOnline = new Gauge({
      name: 'storywire_presence_online_users',
      help: 'Users with at least one connection on this node',
      registers,
      collect() {
        this.set(gauges.online());
      },
    });
    this.backplaneErrors = new Counter({ name: 'storywire_backplane_errors_total', help: 'Publishes that could not be handed to the other nodes', registers });
    this.backplaneUp = new Gauge({ name: 'storywire_backplane_up', help: '1 while this node reaches the other nodes (always 1 on a single node), 0 while degraded', registers });
  }

  /** Reads the open-connections and online-users gauges from `source` at every scrape. */
  readGaugesFrom(source: { open(): number; online(): number }): void {
    this.gauges.open = () => source.open();
    this.gauges.online = () => source.online();
  }

  /** Labelled children are cached: the hot path does two Map lookups and one add, not a label hash. */
  private child(counter: Counter<string>, label: string): Counter.Internal {
    let byLabel = this.children.get(counter);
    if (!byLabel) this.children.set(counter, (byLabel = new Map()));
    let c = byLabel.get(label);
    if (!c) byLabel.set(label, (c = counter.labels(label)));
    return c;
  }

  messageIn(type: string): void {
    this.child(this.messagesIn, type).inc();
  }

  published(type: string): void {
    this.child(this.publishes, type).inc();
  }

  rejectedFor(reason: string): void {
    this.child(this.rejected, reason).inc();
  }

  connection(outcome: ConnectOutcome): void {
    this.child(this.connectionsTotal, outcome).inc();
  }

  closed(code: number): void {
    this.child(this.closes, String(code)).inc();
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
