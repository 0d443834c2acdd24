// Chat under chaos in cluster mode (issue #16, Evidence): redis-server + 2 storywire nodes (child processes),
// the app's backend a real node:http server storing each message under its idempotencyKey (the publish proxy),
// two members let in by subscription tokens exchanging 1,000 messages with the SDK's conversation.send while
// their sockets are terminated at random and the node one of them is on is SIGKILLed, then restarted. Every
// message acked to its sender reaches the other member exactly once, in offset order; the backend stored one
// row per clientMsgId. The run is bounded by counts (messages acked), never by time; WAIT_MS bounds a hang.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import WebSocket from 'ws';
import { NodeProcess, freePort } from '../../bench/chaos-cluster/cluster.js';
import { STORYWIRE_LOAD_ENV } from '../../bench/lib/servers.js';
import { StorywireClient, type ChatMessage, type Conversation, type WebSocketConstructor } from '../../src/client/index.js';
import { chatBackend } from '../chat-backend.js';
import { SECRET, sign } from '../helpers.js';
import { WAIT_MS, until } from '../wait.js';
import { API_KEY, redisEnv, skipReason, startRedis } from './redis.js';

const C1 = 'conversation:c1';
/** Messages each member sends. CI runs 500 each (1,000 in all); CHAT_CHAOS_MESSAGES shrinks it for a local run. */
const EACH = Math.max(20, Math.floor((Number(process.env['CHAT_CHAOS_MESSAGES']) || 1000) / 2));
/** Sends of one member waiting for their ack at once. */
const WINDOW = 8;
/** A member's socket is terminated (no close frame) after every DROP_EVERY acks, all members together. */
const DROP_EVERY = 20;

/** A chat:message frame as it came off the wire, before the SDK's deduplication. */
interface Raw {
  id: string;
  clientMsgId: string;
  senderId: string;
  epoch: string;
  offset: number;
}

interface Member {
  user: string;
  client: StorywireClient;
  conversation: Conversation;
  /** The live socket and the node port it went to; the next connection goes to `prefer` when set. */
  socket: WebSocket | undefined;
  port: number;
  prefer: number | undefined;
  /** Connections opened per node port. */
  connections: Map<number, number>;
  raw: Raw[];
  /** clientMsgId of every chat:send frame written (retries included). */
  sendFrames: string[];
  acked: ChatMessage[];
  errors: string[];
}

