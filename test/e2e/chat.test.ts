// Chat over the wire (issue #16) with the built-in `conversation` namespace: members join with the app's
// subscription token; a message is acked with its id and offset and reaches every member; a retry with the same
// clientMsgId publishes nothing and acks the stored message; strangers can neither read, send, type nor see
// presence; every limit answers its documented error.
import t from 'tap';
import { type Client, sign, startServer, type Frame, type Harness } from '../helpers.js';

const C1 = 'conversation:c1';
type Numbered = Frame & { epoch: string; offset: number };

/** A connection of `user` subscribed to the channel with the app's subscription token. */
async function member(h: Harness, user: string, channel = C1): Promise<Client> {
  const c = await h.connect(user);
  await c.type('connected');
  const ack = await c.request('subscribe', { topic: channel, token: await sign(user, { channel }) });
  if (ack.type !== 'ack') throw new Error(`${user} could not join ${channel}: ${JSON.stringify(ack)}`);
  return c;
}

const send = (c: Client, clientMsgId: string, text: string, data?: object, channel = C1) => c.request('chat:send', { channel, clientMsgId, text, ...(data ? { data } : {}) });

t.test('a member sends: the ack is the stored message with its offset, and every member (the sender too) gets it once', async (t) => {
  const h = await startServer(t);
  const alice = await member(h, 'alice');
  const bob = await member(h, 'bob');
  const ack = await send(alice, 'm-1', 'bonjour', { mentions: ['bob'] });
  t.equal(ack.type, 'ack');
  const d = ack.data;
  t.match(d, { channel: C1, clientMsgId: 'm-1', senderId: 'alice', text: 'bonjour', data: { mentions: ['bob'] }, offset: 1, duplicate: false });
  // The fields protocol.md section 14 lists, and nothing else (the stored frame, say, is not the sender's ack).
  t.same(Object.keys(d).sort(), ['channel', 'clientMsgId', 'data', 'duplicate', 'epoch', 'id', 'offset', 'senderId', 'sentAt', 'text'], 'the documented fields only');
  t.match(d.id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'an id derived from the clientMsgId');
  t.type(d.epoch, 'string');
  t.type(d.sentAt, 'number');
  for (const c of [bob, alice]) {
    const got = (await c.next((f) => f.type === 'chat:message')) as Numbered;
    t.same({ topic: got.topic, epoch: got.epoch, offset: got.offset }, { topic: C1, epoch: d.epoch, offset: 1 });
    t.same(got.data, { id: d.id, clientMsgId: 'm-1', senderId: 'alice', text: 'bonjour', data: { mentions: ['bob'] }, sentAt: d.sentAt });
  }
  const second = await send(bob, 'm-1', 'salut');
  t.equal(second.data.offset, 2, 'the same clientMsgId from another user is another message');
  t.not(second.data.id, d.id);
});

t.test('a retry with the same clientMsgId publishes nothing and acks the message first stored, also after a reconnect', async (t) => {
  const h = await startServer(t);
  const alice = await member(h, 'alice');
  const bob = await member(h, 'bob');
  const first = (await send(alice, 'm-1', 'hello')).data;
  await bob.next((f) => f.type === 'chat:message');
  const retry = (await send(alice, 'm-1', 'hello')).data;
  t.same(retry, { ...first, duplicate: true }, 'same id, epoch, offset and sentAt');
  // Two retries at once (the first still in flight when the second arrives): one message.
  const [a, b] = await Promise.all([send(alice, 'm-2', 'twice'), send(alice, 'm-2', 'twice')]);
  t.equal(a.data.offset, b.data.offset);
  t.same([a.data.duplicate, b.data.duplicate].sort(), [false, true]);
  alice.close();
  const again = await member(h, 'alice');
  const later = (await send(again, 'm-1', 'hello')).data;
  t.same(later, { ...first, duplicate: true }, 'after a reconnect: the stored message');
  t.match(await send(again, 'm-1', 'another text'), { type: 'error', error: { code: 'IDEMPOTENCY_CONFLICT', message: /clientMsgId "m-1" was already used/ } });
  const third = (await send(again, 'm-3', 'new')).data;
  t.equal(third.offset, 3, 'nothing was numbered for the retries');
  const seen: number[] = [];
  for (let f = await bob.next((x) => x.type === 'chat:message'); ; f = await bob.next((x) => x.type === 'chat:message')) {
    seen.push((f as Numbered).offset);
    if ((f as Numbered).offset === 3) break;
  }
  t.same(seen, [2, 3], 'bob got each message once');
  t.ok(await bob.none((f) => f.type === 'chat:message', 200), 'and nothing more');
});

