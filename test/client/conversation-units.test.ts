// The SDK's conversation logic against a scripted fake server (no storywire): the message log (order, one entry
// per id, latest state), joins and backfill, sends retried with one clientMsgId, unread counts, receipts, typing.
import t, { type Test } from 'tap';
import type WebSocket from 'ws';
import { ChatLog, toMessage } from '../../src/client/chat-log.js';
import type { ChatMessage, StorywireClient, StorywireError } from '../../src/client/index.js';
import { client, fakeServer, until } from './util.js';

interface Msg {
  type: string;
  id: string;
  data: Record<string, unknown>;
  conn: number;
}
type Reply = (ws: WebSocket, m: Msg) => void;

const send = (ws: WebSocket, frame: object) => ws.send(JSON.stringify({ ts: 1, ...frame }));
const ack = (ws: WebSocket, m: Msg, data: object) => send(ws, { type: 'ack', id: m.id, data });
const chatFrame = (epoch: string, offset: number, id: string, senderId = 'bob', text = id) => ({
  type: 'chat:message', topic: 'conversation:c1', epoch, offset, data: { id, clientMsgId: `k-${id}`, senderId, text, sentAt: offset },
});

/**
 * A fake server that records every client message; `script[type]` answers it (default: subscribe acked at
 * `position`, chat:unread counting 0, typing and unsubscribe acked). Each connection numbered from 1.
 */
async function scripted(t: Test, script: Record<string, Reply> = {}, position = { epoch: 'E', offset: 0 }) {
  const got: Msg[] = [];
  const sockets: WebSocket[] = [];
  const defaults: Record<string, Reply> = {
    subscribe: (ws, m) => ack(ws, m, { topic: m.data['topic'], ...position }),
    'chat:unread': (ws, m) => ack(ws, m, { counts: { 'conversation:c1': 0 }, forbidden: [] }),
    'typing:start': (ws, m) => ack(ws, m, {}),
    'typing:stop': (ws, m) => ack(ws, m, {}),
    unsubscribe: (ws, m) => ack(ws, m, { topic: m.data['topic'] }),
  };
  const fake = await fakeServer(t, (ws) => {
    sockets.push(ws);
    const conn = sockets.length;
    ws.on('message', (raw) => {
      const m = { ...(JSON.parse(raw.toString()) as Omit<Msg, 'conn'>), conn };
      got.push(m);
      (script[m.type] ?? defaults[m.type])?.(ws, m);
    });
  });
  const of = (type: string) => got.filter((m) => m.type === type);
  return { url: fake.url, got, of, sockets, position, until: (type: string, n = 1) => until(() => of(type).length >= n, 5000, `${n} ${type}`) };
}

const ids = (ms: readonly ChatMessage[]) => ms.map((m) => m.id);

t.test('the log: epochs in the order seen, offsets within one, one entry per id, the latest state', async (t) => {
  const log = new ChatLog(4);
  const m = (epoch: string, offset: number, id: string, extra: object = {}) => toMessage({ id, senderId: 'bob', clientMsgId: id, text: id, sentAt: 1, ...extra }, epoch, offset)!;
  t.equal(log.add(m('E', 2, 'b')).kind, 'added');
  t.equal(log.add(m('E', 1, 'a')).kind, 'added', 'a backfill below a live message goes before it');
  t.equal(log.add(m('E', 2, 'b')).kind, 'none', 'a frame seen twice is held once');
  t.equal(log.add(m('F', 1, 'c')).kind, 'added', 'offset 1 of a later epoch (the server restarted) sorts after E');
  t.equal(log.add(m('F', 2, 'a')).kind, 'none', 'a retried send published again in F keeps its first place');
  t.same(ids(log.messages), ['a', 'b', 'c']);
  t.equal(log.edit({ id: 'b', senderId: 'bob', text: 'b2', editedAt: 10 }).kind, 'edited');
  t.equal(log.edit({ id: 'b', senderId: 'bob', text: 'old', editedAt: 5 }).kind, 'none', 'an older edit replayed late changes nothing');
  t.equal(log.get('b')?.text, 'b2');
  t.equal(log.add(m('E', 2, 'b', { text: 'b3', editedAt: 20 })).kind, 'edited', 'a replay of a later state updates the held one');
  t.equal(log.delete({ id: 'a', senderId: 'bob', deletedAt: 30 }).kind, 'deleted');
  t.same(log.get('a'), { id: 'a', clientMsgId: 'a', senderId: 'bob', sentAt: 1, epoch: 'E', offset: 1, deleted: true, deletedAt: 30 }, 'in place, without text');
  t.equal(log.edit({ id: 'a', senderId: 'bob', text: 'x', editedAt: 40 }).kind, 'none', 'a deleted message stays deleted');
  t.equal(log.add(m('E', 1, 'a')).kind, 'none', 'and a replay of its older state does not bring it back');
  log.add(m('F', 3, 'd'));
  log.add(m('F', 4, 'e'));
  t.same(ids(log.messages), ['b', 'c', 'd', 'e'], 'bounded: the oldest goes');
  t.equal(log.add(m('E', 0, 'z')).kind, 'none', 'older than everything held when full: not kept');
  t.equal(toMessage({ id: 'x' }, 'E', 1), undefined, 'no senderId: not a message');
});

