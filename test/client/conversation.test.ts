// The SDK's Conversation against a real server (the built-in `conversation` namespace, members let in by the
// app's subscription tokens): send and receive, a lost ack retried with the same clientMsgId and held once,
// what a member missed while away, read position, receipts, unread counts, typing, members.
import { SignJWT } from 'jose';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import type { StorywireClient, StorywireError, WebSocketConstructor } from '../../src/client/index.js';
import { SECRET, startServer, type Harness } from '../helpers.js';
import { client, gate, until } from './util.js';

const KEY = new TextEncoder().encode(SECRET);
const C1 = 'conversation:c1';
/** The app's decision that `user` is a member of `channel`. */
const membership = (user: string) => ({ channel }: { channel: string }) =>
  new SignJWT({ channel }).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setExpirationTime(Math.floor(Date.now() / 1000) + 3600).sign(KEY);

async function member(t: Test, h: Harness, user: string, extra: Record<string, unknown> = {}): Promise<StorywireClient> {
  return client(t, { url: h.url, token: await h.token(user), subscriptionToken: membership(user), reconnect: { minDelayMs: 10, maxDelayMs: 50 }, ...extra });
}

const texts = (c: { messages: readonly { text?: string }[] }) => c.messages.map((m) => m.text);

t.test('send and receive: the ack is the stored message; each member holds it once; a stranger cannot join', async (t) => {
  const h = await startServer(t);
  const alice = await member(t, h, 'alice');
  const bob = await member(t, h, 'bob');
  const a = alice.conversation(C1, { token: true });
  const b = bob.conversation(C1, { token: true });
  await until(() => a.isJoined && b.isJoined, 5000, 'both joined');
  const got: string[] = [];
  b.onMessage((m) => got.push(m.text ?? ''));
  const m = await a.send('bonjour', { mentions: ['bob'] });
  t.match(m, { text: 'bonjour', data: { mentions: ['bob'] }, senderId: 'alice', offset: 1 });
  await until(() => got.length === 1, 5000, 'bob got it');
  t.same(texts(b), ['bonjour']);
  t.same(texts(a), ['bonjour'], 'the ack and the event are one message');
  t.same(b.messages[0], a.messages[0], 'the same message on both sides');
  t.match(await alice.unreadCounts([C1]), { [C1]: 0 }, 'my own message is not unread');

  const mallory = client(t, { url: h.url, token: await h.token('mallory') });
  const err = (await mallory.conversation(C1).send('hi').catch((e: StorywireError) => e)) as StorywireError;
  t.equal(err.code, 'TOPIC_FORBIDDEN', 'no token: not a member, nothing sent');
});

/**
 * The `ws` class where the first connection dies on the frame that carries `type` from the server: neither it nor
 * the frames after it (the ack) reach the SDK, as when a connection drops between the server's work and its reply.
 */
function dropAfter(type: string): { WebSocket: WebSocketConstructor; sent: string[] } {
  const sent: string[] = [];
  let armed = true;
  class Dropping extends WebSocket {
    private dead = false;
    override send(data: string): void {
      sent.push(data);
      super.send(data);
    }
    override emit(event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'message') {
        if (this.dead) return false;
        if (armed && (JSON.parse(String(args[0])) as { type: string }).type === type) {
          armed = false;
          this.dead = true;
          this.terminate();
          return false;
        }
      }
      return super.emit(event, ...args);
    }
  }
  return { WebSocket: Dropping as unknown as WebSocketConstructor, sent };
}

t.test('the connection drops after the server stored the message, before its ack: the retry is acked as the same message, held once', async (t) => {
  const h = await startServer(t);
  const net = dropAfter('chat:message');
  const alice = await member(t, h, 'alice', { WebSocket: net.WebSocket });
  const bob = await member(t, h, 'bob');
  const a = alice.conversation(C1, { token: true });
  const b = bob.conversation(C1, { token: true });
  await until(() => a.isJoined && b.isJoined, 5000, 'both joined');
  const m = await a.send('une seule fois');
  const sends = net.sent.map((s) => JSON.parse(s) as { type: string; data: { clientMsgId?: string } }).filter((f) => f.type === 'chat:send');
  t.equal(sends.length, 2, 'sent again after the drop');
  t.equal(sends[0]!.data.clientMsgId, sends[1]!.data.clientMsgId, 'with the same clientMsgId');
  t.equal(m.offset, 1, 'acked at the place the first attempt took');
  await until(() => b.messages.length === 1, 5000, 'bob has it');
  // Another message after it: had the retry been published again, it would sit between them.
  await a.send('et la suite');
  await until(() => b.messages.length === 2, 5000, 'bob has the next');
  t.same(texts(b), ['une seule fois', 'et la suite']);
  t.same(b.messages.map((x) => x.offset), [1, 2], 'nothing published twice');
  t.same(texts(a), ['une seule fois', 'et la suite']);
});

