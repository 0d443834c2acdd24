// Outgoing envelopes: one fast-json-stringify serializer per server -> client type, compiled ahead of time
// from src/wire/frame-schemas.ts into src/generated/serializers.ts (by `npm run build`), so start-up loads no
// schema compiler (fast-json-stringify's and ajv's modules took V8's young generation from 4 to 8 MiB).
import { errorBody, type ErrorCode } from './codes.js';
import { EVENT_SCHEMAS, type EventType } from './frame-schemas.js';
import { serializers } from '../generated/serializers.js';
import type { RequestId } from './protocol.js';

export { EVENT_SCHEMAS, type EventType };

type Serializer = (doc: object) => string;

const serializer = (name: string): Serializer => {
  const s = serializers[name];
  if (!s) throw new Error(`no serializer "${name}" in src/generated/serializers.ts: run npm run build`);
  return s;
};

const eventSerializers = Object.fromEntries(Object.keys(EVENT_SCHEMAS).map((type) => [type, serializer(type)])) as Record<EventType, Serializer>;

/** One frame for one topic: serialized once, then fanned out by uWS to every subscriber. */
export function eventFrame(type: EventType, topic: string, data: object, ts = Date.now()): string {
  return eventSerializers[type]({ type, topic, data, ts });
}

const J = JSON.stringify;

type NotificationFields = { id: string; title: string; message: string; type: string; data: object | undefined; from: string | null; origin: 'user' | 'system'; ts: number };

/**
 * `notification:received` on a personal topic: the same bytes as eventFrame() writes (required fields
 * first, then `data`), built with the native JSON.stringify. The schema serializer escapes strings under
 * 42 characters (every field of a typical notification) in a JavaScript loop: ~1 us per notification,
 * profiled. test/serialize.test.ts checks both give the same frame.
 */
export function notificationFrame(topic: string, n: NotificationFields): string {
  return notificationHead(topic) + notificationTail(n);
}

/** The head of notificationFrame(): `{"type":"notification:received","topic":<topic>` (PubSub.emitParts). */
export const notificationHead = (topic: string): string => `{"type":"notification:received","topic":${J(topic)}`;

/**
 * The rest of notificationFrame() after its head: `data` by one JSON.stringify of an object whose keys are in
 * the schema's order (the frame is then one flat string and a few pieces, not a rope of ~15).
 */
export function notificationTail(n: NotificationFields): string {
  const ts = Math.trunc(n.ts);
  const origin = n.origin === 'user' ? 'user' : 'system';
  // Without a `data` key when there is none: a key holding undefined takes JSON.stringify off its fast path
  // (~0.3 µs more, measured).
  const body =
    n.data === undefined
      ? { id: n.id, title: n.title, message: n.message, type: n.type, from: n.from, origin, ts }
      : { id: n.id, title: n.title, message: n.message, type: n.type, from: n.from, origin, ts, data: n.data };
  return `,"data":${J(body)},"ts":${ts}}`;
}

const rawSerializer = serializer('raw');
/** A backend-defined event (`POST /v1/publish`): the type is not one of EVENT_SCHEMAS. */
export function rawEventFrame(type: string, topic: string, data: object, ts = Date.now()): string {
  return rawSerializer({ type, topic, data, ts });
}

const ackSerializer = serializer('ack');
export function ackFrame(id: RequestId | undefined, data?: object): string {
  return ackSerializer(id === undefined ? { type: 'ack', data, ts: Date.now() } : { type: 'ack', id, data, ts: Date.now() });
}

/** ackFrame() with `data` already serialized (a cached answer): the same bytes as ackFrame(id, JSON.parse(data)). */
export function ackFrameJson(id: RequestId | undefined, data: string): string {
  return `{"type":"ack","ts":${Date.now()}${id === undefined ? '' : `,"id":${J(id)}`},"data":${data}}`;
}

const errorSerializer = serializer('error');
export function errorFrame(id: RequestId | undefined, code: ErrorCode, message: string): string {
  const { error } = errorBody(code, message);
  return errorSerializer(id === undefined ? { type: 'error', error, ts: Date.now() } : { type: 'error', id, error, ts: Date.now() });
}

const bareSerializer = serializer('bare');
export function pongFrame(id: RequestId | undefined): string {
  return bareSerializer(id === undefined ? { type: 'pong', ts: Date.now() } : { type: 'pong', id, ts: Date.now() });
}

export function heartbeatFrame(): string {
  return bareSerializer({ type: 'heartbeat', ts: Date.now() });
}

export interface ConnectedData {
  userId: string;
  connectionId: string;
  permissions: string[];
  /** Token expiry (seconds since the epoch), absent when the token has none. */
  exp?: number;
  heartbeatIntervalMs: number;
  idleTimeoutS: number;
  limits: Record<string, number>;
  /** Present (true) when the server tracks deliveries for the push fallback: send `notifications:received`. */
  receipts?: boolean;
  /** Recoverable topics joined automatically, with the position the connection joined at. */
  topics: Record<string, { epoch: string; offset: number; recovered?: boolean; replayed?: number }>;
}
export interface TopicPosition {
  epoch: string;
  offset: number;
  recovered?: boolean;
  replayed?: number;
}

/**
 * The `connected` frame, built from a template made once per server: its settings part never changes,
 * and a connection adds a few short strings (ids match [A-Za-z0-9_.@|+=:-], epochs [A-Za-z0-9_-]: JSON.stringify
 * of such a string is a copy between quotes). Same bytes as a serializer would write, at a fraction of
 * the cost on the handshake path (profiled: the schema serializer was ~7 us of a ~90 us handshake).
 */
export function connectedFrameTemplate(settings: Pick<ConnectedData, 'heartbeatIntervalMs' | 'idleTimeoutS' | 'limits' | 'receipts'>): (data: { userId: string; connectionId: string; permissions: readonly string[]; exp: number | undefined }, topic?: string, position?: TopicPosition) => string {
  const fixed = `"heartbeatIntervalMs":${Math.trunc(settings.heartbeatIntervalMs)},"idleTimeoutS":${Math.trunc(settings.idleTimeoutS)},"limits":${JSON.stringify(settings.limits)}${settings.receipts === true ? ',"receipts":true' : ''}`;
  return (data, topic, position) => {
    const exp = data.exp === undefined ? '' : `"exp":${Math.trunc(data.exp)},`;
    let topics = '{}';
    if (topic !== undefined && position !== undefined) {
      const resumed = position.recovered === undefined ? '' : `,"recovered":${position.recovered},"replayed":${position.replayed ?? 0}`;
      topics = `{${JSON.stringify(topic)}:{"epoch":${JSON.stringify(position.epoch)},"offset":${position.offset}${resumed}}}`;
    }
    return `{"type":"connected","ts":${Date.now()},"data":{"userId":${JSON.stringify(data.userId)},"connectionId":${JSON.stringify(data.connectionId)},"permissions":${data.permissions.length === 0 ? '[]' : JSON.stringify(data.permissions)},${exp}${fixed},"topics":${topics}}}`;
  };
}
