// Where a cluster notification's Redis CPU goes (groundwork of issue #18): the backplane's RECORD script
// (number the event in the topic's history, keep the books, publish) run on a redis-server of its own, against
// variants of the same script with parts cut out, and against the same calls gathered per tick into one
// script call (RECORD_MANY, a loop over RECORD's body). Each variant runs `--runs` times on a fresh
// redis-server (SIGKILLed by PID); one JSON line per variant with the medians: redis-server CPU and this
// process's CPU per RECORD. The variants with cuts are not correct histories: they measure, nothing more.
//
//   node --import tsx bench/tools/record-cost.ts [--calls 20000] [--users 400] [--batch 50] [--runs 3]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { RedisBackplane } from '../../src/seams/backplane/redis/backplane.js';
import { HISTORY_SCRIPTS, RECORD } from '../../src/seams/history/redis-scripts.js';
import { freePort } from '../lib/servers.js';

const { values } = parseArgs({ options: { calls: { type: 'string' }, users: { type: 'string' }, batch: { type: 'string' }, runs: { type: 'string' } } });
const CALLS = Math.min(1_000_000, Number(values.calls ?? 20_000));
const USERS = Math.min(100_000, Number(values.users ?? 400));
const BATCH = Math.min(1000, Number(values.batch ?? 50));
const RUNS = Math.min(10, Number(values.runs ?? 3));
if (![CALLS, USERS, BATCH, RUNS].every((n) => Number.isInteger(n) && n > 0)) {
  process.stderr.write('usage: record-cost.ts [--calls N] [--users N] [--batch N] [--runs N] (positive integers)\n');
  process.exit(2);
}

// RECORD is BOOKS (the shared Lua functions) then its body: the part it shares with POSITION is BOOKS.
let common = 0;
while (RECORD[common] === HISTORY_SCRIPTS.POSITION[common]) common++;
const BOOKS = RECORD.slice(0, RECORD.lastIndexOf('\n', common));
const BODY = RECORD.slice(BOOKS.length);

function cut(script: string, parts: readonly string[]): string {
  let s = script;
  for (const p of parts) {
    if (!s.includes(p)) throw new Error(`RECORD changed: no "${p}" to cut`);
    s = s.replace(p, '');
  }
  return s;
}
const MAINTENANCE = ["bound(B, UA, ARGV[10], tonumber(ARGV[9]), 100)\n", 'sweep(B, ARGV[10], now - ttl, 2)\n'];
const BOOKKEEPING = ['rebook(B, topic, KEYS[2], delta)\n', 'reindex(UA, topic, KEYS[2], U)\n'];
const EXPIRES = ["redis.call('PEXPIRE', KEYS[1], ttl)\n", "redis.call('PEXPIRE', KEYS[2], ttl)\n", "redis.call('PEXPIRE', U, ttl)\n"];

const MANY = `${BOOKS}
local function record(KEYS, ARGV)
${BODY}
end
local n = tonumber(ARGV[1])
local out = {}
local ki, ai = 0, 1 + 2 * n
for c = 1, n do
  local nk, na = tonumber(ARGV[2 * c]), tonumber(ARGV[2 * c + 1])
  local K, A = {}, {}
  for j = 1, nk do K[j] = KEYS[ki + j] end
  for j = 1, na do A[j] = ARGV[ai + j] end
  ki = ki + nk
  ai = ai + na
  out[c] = record(K, A)
end
return out`;

interface Variant {
  name: string;
  script: string;
  batched: boolean;
}
const VARIANTS: Variant[] = [
  { name: 'RECORD as shipped', script: RECORD, batched: false },
  { name: 'batched per tick (RECORD_MANY)', script: RECORD, batched: true },
  { name: 'without bound/sweep', script: cut(RECORD, MAINTENANCE), batched: false },
  { name: 'without bound/sweep, books', script: cut(RECORD, [...MAINTENANCE, ...BOOKKEEPING]), batched: false },
  { name: 'without bound/sweep, books, PEXPIRE', script: cut(RECORD, [...MAINTENANCE, ...BOOKKEEPING, ...EXPIRES]), batched: false },
];

const cpuOf = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const pong = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    s.once('connect', () => s.write('PING\r\n'));
    s.once('error', () => resolve(false));
  });

