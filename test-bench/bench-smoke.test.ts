// The bench's CI smoke run: every scenario against all three servers with tiny sizes, so the scripts never
// rot. It checks that every JSON line parses and carries the documented fields with sane values (counts
// that must match do); it never asserts performance. Not part of `npm test`: `npm run test:bench` (a step
// of .ci/run of its own) builds dist/ and runs this folder.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SCHEMA, SCENARIOS, type Result } from '../bench/lib/report.js';
import { SERVER_KINDS } from '../bench/lib/wire.js';
import { skipUnlessRequired } from '../test/ci-require.js';

const ROOT = join(import.meta.dirname, '..');

const VARIANTS: Record<string, string[]> = {
  connect: ['n=20'],
  fanout: ['max-rate', 'one-at-a-time'],
  notify: ['steps'],
  ping: ['idle', 'under-fanout'],
};

function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env['NODE_OPTIONS'];
    delete env['NODE_V8_COVERAGE'];
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    // The bench kills its own servers and workers on SIGTERM; SIGKILL if it hangs anyway.
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    const hard = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 5000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      clearTimeout(hard);
      resolve({ code, stdout, stderr });
    });
  });
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

t.test('bench smoke: every scenario against every server', async (t) => {
  if (!existsSync(join(ROOT, 'dist', 'main.js'))) {
    // NODE_OPTIONS unset: tap instruments node children with loaders the TypeScript 7 compiler cannot run under.
    const env = { ...process.env };
    delete env['NODE_OPTIONS'];
    const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, env, encoding: 'utf8' });
    t.equal(build.status, 0, `npm run build: ${build.stderr}`);
  }
  const { code, stdout, stderr } = await runBench(['all', '--smoke'], 90_000);
  t.equal(code, 0, `bench exit code (stderr tail: ${stderr.slice(-2000)})`);

  const lines = stdout.split('\n').filter((l) => l.startsWith('{'));
  const results = lines.map((l) => JSON.parse(l) as Result);
  t.equal(results.length, SERVER_KINDS.length * Object.values(VARIANTS).flat().length, 'one JSON line per scenario variant and server');
  t.match(stdout, /\| scenario \| figure \| raw uWS\.js \| storywire \| Socket\.IO seed \|/, 'a summary table at the end');

  for (const r of results) {
    const where = `${r.scenario}/${r.variant}/${r.server?.kind}`;
    t.equal(r.schema, SCHEMA, `${where}: schema`);
    t.ok((SCENARIOS as readonly string[]).includes(r.scenario), `${where}: scenario`);
    t.ok(VARIANTS[r.scenario]?.includes(r.variant), `${where}: variant`);
    t.ok((SERVER_KINDS as readonly string[]).includes(r.server.kind) && r.server.version.length > 0, `${where}: server`);
    t.match(r.machine, { node: process.version, cpu: String, cores: Number, platform: 'linux', arch: String }, `${where}: machine`);
    t.ok(r.machine.cores > 0, `${where}: cores`);
    t.type(r.params, 'object', `${where}: params`);
    t.ok(Object.values(r.figures).every((v) => typeof v === 'number' || v === null), `${where}: figures are numbers`);
    t.ok(isNum(r.cpu.wallS) && r.cpu.wallS > 0, `${where}: wall time`);
    t.ok(isNum(r.cpu.serverCpuS) && r.cpu.serverCpuS >= 0 && isNum(r.cpu.clientCpuS) && r.cpu.clientCpuS >= 0, `${where}: cpu seconds`);
    t.ok(isNum(r.cpu.serverPct) && isNum(r.cpu.clientPct), `${where}: cpu %`);
    t.ok(r.cpu.bound === 'client-bound' || r.cpu.bound === 'server-bound', `${where}: bound`);
    t.same(r.errors, [], `${where}: no errors`);
    t.equal(r.ok, true, `${where}: ok`);
    t.equal(r.run, 1, `${where}: run`);
    const f = r.figures;
    switch (r.scenario) {
      case 'connect':
        t.equal(f['connections'], 20, `${where}: all connections held`);
        t.equal(f['failed'], 0, `${where}: no failed handshake`);
        t.ok(isNum(f['handshakesPerSec']) && f['handshakesPerSec']! > 0, `${where}: handshakes/s`);
        t.ok(isNum(f['serverCpuUsPerHandshake']) && f['serverCpuUsPerHandshake']! >= 0, `${where}: cpu per handshake`);
        t.ok(isNum(f['rssPerConnKiB']) && isNum(f['projected1MGiB']) && f['rssAfterMiB']! > 0, `${where}: memory figures`);
        break;
      case 'fanout':
        t.equal(f['subscribers'], 20, `${where}: subscribers`);
        t.ok(f['broadcasts']! > 0, `${where}: broadcasts`);
        t.equal(f['lost'], 0, `${where}: nothing lost`);
        t.equal(f['delivered'], f['broadcasts']! * 20, `${where}: every broadcast reached every subscriber once`);
        t.equal(f['delivered'], f['expected'], `${where}: delivered = expected`);
        t.ok(isNum(f['serverCpuSecPerMillion']) && isNum(f['p50Ms']) && isNum(f['p99Ms']) && f['p99Ms']! >= f['p50Ms']!, `${where}: cpu and latency`);
        break;
      case 'notify': {
        t.equal(f['users'], 20, `${where}: users`);
        const steps = (r.detail as { steps: { rate: number; sent: number; delivered: number; p99Ms: number }[] }).steps;
        t.ok(steps.length >= 1 && steps.length === f['stepsRun'], `${where}: steps`);
        for (const s of steps) t.equal(s.delivered, s.sent, `${where}: every notification at ${s.rate}/s delivered once`);
        t.ok(isNum(f['maxRateP99Under50ms']), `${where}: max rate`);
        break;
      }
      case 'ping':
        t.equal(f['connections'], 20, `${where}: connections`);
        t.ok(f['pings']! > 0, `${where}: pings sent`);
        t.equal(f['pongs'], f['pings'], `${where}: every ping answered`);
        t.ok(isNum(f['p50Ms']) && isNum(f['p99Ms']), `${where}: rtt`);
        break;
    }
  }
  for (const kind of SERVER_KINDS) {
    for (const [scenario, variants] of Object.entries(VARIANTS)) {
      for (const variant of variants) {
        t.ok(results.some((r) => r.server.kind === kind && r.scenario === scenario && r.variant === variant), `${scenario}/${variant} ran against ${kind}`);
      }
    }
  }
});

