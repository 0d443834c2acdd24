// src/wire/codes.ts: errors as data (status, close code), the one error body, the refusal mapping, the close
// code ranges; and that no other source file builds an error body or writes a close code as a number.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import t from 'tap';
import {
  APPLICATION_CLOSE_CODES,
  CLOSE_CODE_RANGES,
  CloseCode,
  ERRORS,
  ErrorCode,
  WireError,
  errorBody,
  errorSpec,
  httpRefusalPolicy,
  isApplicationCloseCode,
  reconnectPolicy,
  refusalCloseCode,
} from '../src/wire/codes.js';
import { errorFrame } from '../src/wire/frames.js';
import { startServer } from './helpers.js';

t.test('ErrorCode is the key set of the table: each code names itself', async (t) => {
  t.same(Object.keys(ErrorCode), Object.keys(ERRORS));
  for (const [k, v] of Object.entries(ErrorCode)) t.equal(v, k);
});

t.test('a WireError takes its status from the table unless the throw names the other one', async (t) => {
  for (const code of Object.values(ErrorCode)) t.equal(new WireError(code, 'm').status, errorSpec(code).status, code);
  t.equal(new WireError(ErrorCode.CONNECTION_LIMIT, 'server full', 503).status, 503);
  t.equal(new WireError(ErrorCode.PAYLOAD_TOO_LARGE, 'field over its limit', 400).status, 400);
  const statuses = new Set(Object.values(ERRORS).flatMap((s) => ('otherStatus' in s ? [s.status, s.otherStatus] : [s.status])));
  for (const s of statuses) t.ok(s >= 400 && s <= 599, `${s} is an error status`);
});

t.test('one error body, byte for byte the shape HTTP answers and error frames always had', async (t) => {
  t.equal(JSON.stringify(errorBody(ErrorCode.NOT_FOUND, 'not found')), '{"error":{"code":"NOT_FOUND","message":"not found"}}');
  const frame = JSON.parse(errorFrame('x1', ErrorCode.BAD_JSON, 'frame is not valid JSON'));
  t.same(frame.error, errorBody(ErrorCode.BAD_JSON, 'frame is not valid JSON').error);
  t.equal(frame.id, 'x1');
});

t.test('the refusal mapping is the table: close code, HTTP only, SHUTDOWN while going away', async (t) => {
  for (const code of Object.values(ErrorCode)) {
    const spec = errorSpec(code);
    const close = refusalCloseCode({ code }, false);
    if (spec.neverInBand) t.equal(close, undefined, `${code}: always HTTP`);
    else t.equal(close, spec.close ?? CloseCode.PROTOCOL_ERROR, code);
    t.equal(refusalCloseCode({ code }, true), close === CloseCode.UNAVAILABLE ? CloseCode.SHUTDOWN : close, `${code} while shutting down`);
  }
  t.equal(refusalCloseCode({ code: ErrorCode.ORIGIN_FORBIDDEN }, false), undefined, 'a forbidden origin never gets a socket');
  t.equal(refusalCloseCode({ code: ErrorCode.INTERNAL }, false), CloseCode.PROTOCOL_ERROR, 'a code without its own close code: 4102');
  t.equal(refusalCloseCode({ code: ErrorCode.TOKEN_INVALID }, true), CloseCode.TOKEN_INVALID, 'only "cannot check now" becomes SHUTDOWN');
});

t.test('close code ranges: the policy follows them, and every storywire code is in one', async (t) => {
  for (let code = 1000; code <= 4999; code++) {
    const range = CLOSE_CODE_RANGES.find((r) => code >= r.from && code <= r.to);
    if (reconnectPolicy(code) !== (range?.policy ?? 'standard')) t.fail(`policy of ${code}`);
  }
  for (const [name, code] of Object.entries(CloseCode)) {
    if (code < 4000) {
      t.notOk(isApplicationCloseCode(code), `${name} is a standard code`);
      continue;
    }
    t.ok(isApplicationCloseCode(code), `${name} is an application code`);
    t.not(reconnectPolicy(code), 'standard', `${name} (${code}) is in a policy range`);
  }
  for (const r of CLOSE_CODE_RANGES) t.ok(r.from >= APPLICATION_CLOSE_CODES.from && r.to <= APPLICATION_CLOSE_CODES.to, `${r.from}-${r.to}`);
  t.equal(isApplicationCloseCode(3999), false);
  t.equal(isApplicationCloseCode(5000), false);
});

