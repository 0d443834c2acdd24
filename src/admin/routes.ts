// The admin view's routes: the page (GET /admin) and its script, and the JSON it polls under /admin/api/, every
// call with the API key. Served on ADMIN_PORT, and on the WebSocket port too when ADMIN_UI=public.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { Reply } from '../api/http.js';
import { disconnectUser, router, type Route } from '../api/routes.js';
import type { UWS } from '../uws.js';
import { ErrorCode, WireError } from '../wire/codes.js';
import { id } from '../wire/protocol.js';
import { adminHtml } from './page.js';
import { TopicCounts, lookupUser, readStats, type AdminSource } from './view.js';

/** The script is compiled by tsconfig.browser.json into <root>/dist/admin/app.js (from src/admin or dist/admin alike). */
const SCRIPT = new URL('../../dist/admin/app.js', import.meta.url);
const CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/** Topics listed at most per `GET /admin/api/topics`. */
export const MAX_TOP_TOPICS = 100;

export interface AdminDeps extends AdminSource {
  readonly config: Config;
  readonly log: Logger;
  /** `POST /v1/users/:id/disconnect`'s handler is the admin view's disconnect too. */
  disconnectUser(userId: string, code?: number, reason?: string): Promise<number>;
}

/** The apps the admin view is served on, as ADMIN_UI asks (none when it is `admin` and there is no ADMIN_PORT). */
export function adminTargets(config: Pick<Config, 'adminUi'>, app: UWS.TemplatedApp, adminApp: UWS.TemplatedApp | undefined): UWS.TemplatedApp[] {
  if (config.adminUi === 'off') return [];
  const targets = adminApp ? [adminApp] : [];
  if (config.adminUi === 'public') targets.push(app);
  return targets;
}

export function registerAdminView(app: UWS.TemplatedApp, adminApp: UWS.TemplatedApp | undefined, deps: AdminDeps): void {
  const targets = adminTargets(deps.config, app, adminApp);
  if (targets.length === 0) return;
  const topics = new TopicCounts(deps);
  for (const target of targets) {
    registerPage(target, deps.log);
    registerJson(router(target, deps), deps, topics);
    target.any('/admin/api/*', (res) => new Reply(res).fail(ErrorCode.NOT_FOUND, 'no such admin route (see README: Admin view)'));
  }
}

function registerPage(app: UWS.TemplatedApp, log: Logger): void {
  let script: string | undefined;
  app.get('/admin', (res) => {
    res
      .writeStatus('200 OK')
      .writeHeader('content-type', 'text/html; charset=utf-8')
      .writeHeader('cache-control', 'no-store')
      .writeHeader('content-security-policy', CSP)
      .writeHeader('x-content-type-options', 'nosniff')
      .writeHeader('referrer-policy', 'no-referrer')
      .end(adminHtml());
  });
  app.get('/admin/app.js', (res) => {
    try {
      script ??= readFileSync(SCRIPT, 'utf8');
    } catch {
      log.warn('admin: dist/admin/app.js is missing; run `npm run build`');
      new Reply(res).fail(ErrorCode.UNAVAILABLE, 'dist/admin/app.js is missing: run npm run build');
      return;
    }
    res.writeStatus('200 OK').writeHeader('content-type', 'text/javascript; charset=utf-8').writeHeader('cache-control', 'no-cache').writeHeader('x-content-type-options', 'nosniff').end(script);
  });
}

function registerJson(route: Route, deps: AdminDeps, topics: TopicCounts): void {
  route('get', '/admin/api/stats', async () => [200, await readStats(deps)]);
  route('get', '/admin/api/topics', ({ query }) => {
    const raw = new URLSearchParams(query).get('limit') ?? '10';
    const limit = Number(raw);
    if (!/^\d+$/.test(raw) || limit < 1 || limit > MAX_TOP_TOPICS) throw new WireError(ErrorCode.INVALID_PAYLOAD, `query limit must be an integer from 1 to ${MAX_TOP_TOPICS}`, 400);
    return [200, topics.top(limit)];
  });
  route('get', '/admin/api/users/:id', async ({ params }) => [200, await lookupUser(deps, id(params[0], 'path id'))]);
  route('post', '/admin/api/users/:id/disconnect', disconnectUser(deps));
}
