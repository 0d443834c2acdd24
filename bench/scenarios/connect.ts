// connect: N authenticated connections. Handshakes/s (JWT verify included), server CPU per handshake,
// server RSS per connection once settled, and what that projects for 1M connections on one node.
import { openConns, openErrors, result, sourceAddresses, withServer, type Ctx } from '../lib/context.js';
import { Meter, settleRss, sleep, sumCpu } from '../lib/measure.js';
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
      ctx.log(`connect ${kind} ${variant}: opening ${target} connections in two halves`);
      // Two halves, RSS settled after each: the average per connection (from the idle server) and the
      // marginal cost of the second half, which leaves out one-time growth (heap spaces, tables).
      const half = Math.floor(target / 2);
      const meter1 = new Meter(server.pid, pool.pids).start();
      const r1 = await openConns(ctx, server, half, 'u', 0);
      const cpu1 = meter1.stop();
      const rssHalf = await settleRss(server.pid, opts.settleMaxS * 1000);
      const meter2 = new Meter(server.pid, pool.pids).start();
      const r2 = await openConns(ctx, server, target - half, 'u', half);
      const cpu2 = meter2.stop();
      const rssAfter = await settleRss(server.pid, opts.settleMaxS * 1000);
      const opened = r1.opened + r2.opened;
      const elapsedS = (r1.elapsedMs + r2.elapsedMs) / 1000;
      const cpu = sumCpu(cpu1, cpu2);
      const perConn = opened > 0 ? (rssAfter - rssBefore) / opened : Number.NaN;
      const marginal = r2.opened > 0 ? (rssAfter - rssHalf) / r2.opened : Number.NaN;
      const errors = [...openErrors(warm), ...openErrors(r1), ...openErrors(r2)];
      if (!server.alive()) errors.push(`server died: ${server.output()}`);
      r1.handshake.merge(r2.handshake);
      ctx.emit(
        result(
          ctx,
          server,
          'connect',
          variant,
          run,
          { requested: target, concurrencyPerWorker: opts.concurrency, workers: pool.size, sourceAddresses: Math.max(1, sourceAddresses(opts, target).length) },
          {
            connections: opened,
            failed: r1.failed + r2.failed,
            handshakesPerSec: opened / elapsedS,
            serverCpuUsPerHandshake: opened > 0 ? (cpu.serverCpuS * 1e6) / opened : Number.NaN,
            clientCpuUsPerHandshake: opened > 0 ? (cpu.clientCpuS * 1e6) / opened : Number.NaN,
            handshakeP50Ms: r1.handshake.quantile(0.5) / 1000,
            handshakeP99Ms: r1.handshake.quantile(0.99) / 1000,
            rssBeforeMiB: rssBefore / 2 ** 20,
            rssAfterMiB: rssAfter / 2 ** 20,
            rssPerConnKiB: perConn / 1024,
            rssMarginalKiB: marginal / 1024,
            projected1MGiB: (rssBefore + (Number.isFinite(marginal) ? marginal : perConn) * 1e6) / 2 ** 30,
          },
          cpu,
          errors,
        ),
      );
    });
  }
}
