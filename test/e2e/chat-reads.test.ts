// Read receipts and unread counts in conversations (issue #16): chat:read moves a member's position forward,
// syncs it to the member's other devices and announces it to the other members (not with receipts off);
// chat:unread counts the others' messages above the position, for the channels the user may read, bounded.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { chatBackend } from '../chat-backend.js';
import { type Client, sign, startServer, type Harness } from '../helpers.js';

const C1 = 'conversation:c1';

async function member(h: Harness, user: string, channel = C1, token = true): Promise<Client> {
  const c = await h.connect(user);
  await c.type('connected');
  const ack = await c.request('subscribe', token ? { topic: channel, token: await sign(user, { channel }) } : { topic: channel });
  if (ack.type !== 'ack') throw new Error(`${user} could not join ${channel}: ${JSON.stringify(ack)}`);
  return c;
}

let sent = 0;
const say = async (c: Client, text: string, channel = C1) => (await c.request('chat:send', { channel, clientMsgId: `m-${++sent}`, text })).data;

t.test('chat:read: the ack, the sync to the other device, the receipt to the other members', async (t) => {
  const h = await startServer(t);
  const a1 = await member(h, 'alice');
  const a2 = await member(h, 'alice');
  const bob = await member(h, 'bob');
  for (const text of ['one', 'two', 'three']) await say(bob, text);
  t.same((await a1.request('chat:unread', { channels: [C1] })).data, { counts: { [C1]: 3 }, forbidden: [] });
  t.same((await bob.request('chat:unread', { channels: [C1] })).data, { counts: { [C1]: 0 }, forbidden: [] }, 'one\'s own messages are never unread');

  t.same((await a1.request('chat:read', { channel: C1, offset: 2 })).data, { channel: C1, offset: 2, unread: 1 });
  const sync = await a2.next((f) => f.type === 'chat:read');
  t.same({ topic: sync.topic, data: sync.data }, { topic: 'user:alice', data: { channel: C1, offset: 2, unread: 1 } }, 'the other device is told');
  t.notOk('offset' in sync, 'not numbered (ephemeral)');
  const receipt = await bob.next((f) => f.type === 'chat:receipt');
  t.same({ topic: receipt.topic, data: receipt.data }, { topic: C1, data: { userId: 'alice', offset: 2 } }, 'the members are told');
  t.notOk('offset' in receipt, 'not numbered, not kept');
  t.ok(await a1.none((f) => f.type === 'chat:read' || f.type === 'chat:receipt', 150), 'the reading connection has its ack');

  t.same((await a1.request('chat:read', { channel: C1, offset: 1 })).data, { channel: C1, offset: 2, unread: 1 }, 'a lower position changes nothing');
  t.ok(await bob.none((f) => f.type === 'chat:receipt', 150), 'and announces nothing');
  t.same((await a2.request('chat:unread', { channels: [C1] })).data.counts, { [C1]: 1 }, 'the other device counts from the same position');
  t.match(await a1.request('chat:read', { channel: C1, offset: 4 }), { type: 'error', error: { code: 'INVALID_PAYLOAD', message: /past conversation:c1's last offset \(3\)/ } });
  t.match(await a1.request('chat:read', { channel: C1, offset: -1 }), { type: 'error', error: { code: 'INVALID_PAYLOAD' } });
  const mallory = await h.connect('mallory');
  t.match(await mallory.request('chat:read', { channel: C1, offset: 1 }), { type: 'error', error: { code: 'FORBIDDEN', message: /subscribe to it first/ } });
  // A backend's resume: the position survives the connections.
  a1.close();
  a2.close();
  const back = await member(h, 'alice');
  t.same((await back.request('chat:unread', { channels: [C1] })).data.counts, { [C1]: 1 });
  await say(back, 'mine');
  t.same((await back.request('chat:read', { channel: C1, offset: 4 })).data, { channel: C1, offset: 4, unread: 0 });
});

t.test('receipts off: the position is synced to the user\'s devices, never told to the members', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'sw-chat-')), 'channels.json');
  writeFileSync(file, JSON.stringify({ namespaces: { conversation: { chat: { receipts: false } } } }));
  const h = await startServer(t, {}, { CHANNELS_FILE: file });
  const a1 = await member(h, 'alice');
  const a2 = await member(h, 'alice');
  const bob = await member(h, 'bob');
  await say(bob, 'hello');
  t.same((await a1.request('chat:read', { channel: C1, offset: 1 })).data, { channel: C1, offset: 1, unread: 0 });
  t.match((await a2.next((f) => f.type === 'chat:read')).data, { channel: C1, offset: 1 });
  t.ok(await bob.none((f) => f.type === 'chat:receipt', 300), 'no receipt');
});

