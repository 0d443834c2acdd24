// The demo's dev backend for chat (src/api/demo-chat.ts) against a real server in dev mode: it names a pair's
// conversation, signs subscription tokens for its two members only, and as the publish proxy of
// examples/demo-channels.json stores each message once by idempotencyKey, whatever the SDK retries.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { DemoChat } from '../src/api/demo-chat.js';
import { StorywireClient, type StorywireError } from '../src/client/index.js';
import { loadConfig } from '../src/config.js';
import { createServer } from '../src/edge/server.js';
import { reservePort, until } from './client/util.js';

const EXAMPLE = new URL('../examples/demo-channels.json', import.meta.url).pathname;

/** The example CHANNELS_FILE with the test's port instead of 9001. */
function channelsFile(port: number): string {
  const file = join(mkdtempSync(join(tmpdir(), 'storywire-demo-chat-')), 'channels.json');
  writeFileSync(file, readFileSync(EXAMPLE, 'utf8').replace('127.0.0.1:9001', `127.0.0.1:${port}`));
  return file;
}

/** A dev-mode server; `proxy`: with examples/demo-channels.json (its port rewritten), the dev backend as publish proxy. */
async function devServer(t: Test, proxy = false) {
  const port = await reservePort();
  const env: Record<string, string> = proxy ? { PORT: String(port), CHANNELS_FILE: channelsFile(port) } : { PORT: String(port) };
  const server = createServer(loadConfig(env, ['--dev']), { logger: pino({ level: 'silent' }) });
  await server.listen();
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${port}`;
  const get = async (path: string) => {
    const r = await fetch(`${base}${path}`);
    return { status: r.status, body: (await r.json()) as any };
  };
  const channelOf = async (user: string, other: string) => (await get(`/dev/chat/conversation?user=${user}&with=${other}`)).body.channel as string;
  /** A client of `user` whose subscription tokens come from the dev backend, as the demo page gets them. */
  const member = async (user: string, other: string) => {
    const { token } = (await get(`/dev/token?user=${user}`)).body as { token: string };
    const c = new StorywireClient({
      url: `ws://127.0.0.1:${port}/ws`,
      token,
      WebSocket,
      subscriptionToken: async ({ channel }) => {
        const r = await get(`/dev/chat/token?user=${user}&with=${other}&channel=${channel}`);
        if (r.status !== 200) throw new Error(r.body.error.message);
        return r.body.token as string;
      },
    });
    t.teardown(() => c.close());
    return c;
  };
  return { port, get, channelOf, member };
}

t.test('the pair names one conversation, and only its two members get a subscription token', async (t) => {
  const d = await devServer(t);
  const channel = await d.channelOf('alice', 'bob');
  t.match(channel, /^conversation:dm-[0-9a-f]{32}$/);
  t.equal(await d.channelOf('bob', 'alice'), channel, 'the same whoever asks');
  t.not(await d.channelOf('alice', 'carol'), channel);
  t.match(await d.get('/dev/chat/conversation?user=alice&with=alice'), { status: 400, body: { error: { code: 'INVALID_PAYLOAD' } } });
  t.equal((await d.get(`/dev/chat/token?user=bob&with=alice&channel=${channel}`)).status, 200);
  t.match(await d.get(`/dev/chat/token?user=mallory&with=bob&channel=${channel}`), { status: 403, body: { error: { code: 'FORBIDDEN', message: /not a member/ } } });

  const alice = await d.member('alice', 'bob');
  const mallory = await d.member('mallory', 'bob');
  const conv = alice.conversation(channel, { token: true });
  await until(() => conv.isJoined, 5000, 'alice joined');
  t.same(await mallory.subscribe(channel).catch((e: StorywireError) => e.code), 'TOPIC_FORBIDDEN', 'no token is no way in');
  const refused = mallory.conversation(channel, { token: true });
  const err = (await refused.send('hi').catch((e: StorywireError) => e)) as StorywireError;
  t.equal(err.code, 'TOKEN_PROVIDER', 'and mallory gets no token: the send fails, nothing is sent');
  t.match(err.message, /not a member/);
});

