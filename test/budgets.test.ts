// Budgets keyed by who pays (issue #15, item 6): message buckets per user and per address kept across
// reconnects, handshake buckets per address and per user, and the bounded store they live in.
import WebSocket from 'ws';
import t from 'tap';
import { BucketStore, TokenBucket } from '../src/edge/rates.js';
import { CloseCode } from '../src/wire/codes.js';
import { Client, expectReject, sign, startServer, type Harness } from './helpers.js';

const note = (to: string) => ({ userId: to, notification: { title: 'Nouveau follower', message: 'hello' } });

/** Connects `sub`, waits for `connected`, sends one notification to bob and closes: the reconnect-flood move. */
async function oneShot(h: Harness, sub: string): Promise<string> {
  const c = await Client.open(`${h.url}?token=${await sign(sub)}`);
  await c.type('connected');
  const r = await c.request('send:notification', note('bob'));
  c.close();
  await c.closed;
  return r.type === 'ack' ? 'ack' : r.error!.code;
}

t.test('a reconnect does not refill the notification budget: 20 reconnects send no more than one connection could', async (t) => {
  const h = await startServer(t, { notifyRatePerS: 1, notifyBurst: 5 });
  const started = Date.now();
  const outcomes: string[] = [];
  for (let i = 0; i < 20; i++) outcomes.push(await oneShot(h, 'mallory'));
  const acks = outcomes.filter((o) => o === 'ack').length;
  // The burst, plus what 1/s refilled while the test ran (before: every new connection had 5 more).
  const allowed = 5 + Math.ceil((Date.now() - started) / 1000);
  t.ok(acks <= allowed, `${acks} notifications accepted over 20 connections, at most ${allowed} allowed`);
  t.ok(outcomes.includes('RATE_LIMITED'), 'the later connections are refused RATE_LIMITED');
});

t.test('the refusal says whose budget ran out; the other user on another address is not affected', async (t) => {
  const h = await startServer(t, { notifyRatePerS: 1, notifyBurst: 2 });
  const a = await h.connect('alice');
  await a.type('connected');
  for (let i = 0; i < 2; i++) t.equal((await a.request('send:notification', note('bob'))).type, 'ack');
  const refused = await a.request('send:notification', note('bob'));
  t.equal(refused.error?.code, 'RATE_LIMITED');
  t.match(refused.error?.message, /notifications per second per user/);
  // A second device of the same user shares the budget.
  const a2 = await h.connect('alice');
  await a2.type('connected');
  t.equal((await a2.request('send:notification', note('bob'))).error?.code, 'RATE_LIMITED', 'the same user on another connection');
  const c = await h.connect('carol');
  await c.type('connected');
  t.equal((await c.request('send:notification', note('bob'))).type, 'ack', 'another user has a budget of its own');
});

t.test('many users behind one address share the address budget, which has its own settings', async (t) => {
  const h = await startServer(t, { notifyBurst: 10, notifyBurstPerIp: 3, notifyRatePerSPerIp: 1 });
  const users = ['u1', 'u2', 'u3', 'u4'];
  const outcomes: string[] = [];
  for (const u of users) {
    const c = await h.connect(u);
    await c.type('connected');
    const r = await c.request('send:notification', note('bob'));
    outcomes.push(r.type === 'ack' ? 'ack' : `${r.error!.code} ${r.error!.message}`);
  }
  t.same(outcomes.slice(0, 3), ['ack', 'ack', 'ack']);
  t.match(outcomes[3], /^RATE_LIMITED at most 1 notifications per second from this address/, 'the fourth user pays for the address');
});

t.test('the general bucket is per user too, and a message refused by the address does not spend the user\'s token', async (t) => {
  const h = await startServer(t, { rateLimitPerS: 1, rateLimitBurst: 3, rateLimitPerSPerIp: 1, rateLimitBurstPerIp: 4 });
  const a = await h.connect('alice');
  await a.type('connected');
  for (let i = 0; i < 3; i++) t.equal((await a.request('ping')).type, 'pong');
  a.close();
  const again = await h.connect('alice');
  await again.type('connected');
  const r = await again.request('ping');
  t.equal(r.error?.code, 'RATE_LIMITED', 'a reconnect does not refill the general bucket');
  t.match(r.error?.message, /messages per second per user/);
  const b = await h.connect('bob');
  await b.type('connected');
  t.equal((await b.request('ping')).type, 'pong', 'bob takes the address\'s fourth token');
  t.match((await b.request('ping')).error?.message, /from this address/, 'then the address is spent');
});

