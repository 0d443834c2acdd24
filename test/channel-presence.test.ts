// presence:channel over the wire: who is subscribed to a channel now, counted per user (a user with two devices
// once), as the namespace's presence option tells it (counts, members up to MAX_PRESENCE_MEMBERS), to whom its
// presenceRule allows (by default its subscribers); left on unsubscribe, close, revocation and token expiry; on
// every node of a Redis cluster.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import t from 'tap';
import { sign, startServer, type Client, type Harness } from './helpers.js';
import { api, skipReason, startNodes, startRedis, until } from './cluster/redis.js';

const API_KEY = 'cluster-test-api-key-0123456789';

function channelsFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'storywire-channels-'));
  const file = join(dir, 'channels.json');
  writeFileSync(
    file,
    JSON.stringify({
      namespaces: {
        room: { subscribe: 'public', presence: 'members' },
        hall: { subscribe: 'public', presence: 'counts' },
        lobby: { subscribe: 'public', presence: 'counts', presenceRule: 'public' },
        vip: { subscribe: 'token', presence: 'members' },
        quiet: { subscribe: 'public' },
      },
    }),
  );
  return file;
}

async function joined(c: Client, topic: string): Promise<void> {
  const r = await c.request('subscribe', { topic });
  if (r.type !== 'ack') throw new Error(`subscribe ${topic}: ${JSON.stringify(r)}`);
}

const ask = (c: Client, channel: string) => c.request('presence:channel', { channel });

/** The ack's members sorted (their order is not promised). */
async function presence(c: Client, channel: string): Promise<{ count: number; members?: string[]; truncated?: boolean }> {
  const r = await ask(c, channel);
  if (r.type !== 'ack') throw new Error(`presence:channel ${channel}: ${JSON.stringify(r)}`);
  return { ...r.data, ...(r.data.members ? { members: [...r.data.members].sort() } : {}) };
}

async function server(t: { teardown(fn: () => unknown): void }, env: Record<string, string> = {}): Promise<Harness> {
  return startServer(t, {}, { CHANNELS_FILE: channelsFile(), API_KEY, ...env });
}

t.test('counts and members: 2 users on 3 connections count 2', async (t) => {
  const h = await server(t);
  const [alice1, alice2, bob] = [await h.connect('alice'), await h.connect('alice'), await h.connect('bob')];
  for (const c of [alice1, alice2, bob]) {
    await c.type('connected');
    await joined(c, 'room:1');
    await joined(c, 'hall:1');
  }
  const r = await ask(alice1, 'room:1');
  t.equal(r.type, 'ack');
  t.same(Object.keys(r.data).sort(), ['channel', 'count', 'members'], 'members: channel, count, members (no truncated)');
  t.same(await presence(alice1, 'room:1'), { channel: 'room:1', count: 2, members: ['alice', 'bob'] }, 'alice with two devices counts once');
  t.same((await ask(bob, 'hall:1')).data, { channel: 'hall:1', count: 2 }, 'counts: no member is named');
  t.same(await presence(bob, 'room:1'), { channel: 'room:1', count: 2, members: ['alice', 'bob'] }, 'the same for every subscriber');
});

t.test('leave on unsubscribe and close, per device', async (t) => {
  const h = await server(t);
  const [alice1, alice2, bob] = [await h.connect('alice'), await h.connect('alice'), await h.connect('bob')];
  for (const c of [alice1, alice2, bob]) {
    await c.type('connected');
    await joined(c, 'room:1');
  }
  t.equal((await presence(bob, 'room:1')).count, 2);
  t.equal((await alice1.request('unsubscribe', { topic: 'room:1' })).type, 'ack');
  t.same((await presence(bob, 'room:1')).members, ['alice', 'bob'], 'alice is still there on her other device');
  alice2.close();
  await alice2.closed;
  await until(async () => (await presence(bob, 'room:1')).count === 1, 3000, 'alice\'s last device closed');
  t.same(await presence(bob, 'room:1'), { channel: 'room:1', count: 1, members: ['bob'] }, 'alice left with her last device');
  // Subscribed again: counted again.
  await joined(alice1, 'room:1');
  t.same((await presence(bob, 'room:1')).members, ['alice', 'bob'], 'subscribed again, counted again');
});