t.test('joining: the last `history` messages are replayed on the live subscription, the unread count is asked, both once', async (t) => {
  const s = await scripted(t, {
    subscribe: (ws, m) => {
      const since = m.data['since'] as { epoch: string; offset: number } | undefined;
      // The replay of a subscription already live: the frames after `since`, then the ack.
      if (since) for (let o = since.offset + 1; o <= 5; o++) send(ws, chatFrame('E', o, `m${o}`));
      ack(ws, m, { topic: 'conversation:c1', epoch: 'E', offset: 5, ...(since ? { recovered: true, replayed: 5 - since.offset } : {}) });
    },
    'chat:unread': (ws, m) => ack(ws, m, { counts: { 'conversation:c1': 2 }, forbidden: [] }),
  });
  const alice = client(t, { url: s.url, token: 'x' });
  const conv = alice.conversation('conversation:c1', { history: 3 });
  t.equal(alice.conversation('conversation:c1'), conv, 'one object per channel');
  const seen: string[] = [];
  conv.onMessage((m) => seen.push(m.id));
  await until(() => conv.messages.length === 3 && conv.unreadCount === 2, 5000, 'backfill and count');
  t.same(s.of('subscribe').map((m) => m.data), [{ topic: 'conversation:c1' }, { topic: 'conversation:c1', since: { epoch: 'E', offset: 2 } }]);
  t.same(ids(conv.messages), ['m3', 'm4', 'm5']);
  t.same(seen, ['m3', 'm4', 'm5']);
  t.same(s.of('chat:unread').map((m) => m.data), [{ channels: ['conversation:c1'] }]);
  t.same(alice.positions['conversation:c1'], { epoch: 'E', offset: 5 });
  t.equal(conv.isJoined, true);
});

t.test('send: a lost reply and a cut connection are retried with the same clientMsgId; the message is held once', async (t) => {
  let sends = 0;
  const s = await scripted(t, {
    'chat:send': (ws, m) => {
      sends++;
      if (sends === 1) return; // no reply: the SDK times out and asks again
      if (sends === 2) return ws.terminate(); // cut before the reply: again on the next connection
      const stored = { id: 'srv-1', clientMsgId: m.data['clientMsgId'], senderId: 'u', text: m.data['text'], sentAt: 7 };
      send(ws, { type: 'chat:message', topic: 'conversation:c1', epoch: 'E', offset: 1, data: stored });
      ack(ws, m, { channel: 'conversation:c1', ...stored, epoch: 'E', offset: 1, duplicate: sends > 3 });
    },
  });
  const alice = client(t, { url: s.url, token: 'x', requestTimeoutMs: 150, reconnect: { minDelayMs: 10, maxDelayMs: 20 } });
  const conv = alice.conversation('conversation:c1');
  const added: string[] = [];
  conv.onMessage((m) => added.push(m.id));
  const sent = conv.send('bonjour', { mood: 'gai' });
  t.same(conv.pending.map((p) => p.text), ['bonjour'], 'pending until acknowledged');
  const m = await sent;
  t.match(m, { id: 'srv-1', text: 'bonjour', epoch: 'E', offset: 1, senderId: 'u' });
  const attempts = s.of('chat:send');
  t.equal(attempts.length, 3);
  t.equal(new Set(attempts.map((a) => a.data['clientMsgId'])).size, 1, 'one clientMsgId for every attempt');
  t.match(attempts[0]!.data, { channel: 'conversation:c1', text: 'bonjour', data: { mood: 'gai' } });
  t.same(attempts.map((a) => a.conn), [1, 1, 2], 'the third on the new connection');
  const second = s.of('subscribe').filter((x) => x.conn === 2);
  t.ok(s.got.indexOf(second[0]!) < s.got.indexOf(attempts[2]!), 'the channel is joined again before the retry');
  t.same(added, ['srv-1'], 'the event and the ack give one message');
  t.same(ids(conv.messages), ['srv-1']);
  t.same(conv.pending, []);
});

