// Runs src/main.ts as a process (the way npm start does, from the sources) and reads what it prints.
import { spawn } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import type { Test } from 'tap';
import { WAIT_MS } from './wait.js';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
export const KEY = 'production-secret-production-secret-0123';

export type Proc = ReturnType<typeof run>;

/** A storywire process on a free port (PORT=0) with exactly `env` besides PATH; killed when `t` ends. */
export function run(t: Test, env: Record<string, string>, args: string[] = []) {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    env: { PATH: process.env['PATH'] ?? '', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** The first match of `re` in what the process printed, once it printed it; rejects after WAIT_MS (a hang). */
export async function waitFor(get: () => string, re: RegExp): Promise<RegExpExecArray> {
  const end = Date.now() + WAIT_MS;
  while (Date.now() < end) {
    const m = re.exec(get());
    if (m) return m;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${re} in output: ${get()}`);
}

/** Stops a started process with SIGTERM and expects a clean exit. */
export async function stop(t: Test, p: Proc): Promise<void> {
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0, 'exits 0 on SIGTERM');
}

/** This machine's first IPv4 address that is not loopback (a peer that is not this machine's loopback). */
export const outside = Object.values(networkInterfaces()).flat().find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
