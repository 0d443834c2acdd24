// src/policy/proxy.ts against a real node:http backend playing the app: allow, deny, allow with info, slow,
// down, garbage, huge; the decision cache (hits, TTL, size bound, single flight) and the cap on requests in
// flight; and protocol.md's "Backend proxies" examples replayed against the backend.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { WAIT_MS } from './wait.js';
import { Registry } from 'prom-client';
import { BackendProxy, DEFAULT_REASON, MAX_ANSWER_BYTES, ProxyMetrics, decisionKey, type ProxyDecision } from '../src/policy/proxy.js';
import type { ProxySpec } from '../src/wire/channels-file.js';
import { ErrorCode, WireError } from '../src/wire/codes.js';

interface Tap {
  teardown(fn: () => unknown): void;
}

interface Seen {
  path: string;
  /** The client's port: one per connection. */
  port: number;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

type Answer = (req: Seen, res: http.ServerResponse) => void;

/** The app's backend: one answer per path, every request recorded; held answers are released or cut at teardown. */
async function backend(t: Tap, answers: Record<string, Answer>): Promise<{ url(path: string): string; seen: Seen[]; hits(path: string): number; held: http.ServerResponse[] }> {
  const seen: Seen[] = [];
  const held: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      const s = { path: req.url ?? '', port: req.socket.remotePort ?? 0, headers: req.headers, body };
      seen.push(s);
      const answer = answers[s.path];
      if (answer === undefined) res.writeHead(404).end();
      else answer(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  const port = (server.address() as AddressInfo).port;
  return { url: (path) => `http://127.0.0.1:${port}${path}`, seen, hits: (path) => seen.filter((s) => s.path === path).length, held };
}

const json = (status: number, doc: unknown): Answer => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(typeof doc === 'string' ? doc : JSON.stringify(doc));
};

function proxyOf(t: Tap, url: string, spec: Partial<ProxySpec> = {}, name = 'app'): BackendProxy {
  const p = new BackendProxy(name, { url, timeoutMs: 1000, cacheTtlMs: 30000, cacheMax: 100, maxInFlight: 16, headers: {}, ...spec });
  t.teardown(() => p.close());
  return p;
}

const body = { user: 'alice', channel: 'story:42', connection: { id: 'n1-1', ip: '127.0.0.1' } };

async function unavailable(p: Promise<unknown>): Promise<WireError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof WireError && err.code === ErrorCode.UNAVAILABLE) return err;
    throw err;
  }
  throw new Error('expected UNAVAILABLE, got a decision');
}

