// End-to-end in headless Chromium: the demo page as two users against a real server process that is killed and restarted.
import { join } from 'node:path';
import t from 'tap';
import { reservePort } from '../client/util.js';
import { WAIT_MS } from '../wait.js';
import { CHROMIUM, chromiumSkip, ensureBuilt, kill, launchBrowser, startProcess } from './chromium.js';

const GREEN = 'rgb(26, 156, 75)';
const RED = 'rgb(217, 48, 37)';

// The functions handed to page.evaluate run in Chromium, but this file is compiled with the server's types
// (tsconfig.json: Node, no DOM): the page globals they use are declared here, for this file only.
declare const document: { querySelector(selector: string): { getAttribute(name: string): string | null; textContent: string | null } | null };
declare const window: object;
declare function getComputedStyle(element: unknown): { backgroundColor: string };

/** Why the browser tests cannot run here (with CI_REQUIRE=chromium: they must, or this file fails). */
const skip = chromiumSkip();
if (skip) {
  const bar = '!'.repeat(78);
  process.stderr.write(
    `\n${bar}\n!! BROWSER TESTS SKIPPED: ${CHROMIUM} is not installed.\n` +
      '!! Install it with `apt-get install -y chromium` to run them (.ci/run does, so CI always runs them).\n' +
      `${bar}\n\n`,
  );
  t.comment(`BROWSER TESTS SKIPPED: ${CHROMIUM} is not installed (apt-get install -y chromium)`);
}

