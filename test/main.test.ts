// The process: dev mode only when asked, then working credentials on loopback; without it a key or no start;
// bad config and a missing native uWS refuse to start.
import { spawn } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import t, { type Test } from 'tap';
import { Client } from './helpers.js';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const KEY = 'production-secret-production-secret-0123';

function run(env: Record<string, string>, args: string[] = []) {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    env: { PATH: process.env['PATH'] ?? '', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function waitFor(get: () => string, re: RegExp, ms = 15000): Promise<RegExpExecArray> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const m = re.exec(get());
    if (m) return m;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${re} in output: ${get()}`);
}

/** Stops a started process with SIGTERM and expects a clean exit. */
async function stop(t: Test, p: ReturnType<typeof run>): Promise<void> {
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0, 'exits 0 on SIGTERM');
}

/** This machine's first IPv4 address that is not loopback. */
const outside = Object.values(networkInterfaces()).flat().find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;

t.test('--dev: random secret, printed token and API key, on 127.0.0.1 (the address printed), /dev/token served', async (t) => {
  const p = run({}, ['--dev']);
  t.teardown(() => p.child.kill('SIGKILL'));
  const port = Number((await waitFor(p.output, /"address":"127\.0\.0\.1:(\d+)"/))[1]);
  const token = (await waitFor(p.output, /token: {3}(\S+)/))[1]!;
  t.ok(await waitFor(p.output, /DEV MODE/), 'loud dev-mode warning');
  t.ok(await waitFor(p.output, /connect: npx wscat -c "ws:\/\/127\.0\.0\.1:\d+\/ws\?token=/), 'the printed command uses the address listened on');
  const apiKey = (await waitFor(p.output, /key: {5}(\S+)/))[1]!;
  const api = await fetch(`http://127.0.0.1:${port}/v1/stories`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ id: '1', title: 'x' }) });
  t.equal(api.status, 200, 'the printed API key works');
  t.equal((await fetch(`http://127.0.0.1:${port}/dev/token?user=alice`)).status, 200, '/dev/token answers a loopback peer');
  if (outside === undefined) t.fail('this test needs a non-loopback IPv4 interface');
  else await t.rejects(fetch(`http://${outside}:${port}/`), `nothing listens on ${outside}`);
  const c = await Client.open(`ws://127.0.0.1:${port}/ws?token=${token}`);
  t.teardown(() => c.close());
  t.equal((await c.type('connected')).data.userId, 'demo');
  t.equal((await c.request('story:published', { id: 1, title: 'x' })).type, 'ack');
  p.child.kill('SIGTERM');
  t.equal((await c.closed).code, 4000, 'SIGTERM closes clients with SHUTDOWN');
  t.equal(await p.exited, 0);
});

t.test('STORYWIRE_DEV=1 is dev mode too; a HOST given is the one bound', async (t) => {
  const p = run({ STORYWIRE_DEV: '1', HOST: '0.0.0.0' });
  t.teardown(() => p.child.kill('SIGKILL'));
  const port = Number((await waitFor(p.output, /"address":"0\.0\.0\.0:(\d+)"/))[1]);
  await waitFor(p.output, /storywire dev credentials/);
  if (outside === undefined) t.fail('this test needs a non-loopback IPv4 interface');
  else t.equal((await fetch(`http://${outside}:${port}/dev/token?user=alice`)).status, 403, 'the port is reachable from outside, /dev/token is not');
  await stop(t, p);
});

t.test('without dev mode and without a JWT key: exit 1 naming the settings and --dev, whatever NODE_ENV says', async (t) => {
  for (const nodeEnv of [undefined, 'production', 'Production', 'production ', 'development']) {
    const p = run(nodeEnv === undefined ? {} : { NODE_ENV: nodeEnv });
    t.teardown(() => p.child.kill('SIGKILL'));
    const label = nodeEnv === undefined ? 'NODE_ENV unset' : `NODE_ENV="${nodeEnv}"`;
    t.equal(await p.exited, 1, `${label}: exit 1`);
    t.match(p.output(), /no JWT key: set JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL, or start in dev mode \(--dev or STORYWIRE_DEV=1\)/, `${label}: says why`);
    t.notMatch(p.output(), /storywire listening|token: {3}|key: {5}/, `${label}: never listened, printed no credential`);
  }
});

