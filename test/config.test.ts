// Configuration: defaults, env and flags, one error naming every bad variable.
import t from 'tap';
import { ConfigError, OPTIONS, flagsToEnv, loadConfig } from '../src/config.js';
import { redisAddress } from '../src/seams/backplane/options.js';

const KEY = { JWT_SECRET: 'x'.repeat(32) };

t.test('defaults', async (t) => {
  const c = loadConfig(KEY);
  t.match(c, { port: 9001, host: '0.0.0.0', wsPath: '/ws', dev: false, production: true, maxPayloadBytes: 16384, heartbeatIntervalMs: 25000, typingTimeoutMs: 5000 });
  t.ok(Object.isFrozen(c));
});

t.test('dev mode only when asked: --dev, STORYWIRE_DEV=1 or true, dev: true in code', async (t) => {
  for (const [env, argv] of [[{}, ['--dev']], [{ STORYWIRE_DEV: '1' }, []], [{ STORYWIRE_DEV: 'true' }, []], [{ STORYWIRE_DEV: ' TRUE ' }, []], [{}, ['--dev=1']], [{}, ['--storywire-dev']]] as const) {
    const c = loadConfig(env, argv);
    t.match(c, { dev: true, production: false, host: '127.0.0.1', demoPage: true, notifyPolicy: 'any' }, `${JSON.stringify(env)} ${argv.join(' ')}: dev mode, no key needed, loopback`);
  }
  t.match(loadConfig({}, [], { dev: true }), { dev: true, host: '127.0.0.1' }, 'embedded: the dev override');
  t.equal(loadConfig({ HOST: '0.0.0.0' }, ['--dev']).host, '0.0.0.0', 'HOST given: dev mode binds it');
  for (const off of ['0', 'false', 'FALSE', '']) t.match(loadConfig({ ...KEY, STORYWIRE_DEV: off }), { dev: false, host: '0.0.0.0' }, `STORYWIRE_DEV="${off}": off`);
  t.match(loadConfig({ STORYWIRE_DEV: '1', ...KEY }, ['--dev', '0']), { dev: false }, 'the flag wins');
  for (const bad of ['yes', 'on', '2', 'production', 'dev']) {
    t.throws(() => loadConfig({ ...KEY, STORYWIRE_DEV: bad }), new RegExp(`STORYWIRE_DEV must be 1 or true \\(on\\), 0 or false \\(off\\), got "${bad}"`), `STORYWIRE_DEV=${bad} is a config error naming it`);
  }
});

t.test('NODE_ENV selects nothing: without dev mode a key is required and the safe defaults apply, whatever it says', async (t) => {
  for (const nodeEnv of [undefined, 'production', 'Production', 'prod', 'production ', 'development', 'dev', 'test']) {
    const env = nodeEnv === undefined ? {} : { NODE_ENV: nodeEnv };
    const label = nodeEnv === undefined ? 'NODE_ENV unset' : `NODE_ENV="${nodeEnv}"`;
    t.throws(() => loadConfig(env), /no JWT key: set JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL, or start in dev mode \(--dev or STORYWIRE_DEV=1\)/, `${label}, no key: refused`);
    t.match(loadConfig({ ...env, ...KEY }), { dev: false, production: true, host: '0.0.0.0', demoPage: false, notifyPolicy: 'backend' }, `${label}, a key: the safe defaults`);
  }
  t.throws(() => loadConfig(KEY, ['--node-env', 'development']), /unknown flag --node-env/, 'no --node-env flag either');
});

