// The backend HTTP API (what the app's REST controllers call) and the operations endpoints.
import type { Logger } from 'pino';
import type { UWS } from '../uws.js';
import type { Config } from '../config.js';
import { CloseCode, ErrorCode, WireError, errorBody, errorSpec } from '../wire/codes.js';
import { Reply, checkApiKey, readJson } from './http.js';
import type { Metrics } from '../metrics.js';
import { id, parseChapter, parseNotification, parseStory, parseUserIds, type JsonObject, type Limits } from '../wire/protocol.js';
import type { Facade } from './facade.js';
import { PartialDelivery, emitAll } from '../pubsub/pubsub.js';
import { PRESENCE_ALL, userTopic, type Channels } from '../wire/topics.js';
import { KeyedPublish, fingerprint, idempotencyKey } from '../pubsub/idempotency.js';

/** Close codes the backend may choose in `POST /v1/users/:id/disconnect`. */
const DISCONNECT_CODES = new Set<number>([CloseCode.RECONNECT, CloseCode.SHUTDOWN, CloseCode.FORBIDDEN, CloseCode.TOKEN_REVOKED, CloseCode.TOKEN_EXPIRED]);
/** Types the server sends itself; a raw publish may not impersonate them. */
const RESERVED_TYPES = new Set(['connected', 'heartbeat', 'pong', 'ack', 'error']);
const TYPE_PATTERN = /^[a-z][a-z0-9_]*(?::[a-z0-9_]+)*$/;

export interface Input {
  params: string[];
  query: string;
  body: unknown;
  /** The request's `Idempotency-Key`, its fingerprint the route and the body (see keyed()). */
  key: string | undefined;
  route: string;
}

/** The publish of a request that came with an Idempotency-Key (`part` names one event of a batch). */
function keyed(input: Input, part = ''): KeyedPublish | undefined {
  if (input.key === undefined) return undefined;
  return new KeyedPublish(part === '' ? input.key : `${input.key}#${part}`, fingerprint(input.route, input.params.join('/'), part, JSON.stringify(input.body)));
}
export type Handler = (input: Input) => Promise<[number, unknown]> | [number, unknown];

const bad = (message: string) => new WireError(ErrorCode.INVALID_PAYLOAD, message, 400);

