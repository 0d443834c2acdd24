// Oversized HTTP bodies get their 413 (issue #17, item 7): clients that write the whole body before they read
// (Node's http and fetch, Python's urllib, curl without Expect) read the 413 and its JSON body, not EPIPE.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DISCARD_MIN_BYTES } from '../../src/api/http.js';
import { startServer } from '../helpers.js';

const KEY = 'test-api-key-0123456789';
const BODY = Buffer.alloc(8 * 1024 * 1024, 'x');
const TOO_LARGE = { error: { code: 'PAYLOAD_TOO_LARGE', message: /limit is 65536/ } };

const h = await startServer(t, { apiKey: KEY });
const url = `http://127.0.0.1:${h.port}/v1/notifications`;
const headers = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
const installed = (cmd: string) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;

/** Runs a command to its end: its exit code and stdout. */
function run(cmd: string, args: string[], input?: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => resolve({ code, out, err }));
    child.stdin.end(input);
  });
}

t.test("Node's fetch: a string, a Buffer and a Blob of 8 MiB", async (t) => {
  for (const [name, body] of [
    ['string', BODY.toString()],
    ['Buffer', BODY],
    ['Blob', new Blob([BODY])],
  ] as const) {
    const res = await fetch(url, { method: 'POST', headers, body });
    t.equal(res.status, 413, name);
    t.match(await res.json(), TOO_LARGE, `${name}: the JSON error body`);
  }
});

t.test('node:http without Expect, declared and chunked: the 413 and no write error', async (t) => {
  for (const chunked of [false, true]) {
    const errors: string[] = [];
    const answer = await new Promise<{ status: number | undefined; body: string }>((resolve) => {
      const req = http.request(url, { method: 'POST', headers: chunked ? headers : { ...headers, 'content-length': BODY.length } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        // The request is over when its socket is: a write error after the answer would show by then.
        res.on('end', () => req.on('close', () => resolve({ status: res.statusCode, body })));
      });
      req.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
      if (chunked) for (let o = 0; o < BODY.length; o += 1 << 20) req.write(BODY.subarray(o, o + (1 << 20)));
      req.end(chunked ? undefined : BODY);
    });
    const name = chunked ? 'chunked' : 'Content-Length';
    t.equal(answer.status, 413, name);
    t.match(JSON.parse(answer.body), chunked ? { error: { code: 'PAYLOAD_TOO_LARGE' } } : TOO_LARGE, `${name}: the JSON error body`);
    t.same(errors, [], `${name}: no EPIPE or ECONNRESET while writing`);
  }
});

t.test("Python's urllib", { skip: installed('python3') ? false : 'python3 is not installed' }, async (t) => {
  const script = `
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], data=b'x' * 8388608, headers={'authorization': sys.argv[2], 'content-type': 'application/json'})
try:
    urllib.request.urlopen(req)
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
`;
  const r = await run('python3', ['-c', script, url, headers.authorization]);
  t.equal(r.code, 0, r.err);
  const [status, ...rest] = r.out.trim().split(' ');
  t.equal(status, '413');
  t.match(JSON.parse(rest.join(' ')), TOO_LARGE);
});

t.test('curl --data-binary, with and without Expect: 100-continue', { skip: installed('curl') ? false : 'curl is not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'storywire-413-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'body.json');
  writeFileSync(file, BODY);
  for (const expect of [[], ['-H', 'Expect:']]) {
    const r = await run('curl', ['-sS', '-w', '\n%{http_code}', '-H', `Authorization: ${headers.authorization}`, '-H', 'Content-Type: application/json', ...expect, '--data-binary', `@${file}`, url]);
    const name = expect.length ? 'without Expect' : 'with Expect';
    t.equal(r.code, 0, `${name}: ${r.err}`);
    const lines = r.out.trim().split('\n');
    t.equal(lines.at(-1), '413', name);
    t.match(JSON.parse(lines.slice(0, -1).join('\n')), TOO_LARGE, `${name}: the JSON error body`);
  }
});

/** A raw request that declares `length` bytes and sends `send` of them: what comes back before the socket closes. */
function partial(length: number, send: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(h.port, '127.0.0.1', () => {
      s.write(`POST /v1/notifications HTTP/1.1\r\nHost: x\r\nAuthorization: ${headers.authorization}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`);
      s.write(Buffer.alloc(send, 'x'));
    });
    let out = '';
    s.on('data', (d) => (out += d));
    s.on('close', () => resolve(out));
    s.on('error', () => undefined);
  });
}

t.test('dropping is bounded: a declared body past the bound is answered at once, a stalled one after DISCARD_MS', async (t) => {
  const declaredHuge = await partial(DISCARD_MIN_BYTES + 1, 0);
  t.match(declaredHuge, /^HTTP\/1\.1 413[\s\S]*PAYLOAD_TOO_LARGE/, 'answered and closed without waiting for the body');
  const stalled = await partial(1 << 20, 100_000);
  t.match(stalled, /^HTTP\/1\.1 413[\s\S]*PAYLOAD_TOO_LARGE/, 'a client that stops sending gets its 413 and the socket closes');
});

t.test('the server is fine afterwards', async (t) => {
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ userId: 'bob', notification: { title: 'x', message: 'y' } }) });
  t.equal(res.status, 200);
});
