// The process in dev mode: only when asked (--dev, STORYWIRE_DEV), then working credentials on loopback;
// bad config and a missing native uWS refuse to start. Production starts: main-production.test.ts.
import t from 'tap';
import { Client } from './helpers.js';
import { KEY, outside, run, stop, waitFor } from './process.js';

t.test('--dev: random secret, printed token and API key, on 127.0.0.1 (the address printed), /dev/token served', async (t) => {
  const p = run(t, {}, ['--dev']);
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
  const p = run(t, { STORYWIRE_DEV: '1', HOST: '0.0.0.0' });
  const port = Number((await waitFor(p.output, /"address":"0\.0\.0\.0:(\d+)"/))[1]);
  await waitFor(p.output, /storywire dev credentials/);
  if (outside === undefined) t.fail('this test needs a non-loopback IPv4 interface');
  else t.equal((await fetch(`http://${outside}:${port}/dev/token?user=alice`)).status, 403, 'the port is reachable from outside, /dev/token is not');
  await stop(t, p);
});

t.test('--dev with a JWT key: the relaxed defaults and a printed API key, but tokens come from the key (no /dev/token)', async (t) => {
  const p = run(t, { JWT_SECRET: KEY }, ['--dev']);
  const port = Number((await waitFor(p.output, /"address":"127\.0\.0\.1:(\d+)"/))[1]);
  await waitFor(p.output, /DEV MODE \(--dev \/ STORYWIRE_DEV\): relaxed defaults/);
  t.ok(await waitFor(p.output, /key: {5}\S+/), 'the dev API key is printed');
  t.equal((await fetch(`http://127.0.0.1:${port}/dev/token?user=a`)).status, 404);
  await stop(t, p);
  t.notMatch(p.output(), /token: {3}/, 'no dev token printed');
});

t.test('a bad variable exits 1 naming it', async (t) => {
  const p = run(t, { PORT: 'eighty' }, ['--dev']);
  t.equal(await p.exited, 1);
  t.match(p.output(), /PORT must be an integer/);
});

t.test('refuses to start on the pure-JS uWS fallback', async (t) => {
  const p = run(t, { UWS_USE_FALLBACK: '1' }, ['--dev']);
  t.equal(await p.exited, 1);
  t.match(p.output(), /native uWebSockets\.js binary did not load/);
});
