// The demo page: GET / (HTML), the compiled SDK and page script from dist/, and GET /dev/token in dev mode.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { ID_PATTERN } from '../edge/auth.js';
import type { Config } from '../config.js';
import { ErrorCode, errorBody, errorSpec } from '../wire/codes.js';
import { statusLine } from './http.js';
import { demoHtml } from '../demo/page.js';
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

/**
 * Registers the demo routes when config.demoPage is on. `server` is read only when a request arrives
 * (the routes are registered while the server object is still being built).
 */
/** What the demo routes need of the server: dev mode, and a dev token. */
export interface DevTokens {
  readonly devMode: boolean;
  signDevToken(userId: string, roles?: readonly string[], ttlS?: number): Promise<string>;
}

export function registerDemo(app: UWS.TemplatedApp, config: Config, log: Logger, server: () => DevTokens): void {
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
      .end(demoHtml({ wsPath: config.wsPath, devMode: server().devMode }));
  });
  app.get('/client/:file', serve('client', () => true));
  // The SDK takes the wire code tables from the server's own module (it has no Node imports).
  app.get('/wire/codes.js', (res) => serveFile(res, 'wire/codes.js'));
  app.get('/demo/:file', serve('demo', (name) => name === 'app.js'));

  // Dev mode only (no JWT key configured, which production refuses): a token for any name, allowed to publish.
  app.get('/dev/token', (res, req) => {
    const user = new URLSearchParams(req.getQuery() ?? '').get('user') ?? '';
    const s = server();
    if (!s.devMode) return fail(res, ErrorCode.NOT_FOUND, 'dev tokens exist only in dev mode (no JWT key configured)');
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
}
