// The demo page: GET / (HTML), the compiled SDK and page script from dist/, GET /dev/token in dev mode, and with
// DEV_WEBHOOKS the server's own webhook receiver (/dev/webhooks), whose events the page's webhook log shows.
import { readFileSync } from 'node:fs';
import { BlockList } from 'node:net';
import type { Logger } from 'pino';
import { ID_PATTERN } from '../edge/auth.js';
import type { Config } from '../config.js';
import { ErrorCode, errorBody, errorSpec } from '../wire/codes.js';
import { DEV_WEBHOOK_PATH } from '../webhooks/compose.js';
import { verify } from '../webhooks/signing.js';
import { Reply, readBody, statusLine } from './http.js';
import { demoHtml } from '../demo/page.js';
import { registerDemoChat } from './demo-chat.js';
import type { UWS } from '../uws.js';

/** <root>/dist/, from src/api/demo.ts (tsx) and from dist/api/demo.js (built) alike: the browser needs compiled JS. */
const DIST = new URL('../../dist/', import.meta.url);
const MODULE_NAME = /^[a-z0-9-]+\.js$/;
const CSP = "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function json(res: UWS.HttpResponse, status: string, body: object): void {
  res.writeStatus(status).writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-store').end(JSON.stringify(body));
}

/** An error answer: the code's own status and the one error body. */
function fail(res: UWS.HttpResponse, code: ErrorCode, message: string): void {
  json(res, statusLine(errorSpec(code).status), errorBody(code, message));
}

