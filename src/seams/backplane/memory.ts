// Single-node backplane: no other nodes.
import { randomBytes } from 'node:crypto';
import type { SingleNodeBackplane } from './types.js';

export class MemoryBackplane implements SingleNodeBackplane {
  readonly kind = 'memory';
  readonly up = true;
  readonly partial = false;
  readonly single = true as const;
  constructor(readonly nodeId: string = randomBytes(4).toString('hex')) {}
  async publish(): Promise<void> {}
  interest(): void {}
  whenListening(): undefined {
    return undefined;
  }
  onFrame(): void {}
  /** Nothing is published past this process: its subscribers never miss what its history holds. */
  onHistoryLost(): void {}
  async disconnectUser(): Promise<number> {
    return 0;
  }
  onDisconnect(): void {}
  async unsubscribeUser(): Promise<number> {
    return 0;
  }
  onUnsubscribe(): void {}
  onStateChange(): void {}
  onPartialChange(): void {}
  async close(): Promise<void> {}
}