async function until(ok: () => boolean | Promise<boolean>, what: string, ms = WAIT_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

t.test('the request: POST, JSON with kind first and the caller body, the configured headers', async (t) => {
  const b = await backend(t, { '/allow': json(200, { allow: true }) });
  const p = proxyOf(t, b.url('/allow'), { headers: { authorization: 'Bearer app-secret', 'x-app': 'storywire' } });
  t.same(await p.ask('subscribe', body), { allow: true });
  const s = b.seen[0]!;
  t.same(s.body, { kind: 'subscribe', ...body });
  t.equal(Object.keys(s.body as object)[0], 'kind', 'kind comes first');
  t.equal(s.headers['content-type'], 'application/json');
  t.equal(s.headers['authorization'], 'Bearer app-secret');
  t.equal(s.headers['x-app'], 'storywire');
  await p.ask('notify', { ...body, kind: 'publish', recipient: 'bob' });
  t.same(b.seen[1]!.body, { kind: 'notify', ...body, recipient: 'bob' }, 'a caller body cannot change the kind');
});

t.test('answers: allow, allow with info and data, deny with and without a reason', async (t) => {
  const b = await backend(t, {
    '/allow': json(200, { allow: true }),
    '/info': json(200, { allow: true, info: { tier: 'premium' }, data: { title: 'rewritten' } }),
    '/deny': json(200, { allow: false, reason: 'blocked by bob' }),
    '/deny-bare': json(200, { allow: false }),
  });
  t.same(await proxyOf(t, b.url('/allow')).ask('subscribe', body), { allow: true });
  t.same(await proxyOf(t, b.url('/info')).ask('publish', body), { allow: true, info: { tier: 'premium' }, data: { title: 'rewritten' } });
  t.same(await proxyOf(t, b.url('/deny')).ask('subscribe', body), { allow: false, reason: 'blocked by bob' });
  t.same(await proxyOf(t, b.url('/deny-bare')).ask('subscribe', body), { allow: false, reason: DEFAULT_REASON });
});

t.test('no decision is UNAVAILABLE naming the proxy, never an allow: garbage, wrong shapes, other statuses', async (t) => {
  const cases: [string, Answer, RegExp][] = [
    ['/not-json', json(200, 'allow'), /not JSON/],
    ['/empty', json(200, ''), /not JSON/],
    ['/array', json(200, [true]), /boolean "allow"/],
    ['/string-allow', json(200, { allow: 'true' }), /boolean "allow"/],
    ['/no-allow', json(200, { ok: true }), /boolean "allow"/],
    ['/bad-info', json(200, { allow: true, info: 'premium' }), /"info"/],
    ['/bad-data', json(200, { allow: true, data: [1] }), /"data"/],
    ['/bad-reason', json(200, { allow: false, reason: 7 }), /"reason"/],
    ['/long-reason', json(200, { allow: false, reason: 'x'.repeat(201) }), /"reason"/],
    ['/500', json(500, { allow: true }), /HTTP 500/],
    ['/201', json(201, { allow: true }), /HTTP 201/],
    ['/redirect', (_r, res) => res.writeHead(302, { location: '/allow' }).end(), /HTTP 302/],
  ];
  const b = await backend(t, Object.fromEntries(cases.map(([path, answer]) => [path, answer])));
  for (const [path, , why] of cases) {
    const err = await unavailable(proxyOf(t, b.url(path), {}, 'follows').ask('subscribe', body, `k${path}`));
    t.match(err.message, /^backend proxy "follows" /, `${path}: names the proxy`);
    t.match(err.message, why, `${path}: ${err.message}`);
    t.notMatch(err.message, /127\.0\.0\.1/, `${path}: not the URL`);
    t.equal(err.status, 503);
  }
  t.same(await proxyOf(t, b.url('/long-reason').replace('long-', 'no-such-'), {}).ask('subscribe', body).catch((e: WireError) => e.code), ErrorCode.UNAVAILABLE, '404');
});

t.test('a body over 64 KiB is UNAVAILABLE, with or without a content-length', async (t) => {
  const huge = JSON.stringify({ allow: true, info: { pad: 'x'.repeat(MAX_ANSWER_BYTES) } });
  const fits = JSON.stringify({ allow: true, info: { pad: 'x'.repeat(MAX_ANSWER_BYTES - 32) } });
  const b = await backend(t, {
    '/huge': json(200, huge),
    '/huge-chunked': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(huge.slice(0, 40000));
      res.end(huge.slice(40000));
    },
    '/just-fits': json(200, fits),
  });
  t.equal(Buffer.byteLength(fits), MAX_ANSWER_BYTES);
  t.match((await unavailable(proxyOf(t, b.url('/huge')).ask('subscribe', body))).message, /more than 65536 bytes/);
  t.match((await unavailable(proxyOf(t, b.url('/huge-chunked')).ask('subscribe', body))).message, /more than 65536 bytes/);
  t.equal((await proxyOf(t, b.url('/just-fits')).ask('subscribe', body)).allow, true, 'at the limit it is an answer');
});

