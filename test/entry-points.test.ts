// The package's entry points: the root (`storywire`) never loads ioredis; `storywire/redis` does.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';

const ROOT = new URL('..', import.meta.url);

/** The node_modules packages in the CommonJS module cache of a fresh process after it imports `entry` (ioredis is CommonJS). */
function packagesLoadedBy(entry: string): string[] {
  const script = `
    import { createRequire } from 'node:module';
    await import(${JSON.stringify(entry)});
    const names = new Set();
    for (const file of Object.keys(createRequire(import.meta.url).cache)) {
      const m = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(file);
      if (m) names.add(m[1]);
    }
    process.stdout.write(JSON.stringify([...names]));
    process.exit(0);`;
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`importing ${entry} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
}

t.test('the package root does not load ioredis', async (t) => {
  const loaded = packagesLoadedBy('./src/index.ts');
  t.ok(loaded.includes('pino'), 'the check sees the CommonJS packages the root does load');
  t.notOk(loaded.includes('ioredis'), `ioredis not loaded (loaded: ${loaded.join(', ')})`);
  const root = await import('../src/index.js');
  t.type(root.createBackplane, 'function', 'createBackplane is still exported by the root (it imports Redis only when configured)');
  t.notOk('RedisBackplane' in root, 'RedisBackplane is not');
});

t.test('storywire/redis exports the Redis backplane and loads ioredis', async (t) => {
  t.ok(packagesLoadedBy('./src/redis.ts').includes('ioredis'), 'the same check sees ioredis when it is loaded');
  const redis = await import('../src/redis.js');
  t.type(redis.RedisBackplane, 'function');
  t.type(redis.createBackplane, 'function');
});

t.test('package.json maps every entry point to its built file', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { exports: Record<string, { types: string; default: string }> };
  t.same(pkg.exports, {
    '.': { types: './dist/index.d.ts', default: './dist/index.js' },
    './redis': { types: './dist/redis.d.ts', default: './dist/redis.js' },
    './client': { types: './dist/client/index.d.ts', default: './dist/client/index.js' },
  });
});
