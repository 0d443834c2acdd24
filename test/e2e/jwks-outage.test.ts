// A JWKS endpoint in trouble is an outage, never the client's fault: UNAVAILABLE (503 / 4104), /readyz not ready
// until a key set was fetched, the cached set kept through an outage, the answer's size capped.
import { Writable } from 'node:stream';
import pino from 'pino';
import t from 'tap';
import WebSocket from 'ws';
import { Client, expectReject, startServer, type Harness } from '../helpers.js';
import { jwksServer, rsaKey, rsToken, type JwksMode } from '../jwks-server.js';

/** A pino logger whose lines a test reads back. */
function captured(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

/** The in-band refusal of an upgrade: [close code, reason]. */
function inBand(url: string): Promise<[number, string]> {
  const ws = new WebSocket(url, ['storywire.v1', 'storywire.close-on-refusal']);
  ws.on('error', () => {});
  return new Promise((r) => ws.on('close', (c, why) => r([c, why.toString()])));
}

const readyz = async (h: Harness) => {
  const res = await fetch(`http://127.0.0.1:${h.port}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string } };
};

/** Polls /readyz until it answers 200: bounded (the key set's first retry is 0.5 s after a failure). */
async function untilReady(h: Harness, deadlineMs = 10_000): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if ((await readyz(h)).status === 200) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

const broken: JwksMode[] = [503, 500, 302, 'garbage', 'not-a-set', 'too-big', 'too-big-streamed'];

for (const mode of broken) {
  t.test(`JWKS answering ${mode} before any key set was cached: a valid token is UNAVAILABLE, /readyz 503, then both recover`, async (t) => {
    const k1 = await rsaKey('k1');
    const jwks = await jwksServer(t, [k1.jwk], mode);
    const h = await startServer(t, { upgradeTimeoutMs: 3000 }, { JWT_SECRET: '', JWT_JWKS_URL: jwks.url });
    // The warm-up fetch is under way or failed already: either way this token cannot be checked.
    const token = await rsToken(k1, 'alice');
    const err = await expectReject(Client.open(`${h.url}?token=${token}`));
    t.equal(err.status, 503, 'HTTP 503, not 401');
    t.equal(err.body?.error?.code, 'UNAVAILABLE', `UNAVAILABLE (${err.body?.error?.message})`);
    const [code, reason] = await inBand(`${h.url}?token=${token}`);
    t.equal(code, 4104, 'in band: 4104, reconnect with backoff');
    t.match(reason, /^UNAVAILABLE: /);
    t.same(await readyz(h), { status: 503, body: { status: 'starting', reason: 'JWKS not fetched yet' } }, 'not ready before the first good fetch');
    t.equal((await fetch(`http://127.0.0.1:${h.port}/healthz`)).status, 200, 'alive all along');

    jwks.mode = 'ok';
    t.ok(await untilReady(h), 'ready once the endpoint answers a key set (retried by itself)');
    const c = await Client.open(`${h.url}?token=${token}`);
    t.teardown(() => c.close());
    t.equal((await c.type('connected')).data.userId, 'alice', 'the same token connects');
  });
}

t.test('a streamed oversized answer is cut while it is read (JWT_JWKS_MAX_BYTES), not read whole', async (t) => {
  const k1 = await rsaKey('k1');
  const jwks = await jwksServer(t, [k1.jwk], 'too-big-streamed');
  const cut = new Promise<number>((r) => jwks.events.once('cut', r));
  const h = await startServer(t, {}, { JWT_SECRET: '', JWT_JWKS_URL: jwks.url, JWT_JWKS_MAX_BYTES: '4096' });
  const chunks = await cut;
  t.ok(chunks < 512, `the reader went away after ${chunks} of 512 chunks of 64 KiB`);
  t.equal((await readyz(h)).status, 503);
});