type Cmd = Record<string, (...args: unknown[]) => Promise<unknown>> & { defineCommand(name: string, d: { lua: string }): void };

/** Gathers the RECORD calls of one tick into one RECORD_MANY call. */
function batchRecords(cmd: Cmd): void {
  const one = cmd['RECORD']!.bind(cmd);
  let queue: { keys: unknown[]; args: unknown[]; resolve(v: unknown): void; reject(e: unknown): void }[] = [];
  cmd['RECORD'] = (numKeys, ...rest) =>
    new Promise((resolve, reject) => {
      queue.push({ keys: rest.slice(0, numKeys as number), args: rest.slice(numKeys as number), resolve, reject });
      if (queue.length > 1) return;
      process.nextTick(() => {
        const b = queue;
        queue = [];
        if (b.length === 1) return void one(b[0]!.keys.length, ...b[0]!.keys, ...b[0]!.args).then(b[0]!.resolve, b[0]!.reject);
        const counts: number[] = [b.length];
        for (const c of b) counts.push(c.keys.length, c.args.length);
        cmd['RECORD_MANY']!(b.reduce((n, c) => n + c.keys.length, 0), ...b.flatMap((c) => c.keys), ...counts, ...b.flatMap((c) => c.args)).then(
          (out) => {
            for (const [i, o] of (out as unknown[]).entries()) b[i]!.resolve(o);
          },
          (err: unknown) => {
            for (const c of b) c.reject(err);
          },
        );
      });
    });
}

async function run(v: Variant): Promise<{ redisUs: number; nodeUs: number }> {
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const exited = new Promise((r) => redis.once('exit', r));
  try {
    for (let i = 0; i < 200 && !(await pong(port)); i++) await new Promise((r) => setTimeout(r, 25));
    const bp = new RedisBackplane({ url: `redis://127.0.0.1:${port}`, prefix: 'rc:', nodeId: 'n1', leaseMs: 5000, graceMs: 1000, log: pino({ level: 'silent' }), history: { size: 50, ttlMs: 7 * 86_400_000, userSize: 25 } });
    if (!(await bp.connect(5000))) throw new Error('the backplane did not connect');
    const cmd = (bp as unknown as { cmd: Cmd }).cmd;
    cmd.defineCommand('RECORD', { lua: v.script });
    cmd.defineCommand('RECORD_MANY', { lua: MANY });
    if (v.batched) batchRecords(cmd);
    const tail = ',"data":{"id":"x","title":"Bench","message":"A bench notification","type":"info","from":null,"origin":"system","ts":1},"ts":1}';
    const round = (user: (j: number) => string) =>
      Promise.all(
        Array.from({ length: BATCH }, (_, j) => {
          const topic = `user:${user(j)}`;
          return bp.publishRecorded(topic, `{"type":"notification:received","topic":${JSON.stringify(topic)}`, tail);
        }),
      );
    // Warm-up: every history full (50 entries), so that each measured call also trims.
    for (let i = 0; i < USERS * 50; i += BATCH) await round((j) => `u${(i + j) % USERS}`);
    const r0 = cpuOf(redis.pid!);
    const n0 = process.cpuUsage();
    for (let i = 0; i < CALLS; i += BATCH) await round(() => `u${Math.floor(Math.random() * USERS)}`);
    const n1 = process.cpuUsage(n0);
    const redisUs = ((cpuOf(redis.pid!) - r0) * 1e6) / CALLS;
    await bp.close();
    return { redisUs, nodeUs: (n1.user + n1.system) / CALLS };
  } finally {
    redis.kill('SIGKILL');
    await exited;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const v of VARIANTS) {
  const runs: { redisUs: number; nodeUs: number }[] = [];
  for (let r = 0; r < RUNS; r++) runs.push(await run(v));
  process.stdout.write(
    `${JSON.stringify({
      bench: 'record-cost',
      variant: v.name,
      params: { calls: CALLS, users: USERS, batch: BATCH, runs: RUNS },
      redisUsPerRecord: Number(median(runs.map((r) => r.redisUs)).toFixed(1)),
      nodeUsPerRecord: Number(median(runs.map((r) => r.nodeUs)).toFixed(1)),
      runs: runs.map((r) => ({ redisUs: Number(r.redisUs.toFixed(1)), nodeUs: Number(r.nodeUs.toFixed(1)) })),
    })}\n`,
  );
}
