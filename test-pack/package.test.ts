// The package as a user gets it: `npm pack` (which builds dist/), the tarball's files, `npm install <tarball>`
// in an empty directory, `npx storywire` there (--version, --help, --dev with a client), and the container
// recipe checked against that package: the Dockerfile copies only packaged paths and runs the package's bin
// as the image would (its ENV, its HEALTHCHECK, SIGTERM within the grace period), the compose file mirrors
// examples/cluster/. Run by `npm run test:pack` (a step of .ci/run); no image is built (no Docker daemon, no registry).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import t from 'tap';
import WebSocket from 'ws';
import { parse as parseYaml } from 'yaml';
import { Output, copyOf, dockerStages, envOf, execForm } from './recipe.js';

const ROOT = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'storywire-pack-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

const ENV: Record<string, string | undefined> = { ...process.env, npm_config_update_notifier: 'false' };
/**
 * A command line run as a user would: tap's process tracking puts its loader in every child's NODE_OPTIONS
 * (which breaks tsc, an ES module bin), so `env -u` takes it out again; env then execs the command (same PID).
 */
const clean = (cmd: string, args: string[]): [string, string[]] => ['env', ['-u', 'NODE_OPTIONS', cmd, ...args]];

function run(cmd: string, args: string[], cwd: string, timeoutMs = 240_000): string {
  const r = spawnSync(...clean(cmd, args), { cwd, encoding: 'utf8', timeout: timeoutMs, env: ENV });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stderr.slice(-3000)}`);
  return r.stdout;
}

// One pack for the whole file: it runs `prepare` (npm run build), so dist/ is built from the sources first.
const packOut = run('npm', ['pack', '--json', '--pack-destination', work], ROOT);
// The build's own lines come first on stdout, then the JSON.
const packed = JSON.parse(packOut.slice(packOut.search(/^\[/m)))[0] as { filename: string; files: { path: string }[]; size: number };
const tarball = join(work, packed.filename);
const files = new Set(packed.files.map((f) => f.path));
// One install too, as a user's: `npm install <tarball>` in an empty directory (the registry is reachable;
// --prefer-offline takes what npm's cache already has).
const app = mkdtempSync(join(work, 'app-'));
run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], app);

/** A packaged file, or a directory holding packaged files. */
const packaged = (path: string) => files.has(path) || [...files].some((f) => f.startsWith(`${path.replace(/\/$/, '')}/`));

t.test('the tarball holds what an installed package runs and documents, and nothing of the repository else', async (t) => {
  const entries = [pkg.main, pkg.types, ...Object.values(pkg.exports as Record<string, Record<string, string>>).flatMap((e) => Object.values(e)), ...Object.values(pkg.bin as Record<string, string>)];
  for (const e of entries) t.ok(files.has(e.replace(/^\.\//, '')), `${e} (package.json entry point)`);
  for (const f of ['dist/main.js', 'dist/cli.js', 'dist/generated/serializers.js', 'dist/demo/app.js', 'LICENSE', 'README.md', 'protocol.md', 'SECURITY.md', 'CHANGELOG.md', 'channels.schema.json', 'specs/asyncapi.json', 'specs/openapi.json', 'package.json']) t.ok(files.has(f), f);
  const stray = [...files].filter((f) => /^(src|test|test-bench|test-pack|bench|scripts|examples\/cluster|node_modules)\//.test(f) || f.endsWith('.map'));
  t.same(stray, [], 'no sources, tests, benchmarks or source maps');
  t.ok(packed.size < 1_000_000, `${packed.size} bytes packed`);
});

t.test('the Dockerfile copies only packaged paths into the image and runs the package bin, not as root', async (t) => {
  const stages = dockerStages(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  t.ok(stages.length >= 2, 'multi-stage');
  const final = stages.at(-1)!;
  const copies = final.filter((i) => i.op === 'COPY').map((i) => copyOf(i.args));
  for (const c of copies) {
    for (const src of c.sources) {
      const path = c.from === undefined ? src : src.replace(/^\/src\//, '');
      // The production dependencies come from package-lock.json (npm prune in the build stage), not from the package.
      if (path === 'node_modules') continue;
      t.ok(packaged(path), `COPY ${c.from ? `--from=${c.from} ` : ''}${src}: packaged`);
    }
  }
  const copied = copies.flatMap((c) => c.sources.map((s) => s.replace(/^\/src\//, '')));
  for (const needed of ['package.json', 'dist', 'bin', 'node_modules']) t.ok(copied.includes(needed), `the image has ${needed}`);
  const user = final.filter((i) => i.op === 'USER').at(-1)?.args;
  t.ok(user !== undefined && !/^(root|0)(:|$)/.test(user), `runs as ${user}`);
  const entry = execForm(final.find((i) => i.op === 'ENTRYPOINT')!.args);
  t.equal(entry.at(-1), pkg.bin.storywire, 'the entry point is the package bin');
  const shebang = readFileSync(join(ROOT, pkg.bin.storywire), 'utf8').split('\n')[0]!;
  t.equal(shebang, `#!/usr/bin/env -S ${entry.slice(0, -1).join(' ')}`, 'with the node flags of the bin\'s shebang');
  t.equal(final.find((i) => i.op === 'STOPSIGNAL')?.args, 'SIGTERM');
  t.match(final.find((i) => i.op === 'HEALTHCHECK')?.args, /\/readyz/);
  const env = Object.assign({}, ...final.filter((i) => i.op === 'ENV').map((i) => envOf(i.args)));
  t.ok(Number(env.DRAIN_MS) < Number(env.SHUTDOWN_TIMEOUT_MS) && Number(env.SHUTDOWN_TIMEOUT_MS) < 10_000, 'drain, then the hard limit, inside docker stop\'s 10 s');
});