t.test('warm-up: failures retried with a growing delay, each logged; ready after the first good fetch', async (t) => {
  const k1 = await rsaKey('k1');
  const jwks = await jwksServer(t, [k1.jwk], 503);
  const { logger, lines } = captured();
  const third = (async () => {
    for (let i = 0; i < 3; i++) await jwks.answered(503);
  })();
  const h = await startServer(t, {}, { JWT_SECRET: '', JWT_JWKS_URL: jwks.url }, { logger });
  t.equal((await readyz(h)).status, 503, 'not ready while the first fetch is under way or failed');
  await third;
  t.equal((await readyz(h)).status, 503, 'still not ready after three failures');
  jwks.mode = 'ok';
  t.ok(await untilReady(h), 'ready after the endpoint came back');
  const failed = lines.filter((l) => l['msg'] === 'JWKS fetch failed: no key set yet, every token is answered UNAVAILABLE');
  t.ok(failed.length >= 3, `each failure logged (${failed.length})`);
  t.same(failed.slice(0, 3).map((l) => [l['level'], l['failures'], l['retryInMs'], l['reason']]), [
    [40, 1, 500, 'answered HTTP 503, not 200'],
    [40, 2, 1000, 'answered HTTP 503, not 200'],
    [40, 3, 2000, 'answered HTTP 503, not 200'],
  ], 'warnings with the attempt, the next delay (doubling) and why');
  t.ok(lines.some((l) => l['msg'] === 'JWKS fetched again after failures'), 'the recovery logged');
  t.equal(jwks.requests >= 4, true, 'retried by itself, no traffic needed');
});

t.test('a cached key set survives an outage: known keys verify at once, an auth refresh stays possible', async (t) => {
  const k1 = await rsaKey('k1');
  const k2 = await rsaKey('k2');
  const jwks = await jwksServer(t, [k1.jwk]);
  // The set goes stale every 100 ms: each verification after it would wait for a fetch if it had to.
  const h = await startServer(t, { jwtJwksCacheMs: 100, upgradeTimeoutMs: 1500 }, { JWT_SECRET: '', JWT_JWKS_URL: jwks.url });
  t.ok(await untilReady(h));
  const alice = await Client.open(`${h.url}?token=${await rsToken(k1, 'alice')}`);
  t.teardown(() => alice.close());
  await alice.type('connected');

  jwks.mode = 'hang';
  await jwks.answered('hang');
  const started = Date.now();
  const bob = await Client.open(`${h.url}?token=${await rsToken(k1, 'bob')}`);
  t.teardown(() => bob.close());
  t.equal((await bob.type('connected')).data.userId, 'bob', 'a known key verifies while the endpoint hangs');
  t.ok(Date.now() - started < 1000, 'without waiting for the fetch under way');

  const refreshed = await alice.request('auth', { token: await rsToken(k1, 'alice') });
  t.equal(refreshed.type, 'ack', 'an auth refresh with a known key is acked during the outage');

  jwks.mode = 503;
  await jwks.answered(503);
  // k2 was rotated in during the outage: nobody can tell whether it exists.
  const rotated = await alice.request('auth', { token: await rsToken(k2, 'alice') });
  t.equal(rotated.error?.code, 'UNAVAILABLE', `a refresh whose kid cannot be looked up is UNAVAILABLE (${rotated.error?.message})`);
  t.equal((await alice.request('ping')).type, 'pong', 'and the connection stays');
  const err = await expectReject(Client.open(`${h.url}?token=${await rsToken(k2, 'carol')}`));
  t.match(err, { status: 503, body: { error: { code: 'UNAVAILABLE' } } }, 'the same kid at the upgrade: 503 UNAVAILABLE');

  jwks.keys = [k1.jwk, k2.jwk];
  jwks.mode = 'ok';
  await jwks.answered('ok');
  const carol = await Client.open(`${h.url}?token=${await rsToken(k2, 'carol')}`);
  t.teardown(() => carol.close());
  t.equal((await carol.type('connected')).data.userId, 'carol', 'the rotated key verifies once the set is fetched');
});

t.test('an unknown kid right after a good fetch is TOKEN_INVALID (the set is current), even with the endpoint down', async (t) => {
  const k1 = await rsaKey('k1');
  const rogue = await rsaKey('k9');
  const jwks = await jwksServer(t, [k1.jwk]);
  const h = await startServer(t, {}, { JWT_SECRET: '', JWT_JWKS_URL: jwks.url });
  t.ok(await untilReady(h));
  await jwks.stop();
  const err = await expectReject(Client.open(`${h.url}?token=${await rsToken(rogue, 'mallory')}`));
  t.match(err, { status: 401, body: { error: { code: 'TOKEN_INVALID' } } }, 'within the 30 s cooldown no fetch is tried: refused');
  const ok = await Client.open(`${h.url}?token=${await rsToken(k1, 'alice')}`);
  t.teardown(() => ok.close());
  t.equal((await ok.type('connected')).data.userId, 'alice');
});
