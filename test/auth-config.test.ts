// The JWT_* settings at start: JWT_JWKS_URL must be https outside dev mode (loopback excepted), the defaults of
// JWT_REQUIRE_EXP, JWT_MAX_TTL_S and JWT_JWKS_MAX_BYTES.
import t from 'tap';
import { loadConfig } from '../src/config.js';

t.test('JWT_JWKS_URL: https outside dev mode; http in dev mode or to a loopback host', async (t) => {
  for (const url of ['http://id.example/.well-known/jwks.json', 'http://10.0.0.5:8080/jwks', 'http://127.0.0.1.evil.example/jwks', 'http://localhost.evil.example/jwks']) {
    t.throws(() => loadConfig({ JWT_JWKS_URL: url }), new RegExp(`JWT_JWKS_URL must be https:// outside dev mode .*got "${url.replaceAll('.', '\\.')}"`), `${url}: a config error naming the setting`);
    t.equal(loadConfig({ JWT_JWKS_URL: url, STORYWIRE_DEV: '1' }).jwtJwksUrl, url, `${url}: allowed in dev mode`);
  }
  for (const url of ['https://id.example/.well-known/jwks.json', 'http://127.0.0.1:8080/jwks', 'http://127.1.2.3/jwks', 'http://localhost:9/jwks', 'http://LOCALHOST/jwks', 'http://[::1]:8080/jwks']) {
    t.equal(loadConfig({ JWT_JWKS_URL: url }).jwtJwksUrl, url, `${url}: allowed outside dev mode`);
  }
  for (const url of ['ftp://id.example/jwks', 'not a url', 'https//id.example']) {
    t.throws(() => loadConfig({ JWT_JWKS_URL: url }), /JWT_JWKS_URL must be an http\(s\) URL/, `${url}: not an http(s) URL`);
  }
});

t.test('defaults: JWT_REQUIRE_EXP on (off in dev mode), JWT_MAX_TTL_S 24 h, JWT_JWKS_MAX_BYTES 64 KiB, JWT_TYP unset', async (t) => {
  const key = { JWT_SECRET: 'x'.repeat(32) };
  t.match(loadConfig(key), { jwtRequireExp: true, jwtMaxTtlS: 86400, jwtJwksMaxBytes: 65536, jwtTyp: undefined });
  t.match(loadConfig({ ...key, STORYWIRE_DEV: '1' }), { jwtRequireExp: false, jwtMaxTtlS: 86400 });
  t.match(loadConfig({ ...key, JWT_REQUIRE_EXP: 'false', JWT_MAX_TTL_S: '0', JWT_TYP: 'at+jwt', JWT_JWKS_MAX_BYTES: '4096' }), { jwtRequireExp: false, jwtMaxTtlS: 0, jwtTyp: 'at+jwt', jwtJwksMaxBytes: 4096 });
  t.match(loadConfig({ ...key, STORYWIRE_DEV: '1', JWT_REQUIRE_EXP: 'true' }), { jwtRequireExp: true }, 'dev mode may ask for it');
  t.throws(() => loadConfig({ ...key, JWT_JWKS_MAX_BYTES: '100' }), /JWT_JWKS_MAX_BYTES must be between 1024/);
});