t.test('demo page: two users, live stories, notifications, typing, presence, ping, read state across tabs; kill and restart the server', { skip }, async (t) => {
  ensureBuilt();
  // An explicit port (not 0) so that the restarted process can listen on it again (see reservePort()).
  const port = await reservePort();
  let server = await startProcess(t, port);
  const base = `http://127.0.0.1:${port}`;

  const { browser, profile } = await launchBrowser(t, { width: 1280, height: 860 });
  const pageErrors: string[] = [];
  const alice = await browser.newPage();
  const bob = await browser.newPage();
  for (const p of [alice, bob]) p.on('pageerror', (e) => pageErrors.push(e.message));

  const state = (p: typeof alice) => p.locator('#status').getAttribute('data-state');
  const badge = (p: typeof alice) => p.locator('#status').evaluate((el) => getComputedStyle(el).backgroundColor);
  const waitState = (p: typeof alice, open: boolean, timeout = WAIT_MS) =>
    p.waitForFunction((want) => (document.querySelector('#status')?.getAttribute('data-state') === 'open') === want, open, { timeout });

  // Alice logs in through the form; Bob with ?user=bob, which connects on load.
  await alice.goto(`${base}/`);
  t.equal(await alice.locator('#status-text').textContent(), 'Hors ligne', 'red before connecting');
  await alice.fill('#user', 'alice');
  await alice.click('#connect');
  await bob.goto(`${base}/?user=bob`);
  await Promise.all([waitState(alice, true), waitState(bob, true)]);
  for (const p of [alice, bob]) {
    t.equal(await p.locator('#status-text').textContent(), 'En ligne');
    t.equal(await badge(p), GREEN, 'green indicator');
  }
  t.match(await bob.locator('#status-detail').textContent(), /bob/);

  // Bob follows Alice and sees her online.
  await bob.fill('#watch-user', 'alice');
  await bob.press('#watch-user', 'Enter');
  await bob.locator('#online li.online[data-user="alice"]').waitFor();

  // Alice publishes a story: Bob's feed shows it.
  await alice.fill('#story-title', 'Le dragon de Fourvière');
  await alice.click('#publish');
  await bob.locator('#stories li', { hasText: 'Le dragon de Fourvière' }).waitFor();
  t.match(await bob.locator('#stories li').first().textContent(), /par alice/);

  // Alice writes to Bob: Bob sees her typing, then the notification and his unread count go up.
  t.equal(await bob.locator('#unread').textContent(), '0');
  await alice.fill('#notify-user', 'bob');
  await alice.fill('#notify-title', 'Nouveau follower');
  await alice.locator('#notify-message').pressSequentially('Alice vous suit');
  await bob.locator('#typing', { hasText: 'alice écrit' }).waitFor();
  await alice.click('#notify-send');
  await bob.locator('#notifications li.unread', { hasText: 'Nouveau follower' }).waitFor();
  t.equal(await bob.locator('#unread').textContent(), '1', 'unread count went up');
  await bob.waitForFunction(() => document.querySelector('#typing')?.textContent === '', null);
  await alice.locator('#notify-result', { hasText: 'envoyée à bob' }).waitFor();

  // Ping shows a round-trip time.
  await bob.click('#ping');
  await bob.waitForFunction(() => /^\d+\.\d ms$/.test(document.querySelector('#rtt')?.textContent ?? ''), null);

  // The screenshot for the docs: Bob's page with a story, an unread notification, Alice online and typing again.
  await alice.locator('#notify-message').pressSequentially('Et un chapitre ?');
  await bob.locator('#typing', { hasText: 'alice écrit' }).waitFor();
  await bob.screenshot({ path: process.env['DEMO_SCREENSHOT'] ?? join(profile, 'demo.png'), fullPage: true });

  // A second tab of Bob: its list comes from the server's inbox, and Bob's read in the first tab shows in it.
  const bob2 = await browser.newPage();
  bob2.on('pageerror', (e) => pageErrors.push(e.message));
  await bob2.goto(`${base}/?user=bob`);
  await bob2.locator('#notifications li.unread', { hasText: 'Nouveau follower' }).waitFor();
  t.equal(await bob2.locator('#unread').textContent(), '1', 'the inbox fills the second tab');

  await bob.click('#notifications li.unread .mark-read');
  await bob.waitForFunction(() => document.querySelector('#unread')?.textContent === '0', null);
  t.equal(await bob.locator('#notifications li.unread').count(), 0, 'marked as read');
  await bob2.waitForFunction(() => document.querySelector('#unread')?.textContent === '0', null);
  t.equal(await bob2.locator('#notifications li.read', { hasText: 'Nouveau follower' }).count(), 1, 'read in the other tab too');
  await bob2.close();

  // Kill the server: both indicators turn red. Restart it on the same port: green again, same documents.
  await Promise.all([alice, bob].map((p) => p.evaluate(() => ((window as unknown as { marker: number }).marker = 42))));
  await kill(server);
  await Promise.all([waitState(alice, false), waitState(bob, false)]);
  for (const p of [alice, bob]) {
    t.equal(await p.locator('#status-text').textContent(), 'Hors ligne');
    t.equal(await badge(p), RED, 'red indicator');
    t.not(await state(p), 'closed', 'still trying to reconnect');
  }
  server = await startProcess(t, port);
  // The new process has a new dev secret: the page's token provider fetches a fresh token on each attempt.
  await Promise.all([waitState(alice, true, 20_000), waitState(bob, true, 20_000)]);
  for (const p of [alice, bob]) {
    t.equal(await badge(p), GREEN, 'green again');
    t.equal(await p.evaluate(() => (window as unknown as { marker?: number }).marker), 42, 'no reload');
  }
  await alice.fill('#story-title', 'Après le redémarrage');
  await alice.click('#publish');
  await bob.locator('#stories li', { hasText: 'Après le redémarrage' }).waitFor();
  await bob.locator('#online li.online[data-user="alice"]').waitFor();
  t.same(pageErrors, [], 'no uncaught errors in the pages');
  await kill(server);
});

t.test('in Chromium: a refused upgrade is a bare 1006, unless the page asks for in-band refusals (close 4400 with the code)', { skip }, async (t) => {
  const port = await reservePort();
  await startProcess(t, port);
  const { browser } = await launchBrowser(t);
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/healthz`);
  // A string, not a function: tsx's keep-names helper (__name) does not exist in the page.
  const seen = (await page.evaluate(`(async (url) => {
    const attempt = (protocols) => new Promise((resolve) => {
      const ws = new WebSocket(url, protocols);
      let protocol = '';
      ws.onopen = () => (protocol = ws.protocol);
      ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, protocol });
    });
    return {
      http: await attempt(['storywire.v1', 'bearer.not-a-jwt']),
      inBand: await attempt(['storywire.v1', 'storywire.close-on-refusal', 'bearer.not-a-jwt']),
    };
  })(${JSON.stringify(`ws://127.0.0.1:${port}/ws`)})`)) as Record<'http' | 'inBand', { code: number; reason: string; protocol: string }>;
  t.match(seen.http, { code: 1006, reason: '' }, 'HTTP 401: the page learns nothing');
  t.match(seen.inBand, { code: 4400, reason: /^TOKEN_INVALID: /, protocol: 'storywire.v1' }, 'in band: the page reads the code and the reason');
});
