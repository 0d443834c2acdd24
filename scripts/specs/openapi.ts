// The OpenAPI 3.1 document of the backend HTTP API and the operations endpoints (specs/openapi.json), protocol.md
// section 10. Bodies reuse the client message schemas (src/wire/message-schemas.ts: a notification, a story and
// a chapter are checked by the same parsers on both ways in) and the error codes of src/wire/codes.ts.
import { readFileSync } from 'node:fs';
import { CloseCode, ErrorCode } from '../../src/wire/codes.js';
import type { Schema } from '../../src/wire/frame-schemas.js';
import { CLIENT_DATA_SCHEMAS, ID_SCHEMA } from '../../src/wire/message-schemas.js';

const props = (type: string) => (CLIENT_DATA_SCHEMAS[type] as { properties: Record<string, Schema> }).properties;
const obj = (properties: Record<string, Schema>, required: string[] = [], additionalProperties: boolean | Schema = false): Schema => ({ type: 'object', properties, required, additionalProperties });
const count = { type: 'integer', minimum: 0 };
const c = (name: string) => ({ $ref: `#/components/schemas/${name}` });

const SCHEMAS: Record<string, Schema> = {
  Id: ID_SCHEMA,
  Error: obj({ error: obj({ code: { type: 'string', enum: Object.values(ErrorCode) }, message: { type: 'string' } }, ['code', 'message']) }, ['error']),
  Notification: props('send:notification')['notification']!,
  NotificationRequest: {
    ...obj({ userId: c('Id'), userIds: { type: 'array', items: c('Id'), minItems: 1, description: 'At most MAX_BATCH (default 100).' }, notification: c('Notification'), from: { anyOf: [c('Id'), { type: 'null' }] } }, ['notification'], true),
    anyOf: [{ required: ['userIds'] }, { required: ['userId'] }],
  },
  Story: { ...(CLIENT_DATA_SCHEMAS['story:published'] as object), properties: { ...props('story:published'), authorId: { anyOf: [c('Id'), { type: 'null' }] } } },
  StoryUpdate: obj({ authorId: { anyOf: [c('Id'), { type: 'null' }] } }, [], true),
  Chapter: obj({ id: c('Id'), title: props('chapter:published')['title']!, number: props('chapter:published')['number']!, authorId: { anyOf: [c('Id'), { type: 'null' }] } }, ['id', 'title'], true),
  RawEvent: obj(
    {
      topic: { type: 'string', maxLength: 140, description: 'Any topic of protocol.md section 3, `presence` included.' },
      type: { type: 'string', maxLength: 64, pattern: '^[a-z][a-z0-9_]*(?::[a-z0-9_]+)*$', not: { enum: ['connected', 'heartbeat', 'pong', 'ack', 'error'] } },
      data: { type: 'object', additionalProperties: true, description: 'At most MAX_STORY_BYTES of JSON.' },
    },
    ['topic', 'type'],
    true,
  ),
};

const json = (schema: Schema, example?: unknown) => ({ content: { 'application/json': { schema, ...(example === undefined ? {} : { example }) } } });
const error = (description: string) => ({ description, ...json(c('Error')) });
const ERRORS = {
  '400': error('`BAD_JSON`, `INVALID_PAYLOAD` (naming the field), `INVALID_TOPIC` or `TOO_MANY_IDS`.'),
  '401': error('`UNAUTHORIZED`: missing or wrong API key.'),
  '405': error('`METHOD_NOT_ALLOWED` (with `Allow`).'),
  '413': error('`PAYLOAD_TOO_LARGE`: a body over MAX_BODY_BYTES, or a `data` over MAX_STORY_BYTES.'),
};
/** The fields of a publishing route's answer (one set per shape it may take). */
type Answer = { properties: Record<string, Schema>; required: string[] };
const stored = { type: ['boolean', 'null'], description: 'true: in the history of its recoverable topic; false: nothing stored, retry; null: not known, retry with the same Idempotency-Key.' };
const either = (shapes: Schema[]): Schema => (shapes.length === 1 ? shapes[0]! : { anyOf: shapes });
/** 200: the answer, `duplicate` for a keyed retry. */
const ok = (answers: Answer[]) => either(answers.map((a) => obj({ ...a.properties, duplicate: { const: true } }, a.required)));
/** 503: the same answer (what this node delivered) with `stored` and the error (protocol.md section 10), or a bare error when the API is disabled. */
const partial = (answers: Answer[]) => either([...answers.map((a) => obj({ ...a.properties, stored, error: (SCHEMAS['Error'] as { properties: Record<string, Schema> }).properties['error']! }, [...a.required, 'stored', 'error'])), c('Error')]);
const idempotencyKey = { name: 'Idempotency-Key', in: 'header', required: false, description: 'One key per logical event: a retry within IDEMPOTENCY_TTL_S stores and delivers nothing new (`duplicate: true`).', schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,255}$' } };
const pathId = { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_.@|+=-]{1,128}$' } };

