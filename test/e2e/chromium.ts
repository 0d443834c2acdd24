// Helpers for the Chromium tests: the browser's flags, the skip (or CI failure) when it is missing, the build of
// what the page loads, and a real `storywire` process in dev mode that a test kills and restarts.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { skipUnlessRequired } from '../ci-require.js';
import { WAIT_MS } from '../wait.js';

export const CHROMIUM = '/usr/bin/chromium';
export const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Why the browser tests cannot run here, or false (with CI_REQUIRE=chromium a missing browser throws instead). */
export const chromiumSkip = (): string | false => skipUnlessRequired('chromium', existsSync(CHROMIUM) ? false : `${CHROMIUM} not installed`);

/** The page loads the compiled SDK and scripts from dist/: built (tsconfig.browser.json) when missing or older than their sources. */
export function ensureBuilt(): void {
  const newest = (dir: string, ext: string) =>
    Math.max(0, ...readdirSync(join(ROOT, dir)).filter((f) => f.endsWith(ext)).map((f) => statSync(join(ROOT, dir, f)).mtimeMs));
  const built = ['dist/client/index.js', 'dist/demo/app.js', 'dist/demo/chat.js', 'dist/wire/codes.js'].every((f) => existsSync(join(ROOT, f)));
  const fresh =
    built &&
    newest('dist/client', '.js') >= newest('src/client', '.ts') &&
    newest('dist/demo', '.js') >= newest('src/demo', '.ts') &&
    statSync(join(ROOT, 'dist/wire/codes.js')).mtimeMs >= statSync(join(ROOT, 'src/wire/codes.ts')).mtimeMs;
  if (built && fresh) return;
  // Through sh with NODE_OPTIONS unset: tap instruments node children with loaders the TypeScript 7 compiler cannot run under.
  const r = spawnSync('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" node_modules/typescript/bin/tsc -p tsconfig.browser.json', process.execPath], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build failed:\n${r.stdout}${r.stderr}`);
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A real `storywire` process in dev mode (`--dev`: /dev/token and the demo backend), resolved once it listens. */
export async function startProcess(t: Teardown, port: number, extra: Record<string, string> = {}): Promise<ChildProcess> {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: process.env['HOME'], PORT: String(port), LOG_LEVEL: 'info', ...extra };
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts'), '--dev'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not listen within ${WAIT_MS} ms: ${err}`)), WAIT_MS);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"msg":"storywire listening"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${err}`));
    });
  });
  return child;
}

/** SIGKILL, resolved once the process is gone. */
export async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/**
 * Headless Chromium with a fresh profile directory (Playwright refuses --user-data-dir in args: the directory is
 * launchPersistentContext's argument), every wait bounded by WAIT_MS; closed and its profile removed when `t`
 * ends (with it whatever a test wrote into `profile`). `viewport`: the demo page's tests use one large enough for
 * every panel.
 */
export async function launchBrowser(t: Teardown, viewport?: { width: number; height: number }) {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'storywire-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, ...(viewport ? { viewport } : {}) });
  t.teardown(async () => {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  });
  browser.setDefaultTimeout(WAIT_MS);
  return { browser, profile };
}
