// POST /v1/channels/unsubscribe: the backend revokes a user's subscription to a channel, on every node. The
// client is told (`unsubscribed`, SUBSCRIPTION_REVOKED), no event of the channel reaches it afterwards, and a
// proxy's cached decision for that user and channel is dropped. Memory mode and a 2-node Redis cluster.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import t from 'tap';
import { startServer, type Client, type Harness } from './helpers.js';
import { API_KEY, api, skipReason, startNodes, startRedis } from './cluster/redis.js';
import { client as sdkClient, until as sdkUntil } from './client/util.js';

const revoked = (topic: string) => (f: { type: string; topic?: string }) => f.type === 'unsubscribed' && f.topic === topic;
const chapter = (f: { type: string; topic?: string }) => f.type === 'chapter:new' && f.topic === 'story:42';

async function subscribed(c: Client, topic: string): Promise<void> {
  const ack = await c.request('subscribe', { topic });
  if (ack.type !== 'ack') throw new Error(`subscribe ${topic}: ${JSON.stringify(ack)}`);
}

async function publishChapter(h: Harness, id: string): Promise<void> {
  const r = await api(h, 'POST', '/v1/stories/42/chapters', { id, title: `Chapitre ${id}` });
  if (r.status !== 200) throw new Error(`publish: ${JSON.stringify(r)}`);
}

t.test('memory mode: the subscription ends, the client is told, the channel stops reaching it', async (t) => {
  const h = await startServer(t, {}, { API_KEY });
  const alice = await h.connect('alice');
  const alice2 = await h.connect('alice');
  const bob = await h.connect('bob');
  for (const c of [alice, alice2, bob]) await subscribed(c, 'story:42');

  const r = await api(h, 'POST', '/v1/channels/unsubscribe', { userId: 'alice', channel: 'story:42', reason: 'subscription ended' });
  t.same(r, { status: 200, body: { revoked: 2 } }, 'both of alice\'s connections');
  for (const c of [alice, alice2]) {
    const f = await c.next(revoked('story:42'));
    t.same(f.data, { topic: 'story:42', code: 'SUBSCRIPTION_REVOKED', reason: 'subscription ended' });
    t.notOk('offset' in f || 'epoch' in f, 'the notice is not a numbered event of the topic');
  }
  await publishChapter(h, 'c1');
  t.match((await bob.next(chapter)).data, { id: 'c1' }, 'bob still follows the story');
  t.ok(await alice.none(chapter), 'alice no longer receives it');
  t.ok(await alice2.none(chapter, 50), 'nor her other device');

  // Revoked means gone from the connection's state: subscribing again is a fresh join, not "already joined".
  const again = await alice.request('subscribe', { topic: 'story:42' });
  t.match(again, { type: 'ack', data: { topic: 'story:42', offset: 1 } }, 'a fresh join at the current position');
  await publishChapter(h, 'c2');
  t.match((await alice.next(chapter)).data, { id: 'c2' }, 'subscribed again, events flow');

  t.same(await api(h, 'POST', '/v1/channels/unsubscribe', { userId: 'carol', channel: 'story:42' }), { status: 200, body: { revoked: 0 } }, 'nobody to revoke: 0');
  t.same(await api(h, 'POST', '/v1/channels/unsubscribe', { userId: 'bob', channel: 'author:x' }), { status: 200, body: { revoked: 0 } }, 'not subscribed: 0');
  t.ok(await bob.none(revoked('author:x'), 50), 'and no notice');
});

