// publish(topic, frame): uWS fan-out on this node plus the backplane to the others.
import type { UWS } from './uws.js';
import type { Backplane } from './backplane/types.js';

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
  ) {
    backplane.onFrame((topic, frame) => {
      app.publish(topic, frame);
    });
  }

  /** `except` leaves out the sending connection (its other devices still receive). */
  publish(topic: string, frame: string, except?: UWS.WebSocket<unknown>): PublishResult {
    let local = this.app.numSubscribers(topic);
    if (except && except.isSubscribed(topic)) {
      local -= 1;
      except.publish(topic, frame);
    } else if (local > 0) {
      this.app.publish(topic, frame);
    }
    return { local, remote: this.backplane.publish(topic, frame) };
  }

  /** Local-only fan-out for node-scoped system topics (heartbeat). */
  publishLocal(topic: string, frame: string): void {
    this.app.publish(topic, frame);
  }

  subscribers(topic: string): number {
    return this.app.numSubscribers(topic);
  }
}