/** A publishing route: JSON body, Idempotency-Key, 200 / 422 / 503 with `stored`. */
function publishing(summary: string, body: Schema, example: unknown, answers: Answer[], pathParams: object[] = []): Schema {
  return {
    summary,
    parameters: [...pathParams, idempotencyKey],
    requestBody: { required: true, ...json(body, example) },
    responses: {
      '200': { description: 'Published; `delivered` counts this node\'s connections handed the event.', ...json(ok(answers)) },
      ...ERRORS,
      '422': error('`IDEMPOTENCY_CONFLICT`: the key was used for another request.'),
      '503': { description: '`UNAVAILABLE`: the other nodes could not be reached (the answer says what this node delivered), or no API_KEY (the API is disabled).', ...json(partial(answers)) },
    },
  };
}

/** A route that answers JSON without publishing. */
function plain(summary: string, answer: Schema, more: Record<string, unknown> = {}): Schema {
  return { summary, ...more, responses: { '200': { description: 'OK', ...json(answer) }, ...ERRORS, '503': error('`UNAVAILABLE`: no API_KEY (the API is disabled) or the other nodes could not be reached.') } };
}

function paths(): Record<string, Schema> {
  const delivered = (extra: Record<string, Schema> = {}, required: string[] = []): Answer[] => [{ properties: { ...extra, delivered: count }, required: [...required, 'delivered'] }];
  const published = delivered({ id: { type: 'string' } }, ['id']);
  return {
    '/v1/notifications': { post: publishing('sendNotificationToUser: `notification:received` on each `user:<id>`.', c('NotificationRequest'), { userId: '123', notification: { title: 'Nouveau follower', message: 'Quelqu\'un vous suit', type: 'follower', data: { followerId: 42 } } }, delivered({ id: { type: 'string' }, recipients: count }, ['id', 'recipients'])) },
    '/v1/stories': { post: publishing('broadcastNewStory: `story:new` on `stories` (and `author:<authorId>`).', c('Story'), { id: '42', title: 'Le Petit Prince', authorId: '7' }, published) },
    '/v1/stories/{id}/updated': { post: publishing('`story:updated` on `stories`, `story:<id>` (and `author:<authorId>`).', c('StoryUpdate'), { title: 'Le Petit Prince (révisé)' }, published, [pathId]) },
    '/v1/stories/{id}/chapters': { post: publishing('`chapter:new` on `story:<id>` (and `author:<authorId>`).', c('Chapter'), { id: 'c1', title: 'Chapitre I', number: 1, authorId: '7' }, delivered({ id: { type: 'string' }, storyId: { type: 'string' } }, ['id', 'storyId']), [pathId]) },
    '/v1/publish': {
      post: publishing(
        'Any event to any topic, or a batch of at most MAX_BATCH (validated whole before anything is sent).',
        { anyOf: [c('RawEvent'), { type: 'array', items: c('RawEvent'), minItems: 1 }] },
        { topic: 'user:123', type: 'story:liked', data: { storyId: '42', by: 'alice' } },
        [...delivered(), { properties: { published: count, delivered: { type: 'array', items: count } }, required: ['published', 'delivered'] }],
      ),
    },
    '/v1/presence': {
      get: plain('Who is online, on every node.', obj({ online: { type: 'array', items: { type: 'string' } } }, ['online']), {
        parameters: [{ name: 'userIds', in: 'query', required: true, description: 'Comma-separated ids, at most MAX_PRESENCE_IDS.', schema: { type: 'string' }, example: '123,456' }],
      }),
    },
    '/v1/users/{id}/disconnect': {
      post: disconnect(),
    },
    '/v1/channels/unsubscribe': {
      post: plain('Ends the user\'s subscriptions to a channel on every node (`unsubscribed` `SUBSCRIPTION_REVOKED`).', obj({ revoked: count }, ['revoked']), {
        requestBody: { required: true, ...json(obj({ userId: c('Id'), channel: { type: 'string', minLength: 1, maxLength: 140 }, reason: { type: 'string', description: 'At most 120 bytes.' } }, ['userId', 'channel']), { userId: 'alice', channel: 'story:42', reason: 'subscription ended' }) },
      }),
    },
  };
}

