// Environment variables and --flags -> one validated, frozen Config; every problem reported at once.
import { trustedProxiesProblems } from './edge/address.js';
import { connectionBudget, descriptorReserve, openFilesLimit, type OpenFiles } from './edge/descriptors.js';
import { urlProblem, type Option } from './option.js';
import { WEBHOOK_OPTIONS, webhookProblems, type WebhookConfig } from './webhooks/options.js';
import { redisProblems } from './seams/backplane/options.js';

export interface Config extends WebhookConfig {
  /**
   * Dev mode, asked for explicitly (`--dev`, `STORYWIRE_DEV=1`, or `dev: true` given to loadConfig in code):
   * the relaxed defaults, loopback by default, and without a JWT key a throwaway secret and `/dev/token`.
   */
  readonly dev: boolean;
  /** Always `!dev`: the safe defaults apply. NODE_ENV plays no part (a typo in it cannot open anything). */
  readonly production: boolean;
  readonly port: number;
  readonly host: string;
  readonly wsPath: string;
  readonly logLevel: string;
  readonly jwtSecret: string | undefined;
  readonly jwtPublicKey: string | undefined;
  readonly jwtJwksUrl: string | undefined;
  readonly jwtAlgorithms: readonly string[] | undefined;
  readonly jwtIssuer: string | undefined;
  readonly jwtAudience: string | undefined;
  readonly jwtClockToleranceS: number;
  readonly jwtTyp: string | undefined;
  readonly jwtRequireExp: boolean;
  readonly jwtMaxTtlS: number;
  readonly connectPermission: string | undefined;
  readonly publishPermission: string;
  readonly channelsFile: string | undefined;
  readonly notifyPolicy: 'backend' | 'proxy' | 'any';
  readonly notifyProxy: string | undefined;
  readonly notifyTypes: readonly string[];
  readonly notifyUserShare: number;
  readonly maxPayloadBytes: number;
  readonly idleTimeoutS: number;
  readonly heartbeatIntervalMs: number;
  readonly presenceGraceMs: number;
  readonly presenceBroadcast: boolean;
  readonly typingTimeoutMs: number;
  readonly autoSubscribeStories: boolean;
  readonly maxSubscriptions: number;
  readonly maxPresenceIds: number;
  readonly maxPresenceMembers: number;
  readonly maxNotificationBytes: number;
  readonly maxStoryBytes: number;
  readonly maxChatBytes: number;
  readonly chatRatePerS: number;
  readonly maxConversations: number;
  readonly maxUnreadChannels: number;
  readonly apiKey: string | undefined;
  readonly adminPort: number | undefined;
  readonly adminHost: string;
  readonly adminUi: 'admin' | 'public' | 'off';
  readonly maxBodyBytes: number;
  readonly maxBatch: number;
  readonly drainMs: number;
  readonly shutdownTimeoutMs: number;
  readonly rateLimitPerS: number;
  readonly rateLimitBurst: number;
  readonly notifyRatePerS: number;
  readonly notifyBurst: number;
  readonly publishRatePerS: number;
  readonly publishBurst: number;
  readonly rateLimitCloseAfter: number;
  readonly rateLimitPerSPerIp: number;
  readonly rateLimitBurstPerIp: number;
  readonly notifyRatePerSPerIp: number;
  readonly notifyBurstPerIp: number;
  readonly publishRatePerSPerIp: number;
  readonly publishBurstPerIp: number;
  readonly rateBudgetMaxKeys: number;
  readonly historyReadBytesPerS: number;
  readonly historyReadBurstBytes: number;
  readonly handshakesPerSPerIp: number;
  readonly handshakeBurstPerIp: number;
  readonly handshakesPerSPerUser: number;
  readonly handshakeBurstPerUser: number;
  readonly maxConnections: number;
  /** The open-files limit read at start, and whether maxConnections follows it (edge/descriptors.ts). */
  readonly openFiles: OpenFiles;
  readonly maxConnectionsPerUser: number;
  readonly maxConnectionsPerIp: number;
  readonly trustProxyHeader: string;
  readonly trustedProxies: readonly string[] | undefined;
  readonly allowedOrigins: readonly string[] | undefined;
  readonly upgradeTimeoutMs: number;
  readonly maxBackpressureBytes: number;
  readonly jwtJwksCacheMs: number;
  readonly jwtJwksMaxBytes: number;
  readonly historySize: number;
  readonly historyTtlS: number;
  readonly historyMaxTopics: number;
  readonly historyMaxBytes: number;
  readonly inboxCacheBytes: number;
  readonly demoPage: boolean;
  readonly redisUrl: string | undefined;
  /** REDIS_SENTINELS: `host:port` of each sentinel (cluster mode through Sentinel, instead of REDIS_URL). */
  readonly redisSentinels: readonly string[] | undefined;
  readonly redisSentinelName: string | undefined;
  /** REDIS_CLUSTER_NODES: `host:port` of some Redis Cluster nodes (cluster mode on Redis Cluster). */
  readonly redisClusterNodes: readonly string[] | undefined;
  readonly redisPassword: string | undefined;
  readonly redisPrefix: string;
  readonly nodeId: string | undefined;
  readonly nodeLeaseMs: number;
  readonly idempotencyTtlS: number;
  readonly idempotencyMaxKeys: number;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const JWT_ALGORITHMS = [
  'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA',
] as const;

/** Every option, its variable, default and meaning. README's configuration table is made from this list. */
export const OPTIONS: readonly Option<keyof Config>[] = [
  { key: 'dev', env: 'STORYWIRE_DEV', flag: 'dev', kind: 'switch', default: false, doc: 'Dev mode, for a laptop (`1` or `true`; `0`, `false` or empty: off; anything else stops the start). It binds 127.0.0.1 unless HOST is set, relaxes the defaults (NOTIFY_POLICY `any`, `presence:<id>` public, DEMO_PAGE on), generates and prints an API_KEY when none is set, and without a JWT key signs tokens with a random secret that dies with the process and serves `GET /dev/token` to loopback peers. Off: a JWT key is required and every default is the safe one. NODE_ENV is not read.' },
  { key: 'port', env: 'PORT', kind: 'int', default: 9001, min: 0, max: 65535, doc: 'TCP port for WebSocket and HTTP (0 picks a free port).' },
  { key: 'host', env: 'HOST', kind: 'string', default: undefined, doc: 'Address to listen on. Default: `0.0.0.0` (every interface), `127.0.0.1` in dev mode.' },
  { key: 'wsPath', env: 'WS_PATH', kind: 'string', default: '/ws', doc: 'URL path of the WebSocket endpoint.' },
  { key: 'logLevel', env: 'LOG_LEVEL', kind: 'string', default: 'info', oneOf: LOG_LEVELS, doc: 'pino log level.' },
  { key: 'jwtSecret', env: 'JWT_SECRET', kind: 'string', default: undefined, doc: 'Shared secret for HS256/384/512 tokens (at least 32 bytes).' },
  { key: 'jwtPublicKey', env: 'JWT_PUBLIC_KEY', kind: 'string', default: undefined, doc: 'PEM public key (SPKI) for RS*, PS*, ES* or EdDSA tokens.' },
  { key: 'jwtJwksUrl', env: 'JWT_JWKS_URL', kind: 'string', default: undefined, doc: 'JWKS URL for asymmetric tokens: fetched at start (`/readyz` answers 503 until it was), every JWT_JWKS_CACHE_MS and at once for an unknown `kid` (at most every 30 s, or JWT_JWKS_CACHE_MS when shorter). `https://` unless in dev mode or the host is a loopback address (`localhost`, `127.0.0.0/8`, `[::1]`).' },
  { key: 'jwtAlgorithms', env: 'JWT_ALGORITHMS', kind: 'list', default: undefined, oneOf: JWT_ALGORITHMS, doc: 'Accepted algorithms, comma separated (default: HS256 for a secret, the key\'s own family for a public key or JWKS).' },
  { key: 'jwtIssuer', env: 'JWT_ISSUER', kind: 'string', default: undefined, doc: 'Required `iss` claim, when set.' },
  { key: 'jwtAudience', env: 'JWT_AUDIENCE', kind: 'string', default: undefined, doc: 'Required `aud` claim, when set.' },
  { key: 'jwtClockToleranceS', env: 'JWT_CLOCK_TOLERANCE_S', kind: 'int', default: 5, min: 0, max: 300, doc: 'Clock skew allowed on `exp`/`nbf`, seconds.' },
  { key: 'jwtTyp', env: 'JWT_TYP', kind: 'string', default: undefined, doc: 'Required `typ` header of connection tokens, when set (e.g. `at+jwt`, RFC 9068; compared case-insensitively, `application/` implied); a token with another or none is TOKEN_INVALID.' },
  { key: 'jwtRequireExp', env: 'JWT_REQUIRE_EXP', kind: 'bool', default: undefined, doc: 'Refuse tokens without `exp` (TOKEN_INVALID). Default: on; off in dev mode. Whatever it says, an `auth` refresh cannot remove the expiry of a connection that has one.' },
  { key: 'jwtMaxTtlS', env: 'JWT_MAX_TTL_S', kind: 'int', default: 86400, min: 0, max: 315360000, doc: 'Longest a connection token may still be valid when it is presented (upgrade, `auth`): one whose `exp` is more than this many seconds away (plus JWT_CLOCK_TOLERANCE_S) is TOKEN_INVALID, so no connection outlives its last token by more. 0: no bound.' },
  { key: 'connectPermission', env: 'CONNECT_PERMISSION', kind: 'string', default: undefined, doc: 'Permission a token must carry to connect at all (403 otherwise); unset: any valid token.' },
  { key: 'publishPermission', env: 'PUBLISH_PERMISSION', kind: 'string', default: 'stories:publish', doc: 'Permission needed for `story:published` and `chapter:published` (the built-in `story` and `stories` namespaces).' },
  { key: 'channelsFile', env: 'CHANNELS_FILE', kind: 'string', default: undefined, doc: 'JSON file declaring channel namespaces and backend proxies (protocol.md, "Channels"; schema: `channels.schema.json`). Unset: the built-in namespaces. A bad file stops the start with every problem named.' },
  { key: 'notifyPolicy', env: 'NOTIFY_POLICY', kind: 'string', default: undefined, oneOf: ['backend', 'proxy', 'any'], doc: 'Who may send `send:notification` to whom. `backend`: nobody from a client (FORBIDDEN), only the backend API and the embedded helpers. `proxy`: the backend approves each sender -> recipient pair (NOTIFY_PROXY). `any`: any user may notify any user (unsafe: spam, phishing, inbox flooding; opt-in). Default: `backend`; `any` in dev mode (logged as a warning at start).' },
  { key: 'notifyProxy', env: 'NOTIFY_PROXY', kind: 'string', default: undefined, doc: 'With NOTIFY_POLICY=proxy: the name of a proxy of CHANNELS_FILE asked `{user, recipient, connection}` (kind `notify`) for each sender -> recipient pair, its decision cached by the proxy. A missing or unknown name stops the start.' },
  { key: 'notifyTypes', env: 'NOTIFY_TYPES', kind: 'list', default: Object.freeze(['follower', 'like', 'comment', 'message']), doc: 'Comma-separated `type`s a client may give a `send:notification` (no `type`, which is `info`, is always allowed); another is refused with INVALID_PAYLOAD. The backend API is not limited.' },
  { key: 'notifyUserShare', env: 'NOTIFY_USER_SHARE', kind: 'int', default: 50, min: 0, max: 100, doc: 'Percent of HISTORY_SIZE that user-sent notifications (`origin: "user"`) may hold of a personal topic\'s history and inbox; past it the oldest user-sent one is dropped, never a system one (0: user-sent notifications are live only, never stored).' },
  { key: 'maxPayloadBytes', env: 'MAX_PAYLOAD_BYTES', kind: 'int', default: 16384, min: 512, max: 16 * 1024 * 1024, doc: 'Largest incoming WebSocket frame; larger closes the connection with 1009.' },
  { key: 'idleTimeoutS', env: 'IDLE_TIMEOUT_S', kind: 'int', default: 40, min: 8, max: 960, doc: 'Seconds without any incoming data before the server pings; a connection that then stays silent is closed.' },
  { key: 'heartbeatIntervalMs', env: 'HEARTBEAT_INTERVAL_MS', kind: 'int', default: 25000, min: 100, max: 600000, doc: 'Interval of the application `heartbeat` message.' },
  { key: 'presenceGraceMs', env: 'PRESENCE_GRACE_MS', kind: 'int', default: 3000, min: 0, max: 600000, doc: 'Delay before `user:offline` after the last connection closes; a reconnect within it emits nothing.' },
  { key: 'presenceBroadcast', env: 'PRESENCE_BROADCAST', kind: 'bool', default: false, doc: 'Public presence (opt-in): presence events go to every connection (topic `presence`) instead of `presence:<id>` subscribers, and `presence:query` answers for any id, whatever the `presence` namespace\'s rule.' },
  { key: 'typingTimeoutMs', env: 'TYPING_TIMEOUT_MS', kind: 'int', default: 5000, min: 200, max: 600000, doc: 'Silence after which the server sends `user:stopped_typing` by itself.' },
  { key: 'autoSubscribeStories', env: 'AUTO_SUBSCRIBE_STORIES', kind: 'bool', default: true, doc: 'Join every connection to `stories` on open.' },
  { key: 'maxSubscriptions', env: 'MAX_SUBSCRIPTIONS', kind: 'int', default: 100, min: 1, max: 100000, doc: 'Topics one connection may subscribe to (automatic ones excluded).' },
  { key: 'maxPresenceIds', env: 'MAX_PRESENCE_IDS', kind: 'int', default: 100, min: 1, max: 10000, doc: 'User ids in one `presence:query`.' },
  { key: 'maxPresenceMembers', env: 'MAX_PRESENCE_MEMBERS', kind: 'int', default: 100, min: 1, max: 10000, doc: 'Members listed in one `presence:channel` ack (a namespace with `"presence": "members"`); past it the list is cut and `truncated: true`.' },
  { key: 'maxNotificationBytes', env: 'MAX_NOTIFICATION_BYTES', kind: 'int', default: 4096, min: 64, max: 1024 * 1024, doc: 'Largest notification body (JSON bytes of `notification`).' },
  { key: 'maxStoryBytes', env: 'MAX_STORY_BYTES', kind: 'int', default: 8192, min: 64, max: 1024 * 1024, doc: 'Largest story, chapter or profile payload (JSON bytes).' },
  { key: 'maxChatBytes', env: 'MAX_CHAT_BYTES', kind: 'int', default: 4096, min: 64, max: 1024 * 1024, doc: 'Largest chat message: UTF-8 bytes of a `chat:send` / `chat:edit` `text`, and JSON bytes of its `data` (protocol.md section 14).' },
  { key: 'chatRatePerS', env: 'CHAT_RATE_PER_S', kind: 'int', default: 5, min: 1, max: 100000, doc: '`chat:send`, `chat:edit` and `chat:delete` per second of one user in one conversation, over all its connections on a node (burst: twice that); more get `RATE_LIMITED`.' },
  { key: 'maxConversations', env: 'MAX_CONVERSATIONS', kind: 'int', default: 50, min: 1, max: 100000, doc: 'Channels of chat namespaces (`conversation:<id>`) one connection may be subscribed to at once; more get `SUBSCRIPTION_LIMIT`.' },
  { key: 'maxUnreadChannels', env: 'MAX_UNREAD_CHANNELS', kind: 'int', default: 100, min: 1, max: 10000, doc: 'Channels in one `chat:unread` request; more get `TOO_MANY_IDS`.' },
  { key: 'rateLimitPerS', env: 'RATE_LIMIT_PER_S', kind: 'int', default: 20, min: 1, max: 100000, doc: 'Messages per second one user (`sub`) may send over all its connections, every type counted (token bucket refill rate); kept across reconnects, per node.' },
  { key: 'rateLimitBurst', env: 'RATE_LIMIT_BURST', kind: 'int', default: 40, min: 1, max: 100000, doc: 'Burst size of that bucket.' },
  { key: 'notifyRatePerS', env: 'NOTIFY_RATE_PER_S', kind: 'int', default: 2, min: 1, max: 100000, doc: '`send:notification` per second per user (on top of the general limit).' },
  { key: 'notifyBurst', env: 'NOTIFY_BURST', kind: 'int', default: 10, min: 1, max: 100000, doc: 'Burst of `send:notification`.' },
  { key: 'publishRatePerS', env: 'PUBLISH_RATE_PER_S', kind: 'int', default: 1, min: 1, max: 100000, doc: '`story:published`, `chapter:published`, `profile:updated` per second per user.' },
  { key: 'publishBurst', env: 'PUBLISH_BURST', kind: 'int', default: 5, min: 1, max: 100000, doc: 'Burst of those publish events.' },
  { key: 'rateLimitCloseAfter', env: 'RATE_LIMIT_CLOSE_AFTER', kind: 'int', default: 50, min: 1, max: 1000000, doc: 'Rate-limited messages in a row on one connection (no accepted message between) after which it is closed with 4100.' },
  { key: 'rateLimitPerSPerIp', env: 'RATE_LIMIT_PER_S_PER_IP', kind: 'int', default: 1000, min: 1, max: 10000000, doc: 'Messages per second from one client address, all its users together (many users may share one NAT address): a message must pass its user\'s and its address\'s bucket.' },
  { key: 'rateLimitBurstPerIp', env: 'RATE_LIMIT_BURST_PER_IP', kind: 'int', default: 2000, min: 1, max: 10000000, doc: 'Burst size of that bucket.' },
  { key: 'notifyRatePerSPerIp', env: 'NOTIFY_RATE_PER_S_PER_IP', kind: 'int', default: 20, min: 1, max: 10000000, doc: '`send:notification` per second from one client address.' },
  { key: 'notifyBurstPerIp', env: 'NOTIFY_BURST_PER_IP', kind: 'int', default: 100, min: 1, max: 10000000, doc: 'Burst of `send:notification` from one address.' },
  { key: 'publishRatePerSPerIp', env: 'PUBLISH_RATE_PER_S_PER_IP', kind: 'int', default: 10, min: 1, max: 10000000, doc: 'Story, chapter and profile publishes per second from one client address.' },
  { key: 'publishBurstPerIp', env: 'PUBLISH_BURST_PER_IP', kind: 'int', default: 50, min: 1, max: 10000000, doc: 'Burst of those publishes from one address.' },
  { key: 'historyReadBytesPerS', env: 'HISTORY_READ_BYTES_PER_S', kind: 'int', default: 262144, min: 1024, max: 1073741824, doc: 'Bytes of history per second one user may be sent by request: `notifications:list` pages, replays (`subscribe` with `since`, `?since=` at connect) and the messages `chat:unread` reads to count. Such a request is answered while the budget is above zero and charged what it sent; below zero the next gets `RATE_LIMITED` (a reconnect\'s replay is charged, never refused).' },
  { key: 'historyReadBurstBytes', env: 'HISTORY_READ_BURST_BYTES', kind: 'int', default: 2097152, min: 1024, max: 1073741824, doc: 'Burst of that budget: what a user may be sent at once, e.g. when a client reconnects and resumes its channels.' },
  { key: 'rateBudgetMaxKeys', env: 'RATE_BUDGET_MAX_KEYS', kind: 'int', default: 100000, min: 100, max: 100000000, doc: 'Users and addresses whose budgets (message and handshake buckets, each kind) one node remembers; past it full buckets are forgotten first, then the oldest.' },
  { key: 'handshakesPerSPerIp', env: 'HANDSHAKES_PER_S_PER_IP', kind: 'int', default: 50, min: 1, max: 10000000, doc: 'WebSocket upgrades per second from one client address, refused or not (checked before the token); more get 429 `RATE_LIMITED`. A load test from one address must raise it.' },
  { key: 'handshakeBurstPerIp', env: 'HANDSHAKE_BURST_PER_IP', kind: 'int', default: 500, min: 1, max: 10000000, doc: 'Burst of upgrades from one address.' },
  { key: 'handshakesPerSPerUser', env: 'HANDSHAKES_PER_S_PER_USER', kind: 'int', default: 2, min: 1, max: 10000000, doc: 'WebSocket upgrades per second of one user (checked once its token is verified); more get 429 `RATE_LIMITED`.' },
  { key: 'handshakeBurstPerUser', env: 'HANDSHAKE_BURST_PER_USER', kind: 'int', default: 30, min: 1, max: 10000000, doc: 'Burst of upgrades of one user.' },
  { key: 'maxConnections', env: 'MAX_CONNECTIONS', kind: 'int', default: undefined, min: 1, max: 10000000, doc: 'Open connections on this node; more get 503. Unset: the open-files limit (RLIMIT_NOFILE, read at start on Linux) minus the descriptors the node keeps for itself (64, +4 with REDIS_URL or REDIS_SENTINELS, +64 with REDIS_CLUSTER_NODES, + each backend proxy\'s `maxInFlight`, + WEBHOOK_CONCURRENCY per webhook destination), at most 1000000, logged at start; 19000 where the limit cannot be read. Set: it must fit under the limit with that reserve, or the start stops naming both numbers.' },
  { key: 'maxConnectionsPerUser', env: 'MAX_CONNECTIONS_PER_USER', kind: 'int', default: 16, min: 1, max: 100000, doc: 'Concurrent connections of one user; more get 429 `CONNECTION_LIMIT`.' },
  { key: 'maxConnectionsPerIp', env: 'MAX_CONNECTIONS_PER_IP', kind: 'int', default: 1000, min: 1, max: 10000000, doc: 'Concurrent connections (and upgrades in progress) from one address; more get 429.' },
  { key: 'trustedProxies', env: 'TRUSTED_PROXIES', kind: 'list', default: undefined, doc: 'Comma-separated addresses and CIDR blocks (IPv4 and IPv6, e.g. `10.0.0.0/8,fd00::/8,127.0.0.1`) of the reverse proxies in front of this node. A request whose TCP peer is one of them has its client address read from TRUST_PROXY_HEADER: every line of it, the right-most entry that is not a trusted proxy. Unset: the header is ignored and the client address is the TCP peer. That address is what the per-address limits and budgets count, what logs and backend proxies (`connection.ip`) see.' },
  { key: 'trustProxyHeader', env: 'TRUST_PROXY_HEADER', kind: 'string', default: 'x-forwarded-for', doc: 'Header in which TRUSTED_PROXIES write the client address (a comma-separated list each proxy appends to, like HAProxy `option forwardfor` and nginx `$proxy_add_x_forwarded_for`). Read only from a trusted peer.' },
  { key: 'allowedOrigins', env: 'ALLOWED_ORIGINS', kind: 'list', default: undefined, doc: 'Comma-separated `Origin`s allowed to upgrade (browsers send it). Unset: any origin (set it in production).' },
  { key: 'upgradeTimeoutMs', env: 'UPGRADE_TIMEOUT_MS', kind: 'int', default: 5000, min: 100, max: 60000, doc: 'Longest token verification (JWKS fetch included) before an upgrade is answered 503 `TIMEOUT`; also the deadline of one JWKS fetch.' },
  { key: 'maxBackpressureBytes', env: 'MAX_BACKPRESSURE_BYTES', kind: 'int', default: 1048576, min: 16384, max: 1073741824, doc: 'Outgoing buffer budget of one connection; a client that exceeds it is disconnected as a slow consumer. Size it above your largest burst.' },
  { key: 'jwtJwksCacheMs', env: 'JWT_JWKS_CACHE_MS', kind: 'int', default: 600000, min: 100, max: 86400000, doc: 'Age after which the JWKS is fetched again; while fetches fail (retried from 0.5 s, doubling up to 30 s, each logged) the last good keys keep verifying.' },
  { key: 'jwtJwksMaxBytes', env: 'JWT_JWKS_MAX_BYTES', kind: 'int', default: 65536, min: 1024, max: 16777216, doc: 'Largest JWKS answer read; a longer one is cut and counts as a failed fetch (an outage: tokens get UNAVAILABLE until a key set was fetched).' },
  { key: 'historySize', env: 'HISTORY_SIZE', kind: 'int', default: 50, min: 1, max: 100000, doc: 'Events kept per recoverable topic (`user:<id>`, `story:<id>`) for resume and the notification inbox.' },
  { key: 'historyTtlS', env: 'HISTORY_TTL_S', kind: 'int', default: 604800, min: 1, max: 31536000, doc: 'Age after which a kept event is dropped, seconds (default 7 days).' },
  { key: 'historyMaxTopics', env: 'HISTORY_MAX_TOPICS', kind: 'int', default: undefined, min: 1, max: 10000000, doc: 'In-memory mode: topics with history kept; the least recently used is dropped whole (its clients then get `recovered: false`), its read state with it. Also the bound of the users with read state. Default: twice MAX_CONNECTIONS, at least 10000 (every connected user\'s personal topic fits, and as many more for channels and offline recipients).' },
  { key: 'historyMaxBytes', env: 'HISTORY_MAX_BYTES', kind: 'int', default: 268435456, min: 65536, max: 1099511627776, doc: 'Bytes of stored events (UTF-8 frames) over all recoverable topics, in memory per node, in Redis for the whole cluster; past it the oldest user-sent events (`origin: "user"`) are dropped first, then the oldest of any (a resume from before them gets `recovered: false`).' },
  { key: 'inboxCacheBytes', env: 'INBOX_CACHE_BYTES', kind: 'int', default: 33554432, min: 0, max: 1099511627776, doc: 'Characters of parsed inboxes and served `notifications:list` pages kept (over all users, the least recently read dropped first), so that asking again for an unchanged inbox parses and serializes nothing. 0: no cache.' },
  { key: 'apiKey', env: 'API_KEY', kind: 'string', default: undefined, doc: 'Service credential of the backend HTTP API and /metrics (`Authorization: Bearer <key>`, at least 16 characters). Unset: generated and printed in dev mode, API disabled otherwise (answers 503).' },
  { key: 'adminPort', env: 'ADMIN_PORT', kind: 'int', default: undefined, min: 0, max: 65535, doc: 'Serve the HTTP API and /metrics on this port (on ADMIN_HOST) instead of the WebSocket port; /metrics needs no key there.' },
  { key: 'adminHost', env: 'ADMIN_HOST', kind: 'string', default: '127.0.0.1', doc: 'Interface of ADMIN_PORT: loopback unless told otherwise (its /metrics is open), e.g. `0.0.0.0` behind a private network.' },
  { key: 'adminUi', env: 'ADMIN_UI', kind: 'string', default: 'admin', oneOf: ['admin', 'public', 'off'], doc: 'The admin view (`/admin`, its JSON under `/admin/api/`, every call with API_KEY). `admin`: on ADMIN_PORT only (nowhere without it). `public`: on the WebSocket port too. `off`: nowhere.' },
  { key: 'maxBodyBytes', env: 'MAX_BODY_BYTES', kind: 'int', default: 65536, min: 1024, max: 16 * 1024 * 1024, doc: 'Largest HTTP API request body; larger gets 413.' },
  { key: 'maxBatch', env: 'MAX_BATCH', kind: 'int', default: 100, min: 1, max: 10000, doc: 'Events in one batch `POST /v1/publish`.' },
  { key: 'drainMs', env: 'DRAIN_MS', kind: 'int', default: 5000, min: 0, max: 600000, doc: 'On SIGTERM/SIGINT, time over which open connections are closed in batches.' },
  { key: 'shutdownTimeoutMs', env: 'SHUTDOWN_TIMEOUT_MS', kind: 'int', default: 15000, min: 100, max: 600000, doc: 'Hard limit for a graceful shutdown; past it the process exits 1.' },
  { key: 'demoPage', env: 'DEMO_PAGE', kind: 'bool', default: undefined, doc: 'Serve the demo page at `/` and the browser SDK at `/client/*.js` (default: on in dev mode, off otherwise); in dev mode without a JWT key also `GET /dev/token?user=<name>` (loopback peers only).' },
  { key: 'redisUrl', env: 'REDIS_URL', kind: 'string', default: undefined, doc: 'Cluster mode: `redis://[:password@]host:port[/db]` (or `rediss://`) of a Redis 7 primary shared by every node. Unset: one node, everything in memory.' },
  { key: 'redisSentinels', env: 'REDIS_SENTINELS', kind: 'list', default: undefined, doc: 'Cluster mode through Redis Sentinel, instead of REDIS_URL: the sentinels, `host:port` comma separated. The nodes use the primary the sentinels name REDIS_SENTINEL_NAME, and the new one after a failover (protocol.md section 11 says what a failover may lose and how clients are told).' },
  { key: 'redisSentinelName', env: 'REDIS_SENTINEL_NAME', kind: 'string', default: undefined, doc: 'With REDIS_SENTINELS (required): the name of the primary the sentinels monitor (`sentinel monitor <name> ...`).' },
  { key: 'redisClusterNodes', env: 'REDIS_CLUSTER_NODES', kind: 'list', default: undefined, doc: 'Cluster mode on a Redis Cluster (7.x, sharded pub/sub), instead of REDIS_URL: some of its nodes, `host:port` comma separated (the others are discovered). The keys are spread over 48 hash-tagged partitions (README "Cluster mode"); HISTORY_MAX_BYTES is split evenly over them.' },
  { key: 'redisPassword', env: 'REDIS_PASSWORD', kind: 'string', default: undefined, doc: 'With REDIS_SENTINELS or REDIS_CLUSTER_NODES: the password of the Redis servers (with REDIS_URL it is in the URL).' },
  { key: 'redisPrefix', env: 'REDIS_PREFIX', kind: 'string', default: 'storywire:', doc: 'Prefix of every Redis key and channel, so that several deployments can share one Redis.' },
  { key: 'nodeId', env: 'NODE_ID', kind: 'string', default: undefined, doc: 'This node\'s id in the cluster (`[A-Za-z0-9_.-]`, at most 64); unset: random at each start. Two live nodes must never share one.' },
  { key: 'nodeLeaseMs', env: 'NODE_LEASE_MS', kind: 'int', default: 10000, min: 500, max: 600000, doc: 'Cluster mode: lease of a node in Redis, renewed every third of it. The users of a node that dies without cleaning up are offline within this plus a fifth of it (at most 2 s).' },
  { key: 'idempotencyTtlS', env: 'IDEMPOTENCY_TTL_S', kind: 'int', default: 600, min: 1, max: 604800, doc: 'How long a publish\'s `Idempotency-Key` is remembered, seconds: a retry with the same key within it stores and delivers nothing new. Longer than the backend retries for.' },
  { key: 'idempotencyMaxKeys', env: 'IDEMPOTENCY_MAX_KEYS', kind: 'int', default: 100000, min: 1, max: 10000000, doc: 'Keys each node remembers (in memory mode, the whole idempotency store; in cluster mode, for live-only topics): past it the oldest is forgotten first.' },
  ...WEBHOOK_OPTIONS,
];

/** User-sent notifications a personal topic's history and inbox hold at most (NOTIFY_USER_SHARE of HISTORY_SIZE). */
export const userShareOf = (config: Pick<Config, 'historySize' | 'notifyUserShare'>): number => Math.floor((config.historySize * config.notifyUserShare) / 100);

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/** `--jwt-secret x` and `--jwt-secret=x` map to JWT_SECRET; a bare `--presence-broadcast` means true. */
export function flagsToEnv(argv: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new ConfigError([`unexpected argument "${arg}" (flags look like --port 9001)`]);
    const eq = arg.indexOf('=');
    const name = (eq === -1 ? arg.slice(2) : arg.slice(2, eq)).toUpperCase().replaceAll('-', '_');
    if (eq !== -1) out[name] = arg.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) out[name] = argv[++i]!;
    else out[name] = 'true';
  }
  return out;
}