t.test('leave on revocation (POST /v1/channels/unsubscribe) and on subscription token expiry', async (t) => {
  const h = await server(t);
  const [alice, bob, carol] = [await h.connect('alice'), await h.connect('bob'), await h.connect('carol')];
  for (const c of [alice, bob, carol]) await c.type('connected');
  await joined(alice, 'room:1');
  await joined(bob, 'room:1');
  const revoked = await api(h, 'POST', '/v1/channels/unsubscribe', { userId: 'bob', channel: 'room:1' });
  t.same(revoked.body, { revoked: 1 });
  await bob.next((f) => f.type === 'unsubscribed');
  t.same(await presence(alice, 'room:1'), { channel: 'room:1', count: 1, members: ['alice'] }, 'a revoked subscriber is no longer counted');

  const long = await sign('alice', { channel: 'vip:1' }, 3600);
  const short = await sign('carol', { channel: 'vip:1' }, 2);
  t.equal((await alice.request('subscribe', { topic: 'vip:1', token: long })).type, 'ack');
  t.equal((await carol.request('subscribe', { topic: 'vip:1', token: short })).type, 'ack');
  t.same((await presence(alice, 'vip:1')).members, ['alice', 'carol']);
  const ended = await carol.next((f) => f.type === 'unsubscribed');
  t.equal(ended.data.code, 'SUBSCRIPTION_EXPIRED');
  t.same(await presence(alice, 'vip:1'), { channel: 'vip:1', count: 1, members: ['alice'] }, 'a subscription whose token expired is no longer counted');
});

t.test('who may ask: subscribers by default; a public presenceRule; presence off; bad requests', async (t) => {
  const h = await server(t);
  const [alice, mallory] = [await h.connect('alice'), await h.connect('mallory')];
  for (const c of [alice, mallory]) await c.type('connected');
  await joined(alice, 'room:1');
  await joined(alice, 'lobby:1');
  await joined(alice, 'quiet:1');

  const refused = await ask(mallory, 'room:1');
  t.equal(refused.error?.code, 'TOPIC_FORBIDDEN', 'a non-subscriber is refused under "subscribers"');
  t.match(refused.error?.message, /not allowed to see the presence of room:1: only its subscribers may/);
  t.notOk(JSON.stringify(refused).includes('alice'), 'nothing about who is there is told');
  t.same((await ask(mallory, 'lobby:1')).data, { channel: 'lobby:1', count: 1 }, '"presenceRule": "public": anyone may ask');

  const off = await ask(alice, 'quiet:1');
  t.equal(off.error?.code, 'INVALID_TOPIC', 'presence off: even a subscriber is refused');
  t.match(off.error?.message, /quiet channels have no presence/);
  t.equal((await ask(alice, 'story:1')).error?.code, 'INVALID_TOPIC', 'built-in namespaces have presence off');
  t.equal((await ask(alice, 'nowhere:1')).error?.code, 'INVALID_TOPIC', 'no such namespace');
  t.equal((await alice.request('presence:channel', {})).error?.code, 'INVALID_PAYLOAD', 'no channel');
  t.equal((await alice.request('presence:channel', { channel: 7 })).error?.code, 'INVALID_PAYLOAD', 'channel not a string');
});

t.test('members are cut at MAX_PRESENCE_MEMBERS, with truncated: true; the count is whole', async (t) => {
  const h = await server(t, { MAX_PRESENCE_MEMBERS: '2' });
  const users = ['u1', 'u2', 'u3'];
  const conns: Client[] = [];
  for (const u of users) {
    const c = await h.connect(u);
    await c.type('connected');
    await joined(c, 'room:1');
    conns.push(c);
  }
  const r = await presence(conns[0]!, 'room:1');
  t.equal(r.count, 3);
  t.equal(r.truncated, true);
  t.equal(r.members!.length, 2, 'two of the three');
  for (const m of r.members!) t.ok(users.includes(m), `${m} is a subscriber`);
  conns[2]!.close();
  await until(async () => (await presence(conns[0]!, 'room:1')).count === 2, 3000, 'u3 gone');
  t.same(await presence(conns[0]!, 'room:1'), { channel: 'room:1', count: 2, members: ['u1', 'u2'] }, 'at the limit: whole, not truncated');
});

