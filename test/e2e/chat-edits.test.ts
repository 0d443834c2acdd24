// Editing and deleting chat messages (issue #16): only the sender, only while the history holds the message;
// an event every member applies, and the stored message replaced in place, so that a member resuming from before
// it gets the latest state (a deleted one as deleted); through the publish proxy when the namespace has one.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { chatBackend } from '../chat-backend.js';
import { type Client, type Frame, type Harness, sign, startServer } from '../helpers.js';

const C1 = 'conversation:c1';
type Numbered = Frame & { epoch: string; offset: number };

async function member(h: Harness, user: string, since?: { epoch: string; offset: number }, token = true): Promise<Client> {
  const c = await h.connect(user);
  await c.type('connected');
  const ack = await c.request('subscribe', { topic: C1, ...(token ? { token: await sign(user, { channel: C1 }) } : {}), ...(since ? { since } : {}) });
  if (ack.type !== 'ack') throw new Error(`${user} could not join: ${JSON.stringify(ack)}`);
  return c;
}

let n = 0;
const send = async (c: Client, text: string, data?: object) => (await c.request('chat:send', { channel: C1, clientMsgId: `c-${++n}`, text, ...(data ? { data } : {}) })).data;

t.test('an edit: acked with the event\'s offset, applied by every member, and what a later resume replays', async (t) => {
  const h = await startServer(t);
  const alice = await member(h, 'alice');
  const bob = await member(h, 'bob');
  const m = await send(alice, 'helo', { mentions: ['bob'] });
  const ack = await alice.request('chat:edit', { channel: C1, messageId: m.id, text: 'hello' });
  t.same(ack.data, { channel: C1, id: m.id, epoch: m.epoch, offset: 2 });
  const ev = (await bob.next((f) => f.type === 'chat:edited')) as Numbered;
  t.equal(ev.offset, 2, 'numbered and kept');
  t.match(ev.data, { id: m.id, senderId: 'alice', text: 'hello', data: { mentions: ['bob'] } });
  t.type(ev.data.editedAt, 'number');

  const late = await member(h, 'carol', { epoch: m.epoch, offset: 0 });
  const replayed = (await late.next((f) => f.type === 'chat:message')) as Numbered;
  t.same({ offset: replayed.offset, data: replayed.data }, { offset: 1, data: { id: m.id, clientMsgId: m.clientMsgId, senderId: 'alice', text: 'hello', data: { mentions: ['bob'] }, sentAt: m.sentAt, editedAt: ev.data.editedAt } }, 'the stored message is its latest state, at its own offset');
  t.equal(((await late.next((f) => f.type === 'chat:edited')) as Numbered).offset, 2, 'then the edit event');

  const retry = await alice.request('chat:send', { channel: C1, clientMsgId: m.clientMsgId, text: 'helo', data: { mentions: ['bob'] } });
  t.match(retry.data, { id: m.id, offset: 1, text: 'hello', editedAt: ev.data.editedAt, duplicate: true }, 'a retry of the send acks the message as it is now');
});

t.test('a deletion: the event, the stored message kept as deleted (no text), and nothing more to do with it', async (t) => {
  const h = await startServer(t);
  const alice = await member(h, 'alice');
  const bob = await member(h, 'bob');
  const m = await send(alice, 'oops', { secret: 1 });
  await send(alice, 'kept');
  t.same((await bob.request('chat:unread', { channels: [C1] })).data.counts, { [C1]: 2 });
  const ack = await alice.request('chat:delete', { channel: C1, messageId: m.id });
  t.same(ack.data, { channel: C1, id: m.id, epoch: m.epoch, offset: 3 });
  const ev = await bob.next((f) => f.type === 'chat:deleted');
  t.same(Object.keys(ev.data).sort(), ['deletedAt', 'id', 'senderId']);
  t.same((await bob.request('chat:unread', { channels: [C1] })).data.counts, { [C1]: 1 }, 'a deleted message is not unread');
  const late = await member(h, 'carol', { epoch: m.epoch, offset: 0 });
  const replayed = await late.next((f) => f.type === 'chat:message');
  t.same(replayed.data, { id: m.id, clientMsgId: m.clientMsgId, senderId: 'alice', sentAt: m.sentAt, deleted: true, deletedAt: ev.data.deletedAt }, 'replayed as deleted: no text, no data');
  t.match(await alice.request('chat:edit', { channel: C1, messageId: m.id, text: 'back' }), { type: 'error', error: { code: 'MESSAGE_NOT_FOUND' } });
  t.match(await alice.request('chat:delete', { channel: C1, messageId: m.id }), { type: 'error', error: { code: 'MESSAGE_NOT_FOUND' } });
});

