// The SDK and subscription tokens: a channel joined with { token: true } asks the app's provider for a token
// before each subscribe, and again before that token expires, so the server never ends the subscription.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import t from 'tap';
import { SECRET, startServer } from '../helpers.js';
import type { StorywireError } from '../../src/client/index.js';
import { client, next, tapped, until } from './util.js';
import { WAIT_MS } from '../wait.js';

const KEY = new TextEncoder().encode(SECRET);

function channelsFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'storywire-channels-')), 'channels.json');
  writeFileSync(file, JSON.stringify({ namespaces: { 'premium-story': { subscribe: 'token' } } }));
  return file;
}

t.test('subscribe(topic, { token: true }): the provider is asked, and again before expiry; the channel keeps delivering', async (t) => {
  const h = await startServer(t, {}, { CHANNELS_FILE: channelsFile() });
  const asked: { channel: string; at: number }[] = [];
  let fourth: () => void = () => {};
  const fourthCall = new Promise<void>((resolve) => (fourth = resolve));
  const start = Date.now();
  const alice = client(t, {
    url: h.url,
    token: await h.token('alice'),
    // Tokens that live ~2-3 s: the server ends the subscription one second after each one's exp at most.
    subscriptionToken: async ({ channel }) => {
      asked.push({ channel, at: Date.now() });
      if (asked.length === 4) fourth();
      if (asked.length > 1 && Date.now() - asked[asked.length - 2]!.at < 900) throw new Error('asked again too soon');
      return new SignJWT({ channel }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(Math.floor(Date.now() / 1000) + 3).sign(KEY);
    },
  });
  const ended: string[] = [];
  alice.on('unsubscribed', (d) => ended.push(d.code));
  await alice.subscribe('premium-story:7', { token: true });
  t.same(asked[0]?.channel, 'premium-story:7', 'the provider is asked for the channel');
  await fourthCall;
  t.ok(Date.now() - start > 3000, "the first token's life is over by the fourth ask");
  const got = next(alice, 'event', (type) => type === 'chapter:paid');
  await h.server.publish('premium-story:7', 'chapter:paid', { n: 1 });
  await got;
  t.same(ended, [], 'the server never ended the subscription');
});

t.test('a failing subscription token provider rejects subscribe with TOKEN_PROVIDER; no provider is a TypeError', async (t) => {
  const h = await startServer(t, {}, { CHANNELS_FILE: channelsFile() });
  const alice = client(t, { url: h.url, token: await h.token('alice'), subscriptionToken: () => Promise.reject(new Error('backend down')) });
  await alice.whenOpen();
  const err = (await alice.subscribe('premium-story:7', { token: true }).catch((e: unknown) => e)) as StorywireError;
  t.equal(err.code, 'TOKEN_PROVIDER');
  t.match(err.message, /backend down/);
  const bare = client(t, { url: h.url, token: await h.token('bob') });
  t.throws(() => bare.subscribe('premium-story:7', { token: true }), TypeError);
});

t.test('after a cut connection the SDK asks for a fresh subscription token and joins the gated channel again', async (t) => {
  const h = await startServer(t, {}, { CHANNELS_FILE: channelsFile() });
  const tap = tapped();
  const asked: string[] = [];
  const alice = client(t, {
    url: h.url,
    WebSocket: tap.WebSocket,
    token: await h.token('alice'),
    reconnect: { minDelayMs: 10, maxDelayMs: 50 },
    subscriptionToken: async ({ channel }) => {
      asked.push(channel);
      return new SignJWT({ channel }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(Math.floor(Date.now() / 1000) + 3600).sign(KEY);
    },
  });
  await alice.subscribe('premium-story:7', { token: true });
  t.same(asked, ['premium-story:7']);
  const reopened = next(alice, 'open');
  tap.cut();
  await reopened;
  await until(() => asked.length === 2, 10_000, 'the provider asked again');
  // Subscribed again on the new connection: the channel's events reach the client.
  const got = next(alice, 'event', (type) => type === 'chapter:paid', 10_000);
  const deadline = Date.now() + WAIT_MS;
  // The resubscribe's ack may still be on its way: publish until one arrives (bounded).
  let arrived = false;
  got.then(() => (arrived = true), () => {});
  while (!arrived && Date.now() < deadline) {
    await h.server.publish('premium-story:7', 'chapter:paid', { n: 1 });
    await new Promise((r) => setTimeout(r, 50));
  }
  await got;
  t.same(asked, ['premium-story:7', 'premium-story:7'], 'one fresh token per connection');
});
