// The admin view in headless Chromium: the key is asked for and checked, the figures and charts move when
// clients connect and send, the top topics list them, the user lookup finds a connected user and the
// disconnect closes that user's sockets.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { skipUnlessRequired } from '../ci-require.js';
import { startServer } from '../helpers.js';
import { WAIT_MS } from '../wait.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const KEY = 'admin-browser-api-key-0123456789';

const skip = skipUnlessRequired('chromium', existsSync(CHROMIUM) ? false : `${CHROMIUM} not installed`);
if (skip) t.comment(`ADMIN BROWSER TEST SKIPPED: ${CHROMIUM} is not installed (apt-get install -y chromium)`);

/** The page's script comes from dist/admin/app.js: build the browser part when it is missing or older than its sources. */
function ensureBuilt(): void {
  const built = `${ROOT}dist/admin/app.js`;
  const sources = ['src/admin/app.ts', 'src/admin/api-types.ts'].map((f) => statSync(`${ROOT}${f}`).mtimeMs);
  if (existsSync(built) && statSync(built).mtimeMs >= Math.max(...sources)) return;
  // Through sh with NODE_OPTIONS unset: tap instruments node children with loaders the TypeScript 7 compiler cannot run under.
  const r = spawnSync('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" node_modules/typescript/bin/tsc -p tsconfig.browser.json', process.execPath], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build failed:\n${r.stdout}${r.stderr}`);
}

t.test('admin view: login, live figures, top topics, user lookup and disconnect', { skip }, async (t) => {
  ensureBuilt();
  const { chromium } = await import('playwright-core');
  const h = await startServer(t, { apiKey: KEY, adminPort: 0, presenceGraceMs: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const text = (selector: string) => page.locator(selector).textContent();
  /** Waits until the element's text matches (through a locator: the page's CSP forbids the eval of waitForFunction). */
  const waitText = (selector: string, re: RegExp) => page.locator(selector, { hasText: re }).waitFor();

  await page.goto(`http://127.0.0.1:${h.server.adminPort}/admin`);
  t.ok(await page.locator('#login').isVisible(), 'the login form first');
  t.notOk(await page.locator('#dashboard').isVisible(), 'no dashboard before a key');
  await page.fill('#key', 'not-the-key-not-the-key');
  await page.click('#login-submit');
  await waitText('#login-error', /refused/);
  t.ok(await page.locator('#login').isVisible(), 'a wrong key: back to the form');

  await page.fill('#key', KEY);
  await page.click('#login-submit');
  await waitText('#f-connections', /^0$/);
  t.equal(await text('#node-id'), h.server.nodeId);
  t.match(await text('#backplane'), /memory \(single node\): up/);
  t.equal(await page.locator(`#nodes tr[data-node="${h.server.nodeId}"]`).count(), 1, 'this node in the node table');

  // Clients connect: the figures move.
  const alice = await h.connect('alice');
  const bobs = [await h.connect('bob'), await h.connect('bob')];
  const bobIds = await Promise.all(bobs.map(async (b) => (await b.type('connected')).data.connectionId as string));
  await alice.type('connected');
  await waitText('#f-connections', /^3$/);
  t.equal(await text('#f-connections-sub'), '2 users online');
  t.equal((await bobs[0]!.request('subscribe', { topic: 'story:42' })).type, 'ack');

  // They send: a rate above zero while they do, totals by type, points on the charts.
  const sending = setInterval(() => alice.send({ type: 'ping', id: 'p' }), 20);
  try {
    await waitText('#f-in', /^(?!0\.0$)[\d,]+\.\d$/);
  } finally {
    clearInterval(sending);
  }
  await page.locator('#by-type tr[data-type="ping"]').waitFor();
  await waitText('#f-out-sub', /^[1-9][\d,]* in all$/);
  t.ok(Number(await page.locator('#chart-in').getAttribute('data-points')) >= 2, 'the messages-in chart has points');
  t.match(await page.locator('#chart-connections polyline').getAttribute('points'), /^[\d.]+,[\d.]+ [\d.]+,[\d.]+/, 'a line on the connections chart');

  // The top topics: stories (every connection), then bob's story.
  await page.locator('#topics li[data-topic="story:42"]').waitFor();
  t.match(await page.locator('#topics li').first().textContent(), /^3stories$/, 'stories first, with 3 subscribers');

  // The user lookup finds bob's two connections; the disconnect closes both with the chosen code.
  await page.fill('#user-id', 'bob');
  await page.click('#lookup-submit');
  await page.locator('#user-summary[data-connections="2"][data-online="true"]').waitFor();
  for (const id of bobIds) t.equal(await page.locator(`#user-connections li[data-connection="${id}"]`).count(), 1, `connection ${id} listed`);
  await page.selectOption('#disconnect-code', '4403');
  await page.fill('#disconnect-reason', 'banned from the admin view');
  await page.click('#disconnect');
  for (const b of bobs) t.same(await b.closed, { code: 4403, reason: 'banned from the admin view' }, 'bob\'s socket closed with 4403');
  await page.locator('#disconnect-result[data-closed="2"]').waitFor();
  await page.locator('#user-summary[data-connections="0"]').waitFor();
  await waitText('#f-connections', /^1$/);

  // The screenshot for the docs, when asked (ADMIN_SCREENSHOT=<path>).
  if (process.env['ADMIN_SCREENSHOT']) await page.screenshot({ path: process.env['ADMIN_SCREENSHOT'], fullPage: true });
  await page.click('#logout');
  t.ok(await page.locator('#login').isVisible(), 'forgetting the key shows the form again');
  t.same(pageErrors, [], 'no uncaught errors in the page');
});