t.test('bench smoke: proxy, subscribes and publishes through the backend proxies against the rules without a backend', async (t) => {
  const { code, stdout, stderr } = await runBench(['proxy', '--smoke'], 60_000);
  t.equal(code, 0, `exit code (stderr tail: ${stderr.slice(-2000)})`);
  const results = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Result);
  const variants = [
    ...['subscribe-cold', 'subscribe-cached'].flatMap((p) => [`${p}/proxy`, `${p}/public`]),
    ...['publish-max-rate', 'publish-one-at-a-time'].flatMap((p) => [`${p}/proxy`, `${p}/permission`]),
  ];
  t.same(results.map((r) => r.variant).sort(), [...variants].sort(), 'one JSON line per measurement and rule');
  t.match(stdout, /\| measurement \| figure \| proxy \| without backend \| ratio \| added \|/, 'the comparison table at the end');
  for (const r of results) {
    const where = `proxy/${r.variant}`;
    t.match(r, { schema: SCHEMA, scenario: 'proxy', run: 1, ok: true, server: { kind: 'storywire', version: /^storywire \d/ } }, `${where}: envelope`);
    t.same(r.errors, [], `${where}: no errors`);
    t.match(r.machine, { node: process.version, cores: Number, platform: 'linux' }, `${where}: machine`);
    t.ok(Object.values(r.figures).every((v) => typeof v === 'number' || v === null), `${where}: figures are numbers`);
    t.ok(isNum(r.cpu.wallS) && r.cpu.wallS > 0, `${where}: wall time`);
    const f = r.figures;
    if (r.variant.startsWith('subscribe-')) {
      t.same([f['subscribes'], f['failed']], [20, 0], `${where}: 10 clients x 2 channels subscribed, none failed`);
      // The proxy is asked once per cold subscribe, never again within cacheTtlMs; the public rule never.
      t.equal(f['backendRequests'], r.variant === 'subscribe-cold/proxy' ? 20 : 0, `${where}: backend requests`);
      t.ok(isNum(f['subscribesPerSec']) && isNum(f['p50Ms']) && f['p99Ms']! >= f['p50Ms']!, `${where}: rate and latency`);
    } else {
      t.ok(f['publishes']! > 0 && f['failed'] === 0, `${where}: publishes acked and received, none failed`);
      // publish decisions are never cached: one backend request per publish through the proxy.
      t.equal(f['backendRequests'], r.variant.endsWith('/proxy') ? f['publishes'] : 0, `${where}: backend requests`);
      t.ok(isNum(f['ackP50Ms']) && isNum(f['receiptP99Ms']) && f['receiptP99Ms']! >= f['receiptP50Ms']!, `${where}: latencies`);
    }
  }
  for (const args of [['proxy', '--per-client', '101'], ['proxy', '--inflight', '1000'], ['proxy', '--clients', '0'], ['proxy', '--servers', 'uws']]) {
    const bad = await runBench(args, 20_000);
    t.equal(bad.code, 2, `${args.join(' ')}: exit code 2`);
    t.match(bad.stderr, /--(per-client|inflight|clients|servers)/, `${args.join(' ')}: names the option`);
  }
});

