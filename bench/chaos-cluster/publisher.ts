// The app's backend: POST /v1/notifications to random users on random nodes at a fixed rate, one
// Idempotency-Key per logical notification, retrying a 503 (or a node that cannot be reached) with the same key.
export interface Attempt {
  at: number;
  node: number;
  /** HTTP status, or 0 when the node could not be reached. */
  status: number;
  id?: string;
  delivered?: number;
  /** The 503 body's `stored` (true / false / null = unknown); absent when the server does not say. */
  stored?: boolean | null;
  /** A 200 with `duplicate: true`: the key was seen before, nothing new stored or delivered. */
  duplicate?: boolean;
  error?: string;
  ms: number;
}

export interface Logical {
  key: string;
  user: string;
  firstAt: number;
  attempts: Attempt[];
  /** The final outcome: acked (a 200), failed (attempts used up or a 4xx), or still in flight. */
  outcome: 'acked' | 'failed' | 'pending';
  ackedAt?: number;
  ackedId?: string;
}

export interface PublisherOptions {
  apiKey: string;
  /** Ports of the nodes, looked up at each attempt. */
  ports: () => readonly number[];
  users: readonly string[];
  ratePerS: number;
  maxAttempts: number;
  /** First retry delay; doubled per attempt, capped at 2 s, with jitter. */
  backoffMs: number;
  runId: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Publisher {
  readonly all: Logical[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private seq = 0;

  constructor(private readonly o: PublisherOptions) {}

  /** Publishes at the fixed rate, kept by a schedule rather than by timer luck, until stop(). */
  start(): void {
    const started = performance.now();
    let sent = 0;
    this.timer = setInterval(() => {
      const due = Math.floor(((performance.now() - started) / 1000) * this.o.ratePerS);
      for (; sent < due; sent++) this.publish();
    }, 10);
  }

  /** Stops publishing new notifications and waits for the retries of those in flight to end. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private publish(): void {
    const user = this.o.users[Math.floor(Math.random() * this.o.users.length)]!;
    const key = `${this.o.runId}-${++this.seq}`;
    const l: Logical = { key, user, firstAt: performance.now(), attempts: [], outcome: 'pending' };
    this.all.push(l);
    const p = this.deliver(l).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  private async deliver(l: Logical): Promise<void> {
    const body = JSON.stringify({ userId: l.user, notification: { title: l.key, message: 'chaos', type: 'chaos', data: { key: l.key } } });
    for (let i = 0; i < this.o.maxAttempts; i++) {
      if (i > 0) await sleep(Math.min(2000, this.o.backoffMs * 2 ** (i - 1)) * (0.5 + Math.random() / 2));
      const ports = this.o.ports();
      const node = Math.floor(Math.random() * ports.length);
      const at = performance.now();
      const a: Attempt = { at, node, status: 0, ms: 0 };
      l.attempts.push(a);
      try {
        const res = await fetch(`http://127.0.0.1:${ports[node]}/v1/notifications`, {
          method: 'POST',
          headers: { authorization: `Bearer ${this.o.apiKey}`, 'content-type': 'application/json', 'idempotency-key': l.key },
          body,
          signal: AbortSignal.timeout(10_000),
        });
        a.status = res.status;
        const b = (await res.json().catch(() => ({}))) as { id?: string; delivered?: number; stored?: boolean | null; duplicate?: boolean; error?: { code?: string } };
        if (typeof b.id === 'string') a.id = b.id;
        if (typeof b.delivered === 'number') a.delivered = b.delivered;
        if ('stored' in b) a.stored = b.stored ?? null;
        if (b.duplicate === true) a.duplicate = true;
        if (b.error?.code) a.error = b.error.code;
      } catch (err) {
        a.error = (err as Error).name === 'TimeoutError' ? 'timeout' : String((err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message);
      }
      a.ms = performance.now() - at;
      if (a.status === 200) {
        l.outcome = 'acked';
        l.ackedAt = performance.now();
        if (a.id !== undefined) l.ackedId = a.id;
        return;
      }
      // A 4xx other than 429 will not change with a retry: a bug of the harness or the server, reported.
      if (a.status >= 400 && a.status < 500 && a.status !== 429) break;
    }
    l.outcome = 'failed';
  }
}
