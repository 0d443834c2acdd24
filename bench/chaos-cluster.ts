// Chaos against a real cluster (issue #21): redis-server + 2 storywire nodes (from the sources, through tsx)
// + a round-robin TCP proxy; SDK and raw devices, a backend retrying 503s with its Idempotency-Key, socket
// resets, node SIGKILLs, Redis restarted empty or with its data. One JSON line per run, then a summary;
// exits 1 when any run lost, duplicated or reordered something, showed a live user offline or left a store
// unlike the server's inbox.
//   npm run bench -- chaos-cluster [--variants all] [--runs 1] [--users 20] [--duration 30] [--rate 20] ...
import { cliOptions, jsonLines } from './lib/args.js';
import { machineInfo } from './lib/machine.js';
import { serverVersion } from './lib/servers.js';
import { NODE_ROOT, hasRedisServer } from './chaos-cluster/cluster.js';
import { VARIANTS, failures, runChaosCluster, type ChaosClusterResult, type Variant } from './chaos-cluster/run.js';

const cli = cliOptions('npm run bench -- chaos-cluster', {
  variants: { default: VARIANTS.join(','), choices: VARIANTS, doc: 'variants to run, in this order' },
  runs: { default: 1, int: true, doc: 'runs of each variant' },
  users: { default: 20, int: true, doc: 'users, one SDK device each' },
  raw: { default: 0.25, min: 0, max: 1, doc: 'share of the users that also have a raw ws device' },
  duration: { default: 30, min: 2, doc: 'seconds of publishing and chaos per run' },
  rate: { default: 20, min: 0.1, doc: 'logical notifications per second, all users together' },
  every: { default: 1000, min: 50, doc: 'ms between two rounds of socket resets' },
  share: { default: 0.05, min: 0, max: 1, doc: 'share of the client sockets reset each round' },
  lease: { default: 1500, min: 500, int: true, doc: "the nodes' NODE_LEASE_MS" },
  grace: { default: 2000, min: 0, int: true, doc: "the nodes' PRESENCE_GRACE_MS" },
  reads: { default: 0.3, min: 0, max: 1, doc: 'share of received notifications the SDK apps mark read' },
  attempts: { default: 8, int: true, doc: 'attempts per notification before the backend gives up' },
  settle: { default: 20_000, min: 0, doc: 'ms to wait at the end for devices to catch up' },
});
const emit = jsonLines(cli.out);

async function main(): Promise<number> {
  if (!hasRedisServer()) {
    process.stderr.write('chaos-cluster: redis-server is not on PATH (apt-get install redis-server)\n');
    return 2;
  }
  const machine = machineInfo();
  const server = { kind: 'storywire', name: 'storywire', version: serverVersion('storywire', NODE_ROOT), run: `node --import tsx ${NODE_ROOT}/src/main.ts` };
  const params = {
    users: cli.users,
    rawShare: cli.raw,
    durationS: cli.duration,
    ratePerS: cli.rate,
    resetEveryMs: cli.every,
    resetShare: cli.share,
    leaseMs: cli.lease,
    graceMs: cli.grace,
    readShare: cli.reads,
    maxAttempts: cli.attempts,
    settleMs: cli.settle,
  };
  const rows: { variant: Variant; run: number; r?: ChaosClusterResult; bad: string[] }[] = [];
  for (const variant of cli.variants as Variant[]) {
    for (let run = 1; run <= cli.runs; run++) {
      process.stderr.write(`[chaos-cluster] ${variant}, run ${run} of ${cli.runs}\n`);
      try {
        const r = await runChaosCluster({
          variant,
          users: params.users,
          rawShare: params.rawShare,
          durationMs: params.durationS * 1000,
          ratePerS: params.ratePerS,
          resetEveryMs: params.resetEveryMs,
          resetShare: params.resetShare,
          leaseMs: params.leaseMs,
          graceMs: params.graceMs,
          readShare: params.readShare,
          maxAttempts: params.maxAttempts,
          settleMs: params.settleMs,
          log: (line) => process.stderr.write(`${line}\n`),
        });
        const bad = failures(r);
        rows.push({ variant, run, r, bad });
        emit({ bench: 'chaos-cluster', variant, run, runs: cli.runs, server, params, machine, result: r, ok: bad.length === 0, ts: new Date().toISOString() });
      } catch (err) {
        const message = err instanceof Error ? err.stack ?? err.message : String(err);
        rows.push({ variant, run, bad: [message] });
        emit({ bench: 'chaos-cluster', variant, run, runs: cli.runs, server, params, machine, result: null, ok: false, errors: [message], ts: new Date().toISOString() });
      }
    }
  }
  const lines = [
    '',
    `chaos-cluster: ${params.users} users (${Math.round(params.users * params.rawShare)} with a raw device too), ${params.durationS} s, ${params.ratePerS} notifications/s, ` +
      `${params.resetShare * 100} % of sockets reset every ${params.resetEveryMs} ms, lease ${params.leaseMs} ms, grace ${params.graceMs} ms`,
    '| variant | run | published | acked | 503 | delivered/expected | missing (stored) | refetch (covered) | dup | retry dup | out of order | false offline | stores differ | verdict |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const { variant, run, r, bad } of rows) {
    if (!r) {
      lines.push(`| ${variant} | ${run} | | | | | | | | | | | | ERROR: ${bad[0]?.split('\n')[0]} |`);
      continue;
    }
    lines.push(
      `| ${variant} | ${run} | ${r.published} | ${r.acked} | ${r.http503} | ${r.delivered}/${r.expected} | ${r.missing} (${r.missingStored}) | ${r.toldToRefetch} (${r.coveredByRefetch}) | ` +
        `${r.duplicates} | ${r.retryDuplicates} | ${r.outOfOrder} | ${r.falseOffline} | ${r.storesDiffer}/${r.storesChecked} | ${bad.length === 0 ? 'ok' : `FAIL (${r.dir}/details.json)`} |`,
    );
  }
  console.log(lines.join('\n'));
  return rows.every((x) => x.bad.length === 0) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
