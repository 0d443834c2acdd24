// Chat on 2 nodes and Redis (issue #16): a retry of one clientMsgId on another node, or on both at once, is
// one stored message (the ack is the original's: same id, epoch, offset, sentAt); the backend, the app's message
// store, sees the same idempotencyKey each time and stores the message once; a member who was offline resumes
// on the other node by epoch and offset.
import t from 'tap';
import { chatBackend } from '../chat-backend.js';
import type { Client, Frame } from '../helpers.js';
import { skipReason, startNodes, startRedis, type Node } from './redis.js';

const C1 = 'conversation:c1';
type Numbered = Frame & { epoch: string; offset: number };

async function member(node: Node, user: string): Promise<Client> {
  const c = await node.connect(user);
  await c.type('connected');
  const ack = await c.request('subscribe', { topic: C1 });
  if (ack.type !== 'ack') throw new Error(`${user} could not join: ${JSON.stringify(ack)}`);
  return c;
}

const send = (c: Client, clientMsgId: string, text: string) => c.request('chat:send', { channel: C1, clientMsgId, text });

/** The chat:message frames a client is handed from now on, in arrival order. */
function messages(c: Client): Numbered[] {
  const got: Numbered[] = [];
  c.ws.on('message', (raw) => {
    const f = JSON.parse(raw.toString()) as Numbered;
    if (f.type === 'chat:message') got.push(f);
  });
  return got;
}