t.test('RATE_LIMIT_CLOSE_AFTER still counts per connection: a connection that keeps going is closed with 4100', async (t) => {
  const h = await startServer(t, { rateLimitPerS: 1, rateLimitBurst: 1, rateLimitCloseAfter: 3 });
  const a = await h.connect('alice');
  await a.type('connected');
  for (let i = 0; i < 5; i++) a.send({ type: 'ping' });
  t.equal((await a.closed).code, CloseCode.RATE_LIMITED);
});

t.test('binary frames draw from the budget too: a flood of them is refused, then closed with 4100', async (t) => {
  const h = await startServer(t, { rateLimitPerS: 1, rateLimitBurst: 2, rateLimitCloseAfter: 3 });
  const a = await h.connect('alice');
  await a.type('connected');
  for (let i = 0; i < 6; i++) a.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
  const first = await a.next((f) => f.type === 'error');
  t.equal(first.error?.code, 'BINARY_NOT_SUPPORTED', 'within the burst: told why');
  t.equal((await a.next((f) => f.type === 'error')).error?.code, 'BINARY_NOT_SUPPORTED');
  t.equal((await a.next((f) => f.type === 'error')).error?.code, 'RATE_LIMITED', 'past it: rate limited, as text frames are');
  t.equal((await a.closed).code, CloseCode.RATE_LIMITED, 'and closed once it keeps going');
});

/** Opens a raw socket offering in-band refusals; resolves with its close. */
function inBand(url: string): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['storywire.v1', 'storywire.close-on-refusal']);
    ws.on('error', reject);
    ws.on('message', () => ws.close());
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

t.test('handshakes per address: past the burst an upgrade is refused 429 RATE_LIMITED with Retry-After, or 4100 in band', async (t) => {
  const h = await startServer(t, { handshakesPerSPerIp: 1, handshakeBurstPerIp: 3 });
  // Bad tokens count too: the address check comes before the signature check.
  for (let i = 0; i < 3; i++) t.equal((await expectReject(Client.open(`${h.url}?token=nope`))).status, 401);
  const refused = (await expectReject(Client.open(`${h.url}?token=${await sign('alice')}`))) as { status: number; body: any };
  t.equal(refused.status, 429);
  t.equal(refused.body.error.code, 'RATE_LIMITED');
  t.match(refused.body.error.message, /too many connection attempts from 127\.0\.0\.1: at most 1 per second: retry in \d+ s/);
  const res = await new Promise<{ status: number | undefined; retryAfter: string | undefined }>((resolve, reject) => {
    const ws = new WebSocket(`${h.url}?token=x`);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, r) => {
      resolve({ status: r.statusCode, retryAfter: r.headers['retry-after'] as string | undefined });
      r.resume();
      ws.terminate();
    });
  });
  t.equal(res.status, 429);
  t.match(res.retryAfter, /^\d+$/, 'Retry-After tells when to try again');
  const band = await inBand(`${h.url}?token=${await sign('alice')}`);
  t.equal(band.code, CloseCode.RATE_LIMITED, 'in band: 4100, reconnect with backoff');
  t.match(band.reason, /^RATE_LIMITED: too many connection attempts/);
});

t.test('handshakes per user: checked once the token is verified; other users from the same address still connect', async (t) => {
  const h = await startServer(t, { handshakesPerSPerUser: 1, handshakeBurstPerUser: 2 });
  for (let i = 0; i < 2; i++) {
    const c = await h.connect('mallory');
    await c.type('connected');
    c.close();
  }
  const refused = await expectReject(Client.open(`${h.url}?token=${await sign('mallory')}`));
  t.equal(refused.status, 429);
  t.match(refused.body.error, { code: 'RATE_LIMITED', message: /too many connection attempts for this user/ });
  const band = await inBand(`${h.url}?token=${await sign('mallory')}`);
  t.equal(band.code, CloseCode.RATE_LIMITED);
  const b = await h.connect('bob');
  t.equal((await b.type('connected')).data.userId, 'bob');
});