// The stand-alone scenarios (their own scripts behind the same command), with tiny sizes.
const lines = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, any>);
/** What every stand-alone line carries: the machine, the server under test and the parameters. */
function described(t: Test, l: Record<string, any>, params: Record<string, unknown>): void {
  t.match(l['machine'], { node: process.version, cpu: String, cores: Number, platform: 'linux' }, `${l['bench']}: machine`);
  t.match(l['server'], { kind: 'storywire', version: /^storywire \d/ }, `${l['bench']}: server`);
  t.match(l['params'], params, `${l['bench']}: parameters`);
}

t.test('bench smoke: soak samples the server and sums up', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'storywire-bench-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'out', 'soak.jsonl');
  const { code, stdout, stderr } = await runBench(['soak', '--clients', '10', '--duration', '2', '--sample', '1', '--out', file], 30_000);
  t.equal(code, 0, `exit code (stderr tail: ${stderr.slice(-2000)})`);
  const out = lines(stdout);
  t.same(lines(readFileSync(file, 'utf8')), out, '--out FILE holds the same JSON lines');
  const samples = out.filter((l) => l['sample']);
  t.equal(samples.length, 2, 'one sample a second');
  for (const s of samples) t.ok(s['sample'].rssKiB > 0 && s['sample'].heapUsed > 0, 'server RSS and heap sampled');
  for (const l of out) described(t, l, { clients: 10, durationS: 2, sampleS: 1 });
  const summary = out.find((l) => !l['sample']);
  t.match(summary, { bench: 'soak', secondHalfRssGrowthKiB: Number, heapUsedMiB: { min: Number, max: Number } }, 'a summary line after the samples');
  t.ok(summary!['sent'] > 0 && summary!['received'] > 0, 'traffic went both ways');
  t.equal(summary!['rssKiB'].last, samples[1]!['sample'].rssKiB, 'summary of the samples');
});

t.test('bench smoke: cluster, one node against two over Redis, nothing lost (stories and notifications)', async (t) => {
  for (const mode of ['stories', 'notify']) {
    const { code, stdout, stderr } = await runBench(['cluster', '--mode', mode, '--clients', '6', '--seconds', '0.5', '--batch', '4'], 60_000);
    t.equal(code, 0, `${mode}: exit code (stderr tail: ${stderr.slice(-2000)})`);
    const out = lines(stdout);
    t.equal(out.length, 2, `${mode}: one line per setup`);
    t.same(out.map((l) => l['processes']), [1, 3], `${mode}: 1 node; 2 nodes and redis-server`);
    for (const l of out) {
      described(t, l, { mode, clients: 6, seconds: 0.5, batch: 4 });
      t.ok(l['published'] > 0, `${mode}, ${l['scenario']}: published`);
      // Stories reach every client once; a notification its one user's one connection.
      t.equal(l['delivered'], l['published'] * (mode === 'stories' ? 6 : 1), `${mode}, ${l['scenario']}: every event reached its audience once`);
      t.equal(l['lost'], 0, `${mode}, ${l['scenario']}: nothing lost`);
      t.ok(Number.isFinite(l['serverCpuSecondsPerMillion']) && l['serverCpuSecondsPerMillion'] > 0, `${mode}, ${l['scenario']}: CPU per million`);
    }
    t.equal(out[0]!['redisCpuSecondsPerMillion'], 0, `${mode}: no redis-server for one node`);
    t.ok(out[1]!['redisCpuSecondsPerMillion'] >= 0, `${mode}: redis-server's share reported`);
  }
});

