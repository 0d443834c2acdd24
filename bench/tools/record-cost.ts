// Where a cluster notification's Redis CPU goes (issue #18): the backplane's recording of plain events
// (RECORD_MANY: numbered in the topic's history, the books kept, published) on a redis-server of its own, the
// events of one turn in one call (as shipped: `--batch` notifications sent together, as one POST
// /v1/notifications with userIds does) against one event per call (each awaited before the next). Each variant
// runs `--runs` times on a fresh redis-server (SIGKILLed by PID), after a warm-up that fills every history (so
// that each measured event also trims one); another connection listens to every topic, so that every event is
// published to someone. One JSON line per variant with the medians: redis-server CPU and this process's CPU per
// event, and the commands the scripts ran per event with their time (INFO commandstats, the last run).
//
//   node --import tsx bench/tools/record-cost.ts [--calls 20000] [--users 400] [--batch 50] [--runs 3]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pino from 'pino';
import { RedisBackplane } from '../../src/seams/backplane/redis/backplane.js';
import { freePort } from '../lib/servers.js';

const { values } = parseArgs({ options: { calls: { type: 'string' }, users: { type: 'string' }, batch: { type: 'string' }, runs: { type: 'string' } } });
const CALLS = Math.min(1_000_000, Number(values.calls ?? 20_000));
const USERS = Math.min(100_000, Number(values.users ?? 400));
const BATCH = Math.min(128, Number(values.batch ?? 50));
const RUNS = Math.min(10, Number(values.runs ?? 3));
if (![CALLS, USERS, BATCH, RUNS].every((n) => Number.isInteger(n) && n > 0)) {
  process.stderr.write('usage: record-cost.ts [--calls N] [--users N] [--batch N (at most 128)] [--runs N] (positive integers)\n');
  process.exit(2);
}

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

interface Run {
  redisUs: number;
  nodeUs: number;
  commands: Record<string, { perEvent: number; usPerEvent: number }>;
}

async function run(together: number): Promise<Run> {
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const exited = new Promise((r) => redis.once('exit', r));
  const url = `redis://127.0.0.1:${port}`;
  const raw = new Redis(url, { lazyConnect: true });
  const listener = new Redis(url, { lazyConnect: true });
  try {
    for (let i = 0; i < 200 && !(await pong(port)); i++) await new Promise((r) => setTimeout(r, 25));
    const bp = new RedisBackplane({ url, prefix: 'rc:', nodeId: 'n1', leaseMs: 5000, graceMs: 1000, log: pino({ level: 'silent' }), history: { size: 50, ttlMs: 7 * 86_400_000, userSize: 25, maxBytes: 256 << 20 } });
    if (!(await bp.connect(5000))) throw new Error('the backplane did not connect');
    await Promise.all([raw.connect(), listener.connect()]);
    // Another node listening to every user's topic: each event is published to one subscriber.
    const topics = Array.from({ length: USERS }, (_, u) => `user:u${u}`);
    await raw.pipeline(topics.map((tp) => ['sadd', `rc:interest:${tp}`, 'n2'])).exec();
    await listener.ssubscribe(...topics.map((tp) => `rc:t:${tp}`));
    const tail = ',"data":{"id":"x","title":"Bench","message":"A bench notification","type":"info","from":null,"origin":"system","ts":1},"ts":1}';
    const one = (topic: string) => bp.publishRecorded(topic, `{"type":"notification:received","topic":${JSON.stringify(topic)}`, tail);
    const round = async (user: (j: number) => number) => {
      if (together === 1) {
        for (let j = 0; j < BATCH; j++) await one(topics[user(j)]!);
      } else await Promise.all(Array.from({ length: BATCH }, (_, j) => one(topics[user(j)]!)));
    };
    for (let i = 0; i < USERS * 50; i += BATCH) await round((j) => (i + j) % USERS);
    await raw.config('RESETSTAT');
    const r0 = cpuOf(redis.pid!);
    const n0 = process.cpuUsage();
    for (let i = 0; i < CALLS; i += BATCH) await round(() => Math.floor(Math.random() * USERS));
    const n1 = process.cpuUsage(n0);
    const redisUs = ((cpuOf(redis.pid!) - r0) * 1e6) / CALLS;
    const commands: Run['commands'] = {};
    for (const line of (await raw.info('commandstats')).split('\n')) {
      const m = /^cmdstat_([\w|]+):calls=(\d+),usec=(\d+)/.exec(line);
      if (m && !m[1]!.startsWith('config') && !m[1]!.startsWith('info')) commands[m[1]!] = { perEvent: Number((Number(m[2]) / CALLS).toFixed(2)), usPerEvent: Number((Number(m[3]) / CALLS).toFixed(2)) };
    }
    await bp.close();
    return { redisUs, nodeUs: (n1.user + n1.system) / CALLS, commands };
  } finally {
    raw.disconnect();
    listener.disconnect();
    redis.kill('SIGKILL');
    await exited;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [variant, together] of [
  [`one turn's ${BATCH} events per call (as shipped)`, BATCH],
  ['one event per call', 1],
] as const) {
  const runs: Run[] = [];
  for (let r = 0; r < RUNS; r++) runs.push(await run(together));
  const top = Object.entries(runs.at(-1)!.commands).sort((a, b) => b[1].usPerEvent - a[1].usPerEvent);
  process.stdout.write(
    `${JSON.stringify({
      bench: 'record-cost',
      variant,
      params: { calls: CALLS, users: USERS, batch: BATCH, runs: RUNS },
      redisUsPerEvent: Number(median(runs.map((r) => r.redisUs)).toFixed(1)),
      nodeUsPerEvent: Number(median(runs.map((r) => r.nodeUs)).toFixed(1)),
      runs: runs.map((r) => ({ redisUs: Number(r.redisUs.toFixed(1)), nodeUs: Number(r.nodeUs.toFixed(1)) })),
      commands: Object.fromEntries(top),
    })}\n`,
  );
}
process.exit(0);