function object(v: unknown, path: string): JsonObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${path} must be an object`);
  return v as JsonObject;
}

function optionalAuthor(v: unknown, path: string): string | null {
  return v === undefined || v === null ? null : id(v, path);
}

/** A raw event for `POST /v1/publish` and `server.publish`: checked topic, type and data. */
export function checkRawEvent(v: unknown, path: string, limits: Limits, channels: Channels): { topic: string; type: string; data: JsonObject } {
  const e = object(v, path);
  if (typeof e['topic'] !== 'string' || e['topic'].length > 140) throw bad(`${path}.topic must be a topic string`);
  if (e['topic'] !== PRESENCE_ALL) channels.parse(e['topic']);
  if (typeof e['type'] !== 'string' || e['type'].length > 64 || !TYPE_PATTERN.test(e['type'])) throw bad(`${path}.type must be an event name like "story:liked"`);
  if (RESERVED_TYPES.has(e['type'])) throw bad(`${path}.type "${e['type']}" is reserved for the server`);
  const data = e['data'] === undefined ? {} : object(e['data'], `${path}.data`);
  if (Buffer.byteLength(JSON.stringify(data)) > limits.maxStoryBytes) {
    throw new WireError(ErrorCode.PAYLOAD_TOO_LARGE, `${path}.data is over ${limits.maxStoryBytes} bytes`, 413);
  }
  return { topic: e['topic'], type: e['type'], data };
}

/**
 * Waits for the other nodes; a failure there is a 503 that still says what this node delivered and whether
 * the event is stored. A keyed retry of a publish already made answers 200 with `duplicate: true`.
 */
async function settled<T extends object>(delivered: Promise<number>, body: (delivered: number) => T, keyedBy?: readonly (KeyedPublish | undefined)[]): Promise<[number, unknown]> {
  try {
    const n = await delivered;
    const duplicate = keyedBy !== undefined && keyedBy.length > 0 && keyedBy.every((k) => k?.duplicate === true);
    return [200, duplicate ? { ...body(n), duplicate } : body(n)];
  } catch (err) {
    if (!(err instanceof PartialDelivery)) throw err;
    return [err.status, { ...body(err.delivered), stored: err.stored, ...errorBody(err.code, err.message) }];
  }
}

export interface ApiDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  server: Facade;
  limits: Limits;
  /** The channel registry: which topics exist. */
  channels: Channels;
  isReady(): boolean;
  /** False until the JWKS (JWT_JWKS_URL) was fetched once: no token can be verified before. */
  keysReady(): boolean;
  /** False while the backplane cannot reach the other nodes (cluster mode only). */
  backplaneUp(): boolean;
  /** True while a Redis Cluster shard's topics are not heard here (the node is up otherwise). */
  backplanePartial(): boolean;
}

/** /readyz's 200 body: ready, or degraded (Redis unreachable; or one Redis Cluster shard not heard). */
function readyBody(deps: ApiDeps): string {
  if (!deps.backplaneUp()) return '{"status":"degraded"}';
  return deps.backplanePartial() ? `{"status":"degraded","reason":"${PARTIAL_REASON}"}` : '{"status":"ready"}';
}

const PARTIAL_REASON = "a Redis Cluster shard's topics are not heard by this node";

export function registerOperations(app: UWS.TemplatedApp, deps: ApiDeps, withMetrics: boolean): void {
  app.get('/healthz', (res) => {
    res.writeHeader('content-type', 'application/json').end('{"status":"ok"}');
  });
  app.get('/readyz', (res) => {
    // Degraded is still ready: the node serves its local connections, and in a Redis outage every node is
    // degraded alike, so taking them out of the load balancer would turn a partial outage into a total one.
    const notReady = !deps.isReady() ? '{"status":"draining"}' : !deps.keysReady() ? '{"status":"starting","reason":"JWKS not fetched yet"}' : undefined;
    if (notReady === undefined) res.writeHeader('content-type', 'application/json').end(readyBody(deps));
    else res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'application/json').end(notReady);
  });
  if (!withMetrics) return;
  // On ADMIN_PORT /metrics is open (keep that port private); on the public port it needs the API key.
  const open = deps.config.adminPort !== undefined;
  app.get('/metrics', (res, req) => {
    const reply = new Reply(res);
    try {
      if (!open) checkApiKey(req.getHeader('authorization'), deps.config.apiKey);
    } catch (err) {
      reply.error(err);
      return;
    }
    deps.metrics.text().then(
      (text) => reply.raw(200, text, { 'content-type': deps.metrics.contentType }),
      (err: unknown) => reply.error(err),
    );
  });
}

export type Route = (method: 'get' | 'post', pattern: string, handler: Handler) => void;

/** Registers a route: API key, Idempotency-Key, capped JSON body, the handler's [status, body] or its error. */
export function router(app: UWS.TemplatedApp, deps: Pick<ApiDeps, 'config' | 'log'>): Route {
  const { config, log } = deps;
  return (method, pattern, handler) => {
    app.any(pattern, (res) => {
      new Reply(res).fail(ErrorCode.METHOD_NOT_ALLOWED, `use ${method.toUpperCase()} ${pattern}`, { allow: method.toUpperCase() });
    });
    app[method](pattern, (res, req) => {
      const reply = new Reply(res);
      const nParams = (pattern.match(/:/g) ?? []).length;
      const params = Array.from({ length: nParams }, (_, i) => req.getParameter(i));
      const query = req.getQuery() ?? '';
      const contentLength = req.getHeader('content-length');
      const rawKey = req.getHeader('idempotency-key');
      // uWS reads a header that is empty or not UTF-8 as "": present, it is a bad key, never "no key".
      let keyGiven = rawKey !== '';
      if (!keyGiven) {
        req.forEach((name) => {
          keyGiven ||= name === 'idempotency-key';
        });
      }
      let key: string | undefined;
      try {
        checkApiKey(req.getHeader('authorization'), config.apiKey);
        key = keyGiven ? idempotencyKey(rawKey === '' ? null : rawKey, 'header Idempotency-Key') : undefined;
      } catch (err) {
        reply.error(err);
        return;
      }
      const body = method === 'post' ? readJson(reply, contentLength, config.maxBodyBytes) : Promise.resolve(undefined);
      body
        .then((b) => handler({ params, query, body: b, key, route: pattern }))
        .then(
          ([status, out]) => reply.json(status, out),
          (err: unknown) => {
            if (!(err instanceof WireError)) log.error({ err, route: pattern }, 'API handler failed');
            reply.error(err);
          },
        );
    });
  };
}

export function registerApi(app: UWS.TemplatedApp, deps: ApiDeps): void {
  const route = router(app, deps);
  registerPublishing(route, deps);
  registerUsers(route, deps);
  app.any('/v1/*', (res) => {
    new Reply(res).fail(ErrorCode.NOT_FOUND, 'no such API route (see README: Backend API)');
  });
}

/** The routes that publish: notifications, stories, chapters, raw events. */
function registerPublishing(route: Route, deps: ApiDeps): void {
  const { config, server, limits } = deps;

  route('post', '/v1/notifications', (input) => {
    const b = object(input.body, 'body');
    let userIds: string[];
    if (b['userIds'] !== undefined) {
      userIds = parseUserIds(b['userIds'], 'body.userIds', { ...limits, maxPresenceIds: config.maxBatch });
      if (userIds.length === 0) throw bad('body.userIds must not be empty');
    } else userIds = [id(b['userId'], 'body.userId')];
    const notification = parseNotification(b['notification'], 'body.notification', limits);
    const from = b['from'] === undefined || b['from'] === null ? null : id(b['from'], 'body.from');
    const k = keyed(input);
    const r = server.sendNotificationToUser(userIds, notification, from, k);
    return settled(r.delivered, (delivered) => ({ id: r.notification.id, recipients: new Set(userIds).size, delivered }), [k]);
  });

  route('post', '/v1/stories', (input) => {
    const story = parseStory(input.body, 'body', limits);
    const k = keyed(input);
    const r = server.broadcastNewStory(story, optionalAuthor(story['authorId'], 'body.authorId'), k);
    return settled(r, (delivered) => ({ id: story.id, delivered }), [k]);
  });

  route('post', '/v1/stories/:id/updated', (input) => {
    const storyId = id(input.params[0], 'path id');
    const b = object(input.body ?? {}, 'body');
    const k = keyed(input);
    const r = server.broadcastStoryUpdated({ ...b, id: storyId }, optionalAuthor(b['authorId'], 'body.authorId'), k);
    return settled(r, (delivered) => ({ id: storyId, delivered }), [k]);
  });

  route('post', '/v1/stories/:id/chapters', (input) => {
    const chapter = parseChapter({ ...object(input.body, 'body'), storyId: input.params[0] }, 'body', limits);
    const k = keyed(input);
    const r = server.broadcastNewChapter(chapter, optionalAuthor(chapter['authorId'], 'body.authorId'), k);
    return settled(r, (delivered) => ({ id: chapter.id, storyId: chapter.storyId, delivered }), [k]);
  });

  route('post', '/v1/publish', async (input) => {
    const { body } = input;
    const batch = Array.isArray(body);
    const items = batch ? body : [body];
    if (items.length === 0) throw bad('body must not be an empty array');
    if (items.length > config.maxBatch) throw new WireError(ErrorCode.TOO_MANY_IDS, `at most ${config.maxBatch} events per batch`, 400);
    // Validate everything before publishing anything: a bad batch publishes nothing.
    const events = items.map((e, i) => checkRawEvent(e, batch ? `body[${i}]` : 'body', limits, deps.channels));
    // Each event settles on its own, so that a batch reports every event's local deliveries even on failure.
    const perEvent: number[] = [];
    const keys = events.map((_, i) => keyed(input, batch ? String(i) : ''));
    const results = events.map((e, i) =>
      server.publish(e.topic, e.type, e.data, keys[i]).then(
        (n) => (perEvent[i] = n),
        (err: unknown) => {
          if (err instanceof PartialDelivery) perEvent[i] = err.delivered;
          throw err;
        },
      ),
    );
    return settled(emitAll(results), () => (batch ? { published: events.length, delivered: perEvent } : { delivered: perEvent[0] }), keys);
  });
}

/** The routes about users: presence, disconnects and revoked subscriptions. */
function registerUsers(route: Route, deps: ApiDeps): void {
  const { server, limits, channels } = deps;

  // A revocation: the user's subscription to the channel ends on every node (the personal topic is not a
  // subscription: POST /v1/users/:id/disconnect ends a user's sessions).
  route('post', '/v1/channels/unsubscribe', async ({ body }) => {
    const b = object(body, 'body');
    const userId = id(b['userId'], 'body.userId');
    const channel = b['channel'];
    if (typeof channel !== 'string' || channel.length === 0 || channel.length > 140) throw bad('body.channel must be a channel name of at most 140 characters');
    channels.parse(channel);
    if (channel === userTopic(userId)) throw bad(`body.channel: the personal topic ${channel.slice(0, 140)} cannot be revoked (POST /v1/users/:id/disconnect ends a user's connections)`);
    const reason = b['reason'] === undefined ? 'subscription revoked by the server' : b['reason'];
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > 120) throw bad('body.reason must be a string of at most 120 bytes');
    return [200, { revoked: await server.unsubscribeUser(userId, channel, reason) }];
  });

  route('get', '/v1/presence', async ({ query }) => {
    const raw = new URLSearchParams(query).get('userIds');
    if (!raw) throw bad('query userIds is required: ?userIds=a,b,c');
    const userIds = parseUserIds(raw.split(','), 'query userIds', limits);
    const online = await server.onlineUsers(userIds);
    return [200, { online }];
  });

  route('post', '/v1/users/:id/disconnect', disconnectUser(server));
}

/** `POST /v1/users/:id/disconnect` (the admin view's disconnect is this same handler). */
export function disconnectUser(server: Pick<Facade, 'disconnectUser'>): Handler {
  return async ({ params, body }) => {
    const userId = id(params[0], 'path id');
    const b = object(body ?? {}, 'body');
    const code = b['code'] === undefined ? CloseCode.TOKEN_REVOKED : b['code'];
    if (typeof code !== 'number' || !DISCONNECT_CODES.has(code)) throw bad(`body.code must be one of ${[...DISCONNECT_CODES].join(', ')}`);
    const reason = b['reason'] === undefined ? 'disconnected by the server' : b['reason'];
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > 120) throw bad('body.reason must be a string of at most 120 bytes');
    const closed = await server.disconnectUser(userId, code, reason);
    if (closed === 0) return [errorSpec(ErrorCode.NOT_FOUND).status, { closed, ...errorBody(ErrorCode.NOT_FOUND, `user ${userId} has no open connection`) }];
    return [200, { closed }];
  };
}
