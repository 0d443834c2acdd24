// fanout: subscribers of `stories`, broadcasts at the highest rate the server sustains (a window of
// broadcasts in flight), then one at a time. Delivered messages/s, server CPU-seconds per million
// deliveries, per-delivery latency p50/p99.
import { broadcastLoop, openConns, publisher, refusedErrors, openErrors, result, us2ms, withServer, type Ctx } from '../lib/context.js';
import { Meter } from '../lib/measure.js';
import type { ServerKind } from '../lib/wire.js';

export async function fanout(ctx: Ctx, kind: ServerKind, run: number): Promise<void> {
  const { opts, pool } = ctx;
  await withServer(ctx, kind, 'fanout', async (server) => {
    const open = await openConns(ctx, server, opts.subscribers);
    const pub = await publisher(ctx, server);
    try {
      await pool.mode(true);
      const variants: [string, number][] = [
        ['max-rate', opts.window],
        ['one-at-a-time', 1],
      ];
      for (const [variant, window] of variants) {
        const drainMs = opts.smoke ? 3000 : 10_000;
        ctx.log(`fanout ${kind} ${variant}: ${open.opened} subscribers, ${window} in flight, ${opts.durationS} s`);
        await broadcastLoop(pool, pub, { window, durationMs: opts.warmupS * 1000, drainMs }).done;
        await pool.stats(true, false);
        const meter = new Meter(server.pid, pool.pids).start();
        const r = await broadcastLoop(pool, pub, { window, durationMs: opts.durationS * 1000, drainMs }).done;
        const cpu = meter.stop();
        const st = await pool.stats(true);
        const expected = r.sent * open.opened;
        const errors = [...openErrors(open), ...refusedErrors(pub)];
        if (r.lost > 0) errors.push(`${r.lost} of ${r.sent} broadcasts did not reach every subscriber within ${drainMs} ms`);
        if (st.dropped > 0) errors.push(`${st.dropped} subscriber connection(s) closed during the run (close codes ${JSON.stringify(st.dropCodes)})`);
        if (r.lost === 0 && st.delivered !== expected) errors.push(`delivered ${st.delivered}, expected ${expected}`);
        if (!server.alive()) errors.push(`server died: ${server.output()}`);
        ctx.emit(
          result(
            ctx,
            server,
            'fanout',
            variant,
            run,
            { subscribers: opts.subscribers, window, durationS: opts.durationS, warmupS: opts.warmupS, payloadBytes: opts.payloadBytes, publishVia: opts.publishVia },
            {
              subscribers: open.opened,
              broadcasts: r.completed,
              lost: r.lost,
              delivered: st.delivered,
              expected,
              deliveredPerSec: st.delivered / cpu.wallS,
              broadcastsPerSec: r.completed / cpu.wallS,
              serverCpuSecPerMillion: (cpu.serverCpuS / st.delivered) * 1e6,
              clientCpuSecPerMillion: (cpu.clientCpuS / st.delivered) * 1e6,
              p50Ms: us2ms(st.latency.quantile(0.5)),
              p99Ms: us2ms(st.latency.quantile(0.99)),
              completionP50Ms: us2ms(r.completion.quantile(0.5)),
              completionP99Ms: us2ms(r.completion.quantile(0.99)),
            },
            cpu,
            errors,
          ),
        );
      }
    } finally {
      await pub.close();
    }
  });
}