t.test('chat across two nodes', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const backend = await chatBackend(t);
  const [a, b] = await startNodes(t, redis, 2, { channelsFile: backend.channelsFile });
  const aliceA = await member(a!, 'alice');
  const bobB = await member(b!, 'bob');
  const bobGot = messages(bobB);

  t.test('a retry on the other node: the original message, nothing new published or stored', async (t) => {
    const first = await send(aliceA, 'm-1', '  hello  ');
    t.match(first.data, { channel: C1, id: 'msg-1', clientMsgId: 'm-1', senderId: 'alice', text: 'hello', offset: 1, duplicate: false }, 'the backend\'s id and text');
    const aliceB = await member(b!, 'alice');
    const retry = await send(aliceB, 'm-1', '  hello  ');
    t.same(retry.data, { ...first.data, duplicate: true }, 'same id, epoch, offset and sentAt');
    const third = await send(aliceB, 'm-2', 'next');
    t.equal(third.data.offset, 2, 'the retry took no offset');
    await bobB.next((f) => f.type === 'chat:message' && f.data.clientMsgId === 'm-2');
    t.same(bobGot.map((f) => [f.offset, f.data.clientMsgId]), [[1, 'm-1'], [2, 'm-2']], 'bob, on B, got each message once');
    const sends = backend.asked.filter((q) => q.kind === 'publish' && q.chat?.clientMsgId === 'm-1');
    t.same(sends.map((q) => q.chat), [{ op: 'send', clientMsgId: 'm-1', idempotencyKey: 'alice:m-1' }, { op: 'send', clientMsgId: 'm-1', idempotencyKey: 'alice:m-1' }], 'the backend was asked each time with the same key');
    t.equal([...backend.rows.values()].filter((r) => r.key === 'alice:m-1').length, 1, 'and stored the message once');
    aliceB.close();
  });

  t.test('the same clientMsgId on both nodes at once: one message', async (t) => {
    const aliceB = await member(b!, 'alice');
    const before = bobGot.length;
    const [x, y] = await Promise.all([send(aliceA, 'm-3', 'race'), send(aliceB, 'm-3', 'race')]);
    t.equal(x.type, 'ack');
    t.equal(y.type, 'ack');
    t.same([x.data.offset, x.data.id, x.data.sentAt], [y.data.offset, y.data.id, y.data.sentAt], 'both acks name one stored message');
    t.same([x.data.duplicate, y.data.duplicate].sort(), [false, true]);
    await bobB.next((f) => f.type === 'chat:message' && f.data.clientMsgId === 'm-3');
    t.ok(await bobB.none((f) => f.type === 'chat:message' && f.data.clientMsgId === 'm-3', 300), 'no second copy');
    t.equal(bobGot.length - before, 1, 'bob got it once');
    aliceB.close();
  });

  t.test('a read on one node: synced to the user\'s device on the other, announced to the members there', async (t) => {
    const aliceB = await member(b!, 'alice');
    const last = bobGot[bobGot.length - 1]!;
    const read = await aliceA.request('chat:read', { channel: C1, offset: last.offset });
    t.same(read.data, { channel: C1, offset: last.offset, unread: 0 });
    t.match((await aliceB.next((f) => f.type === 'chat:read')).data, { channel: C1, offset: last.offset, unread: 0 });
    t.same((await bobB.next((f) => f.type === 'chat:receipt')).data, { userId: 'alice', offset: last.offset });
    await send(bobB, 'b-1', 'from bob');
    t.same((await aliceB.request('chat:unread', { channels: [C1] })).data, { counts: { [C1]: 1 }, forbidden: [] }, 'the position is the cluster\'s');
    aliceB.close();
  });

  t.test('an edit and a deletion on one node: replayed as the latest state on the other (the Redis overlay)', async (t) => {
    const m = (await send(aliceA, 'e-1', 'typo')).data;
    const d = (await send(aliceA, 'e-2', 'regret')).data;
    t.equal((await aliceA.request('chat:edit', { channel: C1, messageId: m.id, text: 'fixed' })).type, 'ack');
    t.equal((await aliceA.request('chat:delete', { channel: C1, messageId: d.id })).type, 'ack');
    t.match((await bobB.next((f) => f.type === 'chat:edited')).data, { id: m.id, text: 'fixed' });
    t.match((await bobB.next((f) => f.type === 'chat:deleted')).data, { id: d.id });
    const carol = await b!.connect('carol');
    await carol.type('connected');
    backend.members.get(C1)!.add('carol');
    const resumed = await carol.request('subscribe', { topic: C1, since: { epoch: m.epoch, offset: m.offset - 1 } });
    t.match(resumed.data, { recovered: true, replayed: 4 });
    const replay = [0, 1, 2, 3].map(() => carol.next((f) => f.topic === C1));
    const frames = (await Promise.all(replay)) as Numbered[];
    t.same(frames.map((f) => f.type), ['chat:message', 'chat:message', 'chat:edited', 'chat:deleted']);
    t.match(frames[0]!.data, { id: m.id, text: 'fixed' });
    t.type(frames[0]!.data.editedAt, 'number');
    t.match(frames[1]!.data, { id: d.id, deleted: true });
    t.notOk('text' in frames[1]!.data, 'no text kept');
    t.match(await aliceA.request('chat:edit', { channel: C1, messageId: d.id, text: 'x' }), { type: 'error', error: { code: 'MESSAGE_NOT_FOUND' } });
    carol.close();
  });

  t.test('a member offline resumes on the other node by epoch and offset', async (t) => {
    // Where bob is: his own message's position, everything before it delivered to him live.
    const mark = (await send(bobB, 'b-2', 'bye')).data;
    await bobB.next((f) => f.type === 'chat:message' && f.data.clientMsgId === 'b-2');
    const last = { epoch: mark.epoch as string, offset: mark.offset as number };
    bobB.close();
    await send(aliceA, 'm-4', 'while you were away');
    await send(aliceA, 'm-5', 'still away');
    const bobA = await a!.connect('bob');
    await bobA.type('connected');
    const resumed = await bobA.request('subscribe', { topic: C1, since: { epoch: last.epoch, offset: last.offset } });
    t.match(resumed.data, { topic: C1, epoch: last.epoch, offset: last.offset + 2, recovered: true, replayed: 2 });
    const missed = [(await bobA.next((f) => f.type === 'chat:message')) as Numbered, (await bobA.next((f) => f.type === 'chat:message')) as Numbered];
    t.same(missed.map((f) => f.data.clientMsgId), ['m-4', 'm-5'], 'what it missed, in order');
  });
});