t.test('bench smoke: recovery, SDK resume against a naive reconnect', async (t) => {
  const args = ['recovery', '--clients', '8', '--duration', '1.5', '--rate', '40', '--every', '200', '--share', '0.25', '--away', '100', '--settle', '3000'];
  const { code, stdout, stderr } = await runBench(args, 60_000);
  t.equal(code, 0, `exit code (stderr tail: ${stderr.slice(-2000)})`);
  const out = lines(stdout);
  t.same(out.map((l) => l['scenario']), ['resume', 'naive'], 'both scenarios, in order');
  for (const l of out) described(t, l, { clients: 8, ratePerS: 40 });
  const [resume, naive] = out.map((l) => l['result']);
  t.ok(resume.published > 0 && resume.cuts > 0, 'notifications flowed and sockets were cut');
  t.equal(resume.missing, 0, 'resume: nothing missing');
  t.equal(resume.duplicates, 0, 'resume: no duplicate');
  t.equal(resume.outOfOrder, 0, 'resume: in order');
  t.equal(naive.delivered + naive.missing, naive.published, 'naive: every notification is delivered or counted missing');
});

t.test('bench smoke: chaos-cluster, socket resets against 2 nodes + redis-server behind the proxy', { skip: skipUnlessRequired('redis', spawnSync('sh', ['-c', 'command -v redis-server']).status === 0 ? false : 'needs redis-server on PATH') }, async (t) => {
  const args = ['chaos-cluster', '--variants', 'resets', '--users', '4', '--duration', '2', '--rate', '5', '--every', '300', '--share', '0.25', '--settle', '5000'];
  const { code, stdout, stderr } = await runBench(args, 60_000);
  t.equal(code, 0, `exit code (stderr tail: ${stderr.slice(-2000)})`);
  const out = lines(stdout);
  t.equal(out.length, 1, 'one line per run');
  const l = out[0]!;
  described(t, l, { users: 4, durationS: 2, ratePerS: 5 });
  t.match(l, { bench: 'chaos-cluster', variant: 'resets', run: 1, ok: true });
  const r = l['result'];
  t.ok(r.published > 0 && r.acked === r.published && r.resets > 0, 'notifications flowed and sockets were reset');
  t.equal(r.delivered, r.expected, 'every acked notification reached every device of its user');
  t.same([r.missing, r.duplicates, r.retryDuplicates, r.outOfOrder, r.falseOffline, r.storesDiffer], [0, 0, 0, 0, 0, 0], 'the zeros');
  t.equal(r.storesChecked, 4, 'every SDK store compared');
});

