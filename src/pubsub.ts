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
  private bytesSinceCheck = 0;
  private checkScheduled = false;

  /**
   * `onVolume` runs (once per event-loop turn at most) after `checkEveryBytes` of frames were published:
   * the server checks outgoing buffers then, so slow readers are found before a burst overflows them.
   */
  constructor(
    private readonly app: UWS.TemplatedApp,
    private readonly backplane: Backplane,
    private readonly metrics: Metrics,
    private readonly checkEveryBytes: number,
    private readonly onVolume: () => void,
  ) {
    backplane.onFrame((topic, frame) => {
      const n = app.numSubscribers(topic);
      metrics.messagesOut.inc(n);
      app.publish(topic, frame);
      if (n > 0) this.count(frame.length);
    });
  }

  private count(bytes: number): void {
    this.bytesSinceCheck += bytes;
    if (this.bytesSinceCheck < this.checkEveryBytes || this.checkScheduled) return;
    this.checkScheduled = true;
    setImmediate(() => {
      this.checkScheduled = false;
      this.bytesSinceCheck = 0;
      this.onVolume();
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
    if (local > 0) {
      this.metrics.messagesOut.inc(local);
      this.count(frame.length);
    }
    const remote = this.backplane.publish(topic, frame);
    remote.catch(() => this.metrics.backplaneErrors.inc());
    return { local, remote };
  }

  /** Local-only fan-out for node-scoped system topics (heartbeat). */
  publishLocal(topic: string, frame: string): void {
    this.app.publish(topic, frame);
  }
}
