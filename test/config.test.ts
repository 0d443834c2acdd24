// Configuration: defaults, env and flags, one error naming every bad variable.
import t from 'tap';
import { ConfigError, OPTIONS, flagsToEnv, loadConfig } from '../src/config.js';

t.test('defaults', async (t) => {
  const c = loadConfig({});
  t.match(c, { port: 9001, host: '0.0.0.0', wsPath: '/ws', production: false, maxPayloadBytes: 16384, heartbeatIntervalMs: 25000, typingTimeoutMs: 5000 });
  t.ok(Object.isFrozen(c));
});

t.test('flags win over env, both forms of flag', async (t) => {
  const c = loadConfig({ PORT: '1000', HOST: '::1' }, ['--port', '2000', '--host=127.0.0.1', '--presence-broadcast']);
  t.equal(c.port, 2000);
  t.equal(c.host, '127.0.0.1');
  t.equal(c.presenceBroadcast, true);
  t.same(flagsToEnv(['--jwt-secret=a=b']), { JWT_SECRET: 'a=b' });
});

t.test('every problem is reported at once, naming the variable', async (t) => {
  try {
    loadConfig({ PORT: 'abc', IDLE_TIMEOUT_S: '2', LOG_LEVEL: 'loud', PRESENCE_BROADCAST: 'maybe', JWT_SECRET: 'short', JWT_ALGORITHMS: 'RS256' }, ['--nope', '1']);
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof ConfigError);
    const msg = (err as ConfigError).message;
    for (const name of ['PORT', 'IDLE_TIMEOUT_S', 'LOG_LEVEL', 'PRESENCE_BROADCAST', 'JWT_SECRET must be at least 32', 'JWT_ALGORITHMS', '--nope']) {
      t.match(msg, name, `mentions ${name}`);
    }
  }
});

t.test('production needs a key; two keys are refused', async (t) => {
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /NODE_ENV=production needs JWT_SECRET/);
  t.throws(() => loadConfig({ JWT_SECRET: 'x'.repeat(32), JWT_JWKS_URL: 'https://a/jwks' }), /only one of/);
  t.throws(() => loadConfig({ JWT_JWKS_URL: 'ftp://a' }), /JWT_JWKS_URL must be an http/);
  t.equal(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32) }).production, true);
});

t.test('every option has a distinct env name and a doc line', async (t) => {
  const names = OPTIONS.map((o) => o.env);
  t.equal(new Set(names).size, names.length);
  for (const o of OPTIONS) t.ok(o.doc.length > 10, o.env);
});

t.test('cluster options: REDIS_URL, NODE_ID, NODE_LEASE_MS, REDIS_PREFIX', async (t) => {
  t.match(loadConfig({}), { redisUrl: undefined, nodeId: undefined, nodeLeaseMs: 10000, redisPrefix: 'storywire:' });
  t.match(loadConfig({ REDIS_URL: 'redis://:pw@10.0.0.5:6379/2', NODE_ID: 'eu-1.a', NODE_LEASE_MS: '3000' }), { redisUrl: 'redis://:pw@10.0.0.5:6379/2', nodeId: 'eu-1.a', nodeLeaseMs: 3000 });
  t.throws(() => loadConfig({ REDIS_URL: 'http://localhost:6379' }), /REDIS_URL must be a redis:\/\//);
  t.throws(() => loadConfig({ NODE_ID: 'has space' }), /NODE_ID must be/);
  t.throws(() => loadConfig({ NODE_LEASE_MS: '100' }), /NODE_LEASE_MS must be between/);
  t.throws(() => loadConfig({ REDIS_PREFIX: 'a b' }), /REDIS_PREFIX must be/);
});
