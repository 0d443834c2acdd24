// The AsyncAPI 3.0 document of the WebSocket protocol (specs/asyncapi.json), built from the schemas the server
// compiles its serializers from (src/wire/frame-schemas.ts), the client message schemas
// (src/wire/message-schemas.ts), the error codes (src/wire/codes.ts) and the rows of protocol.md's tables.
import { readFileSync } from 'node:fs';
import { CloseCode, ErrorCode } from '../../src/wire/codes.js';
import { EVENT_SCHEMAS, FRAME_SCHEMAS, type Schema } from '../../src/wire/frame-schemas.js';
import { ACK_DATA_SCHEMAS, CHAT_EVENT_SCHEMAS, CLIENT_DATA_SCHEMAS, CONNECTED_DATA_SCHEMA, clientMessageSchema } from '../../src/wire/message-schemas.js';

const ROOT = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, ROOT), 'utf8');

/** `send:notification` -> `SendNotification`: a name AsyncAPI keys and code generators accept. */
export const pascal = (type: string): string =>
  type
    .split(/[:_.-]/)
    .filter(Boolean)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join('');

/** The message names: a client message, the ack answering it, a topic event (profile:updated is both). */
export const clientName = (type: string) => `${pascal(type)}Request`;
export const ackName = (type: string) => `${pascal(type)}Ack`;
export const eventName = (type: string) => `${pascal(type)}Event`;

/**
 * A serializer schema as the frames it writes: fast-json-stringify leaves out every property its schema does
 * not list, so an object schema without `additionalProperties` is closed (the document says so, and a frame
 * with an extra field fails the conformance test).
 */
export function closed(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(closed);
  if (s === null || typeof s !== 'object') return s;
  const out: Record<string, unknown> = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, ps]) => [p, closed(ps)])) : closed(v)]));
  if (out['type'] === 'object' && out['properties'] !== undefined && out['additionalProperties'] === undefined) out['additionalProperties'] = false;
  return out;
}

/** An envelope of FRAME_SCHEMAS with its `type` fixed; topic events may carry the history position (position.ts). */
function frame(base: string, type: string | undefined, extra: Record<string, Schema> = {}, data?: Schema): Schema {
  const s = closed(FRAME_SCHEMAS[base]) as { properties: Record<string, Schema> } & Schema;
  const properties = { ...s.properties, ...(type === undefined ? {} : { type: { const: type } }), ...extra, ...(data ? { data } : {}) };
  return { ...s, properties };
}

const position = {
  epoch: { type: 'string', description: 'The topic history\'s epoch (recoverable topics; protocol.md section 9).' },
  offset: { type: 'integer', minimum: 1, description: 'The event\'s offset in its topic (recoverable topics).' },
};

/** The cells after the first of the first table row of `section` (or of the whole text) whose first cell names `type`. */
function row(doc: string, type: string, section?: string): string[] | undefined {
  const start = section === undefined ? 0 : doc.indexOf(section);
  const end = section === undefined ? -1 : doc.indexOf('\n## ', start + 1);
  for (const line of doc.slice(start, end === -1 ? doc.length : end).split('\n')) {
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim().replaceAll('\\|', '|'));
    if (cells.length >= 4 && cells[1]!.split(/,\s*/).includes(`\`${type}\``)) return cells.slice(2, -1);
  }
  return undefined;
}