t.test('chat chaos: 2 nodes + Redis, random socket drops and a node SIGKILL', { skip: skipReason, timeout: 4 * WAIT_MS }, async (t) => {
  const redis = await startRedis(t);
  const backend = await chatBackend(t, { subscribe: 'token', history: { size: 5000, ttlS: 3600 } });
  const dir = mkdtempSync(join(tmpdir(), 'sw-chat-chaos-'));
  // NodeProcess sets REDIS_URL from redisUrl: empty (unset) on Sentinel or a Redis Cluster, whose entries are in env.
  const { REDIS_URL = '', ...backendEnv } = redisEnv(redis);
  const env = { ...STORYWIRE_LOAD_ENV, CHANNELS_FILE: backend.channelsFile, CHAT_RATE_PER_S: '100000', MAX_CONNECTIONS: '1000', REDIS_PREFIX: redis.prefix, ...backendEnv };
  const nodes: NodeProcess[] = [];
  for (const name of ['node-a', 'node-b']) {
    const o = { name, port: await freePort(), redisUrl: REDIS_URL, secret: SECRET, apiKey: API_KEY, leaseMs: 1500, graceMs: 3000, logFile: join(dir, `${name}.log`), env };
    nodes.push(new NodeProcess(o, () => {}));
  }
  t.teardown(async () => {
    for (const n of nodes) await n.close();
  });
  await Promise.all(nodes.map((n) => n.start()));
  await Promise.all(nodes.map((n) => n.ready(WAIT_MS)));

  const down = new Set<number>();
  const members = ['alice', 'bob'].map((user, i) => member(user, i, nodes, down));
  t.teardown(() => {
    for (const m of members) m.client.close();
  });
  await until(() => members.every((m) => m.conversation.isJoined), 'both members joined');

  // ---- the chaos, driven by acks ----
  let acks = 0;
  let drops = 0;
  const onAck = () => {
    if (++acks % DROP_EVERY !== 0) return;
    const m = members[Math.floor(Math.random() * members.length)]!;
    if (m.socket?.readyState === WebSocket.OPEN) {
      m.socket.terminate();
      drops++;
    }
  };
  // Kill at 25 % acked; restart at 50 %; the last 30 % wait for the node to be back and both members on it.
  let killedPort = 0;
  let back: () => void = () => {};
  const restarted = new Promise<void>((r) => (back = r));
  const gate = () => (acks >= Math.floor(EACH * 2 * 0.7) ? restarted : undefined);
  const chaos = (async () => {
    await until(() => acks >= Math.floor(EACH * 2 * 0.25), 'the first 25 % acked');
    // The node alice is on: at least one member loses its node with sends in flight.
    const victim = nodes.find((n) => n.port === members[0]!.port)!;
    killedPort = victim.port;
    down.add(victim.port);
    await victim.kill('SIGKILL');
    await until(() => acks >= Math.floor(EACH * 2 * 0.5), 'half acked');
    await victim.start();
    await victim.ready(WAIT_MS);
    down.delete(victim.port);
    for (const m of members) {
      m.prefer = victim.port;
      m.socket?.terminate();
      drops++;
    }
    await until(() => members.every((m) => m.port === victim.port && m.conversation.isJoined), 'both members on the restarted node');
    back();
  })();

  await Promise.all([...members.map((m) => sendAll(m, onAck, gate)), chaos]);
  // A last message from each: it takes the highest offsets, so whatever came twice or late is seen before it.
  for (const m of members) m.acked.push(await m.conversation.send(`${m.user} done`));
  const [alice, bob] = members as [Member, Member];
  const other = (m: Member) => (m === alice ? bob : alice);
  for (const m of members) {
    const last = other(m).acked[other(m).acked.length - 1]!.id;
    await until(() => m.raw.some((f) => f.id === last), `${m.user} received the other's last message`);
  }

  // ---- the chaos happened ----
  t.same([...alice.errors, ...bob.errors], [], 'no send was refused');
  t.ok(drops >= 10, `${drops} sockets terminated`);
  t.ok(killedPort > 0, 'a node was SIGKILLed');
  t.ok(nodes.some((n) => n.starts === 2), 'and restarted');
  t.ok(members.every((m) => (m.connections.get(killedPort) ?? 0) >= 2), 'both members went back to the restarted node');
  const retried = members.reduce((s, m) => s + m.sendFrames.length, 0) - (EACH + 1) * 2;
  t.ok(retried > 0, `${retried} chat:send frames were retries (same clientMsgId)`);

  // ---- every acked message reached the other member exactly once, in offset order ----
  for (const m of members) {
    const sender = other(m);
    t.equal(sender.acked.length, EACH + 1, `${sender.user}: every send acked`);
    const counts = new Map<string, number>();
    for (const f of m.raw) if (f.senderId === sender.user) counts.set(f.id, (counts.get(f.id) ?? 0) + 1);
    const missing = sender.acked.filter((a) => !counts.has(a.id)).map((a) => a.offset);
    const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    const unacked = [...counts.keys()].filter((id) => !sender.acked.some((a) => a.id === id));
    t.same(missing, [], `${m.user} received every message ${sender.user} was acked`);
    t.same(twice, [], `${m.user} received none of them twice`);
    t.same(unacked, [], `${m.user} received nothing ${sender.user} was not acked`);
    const epochs = new Set(m.raw.map((f) => f.epoch));
    t.equal(epochs.size, 1, `${m.user}: one epoch (the history is Redis's)`);
    const back = m.raw.filter((f, i) => i > 0 && f.offset <= m.raw[i - 1]!.offset).length;
    t.equal(back, 0, `${m.user}: offsets only go up`);
    const acked = new Map(sender.acked.map((a) => [a.id, a.offset]));
    t.ok(m.raw.every((f) => f.senderId !== sender.user || acked.get(f.id) === f.offset), `${m.user}: each at the offset its ack named`);
  }
  const offsets = [...alice.acked, ...bob.acked].map((a) => a.offset).sort((x, y) => x - y);
  t.same(offsets, Array.from({ length: offsets.length }, (_, i) => i + 1), 'the acks name offsets 1..N: nothing was published twice or in between');

  // ---- the app's store: one row per clientMsgId, the row's id is the published message's ----
  const sends = backend.asked.filter((q) => q.kind === 'publish' && q.chat?.op === 'send');
  const keys = new Set(sends.map((q) => q.chat!.idempotencyKey));
  t.comment(`backend: ${sends.length} publish calls for ${keys.size} idempotency keys; ${retried} retried frames, ${drops} drops`);
  t.equal(backend.rows.size, (EACH + 1) * 2, 'the backend stored each clientMsgId once');
  t.equal(keys.size, backend.rows.size, 'and was asked about no other key');
  t.ok(sends.every((q) => q.chat!.idempotencyKey === `${q.user}:${q.chat!.clientMsgId}`), 'every call carried the sender\'s idempotencyKey');
  const wrongRow = [...alice.acked, ...bob.acked].filter((a) => backend.rows.get(`${a.senderId}:${a.clientMsgId}`)?.id !== a.id);
  t.same(wrongRow.map((a) => a.clientMsgId), [], 'every acked message carries the id of its one stored row');
  if (t.passing()) rmSync(dir, { recursive: true, force: true });
  else t.comment(`node logs kept in ${dir}`);
});

