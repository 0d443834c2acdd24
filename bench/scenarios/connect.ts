// connect: N authenticated connections. Handshakes/s (JWT verify included), server CPU per handshake,
// server RSS per connection once settled, and what that projects for 1M connections on one node.
import { openConns, openErrors, result, withServer, type Ctx } from '../lib/context.js';
import { Meter, settleRss, sleep } from '../lib/measure.js';
import type { Pool } from '../lib/pool.js';
import { maxOpenFiles, openFiles } from '../lib/proc.js';
import type { ServerKind } from '../lib/wire.js';

/** File descriptors left free in each process (listen socket, stdio, epoll, timers, late opens). */
const FD_MARGIN = 64;

/** As many connections as the server process may hold, and the workers together can open. */
export function maxConnections(serverPid: number, pool: Pool): number {
  const server = maxOpenFiles(serverPid) - openFiles(serverPid) - FD_MARGIN;
  const clients = pool.pids.reduce((sum, pid) => sum + maxOpenFiles(pid) - openFiles(pid) - FD_MARGIN, 0);
  return Math.max(0, Math.min(server, clients));
}

export async function connect(ctx: Ctx, kind: ServerKind, run: number): Promise<void> {
  const { opts, pool } = ctx;
  for (const n of opts.connections) {
    const variant = n === 'max' ? 'max' : `n=${n}`;
    await withServer(ctx, kind, 'connect', async (server) => {
      // Warm-up: JIT the handshake path and grow the heap to its working shape before measuring.
      const warm = await openConns(ctx, server, opts.smoke ? 4 : 200, 'warm');
      await pool.closeAll();
      await sleep(opts.smoke ? 50 : 500);
      const rssBefore = await settleRss(server.pid, opts.settleMaxS * 1000);
      const target = n === 'max' ? maxConnections(server.pid, pool) : n;
      ctx.log(`connect ${kind} ${variant}: opening ${target} connections`);
      const meter = new Meter(server.pid, pool.pids).start();
      const r = await openConns(ctx, server, target);
      const cpu = meter.stop();
      const rssAfter = await settleRss(server.pid, opts.settleMaxS * 1000);
      const perConn = r.opened > 0 ? (rssAfter - rssBefore) / r.opened : Number.NaN;
      const errors = [...openErrors(warm), ...openErrors(r)];
      if (!server.alive()) errors.push(`server died: ${server.output()}`);
      ctx.emit(
        result(
          ctx,
          server,
          'connect',
          variant,
          run,
          { requested: target, concurrencyPerWorker: opts.concurrency, workers: pool.size, sourceAddresses: Math.max(1, opts.sourceAddresses === 'auto' ? Math.ceil(target / 25_000) : opts.sourceAddresses) },
          {
            connections: r.opened,
            failed: r.failed,
            handshakesPerSec: r.opened / (r.elapsedMs / 1000),
            serverCpuUsPerHandshake: r.opened > 0 ? (cpu.serverCpuS * 1e6) / r.opened : Number.NaN,
            clientCpuUsPerHandshake: r.opened > 0 ? (cpu.clientCpuS * 1e6) / r.opened : Number.NaN,
            handshakeP50Ms: r.handshake.quantile(0.5) / 1000,
            handshakeP99Ms: r.handshake.quantile(0.99) / 1000,
            rssBeforeMiB: rssBefore / 2 ** 20,
            rssAfterMiB: rssAfter / 2 ** 20,
            rssPerConnKiB: perConn / 1024,
            projected1MGiB: (rssBefore + perConn * 1e6) / 2 ** 30,
          },
          cpu,
          errors,
        ),
      );
    });
  }
}