/** `POST /v1/users/{id}/disconnect`: 404 (with `closed: 0`) when the user has no connection. */
function disconnect(): Schema {
  const op = plain('Closes every connection of the user, on every node.', obj({ closed: count }, ['closed']), {
    parameters: [pathId],
    requestBody: { required: false, ...json(obj({ code: { type: 'integer', enum: [CloseCode.SHUTDOWN, CloseCode.RECONNECT, CloseCode.TOKEN_EXPIRED, CloseCode.FORBIDDEN, CloseCode.TOKEN_REVOKED], default: CloseCode.TOKEN_REVOKED }, reason: { type: 'string', description: 'At most 120 bytes.' } }), { code: 4403, reason: 'account banned' }) },
  });
  const noConnection = obj({ closed: { const: 0 }, error: (SCHEMAS['Error'] as { properties: Record<string, Schema> }).properties['error']! }, ['closed', 'error']);
  return { ...op, responses: { ...(op['responses'] as object), '404': { description: '`NOT_FOUND`: the user has no open connection.', ...json(noConnection) } } };
}

function operationsPaths(): Record<string, Schema> {
  const status = (values: string[]) => obj({ status: { type: 'string', enum: values }, reason: { type: 'string' } }, ['status']);
  return {
    '/healthz': { get: { summary: 'Liveness: 200 while the process runs.', security: [], responses: { '200': { description: 'OK', ...json(status(['ok'])) } } } },
    '/readyz': {
      get: {
        summary: 'Readiness: 200 while accepting traffic (`degraded`: cluster mode without Redis, or with a reason while one Redis Cluster shard is not heard), 503 while draining.',
        security: [],
        responses: { '200': { description: 'Ready', ...json(status(['ready', 'degraded'])) }, '503': { description: 'Not ready', ...json(status(['draining', 'starting'])) } },
      },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus text format. Needs the API key on the WebSocket port; open on ADMIN_PORT.',
        responses: { '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } }, '401': ERRORS['401'] },
      },
    },
  };
}

/** The whole document. */
export function openapi(): Record<string, unknown> {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return {
    openapi: '3.1.0',
    info: {
      title: 'storywire backend HTTP API',
      version: pkg.version,
      description: 'For the app\'s backend, not for end users (protocol.md section 10 is the reference). Served on the WebSocket port, or on ADMIN_PORT when set. Bodies are JSON of at most MAX_BODY_BYTES, plain or chunked. Generated by `npm run gen:specs` (scripts/specs/openapi.ts).',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: 'http://localhost:9001', description: '`npm start -- --dev` (the API key is printed at start)' }],
    security: [{ apiKey: [] }],
    paths: { ...paths(), ...operationsPaths() },
    components: {
      schemas: SCHEMAS,
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: '`Authorization: Bearer <API_KEY>` (a service key, never a user JWT).' } },
    },
  };
}
