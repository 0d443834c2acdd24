// publish(topic, frame): uWS fan-out on this node plus the backplane to the others; counted once here.
import type { UWS } from './uws.js';
import type { Backplane } from './backplane/types.js';
import type { Metrics } from './metrics.js';

export interface PublishResult {
  /** Connections on this node the frame was handed to. */
  local: number;
  /** Settles when the other nodes have it; rejects when they cannot get it. */
  remote: Promise<void>;
}

export class PubSub {
  constructor(
    private readonly app: UWS.TemplatedApp,
    private readonly backplane: Backplane,
    private readonly metrics: Metrics,
  ) {
    backplane.onFrame((topic, frame) => {
      metrics.messagesOut.inc(app.numSubscribers(topic));
      app.publish(topic, frame);
    });
  }

  /** `type` is for metrics only; `except` leaves out the sending connection (its other devices still receive). */
  publish(type: string, topic: string, frame: string, except?: UWS.WebSocket<unknown>): PublishResult {
    let local = this.app.numSubscribers(topic);
    if (except && except.isSubscribed(topic)) {
      local -= 1;
      except.publish(topic, frame);
    } else if (local > 0) {
      this.app.publish(topic, frame);
    }
    this.metrics.published(type);
    if (local > 0) this.metrics.messagesOut.inc(local);
    const remote = this.backplane.publish(topic, frame);
    remote.catch(() => this.metrics.backplaneErrors.inc());
    return { local, remote };
  }

  /** Undefined when frames of these topics already reach this node from the others, else when they do. */
  whenListening(topics: readonly string[]): Promise<void> | undefined {
    return this.backplane.whenListening(topics);
  }

  /** Local-only fan-out for node-scoped system topics (heartbeat). */
  publishLocal(topic: string, frame: string): void {
    this.app.publish(topic, frame);
  }
}
