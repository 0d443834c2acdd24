// notify: users connected once each; notifications to random users at increasing fixed rates (open loop).
// The highest rate whose delivery p99 stays under the limit with nothing lost, and server CPU per message.
import { openConns, openErrors, publisher, rateLoop, refusedErrors, result, us2ms, withServer, type Ctx } from '../lib/context.js';
import { Meter, round, sleep, type CpuFigures } from '../lib/measure.js';
import type { ServerKind } from '../lib/wire.js';

export interface NotifyStep {
  rate: number;
  sent: number;
  delivered: number;
  achievedRate: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  sendLagP99Ms: number;
  serverCpuUsPerMsg: number;
  serverPct: number;
  clientPct: number;
  otherPct: number;
  pass: boolean;
  why: string;
}

export async function notify(ctx: Ctx, kind: ServerKind, run: number): Promise<void> {
  const { opts, pool } = ctx;
  await withServer(ctx, kind, 'notify', async (server) => {
    const open = await openConns(ctx, server, opts.users);
    const pub = await publisher(ctx, server);
    const errors = openErrors(open);
    const steps: NotifyStep[] = [];
    const cpus: CpuFigures[] = [];
    try {
      await pool.mode(false);
      const drainMs = opts.smoke ? 2000 : 5000;
      const drain = async (sent: number): Promise<void> => {
        const deadline = performance.now() + drainMs;
        while (performance.now() < deadline) {
          if ((await pool.stats(false, false)).delivered >= sent) return;
          await sleep(20);
        }
      };
      // Warm-up at the lowest rate, not measured.
      const warm = await rateLoop(pub, { rate: opts.rates[0]!, durationMs: opts.warmupS * 1000, users: open.opened, prefix: 'u' });
      await drain(warm.sent);
      let failures = 0;
      for (const rate of opts.rates) {
        await pool.stats(true, false);
        ctx.log(`notify ${kind}: ${rate}/s for ${opts.stepS} s`);
        const meter = new Meter(server.pid, pool.pids).start();
        const r = await rateLoop(pub, { rate, durationMs: opts.stepS * 1000, users: open.opened, prefix: 'u' });
        await drain(r.sent);
        const cpu = meter.stop();
        cpus.push(cpu);
        const st = await pool.stats(true);
        const achievedRate = r.sent / (r.elapsedMs / 1000);
        const p99Ms = us2ms(st.latency.quantile(0.99));
        const why =
          st.delivered !== r.sent
            ? `delivered ${st.delivered} of ${r.sent}`
            : p99Ms >= opts.p99LimitMs
              ? `p99 ${round(p99Ms, 1)} ms >= ${opts.p99LimitMs} ms`
              : achievedRate < 0.95 * rate
                ? `publisher reached only ${Math.round(achievedRate)}/s`
                : '';
        steps.push({
          rate,
          sent: r.sent,
          delivered: st.delivered,
          achievedRate: round(achievedRate, 0),
          p50Ms: round(us2ms(st.latency.quantile(0.5)), 3),
          p99Ms: round(p99Ms, 3),
          maxMs: round(us2ms(st.latency.max), 3),
          sendLagP99Ms: round(us2ms(r.sendLag.quantile(0.99)), 3),
          serverCpuUsPerMsg: round((cpu.serverCpuS * 1e6) / Math.max(1, st.delivered), 2),
          serverPct: cpu.serverPct,
          clientPct: cpu.clientPct,
          otherPct: cpu.otherPct,
          pass: why === '',
          why,
        });
        if (st.dropped > 0) errors.push(`${st.dropped} connection(s) closed during the ${rate}/s step (close codes ${JSON.stringify(st.dropCodes)})`);
        if (why === '') failures = 0;
        // Two failing steps in a row end the ramp: one may be a keep-alive burst or noise.
        else if (++failures >= 2) break;
      }
      errors.push(...refusedErrors(pub));
    } finally {
      await pub.close();
    }
    if (!server.alive()) errors.push(`server died: ${server.output()}`);
    const passing = steps.filter((s) => s.pass);
    const best = passing.length > 0 ? Math.max(...passing.map((s) => s.rate)) : 0;
    const ref = steps.find((s) => s.rate === opts.refRate);
    // The CPU that matters is the one of the step that ended the ramp: the first failure above the best rate.
    const limitIndex = steps.findIndex((s) => !s.pass && s.rate > best);
    const cpu = cpus[limitIndex] ?? cpus[cpus.length - 1] ?? new Meter(server.pid, []).start().stop();
    ctx.emit(
      result(
        ctx,
        server,
        'notify',
        'steps',
        run,
        { users: opts.users, rates: opts.rates, stepS: opts.stepS, p99LimitMs: opts.p99LimitMs, refRate: opts.refRate, publishVia: opts.publishVia },
        {
          users: open.opened,
          maxRateP99Under50ms: best,
          serverCpuUsPerMsg: ref?.serverCpuUsPerMsg ?? Number.NaN,
          p99AtRefRateMs: ref?.p99Ms ?? Number.NaN,
          stepsRun: steps.length,
          firstFailingRate: steps.find((s) => !s.pass)?.rate ?? Number.NaN,
        },
        cpu,
        errors,
        { steps, cpuIs: limitIndex >= 0 ? `the ${steps[limitIndex]!.rate}/s step, the first failure above the best rate` : 'last step' },
      ),
    );
  });
}