/** What the demo routes need of the server: dev mode, a dev token, what the dev webhooks are signed with. */
export interface DevTokens {
  readonly devMode: boolean;
  readonly webhookSecrets: readonly string[];
  signDevToken(userId: string, roles?: readonly string[], ttlS?: number, claims?: Record<string, unknown>): Promise<string>;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
/** A Host a page on this machine uses; any other name is what a DNS-rebinding page would send. */
const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?$/i;
const FORWARDING_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip'] as const;

/**
 * Why a /dev/token request is refused, or undefined when it comes from this machine: a loopback peer (uWS
 * writes IPv6 in full, IPv4-mapped ones included), a loopback Host, no proxy in between.
 */
export function devTokenRefusal(peer: string, header: (name: string) => string, what = 'dev tokens'): string | undefined {
  if (!LOOPBACK.check(peer, peer.includes(':') ? 'ipv6' : 'ipv4')) return `${what} are served to loopback peers only`;
  if (FORWARDING_HEADERS.some((h) => header(h) !== '')) return `${what} are not served through a proxy`;
  if (!LOOPBACK_HOST.test(header('host'))) return `${what} are served to a loopback Host only (localhost, 127.0.0.1, [::1])`;
  return undefined;
}

/** Events the dev receiver keeps (newest first), and the body it reads at most (a push lists 10 notifications). */
export const DEV_WEBHOOKS_KEPT = 50;
export const DEV_WEBHOOK_MAX_BYTES = 1024 * 1024;

/** The dev receiver is where events go: dev mode, DEV_WEBHOOKS, and neither URL set (compose.ts's plan). */
export const devWebhooksServed = (config: Config): boolean =>
  config.dev && config.devWebhooks && config.webhookUrl === undefined && config.pushWebhookUrl === undefined;

/** One event as the dev receiver got it: the body's fields and the `webhook-id`. */
interface DevWebhookEvent {
  id: string;
  type: string;
  timestamp: string;
  data: unknown;
}

/**
 * `POST /dev/webhooks`: this server's own events (compose.ts sends them here with DEV_WEBHOOKS), checked as a
 * receiver would (Standard Webhooks signature, capped body); `GET /dev/webhooks`: the last ones, for the page.
 * Both from this machine only: the events say who is online and what users were told.
 */
function registerDevWebhooks(app: UWS.TemplatedApp, log: Logger, secrets: () => readonly string[]): void {
  const events: DevWebhookEvent[] = [];
  const refusal = (res: UWS.HttpResponse, req: UWS.HttpRequest) =>
    devTokenRefusal(Buffer.from(res.getRemoteAddressAsText()).toString(), (h) => req.getHeader(h), 'dev webhooks');
  app.post(DEV_WEBHOOK_PATH, (res, req) => {
    const reply = new Reply(res);
    const refused = refusal(res, req);
    if (refused !== undefined) return reply.fail(ErrorCode.FORBIDDEN, refused);
    // Copied now: uWS's request is gone once this callback returns.
    const headers: Record<string, string | undefined> = {};
    for (const h of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) headers[h] = req.getHeader(h) || undefined;
    readBody(reply, req.getHeader('content-length'), DEV_WEBHOOK_MAX_BYTES).then(
      (buf) => {
        const body = buf.toString('utf8');
        if (!secrets().some((s) => verify(s, headers, body).ok)) return reply.fail(ErrorCode.UNAUTHORIZED, 'the webhook signature does not verify');
        let parsed: unknown;
        try {
          parsed = JSON.parse(body);
        } catch {
          return reply.fail(ErrorCode.BAD_JSON, 'body is not valid JSON');
        }
        const e = parsed as Partial<DevWebhookEvent> | null;
        if (typeof e !== 'object' || e === null || typeof e.type !== 'string' || typeof e.timestamp !== 'string') return reply.fail(ErrorCode.INVALID_PAYLOAD, 'body must be {type, timestamp, data}');
        events.unshift({ id: headers['webhook-id'] ?? '', type: e.type, timestamp: e.timestamp, data: e.data });
        if (events.length > DEV_WEBHOOKS_KEPT) events.length = DEV_WEBHOOKS_KEPT;
        reply.json(200, {});
      },
      (err: unknown) => {
        log.debug({ err }, 'dev webhooks: body refused');
        reply.error(err);
      },
    );
  });
  app.get(DEV_WEBHOOK_PATH, (res, req) => {
    const refused = refusal(res, req);
    if (refused !== undefined) return fail(res, ErrorCode.FORBIDDEN, refused);
    json(res, '200 OK', { events });
  });
}

/**
 * Registers the demo routes when config.demoPage is on. `server` is read only when a request arrives
 * (the routes are registered while the server object is still being built).
 */
export function registerDemo(app: UWS.TemplatedApp, config: Config, log: Logger, server: () => DevTokens): void {
  // Before the page's check: the events go to this receiver with or without the page.
  const devWebhooks = devWebhooksServed(config);
  if (devWebhooks) registerDevWebhooks(app, log, () => server().webhookSecrets);
  if (!config.demoPage) return;
  const cache = new Map<string, string>();

  /** Serves dist/<key> (read once); 503 with a hint when dist/ was not built. */
  const serveFile = (res: UWS.HttpResponse, key: string) => {
    let body = cache.get(key);
    if (body === undefined) {
      try {
        body = readFileSync(new URL(key, DIST), 'utf8');
        cache.set(key, body);
      } catch {
        log.warn({ file: key }, 'demo: compiled file missing; run `npm run build`');
        return fail(res, ErrorCode.UNAVAILABLE, `dist/${key} is missing: run npm run build`);
      }
    }
    res.writeStatus('200 OK').writeHeader('content-type', 'text/javascript; charset=utf-8').writeHeader('cache-control', 'no-cache').end(body);
  };
  const serve = (dir: 'client' | 'demo', allowed: (name: string) => boolean) => (res: UWS.HttpResponse, req: UWS.HttpRequest) => {
    const name = req.getParameter(0) ?? '';
    if (!MODULE_NAME.test(name) || !allowed(name)) return fail(res, ErrorCode.NOT_FOUND, 'not found');
    serveFile(res, `${dir}/${name}`);
  };

  app.get('/', (res) => {
    res
      .writeStatus('200 OK')
      .writeHeader('content-type', 'text/html; charset=utf-8')
      .writeHeader('cache-control', 'no-store')
      .writeHeader('content-security-policy', CSP)
      .writeHeader('x-content-type-options', 'nosniff')
      .end(demoHtml({ wsPath: config.wsPath, devMode: server().devMode, devWebhooks }));
  });
  app.get('/client/:file', serve('client', () => true));
  // The SDK takes the wire code tables from the server's own module (it has no Node imports).
  app.get('/wire/codes.js', (res) => serveFile(res, 'wire/codes.js'));
  app.get('/demo/:file', serve('demo', (name) => name === 'app.js' || name === 'chat.js'));

  // Dev mode without a JWT key only (--dev; without it no key is refused at start): a token for any name,
  // allowed to publish, for this machine only.
  app.get('/dev/token', (res, req) => {
    const user = new URLSearchParams(req.getQuery() ?? '').get('user') ?? '';
    const s = server();
    if (!s.devMode) return fail(res, ErrorCode.NOT_FOUND, 'dev tokens exist only in dev mode without a JWT key (--dev)');
    const refused = devTokenRefusal(Buffer.from(res.getRemoteAddressAsText()).toString(), (h) => req.getHeader(h));
    if (refused !== undefined) return fail(res, ErrorCode.FORBIDDEN, refused);
    if (!ID_PATTERN.test(user)) return fail(res, ErrorCode.INVALID_PAYLOAD, 'user must be 1-128 characters [A-Za-z0-9_.@|+=-]');
    let aborted = false;
    res.onAborted(() => (aborted = true));
    s.signDevToken(user, ['stories:publish']).then(
      (token) => !aborted && res.cork(() => json(res, '200 OK', { userId: user, token })),
      (err: unknown) => {
        log.error({ err }, 'demo: dev token failed');
        if (!aborted) res.cork(() => fail(res, ErrorCode.INTERNAL, 'internal error'));
      },
    );
  });
  // The app's part in the chat panel: membership, subscription tokens and the message store (src/api/demo-chat.ts).
  registerDemoChat(app, {
    log,
    devMode: () => server().devMode,
    refusal: (res, req) => devTokenRefusal(Buffer.from(res.getRemoteAddressAsText()).toString(), (h) => req.getHeader(h)),
    signSubscriptionToken: (userId, channel, ttlS) => server().signDevToken(userId, [], ttlS, { channel }),
  });
}
