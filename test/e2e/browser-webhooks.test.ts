// The demo page's webhook log in headless Chromium (issue #19): a dev server with its own receiver
// (DEV_WEBHOOKS) shows the push a closed app would have received, and none for what an open tab got: the
// walk-through of README "When the app is closed".
import t from 'tap';
import { reservePort } from '../client/util.js';
import { WAIT_MS } from '../wait.js';
import { CHROMIUM, chromiumSkip, ensureBuilt, launchBrowser, startProcess } from './chromium.js';

const skip = chromiumSkip();
if (skip) t.comment(`BROWSER TESTS SKIPPED: ${CHROMIUM} is not installed (apt-get install -y chromium)`);

t.test('demo page: the webhook log shows the push of a notification no device received, none for one a tab received', { skip }, async (t) => {
  ensureBuilt();
  const port = await reservePort();
  // PUSH_DELAY_MS as shipped: Bob's tab has that long to acknowledge. One request at a time: the dev receiver
  // gets the pushes in the order they fell due, so Bob's, if it were made, would be listed before Carol's.
  await startProcess(t, port, { DEV_WEBHOOKS: '1', PUSH_COALESCE_MS: '0', WEBHOOK_CONCURRENCY: '1' });
  const base = `http://127.0.0.1:${port}`;
  const { browser } = await launchBrowser(t, { width: 1280, height: 860 });
  const pageErrors: string[] = [];
  const alice = await browser.newPage();
  const bob = await browser.newPage();
  for (const p of [alice, bob]) p.on('pageerror', (e) => pageErrors.push(e.message));
  await alice.goto(`${base}/?user=alice`);
  await bob.goto(`${base}/?user=bob`);
  for (const p of [alice, bob]) await p.locator('#status[data-state="open"]').waitFor();
  t.equal(await alice.locator('#webhooks').isVisible(), true, 'the webhook log is shown in dev mode with DEV_WEBHOOKS');
  // Presence events reach the log as the app's backend would get them.
  await alice.locator('#webhook-log li[data-type="user.online"]', { hasText: 'bob' }).waitFor();

  const send = async (to: string, title: string) => {
    await alice.fill('#notify-user', to);
    await alice.fill('#notify-title', title);
    await alice.click('#notify-send');
    await alice.locator('#notify-result', { hasText: `envoyée à ${to}` }).waitFor();
  };
  // Carol, in two tabs, gets a first notification (a user-sent notification begins the history only of a user
  // who is online: a made-up id gets nothing stored) and reads it in one: the other tab showing it read means
  // the server has the read (no push for it, whatever became of the receipts). Then she closes both.
  const carol = await browser.newPage();
  const carol2 = await browser.newPage();
  for (const p of [carol, carol2]) {
    p.on('pageerror', (e) => pageErrors.push(e.message));
    await p.goto(`${base}/?user=carol`);
    await p.locator('#status[data-state="open"]').waitFor();
  }
  await send('carol', 'Bienvenue');
  for (const p of [carol, carol2]) await p.locator('#notifications li.unread', { hasText: 'Bienvenue' }).waitFor();
  await carol.click('#notifications li.unread .mark-read');
  await carol2.locator('#notifications li.read', { hasText: 'Bienvenue' }).waitFor();
  await carol.close();
  await carol2.close();
  await alice.locator('#webhook-log li[data-type="user.offline"]', { hasText: 'carol' }).waitFor();

  await send('bob', 'Nouveau follower');
  await bob.locator('#notifications li.unread', { hasText: 'Nouveau follower' }).waitFor();
  // Carol's app is closed: her notification is pushed after PUSH_DELAY_MS.
  await send('carol', 'Nouveau chapitre');
  const push = alice.locator('#webhook-log li[data-type="notification.unread"]', { hasText: 'push à carol' });
  await push.waitFor({ timeout: WAIT_MS * 2 });
  t.match(await push.textContent(), /1 non reçue\(s\) \(non lues : 1\) — Nouveau chapitre/, 'the push: count, unread count (the first one was read), title');
  t.equal(await alice.locator('#webhook-log li[data-type="notification.unread"]', { hasText: 'Bienvenue' }).count(), 0, 'not the one she read');
  t.equal(await alice.locator('#webhook-log li[data-type="notification.unread"]', { hasText: 'push à bob' }).count(), 0, "no push for the notification Bob's tab received");
  t.same(pageErrors, [], 'no page errors');
});