/** Sends EACH messages, WINDOW at a time; every ack is counted by onAck; a send waits while gate() says so. */
async function sendAll(m: Member, onAck: () => void, gate: () => Promise<void> | undefined): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < EACH) {
      await gate();
      if (next >= EACH) break;
      const i = next++;
      try {
        m.acked.push(await m.conversation.send(`${m.user} ${i}`));
        onAck();
      } catch (err) {
        m.errors.push(`${m.user} ${i}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, lane));
}

/** A member whose every connection goes to the next node that is up (in turn), its frames tapped. */
function member(user: string, first: number, nodes: readonly NodeProcess[], down: ReadonlySet<number>): Member {
  const m = { user, socket: undefined, port: 0, prefer: undefined, connections: new Map(), raw: [], sendFrames: [], acked: [], errors: [] } as unknown as Member;
  let turn = first;
  const route = (url: string) => {
    const live = nodes.filter((n) => !down.has(n.port));
    const node = live.find((n) => n.port === m.prefer) ?? (live.length > 0 ? live[turn++ % live.length]! : nodes[0]!);
    m.prefer = undefined;
    m.port = node.port;
    m.connections.set(node.port, (m.connections.get(node.port) ?? 0) + 1);
    return url.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${node.port}`);
  };
  class Routed extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(route(url), protocols);
      m.socket = this;
      this.on('message', (raw) => {
        const f = JSON.parse(String(raw)) as { type: string; epoch?: string; offset?: number; data?: Record<string, unknown> };
        if (f.type !== 'chat:message' || f.data === undefined) return;
        const d = f.data as { id: string; clientMsgId: string; senderId: string };
        m.raw.push({ id: d.id, clientMsgId: d.clientMsgId, senderId: d.senderId, epoch: f.epoch ?? '', offset: f.offset ?? 0 });
      });
    }
    override send(data: string): void {
      if (data.includes('"chat:send"')) m.sendFrames.push((JSON.parse(data) as { data: { clientMsgId: string } }).data.clientMsgId);
      super.send(data);
    }
  }
  m.client = new StorywireClient({
    url: `ws://127.0.0.1:${nodes[0]!.port}/ws`,
    token: () => sign(user),
    subscriptionToken: ({ channel }) => sign(user, { channel }),
    WebSocket: Routed as unknown as WebSocketConstructor,
    reconnect: { minDelayMs: 20, maxDelayMs: 200 },
    requestTimeoutMs: 5000,
  });
  m.conversation = m.client.conversation(C1, { token: true });
  return m;
}