function parseValue(opt: Option, raw: string, problems: string[]): unknown {
  switch (opt.kind) {
    case 'int': {
      const n = Number(raw);
      if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n)) {
        problems.push(`${opt.env} must be an integer, got "${raw}"`);
        return undefined;
      }
      if ((opt.min !== undefined && n < opt.min) || (opt.max !== undefined && n > opt.max)) {
        problems.push(`${opt.env} must be between ${opt.min} and ${opt.max}, got ${n}`);
        return undefined;
      }
      return n;
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      problems.push(`${opt.env} must be true or false, got "${raw}"`);
      return undefined;
    }
    case 'list': {
      const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
      const bad = opt.oneOf ? items.filter((i) => !opt.oneOf!.includes(i)) : [];
      if (items.length === 0 || bad.length > 0) {
        problems.push(`${opt.env} must be a comma-separated list${opt.oneOf ? ` of ${opt.oneOf.join(', ')}` : ''}, got "${raw}"`);
        return undefined;
      }
      return Object.freeze(items);
    }
    case 'switch': {
      const v = raw.trim().toLowerCase();
      if (v === '1' || v === 'true') return true;
      if (v === '0' || v === 'false' || v === '') return false;
      problems.push(`${opt.env} must be 1 or true (on), 0 or false (off), got "${raw}"`);
      return undefined;
    }
    case 'string': {
      if (opt.oneOf && !opt.oneOf.includes(raw)) {
        problems.push(`${opt.env} must be one of ${opt.oneOf.join(', ')}, got "${raw}"`);
        return undefined;
      }
      return raw;
    }
  }
}