t.test('BucketStore: bounded; full buckets are forgotten first, spent ones are kept', async (t) => {
  const store = new BucketStore({ ratePerS: 1, burst: 2 }, 100);
  const now = Date.now();
  const spent = store.get('spent', now);
  t.ok(spent.take(now) && spent.take(now), 'the burst is taken');
  for (let i = 0; i < 150; i++) store.get(`idle-${i}`, now);
  t.ok(store.size <= 100, `at most 100 keys (${store.size})`);
  t.equal(store.get('spent', now), spent, 'the spent bucket survived: its key still has no token');
  t.notOk(store.get('spent', now).take(now));
  // Every bucket spent: the bound still holds (the oldest go).
  const busy = new BucketStore({ ratePerS: 1, burst: 1 }, 100);
  for (let i = 0; i < 300; i++) busy.get(`k${i}`, now).take(now);
  t.ok(busy.size <= 100);
});

t.test('TokenBucket: refills from the clock up to its burst; retryS says when the next token comes', async (t) => {
  const b = new TokenBucket(2, 2, 0);
  t.ok(b.take(0) && b.take(0));
  t.notOk(b.take(0));
  t.equal(b.retryS(), 1);
  t.ok(b.take(500), 'half a second later, one token');
  t.notOk(b.full(500));
  t.ok(b.full(10_000), 'full again after a long pause');
});

// What a request returns is paid for (issue #17, item 6): a 66-byte notifications:list answered ~200 KiB, as
// often as the message budget allowed. Inbox pages and replays draw on the user's history-read budget.
const big = (i: number) => ({ title: `n${i}`, message: 'x'.repeat(3000), type: 'info', data: undefined });

t.test('a user looping notifications:list is RATE_LIMITED once HISTORY_READ_BURST_BYTES is sent; others are not', async (t) => {
  const burst = 65536;
  const h = await startServer(t, { historySize: 10, historyReadBytesPerS: 1024, historyReadBurstBytes: burst, rateLimitPerS: 1000, rateLimitBurst: 1000 });
  for (let i = 0; i < 10; i++) h.server.sendNotificationToUser('alice', big(i));
  h.server.sendNotificationToUser('bob', big(0));
  const a = await h.connect('alice');
  await a.type('connected');
  const started = Date.now();
  let answered = 0;
  let sent = 0;
  let refused: { code: string; message: string } | undefined;
  for (let i = 0; i < 50 && refused === undefined; i++) {
    const r = await a.request('notifications:list');
    if (r.type === 'ack') {
      answered++;
      sent += JSON.stringify(r).length;
    } else refused = r.error;
  }
  const page = sent / answered;
  t.ok(page > 30_000, `a page is ${Math.round(page)} bytes`);
  t.equal(refused?.code, 'RATE_LIMITED', 'the loop is refused');
  t.match(refused?.message, /bytes of history per second per user/, 'and told which budget ran out');
  // Answered while the budget is above zero: the burst, one page over it at most, and what 1 KiB/s refilled.
  const allowed = burst + page + 1024 * Math.ceil((Date.now() - started) / 1000);
  t.ok(sent <= allowed, `${sent} bytes sent for ${answered} lists, at most ${allowed} allowed`);
  t.ok(answered >= Math.ceil(burst / page), `the burst's worth is answered (${answered} lists)`);
  t.equal((await a.request('ping')).type, 'pong', 'other messages are not refused: the message budget is untouched');
  const a2 = await h.connect('alice');
  await a2.type('connected');
  t.equal((await a2.request('notifications:list')).error?.code, 'RATE_LIMITED', "alice's other connection shares her budget");
  const b = await h.connect('bob');
  await b.type('connected');
  t.equal((await b.request('notifications:list')).type, 'ack', 'bob has a budget of his own');
});