t.test('a revoked or left channel stops the typing indicator shown there', async (t) => {
  const h = await startServer(t, {}, { API_KEY });
  const alice = await h.connect('alice');
  const bob = await h.connect('bob');
  for (const c of [alice, bob]) await subscribed(c, 'story:42');
  t.match(await bob.request('typing:start', { target: 'story:42' }), { type: 'ack', data: { relayed: true } });
  await alice.next((f) => f.type === 'user:typing' && f.data.userId === 'bob');
  t.same((await api(h, 'POST', '/v1/channels/unsubscribe', { userId: 'bob', channel: 'story:42' })).body, { revoked: 1 });
  const stopped = await alice.next((f) => f.type === 'user:stopped_typing');
  t.same(stopped.data, { userId: 'bob', target: 'story:42' }, 'revoked: stopped at once, not at the typing timeout');
  await subscribed(bob, 'story:42');
  await bob.request('typing:start', { target: 'story:42' });
  await alice.next((f) => f.type === 'user:typing' && f.data.userId === 'bob');
  await bob.request('unsubscribe', { topic: 'story:42' });
  t.same((await alice.next((f) => f.type === 'user:stopped_typing')).data, { userId: 'bob', target: 'story:42' }, 'left: stopped too');
});

t.test('memory mode: an automatic topic can be revoked; the default reason', async (t) => {
  const h = await startServer(t, {}, { API_KEY });
  const alice = await h.connect('alice');
  await alice.type('connected');
  t.same(await api(h, 'POST', '/v1/channels/unsubscribe', { userId: 'alice', channel: 'stories' }), { status: 200, body: { revoked: 1 } });
  t.same((await alice.next(revoked('stories'))).data, { topic: 'stories', code: 'SUBSCRIPTION_REVOKED', reason: 'subscription revoked by the server' });
  t.equal((await api(h, 'POST', '/v1/stories', { id: 7, title: 'x' })).body.delivered, 0, 'stories no longer reaches alice');
});

t.test('bad requests are 400 with the field named; the personal topic cannot be revoked; the API key is required', async (t) => {
  const h = await startServer(t, {}, { API_KEY });
  const alice = await h.connect('alice');
  await alice.type('connected');
  const cases: [unknown, string, RegExp][] = [
    [{ userId: 'alice', channel: 'user:alice' }, 'INVALID_PAYLOAD', /personal topic/],
    [{ userId: 'alice', channel: 'nope:1' }, 'INVALID_TOPIC', /unknown topic/],
    [{ userId: 'alice', channel: 'story:' }, 'INVALID_TOPIC', /unknown topic/],
    [{ userId: 'alice', channel: 42 }, 'INVALID_PAYLOAD', /body\.channel/],
    [{ userId: 'alice', channel: `story:${'x'.repeat(140)}` }, 'INVALID_PAYLOAD', /body\.channel/],
    [{ channel: 'story:42' }, 'INVALID_PAYLOAD', /body\.userId/],
    [{ userId: 'alice', channel: 'story:42', reason: 'x'.repeat(121) }, 'INVALID_PAYLOAD', /body\.reason/],
    [[], 'INVALID_PAYLOAD', /body must be an object/],
  ];
  for (const [body, code, message] of cases) {
    const r = await api(h, 'POST', '/v1/channels/unsubscribe', body);
    t.equal(r.status, 400, JSON.stringify(body).slice(0, 80));
    t.equal(r.body.error.code, code);
    t.match(r.body.error.message, message);
  }
  t.ok(await alice.none((f) => f.type === 'unsubscribed', 50), 'nothing was revoked');
  const anon = await fetch(`http://127.0.0.1:${h.port}/v1/channels/unsubscribe`, { method: 'POST', body: '{"userId":"alice","channel":"stories"}' });
  t.equal(anon.status, 401);
  const get = await fetch(`http://127.0.0.1:${h.port}/v1/channels/unsubscribe`, { headers: { authorization: `Bearer ${API_KEY}` } });
  t.equal(get.status, 405);
});

