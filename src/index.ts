// Public entry point for embedding storywire in a Node process.
export { createServer, type StorywireServer, type ServerOptions } from './edge/server.js';
export { loadConfig, ConfigError, OPTIONS, type Config } from './config.js';
export { ErrorCode, CloseCode, WireError, reconnectPolicy, type ReconnectPolicy } from './wire/codes.js';
export type { Backplane, ClusterBackplane, SingleNodeBackplane } from './seams/backplane/types.js';
export type { HistoryStore, LocalHistory, ClusterHistory } from './seams/history/types.js';
export type { PresenceStore } from './seams/presence/types.js';
export type { ReadStateStore } from './seams/readstate/types.js';
export { MemoryBackplane } from './seams/backplane/memory.js';
// The Redis backplane is `storywire/redis` (src/redis.ts): importing this root never loads ioredis.
// createBackplane stays here too: it imports the Redis backplane only when the config names a Redis.
export { createBackplane } from './seams/backplane/index.js';
export type { ClientMessage, ClientType, NotificationInput, StoryInput, ChapterInput } from './wire/protocol.js';
export type { EventType } from './wire/frames.js';