t.test('bench smoke: chat through the publish proxy against chat without a backend and the generic publish, 1 node and 2 + Redis', { skip: skipUnlessRequired('redis', spawnSync('sh', ['-c', 'command -v redis-server']).status === 0 ? false : 'needs redis-server on PATH') }, async (t) => {
  const { code, stdout, stderr } = await runBench(['chat', '--messages', '40', '--pairs', '2', '--window', '4'], 60_000);
  t.equal(code, 0, `exit code (stderr tail: ${stderr.slice(-2000)})`);
  const out = lines(stdout);
  const setups = ['1 node', '2 nodes + Redis (senders on node a, receivers on node b)'];
  t.same(out.map((l) => `${l['scenario']}/${l['variant']}`), setups.flatMap((s) => ['chat+proxy', 'chat', 'publish'].map((v) => `${s}/${v}`)), 'one line per setup and variant, in order');
  for (const l of out) {
    const where = `${l['scenario']}/${l['variant']}`;
    described(t, l, { messages: 40, pairs: 2, window: 4 });
    t.match(l, { bench: 'chat', ok: true, errors: [], messages: 40, failed: 0, processes: l['scenario'] === '1 node' ? 1 : 3 }, `${where}: every message acked and received`);
    // Only chat:send on the proxied namespace asks the backend: once per message.
    t.equal(l['backendRequests'], l['variant'] === 'chat+proxy' ? 40 : 0, `${where}: backend requests`);
    t.ok(l['messagesPerSec'] > 0 && l['p99Ms'] >= l['p50Ms'] && l['p50Ms'] > 0, `${where}: rate and latency`);
    t.ok(Number.isFinite(l['serverCpuUsPerMessage']) && l['serverCpuUsPerMessage'] >= 0, `${where}: CPU per message`);
  }
});

t.test('bench smoke: webhooks, events per second to a local receiver and the cost of push tracking on notify', async (t) => {
  const args = ['webhooks', '--users', '200', '--batch', '100', '--clients', '20', '--rate', '100', '--seconds', '1', '--push-delay', '200', '--coalesce', '200', '--runs', '1', '--pace', '400'];
  const { code, stdout, stderr } = await runBench(args, 60_000);
  t.equal(code, 0, `exit code (stderr tail: ${stderr.slice(-2000)})`);
  const out = lines(stdout);
  t.same(out.map((l) => `${l['scenario']}/${l['variant']}`), ['throughput/burst', 'throughput/paced', 'notify-cost/push off', 'notify-cost/push+receipts', 'notify-cost/push, no receipts', 'notify-cost/ratio'], 'one line per part and variant, then the ratios');
  for (const l of out) {
    t.match(l, { bench: 'webhooks', ok: true, errors: [] }, `${l['scenario']}/${l['variant']}: ok`);
    t.match(l['machine'], { node: process.version, cpu: String, cores: Number, platform: 'linux' }, `${l['variant']}: machine`);
    t.match(l['server'], { kind: 'storywire', version: /^storywire \d/ }, `${l['variant']}: server`);
  }
  const [burst, paced, off, receipts, none, ratio] = out as Record<string, any>[] as [Record<string, any>, Record<string, any>, Record<string, any>, Record<string, any>, Record<string, any>, Record<string, any>];
  for (const tp of [burst, paced]) {
    // One event per offline user, each verified sample signed right.
    t.match(tp, { events: 200, params: { users: 200 } }, `${tp['variant']}: one notification.unread per offline user`);
    t.ok(tp['signaturesVerified'] > 0 && tp['eventsPerSec'] > 0 && tp['p99Ms'] >= tp['p50Ms'], `${tp['variant']}: signatures verified, a rate and delays`);
    t.ok(Number.isFinite(tp['serverCpuUsPerEvent']) && tp['serverCpuUsPerEvent'] > 0, `${tp['variant']}: CPU per event`);
  }
  t.equal(paced['params']['pace'], 400, 'paced: the pace asked');
  for (const l of [off, receipts, none]) {
    t.ok(l['notifications'] > 0 && l['delivered'] === l['notifications'], `${l['variant']}: every notification delivered once`);
    t.ok(Number.isFinite(l['serverCpuUsPerNotification']) && l['serverCpuUsPerNotification'] > 0, `${l['variant']}: CPU per notification`);
  }
  t.match(off, { pushEvents: 0, receiptMessages: 0 }, 'push off: no receipts sent, nothing pushed');
  t.ok(receipts['receiptMessages'] > 0 && receipts['pushEvents'] === 0, 'push+receipts: receipts sent and nothing pushed');
  t.ok(none['pushEvents'] > 0 && none['notificationsPushed'] === none['notifications'], 'push, no receipts: every notification pushed');
  t.ok(ratio['receiptsRatio'] > 0 && ratio['noReceiptsRatio'] > 0, 'the ratios to push off');
});

