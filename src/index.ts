// Public entry point for embedding storywire in a Node process.
export { createServer, type StorywireServer, type ServerOptions } from './server.js';
export { loadConfig, ConfigError, OPTIONS, type Config } from './config.js';
export { ErrorCode, CloseCode, WireError, reconnectPolicy, type ReconnectPolicy } from './errors.js';
export type { Backplane, PresenceStore } from './backplane/types.js';
export { MemoryBackplane } from './backplane/memory.js';
export { RedisBackplane, type RedisBackplaneOptions } from './backplane/redis.js';
export { createBackplane } from './backplane/index.js';
export type { ClientMessage, ClientType, NotificationInput, StoryInput, ChapterInput } from './protocol.js';
export type { EventType } from './serialize.js';
