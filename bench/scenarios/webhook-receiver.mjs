// The webhook receiver of `npm run bench -- webhooks`: a node:http server in a process of its own (its CPU is
// not storywire's) that answers 200 at once to every POST, counts the events by type (and the notifications
// pushed, `data.count` of `notification.unread`), records the delay from the event's `timestamp` to its
// receipt, and verifies the Standard Webhooks signature of one request in VERIFY_EVERY (written here from the
// spec, not imported from storywire: an independent check). GET /stats returns the counts and the delays'
// percentiles; POST /reset clears them. Prints "listening <port>" once it listens. Plain `node`.
//
// Env: HOST (127.0.0.1), PORT (0: any free port), WEBHOOK_SECRET (whsec_...), VERIFY_EVERY (10).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

const host = process.env.HOST || '127.0.0.1';
const port = Number(process.env.PORT || 0);
const secret = process.env.WEBHOOK_SECRET ?? '';
const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
const verifyEvery = Math.max(1, Number(process.env.VERIFY_EVERY || 10));
const MAX_BODY = 1 << 20;
/** Delays are kept in 0.1 ms buckets up to 60 s; beyond that in the last one (counted as such). */
const BUCKETS = 600_000;

let stats;
let delays;
function reset() {
  stats = { requests: 0, events: {}, notificationsPushed: 0, users: 0, verified: 0, badSignatures: 0, badBodies: 0, duplicateIds: 0, firstAt: 0, lastAt: 0 };
  delays = new Uint32Array(BUCKETS);
  seenIds.clear();
  seenUsers.clear();
}
const seenIds = new Set();
const seenUsers = new Set();
reset();

function quantile(q) {
  const n = stats.requests - stats.badBodies;
  if (n === 0) return null;
  const rank = Math.ceil(q * n);
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    seen += delays[i];
    if (seen >= rank) return i / 10;
  }
  return null;
}

function signatureOk(headers, body) {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sigs = headers['webhook-signature'];
  if (typeof id !== 'string' || typeof ts !== 'string' || typeof sigs !== 'string') return false;
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const expected = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest();
  return sigs.split(' ').some((s) => {
    const given = Buffer.from(s.startsWith('v1,') ? s.slice(3) : '', 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    const body = JSON.stringify({ ...stats, p50Ms: quantile(0.5), p99Ms: quantile(0.99), maxMs: quantile(1) });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    return;
  }
  if (req.method === 'POST' && req.url === '/reset') {
    reset();
    res.writeHead(204).end();
    return;
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size <= MAX_BODY) chunks.push(c);
  });
  req.on('end', () => {
    const now = Date.now();
    // Answer first: the receiver should never be what the sender waits for.
    res.writeHead(200, { 'content-length': 0 }).end();
    stats.requests++;
    stats.firstAt ||= now;
    stats.lastAt = now;
    const text = Buffer.concat(chunks).toString();
    let event;
    try {
      event = JSON.parse(text);
    } catch {
      event = undefined;
    }
    const at = typeof event?.timestamp === 'string' ? Date.parse(event.timestamp) : Number.NaN;
    if (typeof event?.type !== 'string' || !Number.isFinite(at)) {
      stats.badBodies++;
      return;
    }
    stats.events[event.type] = (stats.events[event.type] ?? 0) + 1;
    if (event.type === 'notification.unread') stats.notificationsPushed += Number(event.data?.count) || 0;
    const user = event.data?.userId;
    if (typeof user === 'string' && !seenUsers.has(user)) {
      seenUsers.add(user);
      stats.users++;
    }
    const id = req.headers['webhook-id'];
    if (seenIds.has(id)) stats.duplicateIds++;
    else seenIds.add(id);
    delays[Math.min(BUCKETS - 1, Math.max(0, Math.round((now - at) * 10)))]++;
    if (stats.requests % verifyEvery === 1 || verifyEvery === 1) {
      if (signatureOk(req.headers, text)) stats.verified++;
      else stats.badSignatures++;
    }
  });
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.listen(port, host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => process.exit(0));
// The bench going away ends the receiver too (stdin is a pipe from the bench).
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
