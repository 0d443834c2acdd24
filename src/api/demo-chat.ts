// The demo's dev backend for chat (dev mode only, to this machine only): it plays the app. It decides who is in
// a demo conversation (one per pair of users), signs their subscription tokens, and, as the conversation
// namespace's publish proxy (examples/demo-channels.json), stores each message once by its idempotencyKey.
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ID_PATTERN } from '../edge/auth.js';
import type { UWS } from '../uws.js';
import { ErrorCode } from '../wire/codes.js';
import { Reply, readJson } from './http.js';

/** A message as the dev backend stores it. */
export interface StoredMessage {
  id: string;
  idempotencyKey: string;
  channel: string;
  senderId: string;
  text: string;
  data?: Record<string, unknown>;
  editedAt?: number;
  deleted?: true;
}

/** A publish proxy's answer (protocol.md section 12). */
export type ProxyAnswer = { allow: true; data?: Record<string, unknown> } | { allow: false; reason: string };

/** Pairs and messages kept; past them the oldest go (a demo must not grow without bound either). */
export const DEMO_LIMITS = { conversations: 1000, messagesPerConversation: 1000, proxyBodyBytes: 65536, tokenTtlS: 3600 } as const;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What the app's backend knows: who is in which conversation, and the messages. */
export class DemoChat {
  private readonly members = new Map<string, readonly [string, string]>();
  private readonly byKey = new Map<string, StoredMessage>();
  private readonly byChannel = new Map<string, StoredMessage[]>();
  private seq = 0;
  /** Ids must not repeat after a restart of this process (a client holds messages by id across it). */
  private readonly run = randomBytes(4).toString('hex');

  /** The conversation of two users (the same for both, whoever asks): `conversation:dm-<hash of the pair>`. */
  conversation(a: string, b: string): { channel: string; members: string[] } {
    const pair = [a, b].sort() as [string, string];
    const channel = `conversation:dm-${createHash('sha256').update(pair.join('\n')).digest('hex').slice(0, 32)}`;
    if (!this.members.has(channel)) {
      if (this.members.size >= DEMO_LIMITS.conversations) this.forget(this.members.keys().next().value as string);
      this.members.set(channel, pair);
    }
    return { channel, members: [...pair] };
  }

  isMember(channel: string, user: string): boolean {
    return this.members.get(channel)?.includes(user) === true;
  }

  messages(channel: string): readonly StoredMessage[] {
    return this.byChannel.get(channel) ?? [];
  }

  /** The proxy's decision on a request of storywire (section 12): members only; a send stored once per key. */
  decide(body: unknown): ProxyAnswer {
    if (!isObj(body) || typeof body['user'] !== 'string' || typeof body['channel'] !== 'string') return { allow: false, reason: 'not a proxy request' };
    const { user, channel } = body as { user: string; channel: string };
    if (!this.isMember(channel, user)) return { allow: false, reason: 'not a member of this conversation' };
    if (body['kind'] !== 'publish' || !isObj(body['chat'])) return { allow: true };
    const chat = body['chat'];
    const data = isObj(body['data']) ? body['data'] : {};
    if (chat['op'] === 'send' && typeof chat['idempotencyKey'] === 'string' && typeof data['text'] === 'string') {
      const m = this.store(channel, user, chat['idempotencyKey'], data['text'], isObj(data['data']) ? data['data'] : undefined);
      return { allow: true, data: { id: m.id } };
    }
    const held = typeof chat['messageId'] === 'string' ? this.messages(channel).find((m) => m.id === chat['messageId']) : undefined;
    if (held && held.senderId !== user) return { allow: false, reason: 'only its sender may change a message' };
    if (held && chat['op'] === 'edit' && typeof data['text'] === 'string') {
      held.text = data['text'];
      held.editedAt = Date.now();
    } else if (held && chat['op'] === 'delete') held.deleted = true;
    return { allow: true };
  }

  /** A retry of the same key (a timeout, a reconnect, another node) gets the message stored the first time. */
  private store(channel: string, senderId: string, idempotencyKey: string, text: string, data: Record<string, unknown> | undefined): StoredMessage {
    const key = `${channel}\n${idempotencyKey}`;
    const held = this.byKey.get(key);
    if (held) return held;
    const m: StoredMessage = { id: `msg-${this.run}-${++this.seq}`, idempotencyKey, channel, senderId, text, ...(data ? { data } : {}) };
    const list = this.byChannel.get(channel) ?? [];
    list.push(m);
    if (list.length > DEMO_LIMITS.messagesPerConversation) for (const gone of list.splice(0, list.length - DEMO_LIMITS.messagesPerConversation)) this.byKey.delete(`${channel}\n${gone.idempotencyKey}`);
    this.byChannel.set(channel, list);
    this.byKey.set(key, m);
    return m;
  }