t.test('as the publish proxy: each message stored once by idempotencyKey, its id the backend\'s; non-members refused', async (t) => {
  const d = await devServer(t, true);
  const channel = await d.channelOf('alice', 'bob');
  const alice = await d.member('alice', 'bob');
  const bob = await d.member('bob', 'alice');
  const a = alice.conversation(channel, { token: true });
  const b = bob.conversation(channel, { token: true });
  await until(() => a.isJoined && b.isJoined, 5000, 'both joined');
  const sent = await a.send('Bonjour Bob');
  t.match(sent.id, /^msg-[0-9a-f]{8}-1$/, 'the id is the one the backend stored it under');
  await until(() => b.messages.length === 1, 5000, 'bob got it');
  t.match(b.messages[0], { id: sent.id, text: 'Bonjour Bob', senderId: 'alice' });

  // A retry of the same clientMsgId (what the SDK sends after a timeout): the same message, stored once.
  const again = await alice.request<{ id: string; duplicate: boolean }>('chat:send', { channel, clientMsgId: sent.clientMsgId, text: 'Bonjour Bob' });
  t.match(again, { id: sent.id, duplicate: true });
  const stored = (await d.get(`/dev/chat/messages?user=bob&channel=${channel}`)).body;
  t.same(stored.messages.map((m: { id: string; text: string; idempotencyKey: string }) => [m.id, m.text, m.idempotencyKey]), [[sent.id, 'Bonjour Bob', `alice:${sent.clientMsgId}`]]);
  t.equal((await d.get(`/dev/chat/messages?user=carol&channel=${channel}`)).status, 403, 'the store shows a conversation to its members only');
  const c = await d.member('carol', 'bob');
  await c.whenOpen();
  const forged = await c.subscribe(channel, { token: await d.get(`/dev/chat/token?user=bob&with=alice&channel=${channel}`).then((r) => r.body.token as string) }).catch((e: StorywireError) => e.code);
  t.equal(forged, 'SUBSCRIPTION_TOKEN_INVALID', "bob's token does not let carol in");
});

t.test('the store by itself: a retried key, edits and deletes by the sender only, the bound', async (t) => {
  const chat = new DemoChat();
  const { channel } = chat.conversation('alice', 'bob');
  const send = (user: string, key: string, text: string) => chat.decide({ kind: 'publish', user, channel, data: { text }, chat: { op: 'send', clientMsgId: key, idempotencyKey: `${user}:${key}` } });
  const first = send('alice', 'k1', 'a') as unknown as { data: { id: string } };
  t.match(first, { allow: true, data: { id: /^msg-[0-9a-f]{8}-1$/ } });
  t.same(send('alice', 'k1', 'a'), first, 'a retry: the same id');
  const other = send('bob', 'k1', 'b') as unknown as { data: { id: string } };
  t.not(other.data.id, first.data.id, 'another sender\'s key is another message');
  const restarted = new DemoChat();
  restarted.conversation('alice', 'bob');
  const afterRestart = restarted.decide({ kind: 'publish', user: 'alice', channel, data: { text: 'a' }, chat: { op: 'send', idempotencyKey: 'alice:k9' } }) as unknown as { data: { id: string } };
  t.not(afterRestart.data.id, first.data.id, 'a restarted backend does not give an id again (clients hold messages by id)');
  t.match(send('carol', 'k2', 'c'), { allow: false, reason: /not a member/ });
  const messageId = first.data.id;
  t.match(chat.decide({ kind: 'publish', user: 'bob', channel, data: { text: 'x' }, chat: { op: 'edit', messageId } }), { allow: false, reason: /only its sender/ });
  t.same(chat.decide({ kind: 'publish', user: 'alice', channel, data: { text: 'a!' }, chat: { op: 'edit', messageId } }), { allow: true });
  t.same(chat.decide({ kind: 'publish', user: 'alice', channel, chat: { op: 'delete', messageId } }), { allow: true });
  t.match(chat.messages(channel), [{ id: messageId, text: 'a!', deleted: true }, { id: other.data.id, text: 'b' }]);
  t.same(chat.decide({ kind: 'subscribe', user: 'bob', channel }), { allow: true }, 'as a subscribe proxy: members in');
  t.match(chat.decide('garbage'), { allow: false });
  for (let i = 0; i < 1005; i++) send('alice', `n${i}`, 'x');
  t.equal(chat.messages(channel).length, 1000, 'at most 1000 messages per conversation');
});

t.test('outside dev mode the dev backend does not exist', async (t) => {
  const port = await reservePort();
  const server = createServer(loadConfig({ PORT: String(port), JWT_SECRET: 'x'.repeat(32), DEMO_PAGE: 'true' }), { logger: pino({ level: 'silent' }) });
  await server.listen();
  t.teardown(() => server.close());
  for (const path of ['/dev/chat/conversation?user=a&with=b', '/dev/chat/token?user=a&with=b&channel=conversation:x', '/dev/chat/messages?user=a&channel=x']) {
    t.equal((await fetch(`http://127.0.0.1:${port}${path}`)).status, 404, path);
  }
  t.equal((await fetch(`http://127.0.0.1:${port}/dev/chat/proxy`, { method: 'POST', body: '{}' })).status, 404);
});