/**
 * Builds the configuration from environment variables, flags (which win) and overrides given in code
 * (which win over both). Throws one ConfigError naming every bad variable.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
  argv: readonly string[] = [],
  overrides: Partial<Config> = {},
): Config {
  const problems: string[] = [];
  let flags: Record<string, string> = {};
  try {
    flags = flagsToEnv(argv);
  } catch (err) {
    problems.push(...(err as ConfigError).problems);
  }
  for (const o of OPTIONS) {
    const name = o.flag?.toUpperCase().replaceAll('-', '_');
    if (name === undefined || flags[name] === undefined) continue;
    flags[o.env] = flags[name];
    delete flags[name];
  }
  const known = new Set(OPTIONS.map((o) => o.env));
  for (const name of Object.keys(flags)) if (!known.has(name)) problems.push(`unknown flag --${name.toLowerCase().replaceAll('_', '-')}`);

  const out: Record<string, unknown> = {};
  for (const opt of OPTIONS) {
    const raw = flags[opt.env] ?? env[opt.env];
    out[opt.key] = raw === undefined || raw === '' ? opt.default : parseValue(opt, raw, problems);
  }
  Object.assign(out, overrides);
  // Every default below fails closed unless dev mode was asked for; NODE_ENV is not read.
  const dev = out['dev'] === true;
  out['production'] = !dev;
  out['host'] ??= dev ? '127.0.0.1' : '0.0.0.0';
  out['demoPage'] ??= dev;
  // Dev keeps the demo page's alice <-> bob notifications working (main.ts warns).
  out['notifyPolicy'] ??= dev ? 'any' : 'backend';
  // MAX_CONNECTIONS follows the open-files limit when unset, and must fit under it when set (createServer
  // checks it again once CHANNELS_FILE's proxies, whose sockets count too, are known).
  const openFiles: OpenFiles = Object.freeze({ limit: openFilesLimit(), derived: out['maxConnections'] === undefined });
  const budget = connectionBudget(out['maxConnections'] as number | undefined, descriptorReserve(out['redisUrl'] !== undefined || out['redisSentinels'] !== undefined, [], out['redisClusterNodes'] !== undefined), openFiles.limit);
  if (budget.problem !== undefined) problems.push(budget.problem);
  else out['maxConnections'] = budget.maxConnections;
  out['openFiles'] = openFiles;
  // Room for the personal topic of every connection this node may hold, and as many more.
  if (typeof out['maxConnections'] === 'number') out['historyMaxTopics'] ??= Math.max(10000, 2 * out['maxConnections']);
  out['jwtRequireExp'] ??= !dev;
  const cfg = out as unknown as Config;

  if (!cfg.wsPath.startsWith('/')) problems.push(`WS_PATH must start with "/", got "${cfg.wsPath}"`);
  const keySources = [cfg.jwtSecret && 'JWT_SECRET', cfg.jwtPublicKey && 'JWT_PUBLIC_KEY', cfg.jwtJwksUrl && 'JWT_JWKS_URL'].filter(Boolean);
  if (keySources.length > 1) problems.push(`set only one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL (got ${keySources.join(', ')})`);
  if (cfg.jwtSecret !== undefined && Buffer.byteLength(cfg.jwtSecret) < 32) problems.push('JWT_SECRET must be at least 32 bytes long');
  if (cfg.jwtJwksUrl !== undefined) jwksUrlProblem(cfg.jwtJwksUrl, dev, problems);
  if (cfg.jwtAlgorithms) {
    const hs = cfg.jwtAlgorithms.filter((a) => a.startsWith('HS'));
    if (cfg.jwtSecret && hs.length !== cfg.jwtAlgorithms.length) problems.push('JWT_ALGORITHMS may list only HS256/HS384/HS512 with JWT_SECRET');
    if (!cfg.jwtSecret && hs.length > 0) problems.push('JWT_ALGORITHMS may not list HS* algorithms with a public key or JWKS');
  }
  if (!/^[a-z0-9-]+$/i.test(cfg.trustProxyHeader)) problems.push(`TRUST_PROXY_HEADER must be a header name, got "${cfg.trustProxyHeader}"`);
  // Before TRUSTED_PROXIES the header was believed from any peer: a client could choose its own address.
  const headerGiven = (flags['TRUST_PROXY_HEADER'] ?? env['TRUST_PROXY_HEADER'] ?? '') !== '' || overrides.trustProxyHeader !== undefined;
  if (headerGiven && cfg.trustedProxies === undefined) problems.push('TRUST_PROXY_HEADER is read only from TRUSTED_PROXIES: set TRUSTED_PROXIES to the addresses of your reverse proxies (e.g. 10.0.0.0/8); the header is no longer believed from any peer');
  if (cfg.trustedProxies !== undefined) problems.push(...trustedProxiesProblems(cfg.trustedProxies));
  if (cfg.apiKey !== undefined && cfg.apiKey.length < 16) problems.push('API_KEY must be at least 16 characters long');
  if (cfg.adminPort !== undefined && cfg.adminPort !== 0 && cfg.adminPort === cfg.port) problems.push('ADMIN_PORT must differ from PORT');
  if (cfg.redisUrl !== undefined && !/^rediss?:\/\/[^\s]+$/.test(cfg.redisUrl)) problems.push('REDIS_URL must be a redis:// or rediss:// URL');
  problems.push(...redisProblems(cfg));
  if (cfg.nodeId !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(cfg.nodeId)) problems.push(`NODE_ID must be 1-64 characters of [A-Za-z0-9_.-], got "${cfg.nodeId}"`);
  if (!/^[A-Za-z0-9_.:{}-]{1,64}$/.test(cfg.redisPrefix)) problems.push(`REDIS_PREFIX must be 1-64 characters of [A-Za-z0-9_.:{}-], got "${cfg.redisPrefix}"`);
  if (cfg.notifyPolicy === 'proxy' && cfg.notifyProxy === undefined) problems.push('NOTIFY_POLICY=proxy needs NOTIFY_PROXY (the name of a proxy of CHANNELS_FILE)');
  if (cfg.notifyTypes.some((ty) => ty.length > 64)) problems.push('NOTIFY_TYPES: a type is at most 64 characters');
  problems.push(...webhookProblems(cfg, dev));
  if (cfg.drainMs >= cfg.shutdownTimeoutMs) problems.push(`DRAIN_MS (${cfg.drainMs}) must be less than SHUTDOWN_TIMEOUT_MS (${cfg.shutdownTimeoutMs})`);
  if (!cfg.dev && keySources.length === 0) {
    problems.push('no JWT key: set JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL, or start in dev mode (--dev or STORYWIRE_DEV=1) for a throwaway local secret');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(cfg);
}

/** JWT_JWKS_URL: http(s); outside dev mode https, unless the host is a loopback address (a sidecar, the tests). */
function jwksUrlProblem(raw: string, dev: boolean, problems: string[]): void {
  const p = urlProblem('JWT_JWKS_URL', raw, dev, 'the keys decide who is who; over http anyone on the path can swap them');
  if (p !== undefined) problems.push(p);
}

/** The README's configuration table, made from OPTIONS (test/readme.test.ts keeps README in step). */
export function configTable(): string {
  const rows = OPTIONS.map((o) => {
    const def = o.default === undefined ? '(unset)' : `\`${String(o.default)}\``;
    return `| \`${o.env}\` | \`--${o.flag ?? o.env.toLowerCase().replaceAll('_', '-')}\` | ${def} | ${o.doc.replaceAll('|', '\\|')} |`;
  });
  return ['| variable | flag | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
