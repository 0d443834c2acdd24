// A throwaway redis-server that keeps its data across stop()/start() (append-only file, fsync on every write),
// for outages where Redis comes back with its data, as production Redis usually runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as netServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until, type TestRedis } from './redis.js';

interface Tap {
  teardown(fn: () => unknown): void;
}

/** A redis-server keeping its data across a stop (append-only file, fsync on every write) in a fresh directory. */
export async function persistentRedis(t: Tap): Promise<TestRedis> {
  const port = await new Promise<number>((resolve) => {
    const s = netServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const dir = mkdtempSync(join(tmpdir(), 'sw-inbox-redis-'));
  let child: ChildProcess | undefined;
  const pong = () =>
    new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('data', (d) => (sock.destroy(), resolve(d.toString().startsWith('+PONG'))));
      sock.once('connect', () => sock.write('PING\r\n'));
      sock.once('error', () => resolve(false));
    });
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'], { stdio: 'ignore' });
    await until(pong, 5000, `redis-server on port ${port}`);
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  t.teardown(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { url: `redis://127.0.0.1:${port}`, prefix: `swtest:${randomBytes(4).toString('hex')}:`, start, stop };
}