t.test('a backend slower than timeoutMs is UNAVAILABLE after the timeout, and its request is given up', async (t) => {
  const b = await backend(t, { '/slow': () => {} });
  const p = proxyOf(t, b.url('/slow'), { timeoutMs: 100 }, 'follows');
  const started = Date.now();
  const err = await unavailable(p.ask('subscribe', body, 'k'));
  const took = Date.now() - started;
  t.match(err.message, /backend proxy "follows" did not answer within 100 ms/);
  t.ok(took >= 95 && took < 1500, `rejected after the timeout (${took} ms)`);
  t.equal(p.inFlight, 0, 'the request no longer counts in flight');
  t.equal(p.cached, 0, 'no decision cached');
});

t.test('a backend that is down (connection refused) is UNAVAILABLE at once', async (t) => {
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const p = proxyOf(t, `http://127.0.0.1:${port}/authorize`, { timeoutMs: 5000 });
  const err = await unavailable(p.ask('subscribe', body, 'k'));
  t.match(err.message, /could not be reached \(ECONNREFUSED\)/);
  t.equal(p.cached, 0);
});

t.test('a backend that cuts the connection mid-answer is UNAVAILABLE', async (t) => {
  const b = await backend(t, {
    '/cut': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"allow":tr');
      res.socket?.destroy();
    },
  });
  t.match((await unavailable(proxyOf(t, b.url('/cut')).ask('subscribe', body))).message, /closed the connection|could not be reached/);
});

t.test('decision cache: allow and deny reused per key, UNAVAILABLE never cached, no key never cached', async (t) => {
  let down = true;
  const b = await backend(t, {
    '/allow': json(200, { allow: true, info: { n: 1 } }),
    '/deny': json(200, { allow: false, reason: 'no' }),
    '/flaky': (req, res) => (down ? json(503, {}) : json(200, { allow: true }))(req, res),
  });
  const allow = proxyOf(t, b.url('/allow'));
  for (let i = 0; i < 3; i++) t.same(await allow.ask('subscribe', body, 'alice story:42'), { allow: true, info: { n: 1 } });
  t.equal(b.hits('/allow'), 1, 'an allow is asked once');
  await allow.ask('subscribe', body, 'bob story:42');
  t.equal(b.hits('/allow'), 2, 'another key is asked');
  await allow.ask('publish', body);
  await allow.ask('publish', body);
  t.equal(b.hits('/allow'), 4, 'without a key every ask goes to the backend');

  const deny = proxyOf(t, b.url('/deny'));
  for (let i = 0; i < 3; i++) t.same(await deny.ask('subscribe', body, 'k'), { allow: false, reason: 'no' });
  t.equal(b.hits('/deny'), 1, 'a deny is cached too');

  const flaky = proxyOf(t, b.url('/flaky'));
  await unavailable(flaky.ask('subscribe', body, 'k'));
  await unavailable(flaky.ask('subscribe', body, 'k'));
  t.equal(b.hits('/flaky'), 2, 'UNAVAILABLE is not cached: asked again');
  down = false;
  t.same(await flaky.ask('subscribe', body, 'k'), { allow: true }, 'the backend is back: a decision');
});

t.test('forget and clear drop decisions (revocation); an answer in flight when forgotten is not cached', async (t) => {
  const b = await backend(t, {
    '/allow': json(200, { allow: true }),
    '/held': (_req, res) => {
      b.held.push(res);
    },
  });
  const p = proxyOf(t, b.url('/allow'));
  const key = decisionKey('subscribe', 'alice', 'story:42');
  t.equal(key, 'subscribe alice story:42');
  await p.ask('subscribe', body, key);
  p.forget(key);
  await p.ask('subscribe', body, key);
  t.equal(b.hits('/allow'), 2, 'forgotten: asked again');
  await p.ask('subscribe', body, 'other');
  p.clear();
  await p.ask('subscribe', body, key);
  await p.ask('subscribe', body, 'other');
  t.equal(b.hits('/allow'), 5, 'cleared: every key asked again');

  const h = proxyOf(t, b.url('/held'));
  const asked = h.ask('subscribe', body, key);
  await until(() => b.held.length === 1, 'the held request');
  h.forget(key);
  b.held[0]!.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":true}');
  t.same(await asked, { allow: true }, 'the waiting ask still gets its answer');
  const again = h.ask('subscribe', body, key);
  await until(() => b.held.length === 2, 'a new request after the forget');
  b.held[1]!.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":false}');
  t.same(await again, { allow: false, reason: DEFAULT_REASON }, 'the answer that came in while forgotten was not cached');
});