t.test('a refusal over HTTP: the statuses of a bad token or a missing permission stop, others back off', async (t) => {
  t.equal(httpRefusalPolicy(401), 'stop');
  t.equal(httpRefusalPolicy(403), 'stop');
  for (const s of [400, 404, 429, 500, 502, 503]) t.equal(httpRefusalPolicy(s), 'backoff', String(s));
  // Every refusal whose in-band close code stops has a status that stops over HTTP too.
  for (const code of Object.values(ErrorCode)) {
    const close = refusalCloseCode({ code }, false);
    if (close !== undefined && reconnectPolicy(close) === 'stop') t.equal(httpRefusalPolicy(errorSpec(code).status), 'stop', code);
  }
});

/** Every .ts file under src, with its comments removed. */
function sources(dir = new URL('../src/', import.meta.url)): { path: string; text: string }[] {
  return readdirSync(dir).flatMap((name) => {
    const url = new URL(name, dir);
    if (statSync(url).isDirectory()) return sources(new URL(`${name}/`, dir));
    if (!name.endsWith('.ts')) return [];
    const text = readFileSync(url, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
    return [{ path: url.pathname.replace(/^.*\/src\//, 'src/'), text }];
  });
}

t.test('no source file but wire/codes.ts builds an error body or writes a close code as a number', async (t) => {
  const files = sources().filter((f) => f.path !== 'src/wire/codes.ts');
  t.ok(files.length > 20, `${files.length} source files read`);
  const handBuilt = /error:\s*\{\s*code\b|\{\s*code(?::\s*(?:ErrorCode\.\w+|\w+\.code))?\s*,\s*message\b/;
  const literalClose = /\bcode\s*(?:===|!==|>=|<=|>|<)\s*\d{4}\b|\b\d{4}\s*(?:===|!==|>=|<=|>|<)\s*code\b|\bcode:\s*\d{4}\b|\b(?:teardown|close|end)\(\s*\d{4}\b|\bcode\s*\?\?\s*\d{4}\b/;
  for (const f of files) {
    t.notMatch(f.text, handBuilt, `${f.path}: error bodies come from errorBody()`);
    t.notMatch(f.text, literalClose, `${f.path}: close codes by name (CloseCode, isApplicationCloseCode)`);
  }
});

/** One HTTP request on its own connection (no keep-alive socket left to hold the process after the test). */
function request(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; allow: string | undefined; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, allow: res.headers.allow, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

t.test('over HTTP, both statuses of a code with two are kept (PAYLOAD_TOO_LARGE: 413 and 400)', async (t) => {
  const key = 'test-api-key-0123456789';
  const h = await startServer(t, { apiKey: key, maxBodyBytes: 2048, maxStoryBytes: 512 });
  const auth = { authorization: `Bearer ${key}` };
  const post = async (path: string, body: unknown) => {
    const { status, text } = await request(h.port, 'POST', path, { ...auth, 'content-type': 'application/json' }, JSON.stringify(body));
    return { status, text };
  };
  t.same(await post('/v1/stories', { id: 1, title: 'x'.repeat(3000) }), { status: 413, text: '{"error":{"code":"PAYLOAD_TOO_LARGE","message":"body is 3019 bytes, the limit is 2048"}}' }, 'a body over MAX_BODY_BYTES');
  t.same(await post('/v1/publish', { topic: 'stories', type: 'x:y', data: { a: 'x'.repeat(900) } }), { status: 413, text: '{"error":{"code":"PAYLOAD_TOO_LARGE","message":"body.data is over 512 bytes"}}' }, 'raw event data over MAX_STORY_BYTES');
  t.same(await post('/v1/stories', { id: 1, title: 't', description: 'x'.repeat(900) }), { status: 400, text: '{"error":{"code":"PAYLOAD_TOO_LARGE","message":"body is 937 bytes, the limit is 512"}}' }, 'a story over MAX_STORY_BYTES');
  t.same(await request(h.port, 'GET', '/v1/stories', auth), { status: 405, allow: 'POST', text: '{"error":{"code":"METHOD_NOT_ALLOWED","message":"use POST /v1/stories"}}' });
  t.same(await request(h.port, 'GET', '/nowhere'), { status: 404, allow: undefined, text: '{"error":{"code":"NOT_FOUND","message":"not found"}}' });
});