t.test('bench smoke: history, the memory history against frames kept bare and against nothing kept', async (t) => {
  const { code, stdout, stderr } = await runBench(['history', '--users', '100', '--appends', '5000', '--runs', '1'], 60_000);
  t.equal(code, 0, `exit code (stderr tail: ${stderr.slice(-2000)})`);
  const out = lines(stdout);
  t.same(out.map((l) => l['variant']), ['none', 'strings', 'memory', 'medians'], 'one line per variant, then the medians');
  for (const l of out) {
    t.match(l, { bench: 'history', scenario: 'append', ok: true, errors: [], params: { users: 100, appends: 5000, historySize: 50, userShare: 25 } }, `${l['variant']}: ok`);
    t.match(l['machine'], { node: process.version, cpu: String, cores: Number, platform: 'linux' }, `${l['variant']}: machine`);
  }
  const m = out[3]!['figures'] as Record<string, any>;
  // 100 users x the user share of 25: what both keepers hold at the end; nothing for `none`.
  t.match(m, { none: { heldEvents: 0 }, strings: { heldEvents: 2500 }, memory: { heldEvents: 2500 } }, 'what each variant holds');
  for (const v of ['none', 'strings', 'memory']) t.ok(m[v].cpuUsPerAppend > 0, `${v}: CPU per append`);
  t.ok(m['memory'].heapBytesPerHeldEvent > 0 && m['strings'].heapBytesPerHeldEvent > 0, 'heap per held event');
  t.ok(Math.abs(m['memory'].externalBytesPerHeldEvent) <= 10 && Math.abs(m['strings'].externalBytesPerHeldEvent) <= 10, 'outside the heap: nothing (frames are kept as strings)');
});

t.test('bench smoke: ab, two setups in alternating pairs, the order swapped every pair, and their ratios', async (t) => {
  const { code, stdout, stderr } = await runBench(['ab', '--pairs', '2', '--rate', '200', '--step', '1', '--users', '20', '--b-env', 'NOTIFY_USER_SHARE=0'], 120_000);
  t.equal(code, 0, `exit code (stderr tail: ${stderr.slice(-2000)})`);
  const out = lines(stdout);
  t.same(
    out.map((l) => `${l['pair'] ?? '-'}:${l['variant']}`),
    ['1:A', '1:B', '2:B', '2:A', '-:ratio'],
    'A then B, then B then A, then the ratios',
  );
  for (const l of out.slice(0, 4)) {
    t.match(l, { bench: 'ab', scenario: 'notify', ok: true, errors: [], params: { pairs: 2, rate: 200, users: 20, b: { env: 'NOTIFY_USER_SHARE=0' } } }, `${l['pair']}:${l['variant']}: ok`);
    t.ok(l['serverCpuUsPerMsg'] > 0, `${l['pair']}:${l['variant']}: CPU per notification`);
  }
  const ratio = out[4]!;
  const cpu = (pair: number, v: string) => out.find((l) => l['pair'] === pair && l['variant'] === v)!['serverCpuUsPerMsg'] as number;
  t.same(ratio['pairRatios'], [1, 2].map((p) => Number((cpu(p, 'B') / cpu(p, 'A')).toFixed(3))), 'B over A, pair by pair');
  t.ok(ratio['ok'] === true && ratio['medianRatio'] > 0, 'their median');
});

t.test('bench: a bad option of a stand-alone scenario exits 2 with the usage', async (t) => {
  for (const args of [['soak', '--clients', 'lots'], ['cluster', '--nodes', '3'], ['cluster', '--mode', 'stories,notify'], ['soak', '--out', ''], ['recovery', '--scenarios', 'resume,magic'], ['recovery', '--share', '2'], ['chaos-cluster', '--variants', 'resets,magic'], ['chat', '--window', '1000'], ['chat', '--pairs', '0'], ['webhooks', '--push-delay', '50'], ['webhooks', '--rate', 'fast'], ['history', '--users', '0'], ['ab', '--a-env', 'foo'], ['ab', '--b', '/nonexistent']]) {
    const { code, stderr } = await runBench(args, 20_000);
    t.equal(code, 2, `${args.join(' ')}: exit code 2`);
    t.match(stderr, /--(clients|nodes|scenarios|share|mode|out|variants|window|pairs|push-delay|rate|users|a-env|b)/, `${args.join(' ')}: names the option`);
  }
});