t.test('refusals: another\'s message, an unknown or trimmed one, a stranger, bad input, the size limit', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'sw-chat-')), 'channels.json');
  writeFileSync(file, JSON.stringify({ namespaces: { conversation: { history: { size: 2, ttlS: 3600 } } } }));
  const h = await startServer(t, { maxChatBytes: 64 }, { CHANNELS_FILE: file });
  const alice = await member(h, 'alice');
  const bob = await member(h, 'bob');
  const mine = await send(alice, 'first');
  const theirs = await send(bob, 'second');
  t.match(await alice.request('chat:edit', { channel: C1, messageId: theirs.id, text: 'x' }), { type: 'error', error: { code: 'FORBIDDEN', message: /only its sender may edit/ } });
  t.match(await alice.request('chat:delete', { channel: C1, messageId: theirs.id }), { type: 'error', error: { code: 'FORBIDDEN', message: /only its sender may delete/ } });
  t.match(await alice.request('chat:edit', { channel: C1, messageId: 'no-such-id', text: 'x' }), { type: 'error', error: { code: 'MESSAGE_NOT_FOUND' } });
  t.match(await alice.request('chat:edit', { channel: C1, messageId: mine.id, text: 'y'.repeat(65) }), { type: 'error', error: { code: 'PAYLOAD_TOO_LARGE' } });
  const mallory = await h.connect('mallory');
  t.match(await mallory.request('chat:delete', { channel: C1, messageId: mine.id }), { type: 'error', error: { code: 'FORBIDDEN', message: /subscribe to it first/ } });
  t.match(await alice.request('chat:edit', { channel: C1, messageId: 'a"b', text: 'x' }), { type: 'error', error: { code: 'INVALID_PAYLOAD', message: /messageId/ } });
  t.match(await alice.request('chat:edit', { channel: C1, messageId: mine.id }), { type: 'error', error: { code: 'INVALID_PAYLOAD', message: /data.text/ } });
  await send(bob, 'third');
  t.match(await alice.request('chat:edit', { channel: C1, messageId: mine.id, text: 'too late' }), { type: 'error', error: { code: 'MESSAGE_NOT_FOUND', message: /older than it keeps/ } }, 'a history of 2 no longer holds it');
});

t.test('through the publish proxy: the backend sees op and messageId, may rewrite or refuse', async (t) => {
  const backend = await chatBackend(t);
  const h = await startServer(t, {}, { CHANNELS_FILE: backend.channelsFile });
  const alice = await member(h, 'alice', undefined, false);
  const bob = await member(h, 'bob', undefined, false);
  const mallory = await h.connect('mallory');
  t.match(await mallory.request('subscribe', { topic: C1 }), { type: 'error', error: { code: 'TOPIC_FORBIDDEN', message: /not a member/ } }, 'the subscribe proxy refuses a non-member');
  t.match(await mallory.request('chat:send', { channel: C1, clientMsgId: 'x', text: 'hi' }), { type: 'error', error: { code: 'FORBIDDEN' } });
  const m = await send(alice, 'quiet');
  t.equal(m.id, 'msg-1', 'the backend\'s id');
  t.match(await alice.request('chat:edit', { channel: C1, messageId: m.id, text: 'shout it' }), { type: 'ack', data: { id: 'msg-1' } });
  t.match((await bob.next((f) => f.type === 'chat:edited')).data, { id: 'msg-1', text: 'SHOUT IT' }, 'as the backend answered');
  t.match(await alice.request('chat:edit', { channel: C1, messageId: m.id, text: 'spam!' }), { type: 'error', error: { code: 'FORBIDDEN', message: /looks like spam/ } });
  t.equal((await alice.request('chat:delete', { channel: C1, messageId: m.id })).type, 'ack');
  const ops = backend.asked.filter((q) => q.kind === 'publish').map((q) => q.chat);
  t.same(ops, [
    { op: 'send', clientMsgId: m.clientMsgId, idempotencyKey: `alice:${m.clientMsgId}` },
    { op: 'edit', messageId: 'msg-1' },
    { op: 'edit', messageId: 'msg-1' },
    { op: 'delete', messageId: 'msg-1' },
  ]);
  await backend.close();
  const down = await alice.request('chat:send', { channel: C1, clientMsgId: 'down-1', text: 'x' });
  t.match(down, { type: 'error', error: { code: 'UNAVAILABLE' } }, 'no decision: retryable, never an allow');
});