t.test('non-members can neither read, send, type nor see presence; members type and see each other', async (t) => {
  const h = await startServer(t);
  const alice = await member(h, 'alice');
  const bob = await member(h, 'bob');
  const mallory = await h.connect('mallory');
  await mallory.type('connected');
  t.match(await mallory.request('subscribe', { topic: C1 }), { type: 'error', error: { code: 'TOPIC_FORBIDDEN', message: /subscription token is needed/ } });
  t.match(await mallory.request('subscribe', { topic: C1, token: await sign('alice', { channel: C1 }) }), { type: 'error', error: { code: 'SUBSCRIPTION_TOKEN_INVALID' } }, 'another user\'s token');
  t.match(await send(mallory, 'x-1', 'hi'), { type: 'error', error: { code: 'FORBIDDEN', message: /subscribe to it first/ } });
  t.match(await mallory.request('typing:start', { target: C1 }), { type: 'error', error: { code: 'FORBIDDEN' } });
  t.match(await mallory.request('presence:channel', { channel: C1 }), { type: 'error', error: { code: 'TOPIC_FORBIDDEN' } });

  const members = await alice.request('presence:channel', { channel: C1 });
  t.same({ ...members.data, members: [...members.data.members].sort() }, { channel: C1, count: 2, members: ['alice', 'bob'] }, 'presence: the members online now');
  t.match(await alice.request('typing:start', { target: C1 }), { type: 'ack', data: { relayed: true } });
  t.match((await bob.type('user:typing')).data, { userId: 'alice', target: C1 });
  t.ok(await mallory.none((f) => f.type === 'user:typing' || f.type === 'chat:message', 200), 'a stranger hears nothing');
  t.ok(await alice.none((f) => f.type === 'user:typing', 100), 'the typist is left out');
});

t.test('typing stops by itself after TYPING_TIMEOUT_MS in a conversation', async (t) => {
  const h = await startServer(t, { typingTimeoutMs: 300 });
  const alice = await member(h, 'alice');
  const bob = await member(h, 'bob');
  t.match(await alice.request('typing:start', { target: C1 }), { type: 'ack', data: { relayed: true } });
  const started = Date.now();
  await bob.type('user:typing');
  t.match((await bob.type('user:stopped_typing', 3000)).data, { userId: 'alice', target: C1 });
  t.ok(Date.now() - started >= 250, 'not before the timeout');
});