t.test('a revocation drops the proxy decision that granted the subscription', async (t) => {
  // The app's backend: alice may read story:42 until the app says otherwise.
  let allowed = true;
  let asked = 0;
  const app = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      asked++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(allowed ? { allow: true } : { allow: false, reason: 'subscription ended' }));
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    app.closeAllConnections();
    return new Promise((resolve) => app.close(resolve));
  });
  const dir = mkdtempSync(join(tmpdir(), 'sw-revoke-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'channels.json');
  writeFileSync(
    file,
    JSON.stringify({
      proxies: { paid: { url: `http://127.0.0.1:${(app.address() as AddressInfo).port}/authorize`, cacheTtlMs: 600000 } },
      namespaces: { 'premium-story': { subscribe: { proxy: 'paid' } } },
    }),
  );
  const h = await startServer(t, {}, { API_KEY, CHANNELS_FILE: file });
  const alice = await h.connect('alice');
  await subscribed(alice, 'premium-story:9');
  await alice.request('unsubscribe', { topic: 'premium-story:9' });
  await subscribed(alice, 'premium-story:9');
  t.equal(asked, 1, 'the second subscribe was decided from the cache');

  allowed = false;
  t.same(await api(h, 'POST', '/v1/channels/unsubscribe', { userId: 'alice', channel: 'premium-story:9' }), { status: 200, body: { revoked: 1 } });
  await alice.next(revoked('premium-story:9'));
  const refused = await alice.request('subscribe', { topic: 'premium-story:9' });
  t.equal(asked, 2, 'the backend is asked again');
  t.match(refused, { type: 'error', error: { code: 'TOPIC_FORBIDDEN', message: /subscription ended/ } }, 'and its deny holds');
});

t.test('cluster: the revocation reaches every node holding the user', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await startNodes(t, redis, 2);
  const onA = await a!.connect('alice');
  const onB = await b!.connect('alice');
  const bobOnB = await b!.connect('bob');
  for (const c of [onA, onB, bobOnB]) await subscribed(c, 'story:42');

  const r = await api(a!, 'POST', '/v1/channels/unsubscribe', { userId: 'alice', channel: 'story:42' });
  t.same(r, { status: 200, body: { revoked: 2 } }, 'one connection on each node, counted together');
  for (const c of [onA, onB]) t.match((await c.next(revoked('story:42'))).data, { code: 'SUBSCRIPTION_REVOKED' });

  await publishChapter(a!, 'c1');
  t.match((await bobOnB.next(chapter)).data, { id: 'c1' }, 'bob, on the other node, still follows');
  t.ok(await onB.none(chapter), 'alice on the other node no longer receives it');
  t.ok(await onA.none(chapter, 50), 'nor on this one');

  t.same(await api(b!, 'POST', '/v1/channels/unsubscribe', { userId: 'alice', channel: 'story:42' }), { status: 200, body: { revoked: 0 } }, 'again: nothing left anywhere');
});

t.test('cluster: the other nodes out of reach is 503 UNAVAILABLE saying what this node did', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await startNodes(t, redis, 2);
  const onA = await a!.connect('alice');
  const onB = await b!.connect('alice');
  for (const c of [onA, onB]) await subscribed(c, 'story:42');
  await redis.stop!();
  const r = await api(a!, 'POST', '/v1/channels/unsubscribe', { userId: 'alice', channel: 'story:42' });
  t.equal(r.status, 503);
  t.equal(r.body.error.code, 'UNAVAILABLE');
  t.match(r.body.error.message, /unsubscribed 1 connection\(s\) on this node/);
  t.ok(await onA.next(revoked('story:42')), 'this node revoked its own');
});

t.test('the SDK forgets a revoked topic: it is not joined again on reconnect', async (t) => {
  const h = await startServer(t, {}, { API_KEY });
  const alice = sdkClient(t, { url: h.url, token: await h.token('alice') });
  await alice.whenOpen();
  await alice.subscribe('story:42');
  await alice.subscribe('author:7');
  const events: [string, unknown][] = [];
  alice.on('event', (type, data) => events.push([type, data]));
  t.same((await api(h, 'POST', '/v1/channels/unsubscribe', { userId: 'alice', channel: 'story:42' })).body, { revoked: 1 });
  await sdkUntil(() => events.some(([type]) => type === 'unsubscribed'), 3000, 'the unsubscribed event');
  t.same(alice.subscriptions.includes('story:42'), false, 'no longer in the client subscriptions');
  t.ok(alice.subscriptions.includes('author:7'), 'the others stay');
});