t.test('send: UNAVAILABLE is retried after a backoff, FORBIDDEN rejects, close() cancels the sends still waiting', async (t) => {
  let n = 0;
  const s = await scripted(t, {
    'chat:send': (ws, m) => {
      n++;
      if (m.data['text'] === 'no') return send(ws, { type: 'error', id: m.id, error: { code: 'FORBIDDEN', message: 'refused by the backend' } });
      if (m.data['text'] === 'wait') return; // never answered
      if (n === 1) return send(ws, { type: 'error', id: m.id, error: { code: 'UNAVAILABLE', message: 'backend down' } });
      ack(ws, m, { channel: 'conversation:c1', id: 'x1', clientMsgId: m.data['clientMsgId'], senderId: 'u', text: 'ok', sentAt: 1, epoch: 'E', offset: 1, duplicate: false });
    },
  });
  const alice = client(t, { url: s.url, token: 'x', requestTimeoutMs: 60_000 });
  const conv = alice.conversation('conversation:c1');
  t.match(await conv.send('ok'), { id: 'x1' });
  t.equal(s.of('chat:send').length, 2, 'once refused UNAVAILABLE, then acknowledged');
  const refused = (await conv.send('no').catch((e: StorywireError) => e)) as StorywireError;
  t.match(refused, { code: 'FORBIDDEN', fromServer: true });
  const waiting = conv.send('wait').catch((e: StorywireError) => e);
  await s.until('chat:send', 4);
  await conv.close();
  t.match(await waiting, { code: 'CANCELLED' });
  t.same(s.of('unsubscribe').map((m) => m.data), [{ topic: 'conversation:c1' }]);
  t.match(await conv.send('after').catch((e: StorywireError) => e), { code: 'CANCELLED' }, 'a closed conversation sends nothing');
  t.not(alice.conversation('conversation:c1'), conv, 'a new one after close()');
});

t.test('unread: the server count, plus the others\' live messages, minus their deletes; markRead and another device set it', async (t) => {
  const s = await scripted(t, {
    'chat:unread': (ws, m) => ack(ws, m, { counts: { 'conversation:c1': 1 }, forbidden: [] }),
    'chat:read': (ws, m) => ack(ws, m, { channel: 'conversation:c1', offset: m.data['offset'], unread: 0 }),
  }, { epoch: 'E', offset: 3 });
  const alice = client(t, { url: s.url, token: 'x' });
  const conv = alice.conversation('conversation:c1', { history: 0 });
  const counts: number[] = [];
  conv.onUnread((n) => counts.push(n));
  await until(() => conv.unreadCount === 1, 5000, 'the server count');
  const ws = s.sockets[0]!;
  send(ws, chatFrame('E', 4, 'b1'));
  send(ws, chatFrame('E', 5, 'mine', 'u'));
  send(ws, chatFrame('E', 6, 'b2'));
  send(ws, chatFrame('E', 6, 'b2'));
  await until(() => conv.messages.length === 3, 5000, 'three messages');
  t.equal(conv.unreadCount, 3, 'one from the server, two live from bob (not my own, not twice)');
  send(ws, { type: 'chat:deleted', topic: 'conversation:c1', epoch: 'E', offset: 7, data: { id: 'b2', senderId: 'bob', deletedAt: 9 } });
  await until(() => conv.unreadCount === 2, 5000, 'a deleted unread message');
  t.equal(await conv.markRead(), 0);
  t.same(s.of('chat:read').map((m) => m.data), [{ channel: 'conversation:c1', offset: 7 }], 'up to the newest event seen');
  send(ws, { type: 'chat:read', topic: 'user:u', data: { channel: 'conversation:c1', offset: 7, unread: 4 } });
  await until(() => conv.unreadCount === 4, 5000, 'another device');
  t.same(counts, [1, 2, 3, 2, 0, 4]);
});

