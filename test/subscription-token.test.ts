// Subscription tokens: the app's signed decision for one user and one channel. A channel that needs one
// (`"subscribe": "token"`) is joined only with a valid token; when the token expires the subscription ends
// with `unsubscribed` SUBSCRIPTION_EXPIRED, unless a fresher token was sent for it in band.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import t from 'tap';
import { Client, expectReject, SECRET, sign, startServer } from './helpers.js';

const KEY = new TextEncoder().encode(SECRET);

function channelsFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'storywire-channels-')), 'channels.json');
  writeFileSync(file, JSON.stringify({ namespaces: { 'premium-story': { subscribe: 'token', history: { size: 20, ttlS: 3600 } } } }));
  return file;
}

/** A subscription token expiring at `expS` (seconds since epoch). */
const subToken = (sub: string, channel: string, expS: number, info?: object) =>
  new SignJWT({ channel, ...(info ? { info } : {}) }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime(expS).sign(KEY);

t.test('a token channel: joined with a valid token only, each bad token refused with SUBSCRIPTION_TOKEN_INVALID', async (t) => {
  const h = await startServer(t, {}, { CHANNELS_FILE: channelsFile() });
  const alice = await h.connect('alice');
  await alice.type('connected');
  const later = Math.floor(Date.now() / 1000) + 3600;
  const channel = 'premium-story:7';

  t.equal((await alice.request('subscribe', { topic: channel })).error?.code, 'TOPIC_FORBIDDEN', 'no token: refused');
  const bad = {
    'another user': await subToken('bob', channel, later),
    'another channel': await subToken('alice', 'premium-story:8', later),
    expired: await subToken('alice', channel, Math.floor(Date.now() / 1000) - 600),
    'bad signature': await new SignJWT({ channel }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(later).sign(new TextEncoder().encode('another-secret-another-secret-0123456789')),
    'no exp': await new SignJWT({ channel }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').sign(KEY),
  };
  for (const [why, token] of Object.entries(bad)) {
    t.equal((await alice.request('subscribe', { topic: channel, token })).error?.code, 'SUBSCRIPTION_TOKEN_INVALID', `${why}: refused`);
  }
  const ok = await alice.request('subscribe', { topic: channel, token: await subToken('alice', channel, later) });
  t.equal(ok.type, 'ack', 'a valid token joins');
  t.equal(typeof ok.data.offset, 'number', 'the namespace keeps history');
  await h.server.publish(channel, 'chapter:paid', { n: 1 });
  t.equal((await alice.next((f) => f.type === 'chapter:paid')).topic, channel, 'events reach the subscriber');
});

t.test('an expired subscription token ends the subscription with SUBSCRIPTION_EXPIRED', async (t) => {
  const h = await startServer(t, {}, { CHANNELS_FILE: channelsFile() });
  const alice = await h.connect('alice');
  await alice.type('connected');
  const channel = 'premium-story:7';
  // Valid for about two seconds: the sweep (once a second) ends it.
  const soon = Math.floor(Date.now() / 1000) + 2;
  t.equal((await alice.request('subscribe', { topic: channel, token: await subToken('alice', channel, soon) })).type, 'ack');
  const ended = await alice.next((f) => f.type === 'unsubscribed');
  t.same(ended.data.code, 'SUBSCRIPTION_EXPIRED');
  t.equal(ended.topic, channel);
  // Published after the end: it must not arrive. A marker on the personal topic comes after it, in order.
  await h.server.publish(channel, 'chapter:paid', { n: 2 });
  await h.server.sendNotificationToUser('alice', { title: 'marker', message: 'm', type: 'system', data: {} });
  const next = await alice.next((f) => f.type === 'chapter:paid' || f.type === 'notification:received');
  t.equal(next.type, 'notification:received', 'nothing of the channel after its end');
});

t.test('a fresher token sent in band keeps the subscription past the first one', async (t) => {
  const h = await startServer(t, {}, { CHANNELS_FILE: channelsFile() });
  const alice = await h.connect('alice');
  await alice.type('connected');
  const channel = 'premium-story:7';
  const first = Math.floor(Date.now() / 1000) + 2;
  t.equal((await alice.request('subscribe', { topic: channel, token: await subToken('alice', channel, first) })).type, 'ack');
  t.equal((await alice.request('subscribe', { topic: channel, token: await subToken('alice', channel, first + 3600) })).type, 'ack', 'refresh acked');
  // A witness channel whose token ends after the first one: once its end is told, a sweep ran past `first`.
  t.equal((await alice.request('subscribe', { topic: 'premium-story:9', token: await subToken('alice', 'premium-story:9', first + 1) })).type, 'ack');
  const witness = await alice.next((f) => f.type === 'unsubscribed');
  t.equal(witness.topic, 'premium-story:9', 'the first expiry to be told is the witness channel');
  await h.server.publish(channel, 'chapter:paid', { n: 3 });
  const next = await alice.next((f) => f.type === 'chapter:paid' || f.type === 'unsubscribed');
  t.equal(next.type, 'chapter:paid', 'still subscribed after the first token expired');
});

t.test('a subscription token cannot open a connection, nor refresh one', async (t) => {
  const h = await startServer(t, {}, { CHANNELS_FILE: channelsFile() });
  const token = await subToken('alice', 'premium-story:7', Math.floor(Date.now() / 1000) + 3600);
  const refused = await expectReject(Client.open(`${h.url}?token=${token}`));
  t.equal(refused.status, 401, 'the upgrade is refused');
  t.match(JSON.stringify(refused.body), /subscription token/);
  const alice = await h.connect('alice');
  await alice.type('connected');
  const refreshed = await alice.request('auth', { token });
  t.equal(refreshed.error?.code, 'TOKEN_INVALID', 'auth with a subscription token is refused');
  t.ok((await sign('x')).split('.').length === 3);
});
