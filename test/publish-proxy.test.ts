// Client publishes and subscriptions decided by the app's backend (a real node:http server playing the app):
// the publish proxy refuses, rewrites or passes; the subscribe proxy allows members and refuses strangers;
// a backend that is down is UNAVAILABLE, never an allow.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startServer } from './helpers.js';

interface Asked {
  kind: string;
  user: string;
  channel: string;
  data?: Record<string, unknown>;
}

/** The app: members of room c1 are alice and bob; "spam" is refused; text is trimmed on publish. */
async function app(t: { teardown(fn: () => unknown): void }): Promise<{ url: string; asked: Asked[]; server: Server }> {
  const asked: Asked[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const q = JSON.parse(body) as Asked;
    asked.push(q);
    const member = ['alice', 'bob'].includes(q.user) && q.channel === 'room:c1';
    let answer: unknown;
    if (q.kind === 'subscribe') answer = member ? { allow: true } : { allow: false, reason: 'not a member' };
    else if (q.kind === 'publish') {
      const text = String(q.data?.['text'] ?? '');
      answer = !member ? { allow: false, reason: 'not a member' } : text.includes('spam') ? { allow: false, reason: 'looks like spam' } : { allow: true, data: { text: text.trim(), stored: true } };
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const addr = server.address();
  if (typeof addr !== 'object' || !addr) throw new Error('no address');
  return { url: `http://127.0.0.1:${addr.port}/decide`, asked, server };
}

function channelsFile(url: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'storywire-channels-'));
  const file = join(dir, 'channels.json');
  writeFileSync(
    file,
    JSON.stringify({
      proxies: { app: { url, timeoutMs: 2000, cacheTtlMs: 60000 } },
      namespaces: { room: { subscribe: { proxy: 'app' }, publish: { proxy: 'app' }, history: { size: 50, ttlS: 3600 }, typing: true } },
    }),
  );
  return file;
}

t.test('publish proxy: members publish (as rewritten by the backend), spam and strangers are refused', async (t) => {
  const backend = await app(t);
  const h = await startServer(t, {}, { CHANNELS_FILE: channelsFile(backend.url) });
  const alice = await h.connect('alice');
  const bob = await h.connect('bob');
  const mallory = await h.connect('mallory');
  for (const c of [alice, bob, mallory]) await c.type('connected');

  const joined = await bob.request('subscribe', { topic: 'room:c1' });
  t.equal(joined.type, 'ack', 'a member subscribes');
  t.equal(typeof joined.data.offset, 'number', 'the namespace has history: the ack carries a position');
  const refused = await mallory.request('subscribe', { topic: 'room:c1' });
  t.equal(refused.error?.code, 'TOPIC_FORBIDDEN', 'a stranger cannot subscribe');
  t.match(refused.error?.message, /not a member/, "the backend's reason is told");

  const sent = await alice.request('publish', { channel: 'room:c1', data: { text: '  bonjour  ' } });
  t.same(sent.data, { channel: 'room:c1' }, 'the ack tells no subscriber count');
  const got = await bob.next((f) => f.type === 'publication');
  t.equal(got.topic, 'room:c1');
  t.same({ text: got.data.text, stored: got.data.stored, senderId: got.data.senderId }, { text: 'bonjour', stored: true, senderId: 'alice' }, "the backend's data is what is broadcast, stamped with the sender");

  const spam = await alice.request('publish', { channel: 'room:c1', data: { text: 'buy spam' } });
  t.equal(spam.error?.code, 'FORBIDDEN');
  t.match(spam.error?.message, /looks like spam/);
  const stranger = await mallory.request('publish', { channel: 'room:c1', data: { text: 'hi' } });
  t.equal(stranger.error?.code, 'FORBIDDEN', 'a stranger cannot publish');
  t.ok(await bob.none((f) => f.type === 'publication', 300), 'nothing refused reached the member');
  t.ok(backend.asked.some((q) => q.kind === 'publish' && q.user === 'alice' && q.data?.['text'] === '  bonjour  '), 'the backend saw the sender and the data as sent');

  const builtIn = await alice.request('publish', { channel: 'author:alice', data: { x: 1 } });
  t.equal(builtIn.error?.code, 'FORBIDDEN', 'a built-in namespace without a client publish rule refuses');
});

t.test('a backend that is down is UNAVAILABLE for subscribe and publish, never an allow', async (t) => {
  const backend = await app(t);
  const h = await startServer(t, {}, { CHANNELS_FILE: channelsFile(backend.url) });
  await new Promise((resolve) => backend.server.close(resolve));
  const alice = await h.connect('alice');
  await alice.type('connected');
  const sub = await alice.request('subscribe', { topic: 'room:c1' });
  t.equal(sub.error?.code, 'UNAVAILABLE', 'subscribe: the outage is said, not a refusal');
  const pub = await alice.request('publish', { channel: 'room:c1', data: { text: 'x' } });
  t.equal(pub.error?.code, 'UNAVAILABLE', 'publish: the outage is said, not a refusal');
});