t.test('flags win over env, both forms of flag', async (t) => {
  const c = loadConfig({ ...KEY, PORT: '1000', HOST: '::1' }, ['--port', '2000', '--host=127.0.0.1', '--presence-broadcast']);
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

t.test('two keys are refused', async (t) => {
  t.throws(() => loadConfig({ JWT_SECRET: 'x'.repeat(32), JWT_JWKS_URL: 'https://a/jwks' }), /only one of/);
  t.throws(() => loadConfig({ JWT_JWKS_URL: 'ftp://a' }), /JWT_JWKS_URL must be an http/);
});

t.test('every option has a distinct env name and a doc line', async (t) => {
  const names = OPTIONS.map((o) => o.env);
  t.equal(new Set(names).size, names.length);
  for (const o of OPTIONS) t.ok(o.doc.length > 10, o.env);
});

t.test('cluster options: REDIS_URL, NODE_ID, NODE_LEASE_MS, REDIS_PREFIX', async (t) => {
  t.match(loadConfig(KEY), { redisUrl: undefined, nodeId: undefined, nodeLeaseMs: 10000, redisPrefix: 'storywire:' });
  t.match(loadConfig({ ...KEY, REDIS_URL: 'redis://:pw@10.0.0.5:6379/2', NODE_ID: 'eu-1.a', NODE_LEASE_MS: '3000' }), { redisUrl: 'redis://:pw@10.0.0.5:6379/2', nodeId: 'eu-1.a', nodeLeaseMs: 3000 });
  t.throws(() => loadConfig({ REDIS_URL: 'http://localhost:6379' }), /REDIS_URL must be a redis:\/\//);
  t.throws(() => loadConfig({ NODE_ID: 'has space' }), /NODE_ID must be/);
  t.throws(() => loadConfig({ NODE_LEASE_MS: '100' }), /NODE_LEASE_MS must be between/);
  t.throws(() => loadConfig({ REDIS_PREFIX: 'a b' }), /REDIS_PREFIX must be/);
});

t.test('Sentinel options: REDIS_SENTINELS with REDIS_SENTINEL_NAME (and REDIS_PASSWORD), instead of REDIS_URL', async (t) => {
  t.match(loadConfig({ ...KEY, REDIS_SENTINELS: '10.0.0.5:26379, sentinel-2:26379,[::1]:26380', REDIS_SENTINEL_NAME: 'storywire', REDIS_PASSWORD: 'pw' }), {
    redisUrl: undefined,
    redisSentinels: ['10.0.0.5:26379', 'sentinel-2:26379', '[::1]:26380'],
    redisSentinelName: 'storywire',
    redisPassword: 'pw',
  });
  t.same(redisAddress('[::1]:26380'), { host: '::1', port: 26380 });
  t.same(redisAddress('sentinel-2:26379'), { host: 'sentinel-2', port: 26379 });
  t.throws(() => loadConfig({ ...KEY, REDIS_SENTINELS: 'a:26379' }), /REDIS_SENTINELS needs REDIS_SENTINEL_NAME/, 'the name is required: no default primary');
  t.throws(() => loadConfig({ ...KEY, REDIS_SENTINELS: 'a:26379', REDIS_SENTINEL_NAME: 'm', REDIS_URL: 'redis://a:6379' }), /set only one of REDIS_URL and REDIS_SENTINELS/);
  t.throws(() => loadConfig({ ...KEY, REDIS_SENTINELS: 'a', REDIS_SENTINEL_NAME: 'm' }), /each sentinel is host:port, got "a"/);
  t.throws(() => loadConfig({ ...KEY, REDIS_SENTINELS: 'a:0', REDIS_SENTINEL_NAME: 'm' }), /each sentinel is host:port, got "a:0"/);
  t.throws(() => loadConfig({ ...KEY, REDIS_SENTINELS: 'a:26379', REDIS_SENTINEL_NAME: 'has space' }), /REDIS_SENTINEL_NAME/);
  t.throws(() => loadConfig({ ...KEY, REDIS_SENTINEL_NAME: 'm' }), /REDIS_SENTINEL_NAME needs REDIS_SENTINELS/);
  t.throws(() => loadConfig({ ...KEY, REDIS_URL: 'redis://a:6379', REDIS_PASSWORD: 'pw' }), /REDIS_PASSWORD is for REDIS_SENTINELS/);
});

t.test('Redis Cluster options: REDIS_CLUSTER_NODES (and REDIS_PASSWORD), alone, without webhooks yet', async (t) => {
  t.match(loadConfig({ ...KEY, REDIS_CLUSTER_NODES: '10.0.0.5:7000, redis-b:7001', REDIS_PASSWORD: 'pw' }), {
    redisUrl: undefined,
    redisClusterNodes: ['10.0.0.5:7000', 'redis-b:7001'],
    redisPassword: 'pw',
  });
  t.throws(() => loadConfig({ ...KEY, REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'redis://a:6379' }), /set only one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES/);
  t.throws(() => loadConfig({ ...KEY, REDIS_CLUSTER_NODES: 'a:7000', REDIS_SENTINELS: 'a:26379', REDIS_SENTINEL_NAME: 'm' }), /set only one of/);
  t.throws(() => loadConfig({ ...KEY, REDIS_CLUSTER_NODES: 'a:7000,b' }), /each node is host:port, got "b"/);
  t.throws(() => loadConfig({ ...KEY, REDIS_CLUSTER_NODES: 'a:7000', REDIS_PREFIX: '{sw}:' }), /REDIS_PREFIX may not contain \{ or \} with REDIS_CLUSTER_NODES/, 'a tag in the prefix would put every key in one slot');
  const secret = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
  t.match(loadConfig({ ...KEY, REDIS_CLUSTER_NODES: 'a:7000', WEBHOOK_URL: 'https://hooks.example/x', PUSH_WEBHOOK_URL: 'https://hooks.example/p', WEBHOOK_SECRET: secret }), { webhookUrl: 'https://hooks.example/x', pushWebhookUrl: 'https://hooks.example/p' }, 'webhooks and the push fallback on a Redis Cluster');
});