t.test('cluster: the count of a channel is every node\'s', { skip: skipReason }, async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await startNodes(t, redis, 2, { channelsFile: channelsFile() });
  const [aliceA, aliceB, bobB] = [await a!.connect('alice'), await b!.connect('alice'), await b!.connect('bob')];
  for (const c of [aliceA, aliceB, bobB]) {
    await c.type('connected');
    await joined(c, 'room:1');
  }
  t.same(await presence(aliceA, 'room:1'), { channel: 'room:1', count: 2, members: ['alice', 'bob'] }, 'node a sees bob, who is on node b; alice on both counts once');
  t.same(await presence(bobB, 'room:1'), { channel: 'room:1', count: 2, members: ['alice', 'bob'] }, 'node b sees the same');
  aliceB.close();
  // Node b has handled the close (its removal goes to Redis before the next read on the same connection).
  await until(() => b!.server.connectionsOf('alice') === 0, 3000, 'node b closed alice\'s connection');
  t.same((await presence(bobB, 'room:1')).members, ['alice', 'bob'], 'alice still counted, through node a');
  aliceA.close();
  await until(async () => (await presence(bobB, 'room:1')).count === 1, 5000, 'alice gone from both nodes');
  t.same(await presence(bobB, 'room:1'), { channel: 'room:1', count: 1, members: ['bob'] });
});

t.test('protocol.md\'s example of "Presence of a channel", replayed', async (t) => {
  const doc = readFileSync(new URL('../protocol.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('### Presence of a channel'));
  const lines = /```json\n([\s\S]*?)```/.exec(section)![1]!.trim().split('\n').map((l) => JSON.parse(l));
  t.equal(lines.length, 4);
  const h = await server(t);
  const [alice1, alice2, bob, mallory] = [await h.connect('alice'), await h.connect('alice'), await h.connect('bob'), await h.connect('mallory')];
  for (const c of [alice1, alice2, bob, mallory]) await c.type('connected');
  for (const c of [alice1, alice2, bob]) await joined(c, 'room:1');
  const reply = async (c: Client, request: { id: string }) => {
    c.send(request);
    return c.next((f) => f.id === request.id);
  };
  const { ts: _a, ...got1 } = await reply(alice1, lines[0]);
  const { ts: _b, ...want1 } = lines[1];
  t.same({ ...got1, data: { ...got1.data, members: [...got1.data.members].sort() } }, want1, 'alice\'s ack as written');
  const { ts: _c, ...got2 } = await reply(mallory, lines[2]);
  const { ts: _d, ...want2 } = lines[3];
  t.same(got2, want2, 'mallory\'s refusal as written');
});

t.test('a proxy presenceRule: the app\'s backend decides who may see a channel\'s presence (kind presence)', async (t) => {
  const asked: { kind: string; user: string; channel: string }[] = [];
  const backend = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const q = JSON.parse(body) as { kind: string; user: string; channel: string };
    asked.push(q);
    const answer = q.user === 'alice' ? { allow: true } : { allow: false, reason: 'not a moderator' };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => backend.close(resolve)));
  const port = (backend.address() as { port: number }).port;
  const dir = mkdtempSync(join(tmpdir(), 'storywire-channels-'));
  const file = join(dir, 'channels.json');
  writeFileSync(
    file,
    JSON.stringify({
      proxies: { app: { url: `http://127.0.0.1:${port}/decide`, timeoutMs: 2000 } },
      namespaces: { stage: { subscribe: 'public', presence: 'counts', presenceRule: { proxy: 'app' } } },
    }),
  );
  const h = await startServer(t, {}, { CHANNELS_FILE: file });
  const [alice, bob] = [await h.connect('alice'), await h.connect('bob')];
  for (const c of [alice, bob]) await c.type('connected');
  await joined(bob, 'stage:1');
  t.same((await ask(alice, 'stage:1')).data, { channel: 'stage:1', count: 1 }, 'allowed by the backend, without being subscribed');
  const refused = await ask(bob, 'stage:1');
  t.equal(refused.error?.code, 'TOPIC_FORBIDDEN');
  t.match(refused.error?.message, /not allowed to see the presence of stage:1: not a moderator/, "the backend's reason");
  t.match(asked, [{ kind: 'presence', user: 'alice', channel: 'stage:1' }, { kind: 'presence', user: 'bob', channel: 'stage:1' }], 'asked with kind presence');
});