t.test('replays draw on the same budget: a resume at connect is charged (never refused), subscribe with since is refused past it', async (t) => {
  const h = await startServer(t, { historySize: 10, historyReadBytesPerS: 1024, historyReadBurstBytes: 40_000, rateLimitPerS: 1000, rateLimitBurst: 1000 });
  for (let i = 0; i < 10; i++) h.server.sendNotificationToUser('alice', big(i));
  for (let i = 0; i < 10; i++) await h.server.broadcastNewChapter({ storyId: '9', id: `c${i}`, title: 'x'.repeat(3000) });
  const first = await h.connect('alice');
  const epoch = (await first.type('connected')).data.topics['user:alice'].epoch as string;
  first.close();
  // ~31 KB replayed at connect: within the burst, and charged.
  const a = await Client.open(`${h.url}?token=${await sign('alice')}&since=${epoch}:0`);
  t.teardown(() => a.close());
  t.match((await a.type('connected')).data.topics['user:alice'], { recovered: true, replayed: 10 });
  const story = await a.request('subscribe', { topic: 'story:9', since: { epoch: 'none', offset: 0 } });
  t.equal(story.type, 'ack', 'a resume that replays nothing costs nothing');
  t.equal((await a.request('unsubscribe', { topic: 'story:9' })).type, 'ack');
  const storyEpoch = story.data.epoch as string;
  const outcomes: string[] = [];
  for (let i = 0; i < 10 && !outcomes.includes('RATE_LIMITED'); i++) {
    const r = await a.request('subscribe', { topic: 'story:9', since: { epoch: storyEpoch, offset: 0 } });
    outcomes.push(r.type === 'ack' ? `replayed ${r.data.replayed}` : r.error!.code);
    if (r.type === 'ack') await a.request('unsubscribe', { topic: 'story:9' });
  }
  t.same(outcomes, ['replayed 10', 'RATE_LIMITED'], "31 KB at connect + 31 KB of story spend 40 KB: the next replay is refused");
  const again = await a.request('subscribe', { topic: 'user:alice', since: { epoch, offset: 0 } });
  t.equal(again.error?.code, 'RATE_LIMITED', 'so is a replay of the personal topic');
  t.equal((await a.request('subscribe', { topic: 'story:9' })).type, 'ack', 'a subscribe without since reads no history: not refused');
});

t.test('a normal client under the defaults: a full inbox replayed, listed and three stories resumed, twice, never refused', async (t) => {
  const h = await startServer(t);
  for (let i = 0; i < 50; i++) h.server.sendNotificationToUser('alice', { ...big(i), message: 'x'.repeat(3500) });
  for (const s of ['1', '2', '3']) for (let i = 0; i < 20; i++) await h.server.broadcastNewChapter({ storyId: s, id: `c${i}`, title: 'x'.repeat(7000) });
  const first = await h.connect('alice');
  const epoch = (await first.type('connected')).data.topics['user:alice'].epoch as string;
  first.close();
  let bytes = 0;
  for (let round = 0; round < 2; round++) {
    const c = await Client.open(`${h.url}?token=${await sign('alice')}&since=${epoch}:0`);
    t.teardown(() => c.close());
    t.match((await c.type('connected')).data.topics['user:alice'], { recovered: true, replayed: 50 });
    const list = await c.request('notifications:list', { limit: 50 });
    t.equal(list.type, 'ack', `round ${round}: the inbox is listed`);
    bytes += 2 * JSON.stringify(list).length;
    for (const s of ['1', '2', '3']) {
      const r = await c.request('subscribe', { topic: `story:${s}`, since: { epoch: 'old', offset: 0 } });
      const resumed = await c.request('subscribe', { topic: `story:${s}`, since: { epoch: r.data.epoch, offset: 0 } });
      t.match(resumed, { type: 'ack', data: { recovered: true } }, `round ${round}: story ${s} resumed`);
    }
    c.close();
  }
  t.ok(bytes > 700_000, `the inbox alone sent ${bytes} bytes over the two rounds`);
});