  private forget(channel: string): void {
    this.members.delete(channel);
    for (const m of this.byChannel.get(channel) ?? []) this.byKey.delete(`${channel}\n${m.idempotencyKey}`);
    this.byChannel.delete(channel);
  }
}

export interface DemoChatDeps {
  readonly log: Logger;
  devMode(): boolean;
  /** Why a request is refused (not from this machine), or undefined. */
  refusal(res: UWS.HttpResponse, req: UWS.HttpRequest): string | undefined;
  signSubscriptionToken(userId: string, channel: string, ttlS: number): Promise<string>;
}

/**
 * The dev backend's routes, each in dev mode only and to this machine only (like /dev/token):
 * GET /dev/chat/conversation?user=&with=, GET /dev/chat/token?user=&with=&channel=, POST /dev/chat/proxy,
 * GET /dev/chat/messages?user=&channel=.
 */
export function registerDemoChat(app: UWS.TemplatedApp, d: DemoChatDeps, chat = new DemoChat()): DemoChat {
  /** The request's query, or undefined once it was answered with a refusal. */
  const guard = (res: UWS.HttpResponse, req: UWS.HttpRequest, reply: Reply): URLSearchParams | undefined => {
    if (!d.devMode()) return void reply.fail(ErrorCode.NOT_FOUND, 'the demo backend exists only in dev mode (--dev)');
    const refused = d.refusal(res, req);
    if (refused !== undefined) return void reply.fail(ErrorCode.FORBIDDEN, refused.replace('dev tokens are', 'the demo backend is'));
    return new URLSearchParams(req.getQuery() ?? '');
  };
  const user = (q: URLSearchParams, name: string, reply: Reply): string | undefined => {
    const v = q.get(name) ?? '';
    if (ID_PATTERN.test(v)) return v;
    reply.fail(ErrorCode.INVALID_PAYLOAD, `${name} must be 1-128 characters [A-Za-z0-9_.@|+=-]`);
    return undefined;
  };

  app.get('/dev/chat/conversation', (res, req) => {
    const reply = new Reply(res);
    const q = guard(res, req, reply);
    const a = q && user(q, 'user', reply);
    const b = q && a !== undefined ? user(q, 'with', reply) : undefined;
    if (a === undefined || b === undefined) return;
    if (a === b) return reply.fail(ErrorCode.INVALID_PAYLOAD, 'a conversation needs two different users');
    reply.json(200, chat.conversation(a, b));
  });

  // The pair names its conversation: membership needs no state, so it survives a restart of this process.
  app.get('/dev/chat/token', (res, req) => {
    const reply = new Reply(res);
    const q = guard(res, req, reply);
    const u = q && user(q, 'user', reply);
    const w = q && u !== undefined ? user(q, 'with', reply) : undefined;
    if (q === undefined || u === undefined || w === undefined) return;
    const channel = q.get('channel') ?? '';
    if (u === w || chat.conversation(u, w).channel !== channel) return reply.fail(ErrorCode.FORBIDDEN, `${u} is not a member of ${channel || 'that conversation'}`);
    d.signSubscriptionToken(u, channel, DEMO_LIMITS.tokenTtlS).then(
      (token) => reply.json(200, { channel, token }),
      (err: unknown) => {
        d.log.error({ err }, 'demo: subscription token failed');
        reply.fail(ErrorCode.INTERNAL, 'internal error');
      },
    );
  });

  app.post('/dev/chat/proxy', (res, req) => {
    const reply = new Reply(res);
    const contentLength = req.getHeader('content-length');
    if (guard(res, req, reply) === undefined) return;
    readJson(reply, contentLength, DEMO_LIMITS.proxyBodyBytes).then(
      (body) => reply.json(200, chat.decide(body)),
      (err: unknown) => reply.error(err),
    );
  });

  // What the backend stored, for a member to compare with what the page shows.
  app.get('/dev/chat/messages', (res, req) => {
    const reply = new Reply(res);
    const q = guard(res, req, reply);
    const u = q && user(q, 'user', reply);
    if (q === undefined || u === undefined) return;
    const channel = q.get('channel') ?? '';
    if (!chat.isMember(channel, u)) return reply.fail(ErrorCode.FORBIDDEN, `${u} is not a member of ${channel || 'that conversation'}`);
    reply.json(200, { channel, messages: chat.messages(channel) });
  });
  return chat;
}
