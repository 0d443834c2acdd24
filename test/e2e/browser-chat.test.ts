// End-to-end in headless Chromium: the demo page's chat panel as two users (the dev backend deciding membership and
// storing the messages) against a real server process that is killed and restarted in the middle of the conversation.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { reservePort } from '../client/util.js';
import { ARGS, CHROMIUM, ROOT, chromiumSkip, ensureBuilt, kill, startProcess } from './chromium.js';
import { WAIT_MS } from '../wait.js';

// Run in Chromium, compiled with the server's types (no DOM): the page globals used are declared for this file only.
declare const document: { querySelector(selector: string): { textContent: string | null; getAttribute(name: string): string | null } | null; querySelectorAll(selector: string): ArrayLike<unknown> };

const skip = chromiumSkip();
if (skip) t.comment(`BROWSER TESTS SKIPPED: ${CHROMIUM} is not installed (apt-get install -y chromium)`);

t.test('chat panel: send, receive in the other tab, typing, read receipt; a restart mid-conversation loses nothing, doubles nothing', { skip }, async (t) => {
  ensureBuilt();
  const { chromium } = await import('playwright-core');
  const port = await reservePort();
  const dir = mkdtempSync(join(tmpdir(), 'storywire-chat-e2e-'));
  // The dev backend is the conversations' publish proxy (examples/demo-channels.json, on this test's port).
  const channelsFile = join(dir, 'channels.json');
  writeFileSync(channelsFile, readFileSync(join(ROOT, 'examples/demo-channels.json'), 'utf8').replace('127.0.0.1:9001', `127.0.0.1:${port}`));
  const env = { CHANNELS_FILE: channelsFile };
  let server = await startProcess(t, port, env);
  const base = `http://127.0.0.1:${port}`;

  const browser = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: ARGS });
  t.teardown(async () => {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  });
  browser.setDefaultTimeout(WAIT_MS);
  const pageErrors: string[] = [];
  const alice = await browser.newPage();
  const bob = await browser.newPage();
  for (const p of [alice, bob]) p.on('pageerror', (e) => pageErrors.push(e.message));
  type Page = typeof alice;
  const open = (p: Page, want: boolean, timeout = 10_000) =>
    p.waitForFunction((w) => (document.querySelector('#status')?.getAttribute('data-state') === 'open') === w, want, { timeout });
  const texts = (p: Page) => p.locator('#chat-messages li.msg:not(.pending) .text').allTextContents();
  const say = async (p: Page, text: string) => {
    await p.locator('#chat-text').pressSequentially(text);
    await p.press('#chat-text', 'Enter');
  };

  // Alice opens the conversation from the URL, Bob from the form: the dev backend names the same channel for both.
  await alice.goto(`${base}/?user=alice&chat=bob`);
  await bob.goto(`${base}/?user=bob`);
  await bob.fill('#chat-with', 'alice');
  await bob.press('#chat-with', 'Enter');
  for (const p of [alice, bob]) await p.locator('#chat-text:enabled').waitFor();
  const channel = await alice.locator('#chat').getAttribute('data-channel');
  t.match(channel, /^conversation:dm-/);
  t.equal(await bob.locator('#chat').getAttribute('data-channel'), channel, 'one conversation for the pair');

  // Alice types: Bob sees it; she sends: he gets the message (and the indicator goes), his unread count goes up.
  await alice.locator('#chat-text').pressSequentially('Bonjour Bob');
  await bob.locator('#chat-typing', { hasText: 'alice écrit' }).waitFor();
  await alice.press('#chat-text', 'Enter');
  await bob.locator('#chat-messages li.msg', { hasText: 'Bonjour Bob' }).waitFor();
  await bob.waitForFunction(() => document.querySelector('#chat-typing')?.textContent === '', null);
  await bob.waitForFunction(() => document.querySelector('#chat-unread')?.textContent === '1', null);
  await alice.locator('#chat-messages li.mine:not(.pending)', { hasText: 'Bonjour Bob' }).waitFor();
  t.equal(await alice.locator('#chat-messages li.mine.read').count(), 0, 'not read yet');

  // Bob reads: his count goes to 0 and Alice sees the receipt on her message.
  await bob.click('#chat-mark-read');
  await bob.waitForFunction(() => document.querySelector('#chat-unread')?.textContent === '0', null);
  await alice.locator('#chat-messages li.mine.read', { hasText: 'Bonjour Bob' }).waitFor();
  t.match(await alice.locator('#chat-messages li.mine.read .tick').textContent(), /lu/);

  await say(bob, 'Salut Alice');
  await alice.locator('#chat-messages li.msg', { hasText: 'Salut Alice' }).waitFor();
  const stored = (await (await fetch(`${base}/dev/chat/messages?user=alice&channel=${channel}`)).json()) as { messages: { text: string }[] };
  t.same(stored.messages.map((m) => m.text), ['Bonjour Bob', 'Salut Alice'], 'the dev backend stored each message once');

  // The server dies in the middle of the conversation. Alice writes while it is down: her message waits.
  await kill(server);
  await Promise.all([open(alice, false), open(bob, false)]);
  await say(alice, 'Pendant la coupure');
  await alice.locator('#chat-messages li.pending', { hasText: 'Pendant la coupure' }).waitFor();
  server = await startProcess(t, port, env);
  await Promise.all([open(alice, true, 20_000), open(bob, true, 20_000)]);
  // Sent once the conversation is joined again (a fresh subscription token from the new process's secret).
  await bob.locator('#chat-messages li.msg', { hasText: 'Pendant la coupure' }).waitFor({ timeout: WAIT_MS });
  await alice.waitForFunction(() => document.querySelectorAll('#chat-messages li.pending').length === 0, null);
  await say(bob, 'Après le redémarrage');
  await alice.locator('#chat-messages li.msg', { hasText: 'Après le redémarrage' }).waitFor();

  const want = ['Bonjour Bob', 'Salut Alice', 'Pendant la coupure', 'Après le redémarrage'];
  t.same(await texts(alice), want, "alice's page: every message once, in order");
  t.same(await texts(bob), want, "bob's page: every message once, in order");
  t.equal(await alice.locator('#chat-messages li.mine.read', { hasText: 'Bonjour Bob' }).count(), 1, 'the receipt given before the restart still shows');
  t.same(pageErrors, [], 'no uncaught errors in the pages');
  await kill(server);
});
