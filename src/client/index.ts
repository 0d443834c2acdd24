// The SDK's public entry point (`storywire/client`), loadable in browsers as /client/index.js and in Node 20.
import { StorywireClient, type ClientOptions } from './client.js';

export { StorywireClient, type ClientOptions } from './client.js';
export { NotificationStore, type StoredNotification, type NotificationChange } from './store.js';
export { inboxDifferences } from './compare.js';
export type { Conversation, PendingMessage } from './conversation.js';
export { CloseCode, ServerErrorCode, ClientErrorCode, StorywireError, reconnectPolicy, type ReconnectPolicy } from './codes.js';
export { backoffDelay, backoffCap, RECONNECT_DEFAULTS } from './backoff.js';
export { jwtExp } from './token.js';
export type * from './types.js';

/** Creates a client that connects at once (on the next microtask) and reconnects by itself. */
export function connect(options: ClientOptions): StorywireClient {
  return new StorywireClient({ ...options, autoConnect: true });
}
