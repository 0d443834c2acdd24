// The JSON schemas of every frame the server serializes with fast-json-stringify. The serializers are
// compiled ahead of time into src/generated/serializers.ts (not in git: `npm run build`, `npm run dev`
// and `npm run gen:serializers` write it), so that the server does not load fast-json-stringify's compiler and
// ajv at start-up; test/serialize.test.ts fails when that file no longer matches these schemas.

export type Schema = Record<string, unknown>;

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const open = (properties: Record<string, Schema>, required: string[] = []): Schema => ({
  type: 'object',
  properties,
  required,
  additionalProperties: true,
});

/** Data schemas of every event the server sends on a topic; protocol.md documents each. */
export const EVENT_SCHEMAS = {
  'notification:received': {
    type: 'object',
    properties: {
      id: str,
      title: str,
      message: str,
      type: str,
      data: { type: 'object', additionalProperties: true },
      from: { type: ['string', 'null'] },
      // `system`: the backend API or an embedded helper; `user`: a client's send:notification.
      origin: { type: 'string', enum: ['user', 'system'] },
      ts: int,
    },
    required: ['id', 'title', 'message', 'type', 'from', 'origin', 'ts'],
  },
  'user:online': { type: 'object', properties: { userId: str }, required: ['userId'] },
  'user:offline': { type: 'object', properties: { userId: str, lastSeen: int }, required: ['userId', 'lastSeen'] },
  'story:new': open({ id: str, title: str, authorId: { type: ['string', 'null'] } }, ['id']),
  'story:updated': open({ id: str, authorId: { type: ['string', 'null'] } }, ['id']),
  'chapter:new': open({ storyId: str, id: str, title: str, authorId: { type: ['string', 'null'] } }, ['storyId', 'id']),
  'user:typing': { type: 'object', properties: { userId: str, target: str }, required: ['userId', 'target'] },
  'user:stopped_typing': { type: 'object', properties: { userId: str, target: str }, required: ['userId', 'target'] },
  'profile:updated': open({ userId: str }, ['userId']),
  // A client's `publish`, as sent or as the publish proxy rewrote it, stamped with its sender.
  publication: open({ senderId: str }, ['senderId']),
  // Sent to a connection itself (never published, never numbered) when its subscription to `topic` ends.
  unsubscribed: { type: 'object', properties: { topic: str, code: str, reason: str }, required: ['topic', 'code', 'reason'] },
  'notifications:read': {
    type: 'object',
    properties: { ids: { type: 'array', items: str }, allUpTo: int, unreadCount: int },
    required: ['unreadCount'],
  },
} as const satisfies Record<string, Schema>;

export type EventType = keyof typeof EVENT_SCHEMAS;

const envelope = (data: Schema | undefined, extra: Record<string, Schema> = {}, required = ['type', 'ts']): Schema => ({
  type: 'object',
  properties: {
    type: str,
    topic: str,
    id: { type: ['string', 'integer'] },
    ...(data ? { data } : {}),
    ...extra,
    ts: int,
  },
  required,
});

/**
 * Every serializer by name: one per event type (topic events start with `{"type":..,"topic":..`:
 * fast-json-stringify writes required properties first, in this order, and PubSub splices the history
 * position in right after them), then the raw event, ack, error and bare (pong, heartbeat) envelopes.
 */
export const FRAME_SCHEMAS: Record<string, Schema> = {
  ...Object.fromEntries(Object.entries(EVENT_SCHEMAS).map(([type, schema]) => [type, envelope(schema, {}, ['type', 'topic', 'data', 'ts'])])),
  raw: envelope({ type: 'object', additionalProperties: true }, {}, ['type', 'topic', 'data', 'ts']),
  ack: envelope({ type: 'object', additionalProperties: true }),
  error: envelope(undefined, { error: { type: 'object', properties: { code: str, message: str }, required: ['code', 'message'] } }),
  bare: envelope(undefined),
};