t.test('decisions expire after cacheTtlMs', async (t) => {
  const b = await backend(t, { '/allow': json(200, { allow: true }) });
  const p = proxyOf(t, b.url('/allow'), { cacheTtlMs: 50 });
  await p.ask('subscribe', body, 'k');
  await p.ask('subscribe', body, 'k');
  t.equal(b.hits('/allow'), 1, 'cached within the TTL');
  await until(async () => {
    await p.ask('subscribe', body, 'k');
    return b.hits('/allow') === 2;
  }, 'the backend asked again once the decision expired');
  t.pass('asked again after the TTL');

  const never = proxyOf(t, b.url('/allow'), { cacheTtlMs: 0 });
  await never.ask('subscribe', body, 'k');
  await never.ask('subscribe', body, 'k');
  t.equal(b.hits('/allow'), 4, 'cacheTtlMs 0: never cached');
  t.equal(never.cached, 0);
});

t.test('the cache holds at most cacheMax decisions, the oldest dropped first', async (t) => {
  const b = await backend(t, { '/allow': json(200, { allow: true }) });
  const p = proxyOf(t, b.url('/allow'), { cacheMax: 2 });
  await p.ask('subscribe', body, 'a');
  await p.ask('subscribe', body, 'b');
  await p.ask('subscribe', body, 'c');
  t.equal(p.cached, 2, 'bounded');
  t.equal(b.hits('/allow'), 3);
  await p.ask('subscribe', body, 'c');
  await p.ask('subscribe', body, 'b');
  t.equal(b.hits('/allow'), 3, 'the newest two are cached');
  await p.ask('subscribe', body, 'a');
  t.equal(b.hits('/allow'), 4, 'the oldest was dropped: asked again');
  t.equal(p.cached, 2);
});

t.test('single flight: concurrent asks for one key share one request', async (t) => {
  const b = await backend(t, {
    '/held': (_req, res) => {
      b.held.push(res);
    },
  });
  const p = proxyOf(t, b.url('/held'));
  const asks = Array.from({ length: 5 }, () => p.ask('subscribe', body, 'alice story:42'));
  const other = p.ask('subscribe', body, 'bob story:42');
  await until(() => b.held.length === 2, 'the two requests');
  t.equal(p.inFlight, 2, 'one request per key');
  for (const res of b.held) res.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":true,"info":{"shared":1}}');
  for (const d of await Promise.all(asks)) t.same(d, { allow: true, info: { shared: 1 } });
  t.same(await other, { allow: true, info: { shared: 1 } });
  t.equal(b.hits('/held'), 2, 'five asks, one request');
});

t.test('single flight shares a failure too, and the next ask tries again', async (t) => {
  const b = await backend(t, { '/slow': () => {} });
  const p = proxyOf(t, b.url('/slow'), { timeoutMs: 80 });
  const errs = await Promise.all([p.ask('subscribe', body, 'k'), p.ask('subscribe', body, 'k')].map(unavailable));
  t.equal(errs.length, 2);
  t.equal(b.hits('/slow'), 1, 'one request for both');
  await unavailable(p.ask('subscribe', body, 'k'));
  t.equal(b.hits('/slow'), 2, 'the failure was not kept');
});

