// ping: application-level ping -> pong RTT over idle connections, then again while a fan-out runs.
import { broadcastLoop, openConns, publisher, refusedErrors, openErrors, result, us2ms, withServer, type Ctx } from '../lib/context.js';
import { Meter, sleep } from '../lib/measure.js';
import type { ServerKind } from '../lib/wire.js';

export async function ping(ctx: Ctx, kind: ServerKind, run: number): Promise<void> {
  const { opts, pool } = ctx;
  await withServer(ctx, kind, 'ping', async (server) => {
    const open = await openConns(ctx, server, opts.subscribers);
    const durationMs = opts.durationS * 1000;
    const drainMs = opts.smoke ? 2000 : 5000;
    const spec = { conns: open.opened, rate: opts.pingRate, durationMs, drainMs };
    const params = { connections: opts.subscribers, pingRate: opts.pingRate, durationS: opts.durationS };

    // Idle: nothing else happens on the server. A short warm-up first.
    await pool.ping({ ...spec, durationMs: opts.warmupS * 1000 });
    await pool.stats(true, false);
    ctx.log(`ping ${kind} idle: ${open.opened} connections, ${opts.pingRate} pings/s, ${opts.durationS} s`);
    let meter = new Meter(server.pid, pool.pids).start();
    const idle = await pool.ping(spec);
    let cpu = meter.stop();
    let errors = openErrors(open);
    if (idle.lost > 0) errors.push(`${idle.lost} of ${idle.sent} pings unanswered`);
    ctx.emit(
      result(ctx, server, 'ping', 'idle', run, params, {
        connections: open.opened,
        pings: idle.sent,
        pongs: idle.received,
        lost: idle.lost,
        p50Ms: us2ms(idle.rtt.quantile(0.5)),
        p99Ms: us2ms(idle.rtt.quantile(0.99)),
        maxMs: us2ms(idle.rtt.max),
      }, cpu, errors),
    );

    // Under fan-out load: every connection is a `stories` subscriber; pongs queue behind broadcasts.
    const pub = await publisher(ctx, server);
    try {
      await pool.mode(true);
      const loop = broadcastLoop(pool, pub, { window: opts.window, durationMs: 3_600_000, drainMs });
      await sleep(opts.warmupS * 1000);
      await pool.stats(true, false);
      ctx.log(`ping ${kind} under-fanout: ${opts.window} broadcasts in flight`);
      meter = new Meter(server.pid, pool.pids).start();
      const busy = await pool.ping(spec);
      cpu = meter.stop();
      const st = await pool.stats(false, false);
      loop.stop();
      const lr = await loop.done;
      errors = [...openErrors(open), ...refusedErrors(pub)];
      if (busy.lost > 0) errors.push(`${busy.lost} of ${busy.sent} pings unanswered`);
      if (lr.lost > 0) errors.push(`${lr.lost} broadcasts did not complete`);
      if (st.dropped > 0) errors.push(`${st.dropped} connection(s) closed during the run (close codes ${JSON.stringify(st.dropCodes)})`);
      if (!server.alive()) errors.push(`server died: ${server.output()}`);
      ctx.emit(
        result(ctx, server, 'ping', 'under-fanout', run, { ...params, window: opts.window }, {
          connections: open.opened,
          pings: busy.sent,
          pongs: busy.received,
          lost: busy.lost,
          p50Ms: us2ms(busy.rtt.quantile(0.5)),
          p99Ms: us2ms(busy.rtt.quantile(0.99)),
          maxMs: us2ms(busy.rtt.max),
          fanoutDeliveredPerSec: st.delivered / cpu.wallS,
        }, cpu, errors),
      );
    } finally {
      await pub.close();
    }
  });
}
