// File descriptors (issue #17, item 4): MAX_CONNECTIONS follows the open-files limit when unset and must fit
// under it when set, so that a full node refuses upgrades with 503 instead of spinning in uWS's accept loop.
import { spawn } from 'node:child_process';
import net from 'node:net';
import t from 'tap';
import { connectionBudget, descriptorReserve, openFilesLimit, RESERVE_BASE, RESERVE_REDIS, withProxies } from '../src/edge/descriptors.js';
import { Client, expectReject, SECRET, sign, startServer } from './helpers.js';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

t.test('the soft limit read from /proc/self/limits', { skip: process.platform !== 'linux' && 'Linux only' }, async (t) => {
  t.equal(openFilesLimit(() => LIMITS), 1024);
  t.equal(openFilesLimit(() => LIMITS.replace('1024   ', 'unlimited')), Number.POSITIVE_INFINITY);
  t.equal(openFilesLimit(() => 'no such line'), undefined);
  t.equal(
    openFilesLimit(() => {
      throw new Error('EACCES');
    }),
    undefined,
  );
  t.type(openFilesLimit(), 'number', 'this process');
});

t.test('the reserve, and MAX_CONNECTIONS derived or checked', async (t) => {
  t.equal(descriptorReserve(false), RESERVE_BASE);
  t.equal(descriptorReserve(true, [256, 8]), RESERVE_BASE + RESERVE_REDIS + 264, 'Redis, and every proxy\'s maxInFlight');
  t.same(connectionBudget(undefined, 64, 1024), { maxConnections: 960 }, 'unset: the limit minus the reserve');
  t.same(connectionBudget(undefined, 64, 10_000_000), { maxConnections: 1_000_000 }, 'at most a million');
  t.same(connectionBudget(undefined, 64, undefined), { maxConnections: 19000 }, 'limit unknown: the old default');
  t.same(connectionBudget(5000, 64, undefined), { maxConnections: 5000 }, 'limit unknown: unchecked');
  t.same(connectionBudget(960, 64, 1024), { maxConnections: 960 }, 'set, and it fits exactly');
  t.match(connectionBudget(961, 64, 1024).problem, 'MAX_CONNECTIONS=961 needs 1025 open files (64 kept for the node itself), but the open-files limit is 1024: raise the limit (ulimit -n');
  t.match(connectionBudget(961, 64, 1024).problem, /or set MAX_CONNECTIONS to at most 960/);
  t.match(connectionBudget(undefined, 64, 50).problem, /the open-files limit is 50, which leaves no room/);
  // CHANNELS_FILE's proxies are known after the configuration: a derived cap makes room, a set one must fit.
  t.same(withProxies(960, { limit: 1024, derived: true }, false, [256]), { maxConnections: 704 });
  t.same(withProxies(700, { limit: 1024, derived: false }, false, [256]), { maxConnections: 700 });
  t.match(withProxies(960, { limit: 1024, derived: false }, false, [256]).problem, /MAX_CONNECTIONS=960 needs 1280 open files \(320 kept/);
  t.same(withProxies(960, { limit: 1024, derived: false }, false, []), { maxConnections: 960 }, 'no proxy: as configured');
});

/** The server as a process, under an open-files limit of `nofile` (both soft and hard: `ulimit -n`). */
function run(nofile: number, env: Record<string, string>) {
  const child = spawn('bash', ['-c', 'ulimit -n "$0" && exec "$@"', String(nofile), process.execPath, '--import', 'tsx', MAIN], {
    env: { PATH: process.env['PATH'] ?? '', JWT_SECRET: SECRET, HOST: '127.0.0.1', PORT: '0', HANDSHAKES_PER_S_PER_USER: '1000', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const seen: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  const onData = (d: Buffer) => {
    out += d;
    for (const w of seen.splice(0)) {
      const m = w.re.exec(out);
      if (m) w.resolve(m);
      else seen.push(w);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  /** The first match of re in the output so far or to come; rejects if the process exits first. */
  const output = (re: RegExp) =>
    Promise.race([
      new Promise<RegExpExecArray>((resolve) => {
        const m = re.exec(out);
        if (m) resolve(m);
        else seen.push({ re, resolve });
      }),
      exited.then((code) => Promise.reject(new Error(`exited ${code} without ${re}: ${out}`))),
    ]);
  return { child, output, exited, text: () => out };
}

t.test('under `ulimit -n 200`: MAX_CONNECTIONS=1000 refuses to start, naming both numbers and the fix', { skip: process.platform !== 'linux' && 'Linux only' }, async (t) => {
  const p = run(200, { MAX_CONNECTIONS: '1000' });
  t.teardown(() => p.child.kill('SIGKILL'));
  t.equal(await p.exited, 1);
  t.match(p.text(), /MAX_CONNECTIONS=1000 needs 1064 open files \(64 kept for the node itself\), but the open-files limit is 200: raise the limit \(ulimit -n/);
  t.match(p.text(), /or set MAX_CONNECTIONS to at most 136/);
});

t.test('under `ulimit -n 200` with MAX_CONNECTIONS unset: 136, logged; the 137th upgrade gets 503 and /healthz still answers', { skip: process.platform !== 'linux' && 'Linux only' }, async (t) => {
  const p = run(200, { DRAIN_MS: '0' });
  t.teardown(() => p.child.kill('SIGKILL'));
  const derived = JSON.parse((await p.output(/^\{.*"MAX_CONNECTIONS derived from the open-files limit"\}$/m))[0]);
  t.match(derived, { maxConnections: 136, openFilesLimit: 200 });
  const port = Number((await p.output(/"port":(\d+)/))[1]);
  const url = `ws://127.0.0.1:${port}/ws`;
  const clients: Client[] = [];
  t.teardown(() => {
    for (const c of clients) c.close();
  });
  for (let i = 0; i < 136; i++) clients.push(await Client.open(`${url}?token=${await sign(`u${i}`)}`));
  t.match(await expectReject(Client.open(`${url}?token=${await sign('one-too-many')}`)), { status: 503, body: { error: { code: 'CONNECTION_LIMIT' } } });
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  t.equal(health.status, 200, 'the node at its cap still has descriptors to answer with');
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0);
});

t.test('what bounds sockets that never become WebSockets: uWS closes an HTTP socket about 10 s after it opens', async (t) => {
  const h = await startServer(t);
  // README "File descriptors" relies on it: a silent socket and one trickling its headers alike.
  const closed = (trickle: boolean) =>
    new Promise<number>((resolve, reject) => {
      const opened = Date.now();
      const s = net.connect(h.port, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'));
      const header = 'X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
      let i = 0;
      const drip = trickle ? setInterval(() => s.write(header[i++ % header.length]!), 1000) : undefined;
      const deadline = setTimeout(() => reject(new Error('still open after 30 s')), 30_000);
      s.on('error', () => undefined);
      s.on('close', () => {
        clearInterval(drip);
        clearTimeout(deadline);
        resolve(Date.now() - opened);
      });
    });
  const [silent, trickling] = await Promise.all([closed(false), closed(true)]);
  t.ok(silent < 30_000, `silent: closed after ${silent} ms`);
  t.ok(trickling < 30_000, `trickling its headers: closed after ${trickling} ms`);
});