t.test('more than maxInFlight requests at once: UNAVAILABLE at once (overloaded), no queue', async (t) => {
  const b = await backend(t, {
    '/held': (_req, res) => {
      b.held.push(res);
    },
  });
  const registry = new Registry();
  const p = proxyOf(t, b.url('/held'), { maxInFlight: 2 }, 'follows');
  const metered = new BackendProxy('metered', { ...p.spec }, { metrics: new ProxyMetrics(registry) });
  t.teardown(() => metered.close());
  const first = [p.ask('subscribe', body, 'a'), p.ask('publish', body)];
  await until(() => b.held.length === 2, 'two requests held');
  const started = Date.now();
  const err = await unavailable(p.ask('subscribe', body, 'c'));
  t.match(err.message, /backend proxy "follows" is overloaded \(2 requests in flight\)/);
  t.ok(Date.now() - started < 50, 'refused at once');
  t.equal(b.held.length, 2, 'the refused ask never reached the backend');
  const sharing = p.ask('subscribe', body, 'a');
  for (const res of b.held.splice(0)) res.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":true}');
  await Promise.all(first);
  t.same(await sharing, { allow: true }, 'at the cap, an ask that shares a request in flight is not refused');
  t.equal(p.inFlight, 0);
  const later = p.ask('subscribe', body, 'c');
  await until(() => b.held.length === 1, 'a new request once under the cap');
  b.held[0]!.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":true}');
  t.same(await later, { allow: true }, 'under the cap again: asked');

  // Metrics: requests by proxy, kind and outcome, and the latency histogram.
  b.held.length = 0;
  const m = metered.ask('subscribe', body);
  await until(() => b.held.length === 1, 'the metered request');
  b.held[0]!.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":false}');
  await m;
  const text = await registry.metrics();
  t.match(text, /storywire_proxy_requests_total\{proxy="metered",kind="subscribe",outcome="deny"\} 1/);
  t.match(text, /storywire_proxy_request_seconds_count\{proxy="metered",kind="subscribe"\} 1/);
});

t.test('a kept-alive connection is reused for the next request', async (t) => {
  const b = await backend(t, { '/allow': json(200, { allow: true }) });
  const p = proxyOf(t, b.url('/allow'));
  for (let i = 0; i < 5; i++) await p.ask('subscribe', body);
  t.equal(new Set(b.seen.map((s) => s.port)).size, 1, 'five requests in a row, one connection');
});

t.test("protocol.md's Backend proxies examples, replayed against a real backend", async (t) => {
  const doc = readFileSync(new URL('../protocol.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## 12. Backend proxies'));
  t.ok(section.length > 100, 'the section exists');
  const requests = [...section.matchAll(/```json proxy-request\n(.*)\n```/g)].map((m) => JSON.parse(m[1]!) as Record<string, unknown>);
  const answers = [...section.matchAll(/```json proxy-answer (allow|deny|unavailable)\n(.*)\n```/g)].map((m) => ({ outcome: m[1]!, text: m[2]! }));
  t.ok(requests.length >= 2, `request examples (${requests.length})`);
  t.ok(answers.filter((a) => a.outcome === 'allow').length >= 2 && answers.some((a) => a.outcome === 'deny') && answers.some((a) => a.outcome === 'unavailable'), 'answer examples of each outcome');

  let current = '';
  const b = await backend(t, { '/app': (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(current) });
  const p = proxyOf(t, b.url('/app'), { cacheTtlMs: 0 });
  for (const request of requests) {
    const { kind, ...rest } = request;
    current = '{"allow":true}';
    await p.ask(kind as 'subscribe', rest);
    t.same(b.seen.at(-1)!.body, request, `the backend receives the documented request (${kind})`);
  }
  for (const { outcome, text } of answers) {
    current = text;
    const expected = JSON.parse(text) as Record<string, unknown>;
    if (outcome === 'unavailable') {
      await unavailable(p.ask('subscribe', body));
      t.pass(`${text} -> UNAVAILABLE`);
      continue;
    }
    const d: ProxyDecision = await p.ask('subscribe', body);
    t.equal(d.allow, outcome === 'allow', `${text} -> ${outcome}`);
    if (d.allow) {
      t.same(d.info, expected['info'], 'info passed on');
      t.same(d.data, expected['data'], 'data passed on');
    } else t.equal(d.reason, expected['reason'] ?? DEFAULT_REASON, 'the reason, or the default');
  }
});
