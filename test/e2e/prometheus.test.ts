// ops/ against the real tools: promtool checks and unit-tests the alert rules, then a real Prometheus scrapes a
// storywire node on loopback, loads the rules (each evaluates without error, over metric names that exist) and
// answers every query of the Grafana dashboard with data.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { skipUnlessRequired } from '../ci-require.js';
import { reservePort } from '../client/util.js';
import { Client, expectReject, sign, startServer } from '../helpers.js';

const OPS = fileURLToPath(new URL('../../ops/', import.meta.url));
const RULES = join(OPS, 'prometheus/storywire-alerts.yml');
const DASHBOARD = JSON.parse(readFileSync(join(OPS, 'grafana/storywire.json'), 'utf8'));
const KEY = 'prometheus-test-api-key-0123456789';
const JOB = 'storywire';
/** A busy 2-core machine may take this long to start Prometheus and gather two scrapes of everything. */
const DEADLINE_MS = 60_000;

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const skip = skipUnlessRequired('prometheus', has('prometheus') && has('promtool') ? false : 'prometheus or promtool not installed (apt-get install -y prometheus)');
if (skip) t.comment(`PROMETHEUS TESTS SKIPPED: ${skip}`);

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Every query of the dashboard, its Grafana variables given the values a test scrape has. */
function dashboardQueries(): { panel: string; expr: string }[] {
  const out: { panel: string; expr: string }[] = [];
  const visit = (panels: any[]) => {
    for (const p of panels) {
      for (const target of p.targets ?? []) out.push({ panel: p.title, expr: target.expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', JOB).replaceAll('$instance', '.*') });
      visit(p.panels ?? []);
    }
  };
  visit(DASHBOARD.panels);
  return out;
}

/** A backend proxy: allows `room:ok-*`, denies `room:no-*`, answers 500 (UNAVAILABLE) for anything else. */
async function backend(t: Teardown): Promise<string> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      const channel = String(JSON.parse(body).channel);
      if (channel.startsWith('room:ok-')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":true}');
      else if (channel.startsWith('room:no-')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":false,"reason":"no"}');
      else res.writeHead(500).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise((r) => server.close(r)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/authorize`;
}

/** A Prometheus scraping `target` every second, with the alert rules loaded; stopped by its PID. */
async function startPrometheus(t: Teardown, target: string): Promise<{ url: string; child: ChildProcess }> {
  const dir = mkdtempSync(join(tmpdir(), 'storywire-prometheus-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - ${JSON.stringify(RULES)}\nscrape_configs:\n  - job_name: ${JOB}\n    static_configs:\n      - targets: [${JSON.stringify(target)}]\n`;
  writeFileSync(join(dir, 'prometheus.yml'), config);
  const port = await reservePort();
  const args = [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'];
  const child = spawn('prometheus', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
  const url = `http://127.0.0.1:${port}`;
  await until(async () => {
    if (child.exitCode !== null) throw new Error(`prometheus exited ${child.exitCode}: ${err}`);
    return (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200;
  }, 'Prometheus ready');
  return { url, child };
}

/** Polls `ok` (bounded by DEADLINE_MS) until it holds. */
async function until(ok: () => Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + DEADLINE_MS;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out after ${DEADLINE_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function query(url: string, expr: string): Promise<{ status: string; result: unknown[]; error?: string }> {
  const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; data?: { result: unknown[] }; error?: string };
  return { status: body.status, result: body.data?.result ?? [], ...(body.error ? { error: body.error } : {}) };
}

t.test('promtool: the alert rules are valid and each fires on the series it is about', { skip }, async (t) => {
  const check = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
  t.equal(check.status, 0, `promtool check rules: ${check.stdout}${check.stderr}`);
  t.match(check.stdout, /SUCCESS: 11 rules found/);
  const unit = spawnSync('promtool', ['test', 'rules', 'storywire-alerts.test.yml'], { cwd: join(OPS, 'prometheus'), encoding: 'utf8' });
  t.equal(unit.status, 0, `promtool test rules: ${unit.stdout}${unit.stderr}`);
});

/** Traffic that makes every series of the dashboard exist and move: messages, publishes, refusals, closes, proxy decisions. */
async function traffic(t: Test, h: Awaited<ReturnType<typeof startServer>>): Promise<void> {
  const author = await h.connect('victor', { roles: ['stories:publish'] });
  const bob = await h.connect('bob');
  const bob2 = await h.connect('bob');
  await Promise.all([author.type('connected'), bob.type('connected'), bob2.type('connected')]);
  await author.request('ping');
  await author.request('story:published', { id: 1, title: 't' });
  await author.request('send:notification', { userId: 'bob', notification: { title: 'a', message: 'b' } });
  await bob.type('notification:received');
  author.send('not json');
  await author.type('error');
  await expectReject(Client.open(`${h.url}?token=${await sign('x', {}, -100)}`));
  t.equal((await bob.request('subscribe', { topic: 'room:ok-1' })).type, 'ack', 'a proxy allows');
  t.equal((await bob2.request('subscribe', { topic: 'room:ok-1' })).type, 'ack', 'the same decision from the cache');
  t.equal((await bob.request('subscribe', { topic: 'room:no-1' })).error?.code, 'TOPIC_FORBIDDEN', 'a proxy denies');
  t.equal((await bob.request('subscribe', { topic: 'room:down-1' })).error?.code, 'UNAVAILABLE', 'a proxy fails');
  bob2.close();
  await bob2.closed;
}

t.test('a real Prometheus scrapes a node: the rules evaluate and every dashboard query returns data', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'storywire-channels-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const channelsFile = join(dir, 'channels.json');
  writeFileSync(channelsFile, JSON.stringify({ namespaces: { room: { subscribe: { proxy: 'app' } } }, proxies: { app: { url: await backend(t), timeoutMs: 2000 } } }));
  const h = await startServer(t, { apiKey: KEY, adminPort: 0, channelsFile });
  const target = `127.0.0.1:${h.server.adminPort}`;
  const prom = await startPrometheus(t, target);
  await until(async () => (await query(prom.url, `up{job="${JOB}"} == 1`)).result.length === 1, 'the node scraped');
  // After the first scrape, so that the counters move between samples (a rate needs two of them).
  await traffic(t, h);
  // A series' first sample is not an increase: once Prometheus has the failure, one more makes its rate move.
  await until(async () => (await query(prom.url, 'storywire_proxy_requests_total{outcome="unavailable"}')).result.length > 0, 'the proxy failure scraped');
  const late = await h.connect('carol');
  t.equal((await late.request('subscribe', { topic: 'room:down-2' })).error?.code, 'UNAVAILABLE', 'a proxy fails again');

  const queries = dashboardQueries();
  t.ok(queries.length >= 20, `the dashboard's queries (${queries.length})`);
  const answers = new Map<string, Awaited<ReturnType<typeof query>>>();
  await until(async () => {
    for (const q of queries) if ((answers.get(q.expr)?.result.length ?? 0) === 0) answers.set(q.expr, await query(prom.url, q.expr));
    return [...answers.values()].every((a) => a.result.length > 0);
  }, 'every dashboard query to return data').catch(() => {});
  for (const q of queries) {
    const a = answers.get(q.expr)!;
    t.equal(a.status, 'success', `${q.panel}: ${q.expr} ${a.error ?? ''}`);
    t.ok(a.result.length > 0, `${q.panel}: ${q.expr} returns data`);
  }

  t.test('the dashboard variables find the node', async (t) => {
    for (const v of DASHBOARD.templating.list.filter((x: any) => x.type === 'query')) {
      const m = /^label_values\((.+), (\w+)\)$/.exec(v.query.query.replaceAll('$job', JOB));
      t.ok(m, `${v.name}: a label_values() query`);
      const res = (await (await fetch(`${prom.url}/api/v1/label/${m![2]}/values?match[]=${encodeURIComponent(m![1]!)}`)).json()) as { data: string[] };
      t.same(res.data, [v.name === 'job' ? JOB : target], `$${v.name}: ${v.query.query}`);
    }
  });

  t.test('every alert rule is loaded, evaluates without error, and names metrics the node exports', async (t) => {
    const rules = async () => ((await (await fetch(`${prom.url}/api/v1/rules`)).json()) as any).data.groups.flatMap((g: any) => g.rules) as any[];
    await until(async () => (await rules()).every((r) => r.lastEvaluation && !r.lastEvaluation.startsWith('0001')), 'every rule evaluated once').catch(() => {});
    const loaded = await rules();
    t.equal(loaded.length, 11);
    for (const r of loaded) t.equal(r.health, 'ok', `${r.name}: ${r.lastError ?? 'evaluated'}`);
    const names = new Set(loaded.flatMap((r) => [...String(r.query).matchAll(/\b(storywire_\w+|up)\b/g)].map((m) => m[1]!)));
    for (const name of names) t.ok((await query(prom.url, `count(${name})`)).result.length > 0, `${name} is scraped from the node`);
    t.same(loaded.filter((r) => r.state === 'firing').map((r) => r.name), [], 'nothing fires (every rule waits at least a minute)');
    // The failures the traffic made on purpose (2 of 4 proxy requests UNAVAILABLE) are seen from the real metrics.
    await until(async () => (await rules()).find((r) => r.name === 'StorywireProxyFailures')?.state === 'pending', 'StorywireProxyFailures pending').catch(() => {});
    t.equal((await rules()).find((r) => r.name === 'StorywireProxyFailures')?.state, 'pending', 'the proxy failure alert is pending');
    t.same((await rules()).filter((r) => r.state !== 'inactive').map((r) => r.name), ['StorywireProxyFailures'], 'and no other');
  });
});