t.test('limits: message size, rate per user per conversation, conversations per connection; bad input', async (t) => {
  const h = await startServer(t, { maxChatBytes: 100, chatRatePerS: 1, maxConversations: 2 });
  const alice = await member(h, 'alice');
  t.match(await send(alice, 'big', 'é'.repeat(51)), { type: 'error', error: { code: 'PAYLOAD_TOO_LARGE', message: /data.text is 102 bytes, the limit is 100/ } }, 'bytes, not characters');
  t.match(await send(alice, 'big2', 'ok', { blob: 'x'.repeat(100) }), { type: 'error', error: { code: 'PAYLOAD_TOO_LARGE', message: /data.data is \d+ bytes/ } });
  // Burst 2 (twice CHAT_RATE_PER_S), then RATE_LIMITED: an error reply, never a silent drop.
  const replies = [await send(alice, 'r-1', 'a'), await send(alice, 'r-2', 'b'), await send(alice, 'r-3', 'c')];
  t.same(replies.map((r) => r.type), ['ack', 'ack', 'error']);
  t.match(replies[2], { error: { code: 'RATE_LIMITED', message: /at most 1 chat messages per second per user in one conversation/ } });
  t.equal((await send(alice, 'r-4', 'x', undefined, 'conversation:c2')).error?.code, 'FORBIDDEN', 'another conversation has its own budget (and needs membership)');
  const other = await alice.request('subscribe', { topic: 'conversation:c2', token: await sign('alice', { channel: 'conversation:c2' }) });
  t.equal(other.type, 'ack');
  t.equal((await send(alice, 'r-5', 'x', undefined, 'conversation:c2')).type, 'ack', 'its own budget');
  t.match(await alice.request('subscribe', { topic: 'conversation:c3', token: await sign('alice', { channel: 'conversation:c3' }) }), { type: 'error', error: { code: 'SUBSCRIPTION_LIMIT', message: /at most 2 conversations per connection/ } });
  t.equal((await alice.request('subscribe', { topic: 'story:1' })).type, 'ack', 'other channels do not count');
  t.match(await alice.request('chat:send', { channel: C1, clientMsgId: 'has space', text: 'x' }), { type: 'error', error: { code: 'INVALID_PAYLOAD', message: /clientMsgId/ } });
  t.match(await alice.request('chat:send', { channel: C1, clientMsgId: 'e-1', text: '' }), { type: 'error', error: { code: 'INVALID_PAYLOAD', message: /data.text/ } });
  t.match(await alice.request('chat:send', { channel: 'story:1', clientMsgId: 'e-2', text: 'x' }), { type: 'error', error: { code: 'INVALID_TOPIC', message: /story channels take no chat messages/ } });
});

t.test('a member offline resumes by epoch and offset; a history lost is recovered: false', async (t) => {
  const h = await startServer(t);
  const alice = await member(h, 'alice');
  const bob = await member(h, 'bob');
  const first = (await send(alice, 'o-1', 'one')).data;
  const seen = (await bob.next((f) => f.type === 'chat:message')) as Numbered;
  bob.close();
  await send(alice, 'o-2', 'two');
  await send(alice, 'o-3', 'three');
  const back = await h.connect('bob');
  await back.type('connected');
  const resumed = await back.request('subscribe', { topic: C1, token: await sign('bob', { channel: C1 }), since: { epoch: seen.epoch, offset: seen.offset } });
  t.match(resumed.data, { topic: C1, epoch: first.epoch, offset: 3, recovered: true, replayed: 2 });
  const missed = [(await back.next((f) => f.type === 'chat:message')) as Numbered, (await back.next((f) => f.type === 'chat:message')) as Numbered];
  t.same(missed.map((f) => [f.offset, f.data.text]), [[2, 'two'], [3, 'three']], 'what it missed, in order');

  // Another process: the memory history is gone; the old position cannot be recovered.
  const h2 = await startServer(t);
  const late = await h2.connect('bob');
  await late.type('connected');
  const lost = await late.request('subscribe', { topic: C1, token: await sign('bob', { channel: C1 }), since: { epoch: first.epoch, offset: 3 } });
  t.match(lost.data, { topic: C1, offset: 0, recovered: false, replayed: 0 });
  t.not(lost.data.epoch, first.epoch, 'a new epoch: the client refetches');
});

t.test('a chat channel takes no generic publish: its messages go through chat:send, once per clientMsgId', async (t) => {
  const h = await startServer(t);
  const alice = await member(h, 'alice');
  const bob = await member(h, 'bob');
  const r = await alice.request('publish', { channel: C1, data: { text: 'around the chat limits' } });
  t.match(r, { type: 'error', error: { code: 'FORBIDDEN', message: /chat:send/ } });
  t.ok(await bob.none((f) => f.topic === C1), 'nothing reached the other member');
  t.equal((await send(alice, 'm-1', 'hello')).data.offset, 1, 'nothing was numbered either');
});