t.test('chat:unread: the channels one may read, the others forbidden, the request bounded', async (t) => {
  const backend = await chatBackend(t);
  backend.members.set('conversation:c2', new Set(['alice', 'bob']));
  const h = await startServer(t, { maxUnreadChannels: 3 }, { CHANNELS_FILE: backend.channelsFile });
  const bob = await h.connect('bob');
  await bob.type('connected');
  for (const c of ['conversation:c1', 'conversation:c2']) t.equal((await bob.request('subscribe', { topic: c })).type, 'ack');
  await say(bob, 'in c1');
  await say(bob, 'in c2');
  await say(bob, 'again c2', 'conversation:c2');
  const alice = await h.connect('alice');
  await alice.type('connected');
  // Not subscribed on this connection: the backend (the subscribe proxy) says whether alice may read them.
  const unread = await alice.request('chat:unread', { channels: ['conversation:c1', 'conversation:c2', 'conversation:c3'] });
  t.same(unread.data, { counts: { 'conversation:c1': 2, 'conversation:c2': 1 }, forbidden: ['conversation:c3'] });
  t.match(await alice.request('chat:unread', { channels: ['conversation:c1', 'conversation:c2', 'conversation:c3', 'conversation:c4'] }), { type: 'error', error: { code: 'TOO_MANY_IDS', message: /limit is 3/ } });
  t.match(await alice.request('chat:unread', { channels: ['story:1'] }), { type: 'error', error: { code: 'INVALID_TOPIC' } });
  t.match(await alice.request('chat:unread', { channels: 'conversation:c1' }), { type: 'error', error: { code: 'INVALID_PAYLOAD' } });
  t.same((await alice.request('chat:unread', { channels: [] })).data, { counts: {}, forbidden: [] });
});

t.test('chat:unread with the built-in token rule: a channel not joined on this connection is forbidden', async (t) => {
  const h = await startServer(t);
  const bob = await member(h, 'bob');
  await say(bob, 'x');
  const alice = await h.connect('alice');
  await alice.type('connected');
  t.same((await alice.request('chat:unread', { channels: [C1] })).data, { counts: {}, forbidden: [C1] }, 'nothing told of it');
});

t.test('chat:unread reads history to count, and pays for it from the history-read budget', async (t) => {
  const h = await startServer(t, { historyReadBytesPerS: 1024, historyReadBurstBytes: 1024, chatRatePerS: 1000 });
  const alice = await member(h, 'alice');
  const bob = await member(h, 'bob');
  // 20 messages of 200 characters: counting them reads ~5 KiB, past the 1 KiB budget at once.
  for (let i = 0; i < 20; i++) await say(bob, 'x'.repeat(200));
  t.same((await alice.request('chat:unread', { channels: [C1] })).data, { counts: { [C1]: 20 }, forbidden: [] }, 'answered while the budget is above zero');
  const again = await alice.request('chat:unread', { channels: [C1] });
  t.match(again, { type: 'error', error: { code: 'RATE_LIMITED', message: /bytes of history per second per user/ } }, 'then refused until it refills');
  t.same((await bob.request('chat:unread', { channels: [C1] })).data, { counts: { [C1]: 0 }, forbidden: [] }, 'another user has a budget of their own (and nothing to read)');
});
