// The command line: --help lists every setting's flag and variable, --version is the package's, and
// `storywire --help` (src/main.ts) prints without starting a server.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { cliInfo } from '../src/cli.js';
import { OPTIONS } from '../src/config.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

t.test('--help names every flag, its variable and its default', async (t) => {
  const text = cliInfo(['--port', '9001', '--help'])!;
  t.ok(text, 'help wins over the other flags');
  for (const o of OPTIONS) {
    const flag = `--${o.flag ?? o.env.toLowerCase().replaceAll('_', '-')}`;
    t.match(text, new RegExp(`^  ${flag}\\b.* ${o.env}\\b`, 'm'), `${flag} and ${o.env}`);
  }
  t.match(text, /--port <n> +PORT \(default 9001\)/);
  t.equal(cliInfo(['-h']), text);
});

t.test('--version is the package version; any other command line starts the server', async (t) => {
  t.equal(cliInfo(['--version']), `${pkg.version}\n`);
  t.equal(cliInfo([]), undefined);
  t.equal(cliInfo(['--dev', '--port', '0']), undefined);
});

t.test('src/main.ts prints --version and --help and exits 0 without listening', async (t) => {
  const env = { ...process.env, STORYWIRE_DEV: '', JWT_SECRET: '', PORT: '1' };
  const v = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--version'], { cwd: new URL('..', import.meta.url), env, encoding: 'utf8', timeout: 60_000 });
  t.equal(v.status, 0, v.stderr);
  t.equal(v.stdout, `${pkg.version}\n`, 'only the version: no config error (no JWT key given), no log line');
  const h = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--help'], { cwd: new URL('..', import.meta.url), env, encoding: 'utf8', timeout: 60_000 });
  t.equal(h.status, 0, h.stderr);
  t.match(h.stdout, /^storywire \d+\.\d+\.\d+/);
  t.notMatch(h.stdout, /storywire listening/);
});
