// The app's backend for `npm run bench -- proxy`: a fast local node:http server that allows every subscribe
// and publish (protocol.md section 12, "Backend proxies"), on kept-alive connections, in a process of its
// own (so its CPU is not the storywire server's). It counts the requests it answered by kind; GET /stats
// returns the counts. Prints "listening <port>" once it listens. Plain JavaScript run by plain `node`.
//
// Env: HOST (127.0.0.1), PORT (0: any free port).
import { createServer } from 'node:http';

const host = process.env.HOST || '127.0.0.1';
const port = Number(process.env.PORT || 0);
const counts = { subscribe: 0, publish: 0, other: 0, bad: 0 };
const ALLOW = '{"allow":true}';
const MAX_BODY = 1 << 20;

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(counts));
    return;
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size <= MAX_BODY) chunks.push(c);
  });
  req.on('end', () => {
    let kind;
    try {
      kind = size <= MAX_BODY ? JSON.parse(Buffer.concat(chunks).toString()).kind : undefined;
    } catch {
      kind = undefined;
    }
    if (kind === 'subscribe' || kind === 'publish') counts[kind]++;
    else if (typeof kind === 'string') counts.other++;
    else {
      counts.bad++;
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"not a proxy request"}');
      return;
    }
    // Allow without `data`: a publish is broadcast as the client sent it.
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': ALLOW.length }).end(ALLOW);
  });
});
// Kept-alive connections outlive the pauses between the bench's phases.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.listen(port, host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => process.exit(0));
// The bench going away ends the backend too (stdin is a pipe from the bench).
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