t.test('away and back: what was missed is replayed in order, counted unread; markRead syncs the other device and sends a receipt', async (t) => {
  const h = await startServer(t);
  const away = gate();
  let cut = () => {};
  class Tapped extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      cut = () => this.terminate();
    }
  }
  const bobToken = await h.token('bob');
  const bob = await member(t, h, 'bob', {
    WebSocket: Tapped,
    token: async () => {
      await away.wait();
      return bobToken;
    },
  });
  const bob2 = await member(t, h, 'bob');
  const alice = await member(t, h, 'alice');
  const a = alice.conversation(C1, { token: true });
  const b = bob.conversation(C1, { token: true });
  const b2 = bob2.conversation(C1, { token: true });
  await until(() => a.isJoined && b.isJoined && b2.isJoined, 5000, 'all joined');
  await a.send('un');
  await until(() => b.messages.length === 1 && b2.unreadCount === 1, 5000, 'live');
  t.equal(b.unreadCount, 1);

  away.close();
  cut();
  await until(() => !b.isJoined, 5000, 'bob away');
  for (const text of ['deux', 'trois', 'quatre']) await a.send(text);
  away.open();
  await until(() => b.messages.length === 4 && b.isJoined, 5000, 'the missed part replayed');
  t.same(texts(b), ['un', 'deux', 'trois', 'quatre']);
  await until(() => b.unreadCount === 4, 5000, 'four unread');

  const receipts: number[] = [];
  a.onReceipt((r) => r.userId === 'bob' && receipts.push(r.offset));
  t.equal(await b.markRead(), 0);
  await until(() => b2.unreadCount === 0, 5000, "bob's other device follows");
  await until(() => receipts.length === 1, 5000, 'alice gets the receipt');
  t.same(receipts, [4]);
  t.same(a.readBy(a.messages[3]!), ['bob'], 'read up to the last message');
  t.same(b2.receipts, {}, "bob's own position is no receipt");
});

t.test('a device joining late holds the last messages of the history; typing and members', async (t) => {
  const h = await startServer(t);
  const alice = await member(t, h, 'alice');
  const a = alice.conversation(C1, { token: true });
  await until(() => a.isJoined, 5000, 'alice joined');
  for (let i = 1; i <= 5; i++) await a.send(`m${i}`);
  const bob = await member(t, h, 'bob');
  const b = bob.conversation(C1, { token: true, history: 3 });
  await until(() => b.messages.length === 3, 5000, 'backfilled');
  t.same(texts(b), ['m3', 'm4', 'm5'], 'the last three, in order');
  await until(() => b.unreadCount === 5, 5000, 'all five unread');
  t.same((await b.members()).sort(), ['alice', 'bob']);

  const typing: string[] = [];
  b.onTyping((x) => typing.push(`${x.userId} ${x.typing}`));
  t.equal(await a.typing(), true);
  await until(() => typing.length === 1, 5000, 'bob sees alice typing');
  await a.send('m6');
  await until(() => typing.length === 2, 5000, 'sending stops it');
  t.same(typing, ['alice true', 'alice false']);
});

t.test('edit and delete: every member holds the latest state; a member away meanwhile resumes to it; only the sender may', async (t) => {
  const h = await startServer(t);
  const away = gate();
  let cut = () => {};
  class Tapped extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      cut = () => this.terminate();
    }
  }
  const bobToken = await h.token('bob');
  const bob = await member(t, h, 'bob', {
    WebSocket: Tapped,
    token: async () => {
      await away.wait();
      return bobToken;
    },
  });
  const alice = await member(t, h, 'alice');
  const a = alice.conversation(C1, { token: true });
  const b = bob.conversation(C1, { token: true });
  await until(() => a.isJoined && b.isJoined, 5000, 'both joined');
  const first = await a.send('premier');
  const second = await a.send('second');
  await until(() => b.messages.length === 2, 5000, 'bob has both');
  const changes: string[] = [];
  b.onEdit((m) => changes.push(`edit ${m.text}`));
  b.onDelete((m) => changes.push(`delete ${m.id === second.id}`));
  t.match(await a.edit(first.id, 'premier (revu)'), { id: first.id, offset: 3 });
  await until(() => changes.length === 1, 5000, 'bob sees the edit');
  t.match(b.messages[0], { id: first.id, text: 'premier (revu)', offset: 1 });
  t.type(b.messages[0]!.editedAt, 'number');
  const refused = (await b.edit(first.id, 'pas à moi').catch((e: StorywireError) => e)) as StorywireError;
  t.equal(refused.code, 'FORBIDDEN', "bob cannot edit alice's message");

  // Bob away: the delete happens without him, and his resume applies it.
  away.close();
  cut();
  await until(() => !b.isJoined, 5000, 'bob away');
  await a.delete(second.id);
  away.open();
  await until(() => changes.length === 2, 5000, 'the delete replayed');
  t.same(changes, ['edit premier (revu)', 'delete true']);
  t.match(b.messages[1], { id: second.id, deleted: true, offset: 2 });
  t.notOk('text' in b.messages[1]!, 'without its text');
  t.same(b.messages.map((m) => m.id), [first.id, second.id], 'in place, nothing added');
  t.same(a.messages, b.messages, 'both sides hold the same state');

  // A device joining now gets the latest states from the history itself.
  const late = (await member(t, h, 'bob')).conversation(C1, { token: true });
  await until(() => late.messages.length === 2, 5000, 'backfilled');
  t.match(late.messages, [{ id: first.id, text: 'premier (revu)' }, { id: second.id, deleted: true }]);
  t.equal((await a.edit('no-such-id', 'x').catch((e: StorywireError) => e.code)) as string, 'MESSAGE_NOT_FOUND');
});
