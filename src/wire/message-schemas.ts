// JSON Schemas of what the serializers of frame-schemas.ts do not write: every client message (as protocol.ts
// and messages.ts parse it), the `connected` frame and each request's ack data. scripts/gen-specs.ts puts them
// in specs/asyncapi.json next to FRAME_SCHEMAS; test/asyncapi.test.ts checks them against the parsers and a
// live server with every frame of protocol.md's examples. The server never loads this file.
import { ID_PATTERN } from '../edge/auth.js';
import { EVENT_SCHEMAS, type Schema } from './frame-schemas.js';

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const str = (minLength: number, maxLength: number): Schema => ({ type: 'string', minLength, maxLength });
const count = { type: 'integer', minimum: 0 } as const;
const object = (properties: Record<string, Schema>, required: string[] = [], additionalProperties = false): Schema => ({
  type: 'object',
  properties,
  required,
  additionalProperties,
});

/** A user, story or chapter id as a client may send it: sent on as a string. */
export const ID_SCHEMA: Schema = {
  anyOf: [
    { type: 'string', pattern: ID_PATTERN.source },
    { type: 'integer', minimum: 0, maximum: MAX_SAFE },
  ],
};
/** A request id: echoed in the reply. */
export const REQUEST_ID_SCHEMA: Schema = { anyOf: [str(1, 64), { type: 'integer', minimum: -MAX_SAFE, maximum: MAX_SAFE }] };
const topic = str(1, 140);
/** A chat message id: a derived UUID, or a backend's (chat-messages.ts). */
const messageId: Schema = { type: 'string', pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,128}$' };
const chatText: Schema = { type: 'string', minLength: 1, description: 'At most MAX_CHAT_BYTES of UTF-8.' };
const chatExtra: Schema = { type: ['object', 'null'], additionalProperties: true, description: 'At most MAX_CHAT_BYTES of JSON.' };
const storyFields = { id: ID_SCHEMA, title: str(1, 300) };

/**
 * The `data` of each client message type (protocol.md section 3); `undefined`: no data is read. Byte limits
 * (MAX_NOTIFICATION_BYTES, MAX_STORY_BYTES) and id counts (MAX_PRESENCE_IDS) are settings: not in the schemas.
 */