t.test('the compose file runs Redis, two nodes of the Dockerfile and HAProxy over them', async (t) => {
  const compose = parseYaml(readFileSync(join(ROOT, 'examples/compose/compose.yaml'), 'utf8'), { merge: true });
  const s = compose.services;
  t.same(Object.keys(s).sort(), ['haproxy', 'node1', 'node2', 'redis']);
  const cfg = readFileSync(join(ROOT, 'examples/compose/haproxy.cfg'), 'utf8');
  t.same([...cfg.matchAll(/^\s*server (\S+) (\S+):9001\b/gm)].map((m) => `${m[1]}=${m[2]}`), ['node1=node1', 'node2=node2'], 'HAProxy balances over both nodes by name');
  t.match(cfg, /http-check send meth GET uri \/readyz ver HTTP\/1\.1/, 'checks /readyz with HTTP/1.1 (as examples/cluster does)');
  for (const name of ['node1', 'node2']) {
    const n = s[name];
    t.equal(n.build.dockerfile, 'Dockerfile');
    t.equal(n.environment.NODE_ID, name);
    t.equal(n.environment.REDIS_URL, 'redis://redis:6379');
    t.equal(n.environment.TRUSTED_PROXIES, s.haproxy.networks.storywire.ipv4_address, 'HAProxy is the trusted proxy');
    t.ok(Number(n.environment.SHUTDOWN_TIMEOUT_MS) < Number.parseInt(n.stop_grace_period, 10) * 1000, `${name}: the hard limit ends before stop_grace_period`);
  }
});