t.test('STORYWIRE_DEV with a value that is not a switch: exit 1 naming it', async (t) => {
  const p = run({ STORYWIRE_DEV: 'yes', JWT_SECRET: KEY });
  t.teardown(() => p.child.kill('SIGKILL'));
  t.equal(await p.exited, 1);
  t.match(p.output(), /STORYWIRE_DEV must be 1 or true \(on\), 0 or false \(off\), got "yes"/);
});

t.test('with a JWT key and no dev mode: no API key generated or printed (the API answers 503), no dev token', async (t) => {
  for (const nodeEnv of [undefined, 'development']) {
    const p = run({ HOST: '127.0.0.1', JWT_SECRET: KEY, ...(nodeEnv === undefined ? {} : { NODE_ENV: nodeEnv }) });
    t.teardown(() => p.child.kill('SIGKILL'));
    const label = nodeEnv === undefined ? 'NODE_ENV unset' : `NODE_ENV="${nodeEnv}"`;
    const port = Number((await waitFor(p.output, /"address":"127\.0\.0\.1:(\d+)"/))[1]);
    await waitFor(p.output, /API_KEY is not set: the backend HTTP API answers 503/);
    const api = await fetch(`http://127.0.0.1:${port}/v1/stories`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    t.equal(api.status, 503, `${label}: the API is disabled`);
    t.equal((await fetch(`http://127.0.0.1:${port}/dev/token?user=a`)).status, 404, `${label}: no /dev/token (no demo page either)`);
    await stop(t, p);
    t.notMatch(p.output(), /dev API key|DEV MODE|key: {5}|token: {3}/, `${label}: no credential printed`);
  }
});

t.test('--dev with a JWT key: the relaxed defaults and a printed API key, but tokens come from the key (no /dev/token)', async (t) => {
  const p = run({ JWT_SECRET: KEY }, ['--dev']);
  t.teardown(() => p.child.kill('SIGKILL'));
  const port = Number((await waitFor(p.output, /"address":"127\.0\.0\.1:(\d+)"/))[1]);
  await waitFor(p.output, /DEV MODE \(--dev \/ STORYWIRE_DEV\): relaxed defaults/);
  t.ok(await waitFor(p.output, /key: {5}\S+/), 'the dev API key is printed');
  t.equal((await fetch(`http://127.0.0.1:${port}/dev/token?user=a`)).status, 404);
  await stop(t, p);
  t.notMatch(p.output(), /token: {3}/, 'no dev token printed');
});

t.test('a bad variable exits 1 naming it', async (t) => {
  const p = run({ PORT: 'eighty' }, ['--dev']);
  t.teardown(() => p.child.kill('SIGKILL'));
  t.equal(await p.exited, 1);
  t.match(p.output(), /PORT must be an integer/);
});

t.test('refuses to start on the pure-JS uWS fallback', async (t) => {
  const p = run({ UWS_USE_FALLBACK: '1' }, ['--dev']);
  t.teardown(() => p.child.kill('SIGKILL'));
  t.equal(await p.exited, 1);
  t.match(p.output(), /native uWebSockets\.js binary did not load/);
});

t.test('production without ALLOWED_ORIGINS starts, and warns that any origin may connect', async (t) => {
  const p = run({ HOST: '127.0.0.1', JWT_SECRET: KEY });
  t.teardown(() => p.child.kill('SIGKILL'));
  await waitFor(p.output, /storywire listening/);
  t.ok(await waitFor(p.output, /production without ALLOWED_ORIGINS/), 'the warning is logged');
  await stop(t, p);
  const q = run({ HOST: '127.0.0.1', JWT_SECRET: KEY, ALLOWED_ORIGINS: 'https://app.example' });
  t.teardown(() => q.child.kill('SIGKILL'));
  await waitFor(q.output, /storywire listening/);
  await stop(t, q);
  t.notMatch(q.output(), /production without ALLOWED_ORIGINS/, 'no warning once it is set');
  const d = run({ JWT_SECRET: KEY }, ['--dev']);
  t.teardown(() => d.child.kill('SIGKILL'));
  await waitFor(d.output, /storywire listening/);
  await stop(t, d);
  t.notMatch(d.output(), /production without ALLOWED_ORIGINS/, 'no warning in dev mode');
});