export const CLIENT_DATA_SCHEMAS: Record<string, Schema | undefined> = {
  ping: undefined,
  auth: object({ token: str(1, 8192) }, ['token'], true),
  'send:notification': object(
    {
      userId: ID_SCHEMA,
      notification: object(
        { title: str(1, 200), message: str(0, 2000), type: str(1, 64), data: { type: ['object', 'null'], additionalProperties: true } },
        ['title', 'message'],
        true,
      ),
    },
    ['userId', 'notification'],
    true,
  ),
  'typing:start': object({ target: topic }, ['target'], true),
  'typing:stop': object({ target: topic }, ['target'], true),
  'story:published': object(storyFields, ['id', 'title'], true),
  'chapter:published': object({ storyId: ID_SCHEMA, ...storyFields, number: { type: 'integer', minimum: 0, maximum: MAX_SAFE } }, ['storyId', 'id', 'title'], true),
  'profile:updated': { type: 'object', additionalProperties: true },
  publish: object({ channel: topic, data: { type: 'object', additionalProperties: true } }, ['channel', 'data'], true),
  subscribe: object(
    { topic, since: object({ epoch: str(1, 64), offset: { type: 'integer', minimum: 0, maximum: MAX_SAFE } }, ['epoch', 'offset'], true), token: str(1, 8192) },
    ['topic'],
    true,
  ),
  unsubscribe: object({ topic }, ['topic'], true),
  'presence:query': object({ userIds: { type: 'array', items: ID_SCHEMA } }, ['userIds'], true),
  'presence:channel': object({ channel: topic }, ['channel'], true),
  'notifications:list': object({ limit: { type: 'integer', minimum: 1, maximum: 1000 } }, [], true),
  'notifications:read': {
    anyOf: [object({ all: { const: true } }, ['all'], true), object({ id: str(1, 64) }, ['id'], true)],
  },
  'notifications:received': object({ epoch: str(1, 64), offsets: { type: 'array', items: { type: 'integer', minimum: 1, maximum: MAX_SAFE }, minItems: 1, maxItems: 100 } }, ['epoch', 'offsets'], true),
  'chat:send': object({ channel: topic, clientMsgId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' }, text: chatText, data: chatExtra }, ['channel', 'clientMsgId', 'text'], true),
  'chat:edit': object({ channel: topic, messageId, text: chatText, data: chatExtra }, ['channel', 'messageId', 'text'], true),
  'chat:delete': object({ channel: topic, messageId }, ['channel', 'messageId'], true),
  'chat:read': object({ channel: topic, offset: { type: 'integer', minimum: 0, maximum: MAX_SAFE } }, ['channel', 'offset'], true),
  'chat:unread': object({ channels: { type: 'array', items: topic, maxItems: 10000, description: 'At most MAX_UNREAD_CHANNELS.' } }, ['channels'], true),
};

/** A client message: `{type, id?, data}`; unknown fields are ignored. */
export function clientMessageSchema(type: string): Schema {
  if (!Object.hasOwn(CLIENT_DATA_SCHEMAS, type)) throw new Error(`no schema for the client message "${type}" in src/wire/message-schemas.ts`);
  const data = CLIENT_DATA_SCHEMAS[type];
  return {
    type: 'object',
    properties: { type: { const: type }, id: REQUEST_ID_SCHEMA, ...(data ? { data } : {}) },
    // notifications:list reads an absent data as {}.
    required: data && type !== 'notifications:list' ? ['type', 'data'] : ['type'],
    additionalProperties: true,
  };
}

const position = { epoch: { type: 'string' }, offset: count };
const inboxItem: Schema = {
  ...EVENT_SCHEMAS['notification:received'],
  properties: { ...EVENT_SCHEMAS['notification:received'].properties, offset: count, read: { type: 'boolean' } },
  required: [...EVENT_SCHEMAS['notification:received'].required, 'offset', 'read'],
  additionalProperties: false,
};
const joined = { ...position, recovered: { type: 'boolean' }, replayed: count };

/** A chat message as stored and sent, in its latest state (features/chat.ts, ChatMessage). */
const chatMessage = {
  id: { type: 'string' },
  clientMsgId: { type: 'string' },
  senderId: { type: 'string' },
  text: { type: 'string' },
  data: { type: 'object', additionalProperties: true },
  sentAt: { type: 'integer' },
  editedAt: { type: 'integer' },
  deleted: { const: true },
  deletedAt: { type: 'integer' },
};
const chatMessageRequired = ['id', 'clientMsgId', 'senderId', 'sentAt'];

/**
 * The `data` of the events the server writes without a serializer schema (features/chat.ts and chat-reads.ts
 * build them with JSON.stringify); the envelope is FRAME_SCHEMAS' `raw` one.
 */
export const CHAT_EVENT_SCHEMAS: Record<string, Schema> = {
  'chat:message': object(chatMessage, chatMessageRequired),
  'chat:edited': object({ id: { type: 'string' }, senderId: { type: 'string' }, text: { type: 'string' }, data: { type: 'object', additionalProperties: true }, editedAt: { type: 'integer' } }, ['id', 'senderId', 'text', 'editedAt']),
  'chat:deleted': object({ id: { type: 'string' }, senderId: { type: 'string' }, deletedAt: { type: 'integer' } }, ['id', 'senderId', 'deletedAt']),
  'chat:receipt': object({ userId: { type: 'string' }, offset: count }, ['userId', 'offset']),
  'chat:read': object({ channel: { type: 'string' }, offset: count, unread: count }, ['channel', 'offset', 'unread']),
};

/** The `data` of the `ack` answering each request type (`ping` is answered by `pong`, which has none). */
export const ACK_DATA_SCHEMAS: Record<string, Schema | undefined> = {
  ping: undefined,
  auth: object({ exp: { type: 'integer' } }),
  'send:notification': object({ id: { type: 'string' } }, ['id']),
  'typing:start': object({ relayed: { type: 'boolean' } }, ['relayed']),
  'typing:stop': object({ relayed: { type: 'boolean' } }, ['relayed']),
  'story:published': object({ id: { type: 'string' }, delivered: count }, ['id', 'delivered']),
  'chapter:published': object({ id: { type: 'string' }, delivered: count }, ['id', 'delivered']),
  'profile:updated': object({ delivered: count }, ['delivered']),
  publish: object({ channel: { type: 'string' } }, ['channel']),
  subscribe: object({ topic: { type: 'string' }, ...joined }, ['topic']),
  unsubscribe: object({ topic: { type: 'string' } }, ['topic']),
  'presence:query': object({ online: { type: 'array', items: { type: 'string' } }, forbidden: { type: 'array', items: { type: 'string' } } }, ['online', 'forbidden']),
  'presence:channel': object({ channel: { type: 'string' }, count, members: { type: 'array', items: { type: 'string' } }, truncated: { const: true } }, ['channel', 'count']),
  'notifications:list': object({ notifications: { type: 'array', items: inboxItem }, unreadCount: count, ...position }, ['notifications', 'unreadCount', 'offset']),
  'notifications:read': object({ unreadCount: count }, ['unreadCount']),
  'notifications:received': object({}),
  'chat:send': object({ channel: { type: 'string' }, ...chatMessage, ...position, duplicate: { type: 'boolean' } }, ['channel', ...chatMessageRequired, 'epoch', 'offset', 'duplicate']),
  'chat:edit': object({ channel: { type: 'string' }, id: { type: 'string' }, ...position }, ['channel', 'id', 'epoch', 'offset']),
  'chat:delete': object({ channel: { type: 'string' }, id: { type: 'string' }, ...position }, ['channel', 'id', 'epoch', 'offset']),
  'chat:read': object({ channel: { type: 'string' }, offset: count, unread: count }, ['channel', 'offset', 'unread']),
  'chat:unread': object({ counts: { type: 'object', additionalProperties: count }, forbidden: { type: 'array', items: { type: 'string' } } }, ['counts', 'forbidden']),
};

/** The `data` of `connected`, the first frame of every connection (frames.ts, connectedFrameTemplate). */
export const CONNECTED_DATA_SCHEMA: Schema = object(
  {
    userId: { type: 'string' },
    connectionId: { type: 'string' },
    permissions: { type: 'array', items: { type: 'string' } },
    exp: { type: 'integer' },
    heartbeatIntervalMs: count,
    idleTimeoutS: count,
    limits: { type: 'object', additionalProperties: { type: 'integer' } },
    receipts: { type: 'boolean', const: true },
    topics: { type: 'object', additionalProperties: object(joined, ['epoch', 'offset']) },
  },
  ['userId', 'connectionId', 'permissions', 'heartbeatIntervalMs', 'idleTimeoutS', 'limits', 'topics'],
);