t.test('edits, deletes, receipts and typing reach the conversation; my own typing is not shown', async (t) => {
  const s = await scripted(t, {}, { epoch: 'E', offset: 1 });
  const alice = client(t, { url: s.url, token: 'x' });
  const conv = alice.conversation('conversation:c1', { history: 0 });
  const seen: string[] = [];
  conv.onEdit((m) => seen.push(`edit ${m.id} ${m.text}`));
  conv.onDelete((m) => seen.push(`delete ${m.id}`));
  conv.onReceipt((r) => seen.push(`receipt ${r.userId} ${r.offset}`));
  conv.onTyping((x) => seen.push(`typing ${x.userId} ${x.typing}`));
  await until(() => conv.isJoined, 5000, 'joined');
  const ws = s.sockets[0]!;
  send(ws, chatFrame('E', 2, 'm1'));
  send(ws, { type: 'user:typing', topic: 'conversation:c1', data: { userId: 'u', target: 'conversation:c1' } });
  send(ws, { type: 'user:typing', topic: 'conversation:c1', data: { userId: 'bob', target: 'conversation:c1' } });
  send(ws, { type: 'chat:edited', topic: 'conversation:c1', epoch: 'E', offset: 3, data: { id: 'm1', senderId: 'bob', text: 'm1!', editedAt: 5 } });
  send(ws, { type: 'user:stopped_typing', topic: 'conversation:c1', data: { userId: 'bob', target: 'conversation:c1' } });
  send(ws, { type: 'chat:receipt', topic: 'conversation:c1', data: { userId: 'bob', offset: 3 } });
  send(ws, { type: 'chat:deleted', topic: 'conversation:c1', epoch: 'E', offset: 4, data: { id: 'm1', senderId: 'bob', deletedAt: 6 } });
  await until(() => seen.length === 5, 5000, 'five changes');
  t.same(seen, ['typing bob true', 'edit m1 m1!', 'typing bob false', 'receipt bob 3', 'delete m1']);
  t.same(conv.receipts, { bob: 3 });
  t.same(conv.readBy(conv.messages[0]!), ['bob'], 'm1 (offset 2) is covered by bob\'s read position 3');
  t.same(conv.readBy({ ...conv.messages[0]!, epoch: 'F' }), [], 'a receipt counts in its own epoch only');
  t.match(conv.messages[0], { id: 'm1', deleted: true, deletedAt: 6 });
  t.notOk('text' in conv.messages[0]!, 'no text once deleted');
});

t.test('typing(): one typing:start per throttle window, typing:stop after the idle time; the connection dropping clears who types', async (t) => {
  const s = await scripted(t);
  const alice = client(t, { url: s.url, token: 'x', typingThrottleMs: 60_000, reconnect: { minDelayMs: 10, maxDelayMs: 20 } });
  const conv = alice.conversation('conversation:c1', { typingIdleMs: 100 });
  await until(() => conv.isJoined, 5000, 'joined');
  t.equal(await conv.typing(), true);
  t.equal(await conv.typing(), false, 'throttled');
  await s.until('typing:stop');
  t.same(s.of('typing:start').map((m) => m.data), [{ target: 'conversation:c1' }]);
  t.same(s.of('typing:stop').map((m) => m.data), [{ target: 'conversation:c1' }]);
  send(s.sockets[0]!, { type: 'user:typing', topic: 'conversation:c1', data: { userId: 'bob', target: 'conversation:c1' } });
  await until(() => conv.typingUsers.length === 1, 5000, 'bob types');
  s.sockets[0]!.terminate();
  await until(() => conv.typingUsers.length === 0, 5000, 'cleared with the connection');
});

