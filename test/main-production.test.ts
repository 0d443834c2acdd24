// The process without dev mode (production, whatever NODE_ENV says): a JWT key or no start, no generated
// API key, the warnings of an open deployment. Each test starts its processes at once and then waits for them.
import t from 'tap';
import { KEY, run, stop, waitFor } from './process.js';

const withNodeEnv = (nodeEnv: string | undefined) => (nodeEnv === undefined ? {} : { NODE_ENV: nodeEnv });
const labelOf = (nodeEnv: string | undefined) => (nodeEnv === undefined ? 'NODE_ENV unset' : `NODE_ENV="${nodeEnv}"`);

t.test('without dev mode and without a JWT key: exit 1 naming the settings and --dev, whatever NODE_ENV says', async (t) => {
  const cases = [undefined, 'production', 'Production', 'production ', 'development'].map((v) => ({ label: labelOf(v), p: run(t, withNodeEnv(v)) }));
  for (const { label, p } of cases) {
    t.equal(await p.exited, 1, `${label}: exit 1`);
    t.match(p.output(), /no JWT key: set JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL, or start in dev mode \(--dev or STORYWIRE_DEV=1\)/, `${label}: says why`);
    t.notMatch(p.output(), /storywire listening|token: {3}|key: {5}/, `${label}: never listened, printed no credential`);
  }
});

t.test('STORYWIRE_DEV with a value that is not a switch: exit 1 naming it', async (t) => {
  const p = run(t, { STORYWIRE_DEV: 'yes', JWT_SECRET: KEY });
  t.equal(await p.exited, 1);
  t.match(p.output(), /STORYWIRE_DEV must be 1 or true \(on\), 0 or false \(off\), got "yes"/);
});

t.test('with a JWT key and no dev mode: no API key generated or printed (the API answers 503), no dev token', async (t) => {
  const cases = [undefined, 'development'].map((v) => ({ label: labelOf(v), p: run(t, { HOST: '127.0.0.1', JWT_SECRET: KEY, ...withNodeEnv(v) }) }));
  for (const { label, p } of cases) {
    const port = Number((await waitFor(p.output, /"address":"127\.0\.0\.1:(\d+)"/))[1]);
    await waitFor(p.output, /API_KEY is not set: the backend HTTP API answers 503/);
    const api = await fetch(`http://127.0.0.1:${port}/v1/stories`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    t.equal(api.status, 503, `${label}: the API is disabled`);
    t.equal((await fetch(`http://127.0.0.1:${port}/dev/token?user=a`)).status, 404, `${label}: no /dev/token (no demo page either)`);
    await stop(t, p);
    t.notMatch(p.output(), /dev API key|DEV MODE|key: {5}|token: {3}/, `${label}: no credential printed`);
  }
});

t.test('production without ALLOWED_ORIGINS starts, and warns that any origin may connect', async (t) => {
  const open = run(t, { HOST: '127.0.0.1', JWT_SECRET: KEY });
  const set = run(t, { HOST: '127.0.0.1', JWT_SECRET: KEY, ALLOWED_ORIGINS: 'https://app.example' });
  const dev = run(t, { JWT_SECRET: KEY }, ['--dev']);
  await waitFor(open.output, /storywire listening/);
  t.ok(await waitFor(open.output, /production without ALLOWED_ORIGINS/), 'the warning is logged');
  await stop(t, open);
  for (const [p, why] of [[set, 'no warning once it is set'], [dev, 'no warning in dev mode']] as const) {
    await waitFor(p.output, /storywire listening/);
    await stop(t, p);
    t.notMatch(p.output(), /production without ALLOWED_ORIGINS/, why);
  }
});
