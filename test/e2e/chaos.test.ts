// A small run of bench/chaos.ts's scenario against an in-process server: sockets cut while notifications flow, nothing lost.
import t from 'tap';
import { runChaos } from '../../bench/chaos-run.js';
import { sign, startServer, WAIT_MS } from '../helpers.js';

const API_KEY = 'chaos-smoke-api-key-0123';

t.test('chaos smoke: 10 clients, a fifth cut every 200 ms for 2 s: every notification once, in order', async (t) => {
  // A history no client can outrun while away, however late a busy machine lets it come back: a resume past
  // the history is a resync (recovered: false), which is right but is not what this test is about.
  const h = await startServer(t, { historySize: 10_000 }, { API_KEY });
  const r = await runChaos({
    url: h.url,
    apiBase: `http://127.0.0.1:${h.port}`,
    apiKey: API_KEY,
    token: (sub) => sign(sub),
    clients: 10,
    durationMs: 2000,
    ratePerS: 40,
    chaosEveryMs: 200,
    dropShare: 0.2,
    awayMs: 200,
    // Bounded by what happened rather than by the clock, which a busy machine runs late.
    minCuts: 11,
    minPublished: 41,
    settleMs: WAIT_MS,
    resume: true,
  });
  t.ok(r.published > 40 && r.cuts > 10, `${r.published} published, ${r.cuts} cuts`);
  t.match(r, { publishFailures: 0, missing: 0, duplicates: 0, unexpected: 0, outOfOrder: 0, resyncs: 0 });
  t.equal(r.deliveryPct, 100);
  t.ok(r.reconnects >= r.cuts, `${r.reconnects} reconnects for ${r.cuts} cuts: everyone came back`);
});