t.test('installed from the tarball in an empty directory: npx storywire --version, --help, --dev with a client', async (t) => {
  t.equal(run('npx', ['--no-install', 'storywire', '--version'], app).trim(), pkg.version);
  t.match(run('npx', ['--no-install', 'storywire', '--help'], app), /--port <n> +PORT/);
  // Its own process group, so that npx, the shell and node are stopped together by the PID started here.
  const child = spawn(...clean('npx', ['--no-install', 'storywire', '--dev', '--port', '0', '--drain-ms', '200']), { cwd: app, env: ENV, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = new Output(child);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
  });
  const port = Number((await out.waitFor(/"port":(\d+)[^\n]*"msg":"storywire listening"/))[1]);
  const token = (await out.waitFor(/token:\s+(\S+)/))[1]!;
  const frames = await talk(`ws://127.0.0.1:${port}/ws?token=${token}`);
  t.equal(frames[0]?.type, 'connected');
  t.equal(frames[0]?.data.userId, 'demo', 'the printed dev token is user demo\'s');
  t.equal(frames[1]?.type, 'pong');
  process.kill(-child.pid!, 'SIGTERM');
  await out.exited;
  t.match(out.text, /"msg":"shutdown complete"/, 'stopped by SIGTERM through its drain');
});

t.test('the image\'s entry point, environment and HEALTHCHECK work on the installed package; SIGTERM drains in time', async (t) => {
  const final = dockerStages(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).at(-1)!;
  const imageEnv = Object.assign({}, ...final.filter((i) => i.op === 'ENV').map((i) => envOf(i.args)));
  const entry = execForm(final.find((i) => i.op === 'ENTRYPOINT')!.args);
  const secret = 'pack-test-secret-pack-test-secret-0123';
  // As `docker run -e JWT_SECRET -e API_KEY`, on loopback and a free port here rather than the image's 0.0.0.0:9001.
  const env = { PATH: process.env['PATH']!, ...imageEnv, JWT_SECRET: secret, API_KEY: 'pack-test-api-key-0123', HOST: '127.0.0.1', PORT: '0' };
  const child = spawn(...clean(entry[0]!, entry.slice(1)), { cwd: join(app, 'node_modules', 'storywire'), env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = new Output(child);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const port = (await out.waitFor(/"port":(\d+)[^\n]*"msg":"storywire listening"/))[1]!;
  t.notMatch(out.text, /DEV MODE/, 'production defaults');
  const health = execForm(final.find((i) => i.op === 'HEALTHCHECK')!.args.replace(/^.*?CMD\s+/, ''));
  const probe = spawnSync(...clean(health[0]!, health.slice(1)), { env: { ...env, PORT: port }, encoding: 'utf8', timeout: 30_000 });
  t.equal(probe.status, 0, `the HEALTHCHECK passes (${probe.stderr})`);
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('reader').setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(secret));
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token}`);
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise((resolve, reject) => ws.on('message', resolve).on('error', reject));
  const started = Date.now();
  child.kill('SIGTERM');
  t.equal(await closed, 4000, 'the client is told SHUTDOWN (reconnect now)');
  const { code } = await out.exited;
  const tookMs = Date.now() - started;
  t.equal(code, 0, 'exits 0 after the drain');
  t.ok(tookMs < Number(imageEnv.SHUTDOWN_TIMEOUT_MS), `stopped in ${tookMs} ms, under SHUTDOWN_TIMEOUT_MS (${imageEnv.SHUTDOWN_TIMEOUT_MS}) and docker stop's 10 s`);
  const after = spawnSync(...clean(health[0]!, health.slice(1)), { env: { ...env, PORT: port }, encoding: 'utf8', timeout: 30_000 });
  t.not(after.status, 0, 'the HEALTHCHECK fails once it is stopped');
});

/** Opens a connection, sends a ping, and resolves with the first two frames (connected, pong). */
function talk(url: string): Promise<{ type: string; data?: any }[]> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const frames: { type: string; data?: any }[] = [];
    ws.on('error', reject);
    ws.on('close', (code) => reject(new Error(`closed ${code} after ${JSON.stringify(frames)}`)));
    ws.on('message', (d) => {
      frames.push(JSON.parse(String(d)));
      if (frames.length === 1) ws.send(JSON.stringify({ type: 'ping', id: 'p1' }));
      if (frames.some((f) => f.type === 'pong')) {
        ws.removeAllListeners('close');
        ws.close();
        resolve(frames);
      }
    });
  });
}