/** What protocol.md's table says of a message: a client message's data and reply (section 3), an event's topic and data (section 4). */
function documented(doc: string, type: string, client: boolean): string {
  const cells = client ? (row(doc, type, '## 3. Client -> server messages') ?? row(doc.replace(/## 4\.[\s\S]*?\n## 5\./, ''), type)) : (row(doc, type, '## 4. Server -> client events') ?? row(doc, type));
  if (cells === undefined) throw new Error(`protocol.md has no table row for the ${client ? 'client' : 'server'} message "${type}"`);
  return client ? `data: ${cells[0]}; reply: ${cells[1]}` : `topic: ${cells[0]}; data: ${cells[1]}`;
}

interface Built {
  schemas: Record<string, Schema>;
  messages: Record<string, Schema>;
  operations: Record<string, Schema>;
}

const ref = (name: string) => ({ $ref: `#/channels/connection/messages/${name}` });
const channel = { $ref: '#/channels/connection' };
const correlationId = { description: 'The request id, echoed by the one reply (protocol.md section 2).', location: '$message.payload#/id' };

function message(b: Built, name: string, payload: Schema, title: string, summary: string, correlated = false): void {
  if (b.schemas[name] !== undefined) throw new Error(`two messages named ${name}`);
  b.schemas[name] = payload;
  b.messages[name] = { name, title, summary, payload: { $ref: `#/components/schemas/${name}` }, ...(correlated ? { correlationId } : {}) };
}

/** The client messages, each an operation the server receives, answered by its ack (or pong) or an error. */
function clientMessages(b: Built, doc: string): void {
  for (const type of Object.keys(CLIENT_DATA_SCHEMAS)) {
    const name = clientName(type);
    message(b, name, clientMessageSchema(type), type, documented(doc, type, true), true);
    const replies = [ref('Error')];
    if (type === 'ping') replies.unshift(ref('Pong'));
    else {
      const ack = ackName(type);
      message(b, ack, frame('ack', 'ack', {}, ACK_DATA_SCHEMAS[type] ?? { type: 'object' }), 'ack', `The ack of \`${type}\`.`, true);
      replies.unshift(ref(ack));
    }
    b.operations[`receive${pascal(type)}`] = { action: 'receive', title: type, channel, messages: [ref(name)], reply: { channel, messages: replies } };
  }
}

/** The frames the server sends: topic events, then the direct frames (connected, ack, error, pong, heartbeat). */
function serverMessages(b: Built, doc: string): void {
  for (const type of Object.keys(EVENT_SCHEMAS)) {
    message(b, eventName(type), frame(type, type, position), type, documented(doc, type, false));
  }
  for (const [type, data] of Object.entries(CHAT_EVENT_SCHEMAS)) {
    message(b, eventName(type), frame('raw', type, position, data), type, documented(doc, type, false));
  }
  message(b, 'BackendEvent', frame('raw', undefined, position), 'any backend type', 'An event of `POST /v1/publish` on the topic it was published on: its `type` is the backend\'s own (lowercase words separated by `:`), its `data` the backend\'s.');
  const connected = { type: 'object', properties: { type: { const: 'connected' }, data: CONNECTED_DATA_SCHEMA, ts: { type: 'integer' } }, required: ['type', 'data', 'ts'], additionalProperties: false };
  message(b, 'Connected', connected, 'connected', documented(doc, 'connected', false));
  const error = frame('error', 'error');
  (error['properties'] as Record<string, Schema>)['error'] = {
    ...(closed(FRAME_SCHEMAS['error']!['properties'] as Record<string, unknown>) as Record<string, Schema>)['error'],
    properties: { code: { type: 'string', enum: Object.values(ErrorCode) }, message: { type: 'string' } },
  };
  message(b, 'Error', error, 'error', 'A request failed: `error.code` is one of protocol.md section 6.', true);
  message(b, 'Pong', frame('bare', 'pong'), 'pong', 'The answer to `ping`, with the same `id`.', true);
  message(b, 'Heartbeat', frame('bare', 'heartbeat'), 'heartbeat', documented(doc, 'heartbeat', false));
  const sent = [...[...Object.keys(EVENT_SCHEMAS), ...Object.keys(CHAT_EVENT_SCHEMAS)].map(eventName), 'BackendEvent', 'Connected', 'Heartbeat'];
  for (const name of sent) b.operations[`send${name}`] = { action: 'send', title: b.messages[name]!['title'], channel, messages: [ref(name)] };
}

/** The whole document; `doc`: protocol.md's text. */
export function asyncapi(doc = read('protocol.md')): Record<string, unknown> {
  const pkg = JSON.parse(read('package.json')) as { version: string };
  const b: Built = { schemas: {}, messages: {}, operations: {} };
  clientMessages(b, doc);
  serverMessages(b, doc);
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'storywire WebSocket protocol',
      version: pkg.version,
      description: `Generated from src/wire/frame-schemas.ts (the schemas the server compiles its serializers from) and src/wire/message-schemas.ts by \`npm run gen:specs\`; protocol.md is the reference (every field, limit, error and close code ${Object.values(CloseCode).join('/')}). One JSON object per text frame. Operations are the server's: it receives the client messages and sends the events.`,
      license: { name: 'MIT' },
    },
    defaultContentType: 'application/json',
    servers: {
      local: {
        host: 'localhost:9001',
        protocol: 'ws',
        pathname: '/ws',
        description: '`npm start -- --dev` (WS_PATH sets the path; wss behind a TLS proxy).',
        security: [{ $ref: '#/components/securitySchemes/bearer' }, { $ref: '#/components/securitySchemes/queryToken' }],
      },
    },
    channels: {
      connection: {
        address: '/ws',
        title: 'One WebSocket connection',
        description: 'The connection of one user (the JWT `sub`): its personal topic `user:<sub>` and the topics it subscribes to. A refused upgrade is an HTTP error `{"error":{"code","message"}}`, or in band a close code (protocol.md section 1).',
        messages: Object.fromEntries(Object.keys(b.messages).map((name) => [name, { $ref: `#/components/messages/${name}` }])),
        bindings: {
          ws: {
            method: 'GET',
            query: {
              type: 'object',
              properties: {
                token: { type: 'string', description: 'The JWT, when neither the Authorization header nor the subprotocol carries it.' },
                since: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}:\\d{1,15}$', description: 'Resume the personal topic from `<epoch>:<offset>` (protocol.md section 9).' },
              },
            },
            bindingVersion: '0.1.0',
          },
        },
      },
    },
    operations: b.operations,
    components: {
      schemas: b.schemas,
      messages: b.messages,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: '`Authorization: Bearer <jwt>`; browsers offer the subprotocols `storywire.v1, bearer.<jwt>` instead.' },
        queryToken: { type: 'httpApiKey', name: 'token', in: 'query', description: '`?token=<jwt>` (URLs end up in proxy logs).' },
      },
    },
  };
}
