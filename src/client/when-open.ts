// Waiting for the next `open`: resolved with its `connected` data, rejected when the client closes first or
// after the timeout.
import { ClientErrorCode, StorywireError } from './codes.js';
import type { Emitter } from './emitter.js';
import type { ClientEvents, Clock, ConnectedInfo } from './types.js';

export function nextOpen(events: Emitter<ClientEvents>, clock: Clock, timeoutMs: number): Promise<ConnectedInfo> {
  return new Promise((resolve, reject) => {
    const done = () => {
      offOpen();
      offClosed();
      clock.clearTimeout(timer);
    };
    const offOpen = events.once('open', (i) => {
      done();
      resolve(i);
    });
    const offClosed = events.once('closed', (why) => {
      done();
      reject(new StorywireError(ClientErrorCode.CLOSED, `closed: ${why.reason}`, false, false));
    });
    const timer = clock.setTimeout(() => {
      done();
      reject(new StorywireError(ClientErrorCode.TIMEOUT, `not open within ${timeoutMs} ms`, false, false));
    }, timeoutMs);
  });
}
