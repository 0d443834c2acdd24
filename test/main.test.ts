// The process: dev start prints working credentials; bad config and a missing native uWS refuse to start.
import { spawn } from 'node:child_process';
import t from 'tap';
import { Client } from './helpers.js';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;

function run(env: Record<string, string>, args: string[] = []) {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
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

t.test('dev mode: random secret, printed token for demo that connects and may publish', async (t) => {
  const p = run({});
  t.teardown(() => p.child.kill('SIGKILL'));
  const port = Number((await waitFor(p.output, /"port":(\d+)/))[1]);
  const token = (await waitFor(p.output, /token: {3}(\S+)/))[1]!;
  t.ok(await waitFor(p.output, /DEV MODE/), 'loud dev-mode warning');
  const c = await Client.open(`ws://127.0.0.1:${port}/ws?token=${token}`);
  t.teardown(() => c.close());
  t.equal((await c.type('connected')).data.userId, 'demo');
  t.equal((await c.request('story:published', { id: 1, title: 'x' })).type, 'ack');
  p.child.kill('SIGTERM');
  t.equal((await c.closed).code, 4000, 'SIGTERM closes clients with SHUTDOWN');
  t.equal(await p.exited, 0);
});

t.test('production without a JWT key exits 1 with a clear error', async (t) => {
  const p = run({ NODE_ENV: 'production' });
  t.teardown(() => p.child.kill('SIGKILL'));
  t.equal(await p.exited, 1);
  t.match(p.output(), /NODE_ENV=production needs JWT_SECRET/);
});

t.test('a bad variable exits 1 naming it', async (t) => {
  const p = run({ PORT: 'eighty' });
  t.teardown(() => p.child.kill('SIGKILL'));
  t.equal(await p.exited, 1);
  t.match(p.output(), /PORT must be an integer/);
});

t.test('refuses to start on the pure-JS uWS fallback', async (t) => {
  const p = run({ UWS_USE_FALLBACK: '1' });
  t.teardown(() => p.child.kill('SIGKILL'));
  t.equal(await p.exited, 1);
  t.match(p.output(), /native uWebSockets\.js binary did not load/);
});

t.test('production without ALLOWED_ORIGINS starts, and warns that any origin may connect', async (t) => {
  const p = run({ NODE_ENV: 'production', JWT_SECRET: 'production-secret-production-secret-0123' });
  t.teardown(() => p.child.kill('SIGKILL'));
  await waitFor(p.output, /storywire listening/);
  t.ok(await waitFor(p.output, /production without ALLOWED_ORIGINS/), 'the warning is logged');
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0);
  const q = run({ NODE_ENV: 'production', JWT_SECRET: 'production-secret-production-secret-0123', ALLOWED_ORIGINS: 'https://app.example' });
  t.teardown(() => q.child.kill('SIGKILL'));
  await waitFor(q.output, /storywire listening/);
  q.child.kill('SIGTERM');
  t.equal(await q.exited, 0);
  t.notMatch(q.output(), /production without ALLOWED_ORIGINS/, 'no warning once it is set');
});