/** Resumes `conversation:c1` after a cut: the rejoin asks from the last position, and the fake decides what it had. */
async function resumed(t: Test, recovered: boolean) {
  const s = await scripted(t, {
    subscribe: (ws, m) => {
      const since = m.data['since'] as { epoch: string; offset: number } | undefined;
      const conn = s.sockets.indexOf(ws) + 1;
      if (conn === 1) return ack(ws, m, { topic: 'conversation:c1', epoch: 'E', offset: 0, ...(since ? { recovered: true, replayed: 0 } : {}) });
      if (recovered) {
        if (since?.epoch === 'E') for (let o = since.offset + 1; o <= 3; o++) send(ws, chatFrame('E', o, `m${o}`));
        return ack(ws, m, { topic: 'conversation:c1', epoch: 'E', offset: 3, recovered: true, replayed: 3 - (since?.offset ?? 0) });
      }
      // Restarted: history lost, a new epoch F where m2 (a retried send) and m9 were published again.
      if (since?.epoch === 'F') {
        send(ws, chatFrame('F', 1, 'm2'));
        send(ws, chatFrame('F', 2, 'm9'));
      }
      ack(ws, m, { topic: 'conversation:c1', epoch: 'F', offset: 2, ...(since ? { recovered: since.epoch === 'F', replayed: since.epoch === 'F' ? 2 : 0 } : {}) });
    },
  });
  const alice = client(t, { url: s.url, token: 'x', reconnect: { minDelayMs: 10, maxDelayMs: 20 } });
  const conv = alice.conversation('conversation:c1');
  const resyncs: string[] = [];
  alice.on('resync', (r) => resyncs.push(`${r.topic} ${r.reason}`));
  await until(() => conv.isJoined, 5000, 'joined');
  send(s.sockets[0]!, chatFrame('E', 1, 'm1'));
  send(s.sockets[0]!, chatFrame('E', 2, 'm2'));
  await until(() => conv.messages.length === 2, 5000, 'two live');
  s.sockets[0]!.terminate();
  return { s, alice, conv, resyncs };
}

t.test('resume: a rejoin asks from the last offset seen; what was missed is replayed and held once', async (t) => {
  const { s, conv, resyncs } = await resumed(t, true);
  await until(() => conv.messages.length === 3, 5000, 'm3 replayed');
  t.same(s.of('subscribe').filter((m) => m.conn === 2).map((m) => m.data), [{ topic: 'conversation:c1', since: { epoch: 'E', offset: 2 } }], 'recovered: no backfill');
  t.same(ids(conv.messages), ['m1', 'm2', 'm3']);
  t.same(resyncs, []);
});

t.test('resume after the server lost the history: resync reported, the new epoch backfilled, nothing doubled', async (t) => {
  const { s, conv, resyncs } = await resumed(t, false);
  await until(() => conv.messages.length === 3, 5000, 'm9 from the new epoch');
  t.same(s.of('subscribe').filter((m) => m.conn === 2).map((m) => m.data), [
    { topic: 'conversation:c1', since: { epoch: 'E', offset: 2 } },
    { topic: 'conversation:c1', since: { epoch: 'F', offset: 0 } },
  ]);
  t.same(ids(conv.messages), ['m1', 'm2', 'm9'], 'm2 published again in F is held once, in its first place');
  t.same(resyncs, ['conversation:c1 epoch']);
});

t.test('{ token: true }: the subscribe and the backfill carry the provider\'s token, asked once per connection', async (t) => {
  const s = await scripted(t, {}, { epoch: 'E', offset: 4 });
  const asked: string[] = [];
  const alice = client(t, { url: s.url, token: 'x', subscriptionToken: ({ channel }) => `tok-${asked.push(channel)}` });
  const conv = alice.conversation('conversation:c1', { token: true });
  await s.until('subscribe', 2);
  t.same(s.of('subscribe').map((m) => m.data), [
    { topic: 'conversation:c1', token: 'tok-1' },
    { topic: 'conversation:c1', since: { epoch: 'E', offset: 0 }, token: 'tok-1' },
  ]);
  t.same(asked, ['conversation:c1']);
  const fixed = alice.conversation('conversation:c2', { token: 'given' });
  await s.until('subscribe', 4);
  t.match(s.of('subscribe').slice(2).map((m) => m.data['token']), ['given', 'given']);
  t.ok(conv.isJoined && fixed.isJoined);
});

t.test('a refused subscribe ends the conversation: its sends reject with the refusal', async (t) => {
  const s = await scripted(t, { subscribe: (ws, m) => send(ws, { type: 'error', id: m.id, error: { code: 'TOPIC_FORBIDDEN', message: 'not a member' } }) });
  const alice: StorywireClient = client(t, { url: s.url, token: 'x' });
  const conv = alice.conversation('conversation:c1');
  const err = (await conv.send('hi').catch((e: StorywireError) => e)) as StorywireError;
  t.match(err, { code: 'TOPIC_FORBIDDEN', fromServer: true });
  t.equal(conv.endedBy?.code, 'TOPIC_FORBIDDEN');
  t.same(s.of('chat:send'), [], 'nothing sent');
});
