// Replays every `exchange` block of protocol.md against a live server, and checks the code tables.
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import t from 'tap';
import { CLOSE_CODE_RANGES, CloseCode, ERRORS, ErrorCode, errorSpec, refusalCloseCode } from '../src/wire/codes.js';
import { Client, expectReject, sign, startServer, type Frame } from './helpers.js';

const doc = readFileSync(new URL('../protocol.md', import.meta.url), 'utf8');

/** True when every field of `expected` is in `actual` with the same value (recursively; arrays exactly). */
export function contains(actual: unknown, expected: unknown): boolean {
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => contains(actual[i], e));
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
    return Object.entries(expected).every(([k, v]) => contains((actual as Record<string, unknown>)[k], v));
  }
  return actual === expected;
}

const blocks = [...doc.matchAll(/```exchange\n([\s\S]*?)```/g)].map((m) => m[1]!.trim().split('\n'));

t.ok(blocks.length >= 8, `protocol.md has exchange examples (${blocks.length})`);

/** The token an example's `connect <kind>` line offers: none, expired, or signed with the wrong secret. */
async function exampleToken(kind: string): Promise<string> {
  if (kind === 'expired') return sign('alice', {}, -60);
  if (kind === 'bad-signature') return sign('alice', {}, 60, new TextEncoder().encode('x'.repeat(40)));
  return '';
}

/**
 * The claims of an example user's token: `bob(stories:publish stories=42/43)` is the role `stories:publish`
 * and the list claim `"stories": ["42", "43"]` (a word with `=` is a claim, its ids separated by `/`).
 */
export function exampleClaims(inside: string | undefined): Record<string, unknown> {
  const claims: Record<string, unknown> = {};
  const roles: string[] = [];
  for (const word of inside ? inside.split(' ').filter(Boolean) : []) {
    const eq = word.indexOf('=');
    if (eq === -1) roles.push(word);
    else claims[word.slice(0, eq)] = word.slice(eq + 1).split('/');
  }
  if (roles.length > 0) claims['roles'] = roles;
  return claims;
}

for (const [i, lines] of blocks.entries()) {
  t.test(`protocol.md example ${i + 1}: ${lines[0]}`, async (t) => {
    const h = await startServer(t);
    const clients = new Map<string, Client>();
    for (const line of lines) {
      let m = /^connect (\S+) -> (\d{3}) (.*)$/.exec(line);
      if (m) {
        const token = await exampleToken(m[1]!);
        const err = await expectReject(Client.open(token ? `${h.url}?token=${token}` : h.url));
        t.equal(err.status, Number(m[2]), line);
        t.ok(contains(err.body, JSON.parse(m[3]!)), `${line} (got ${JSON.stringify(err.body)})`);
        continue;
      }
      m = /^connect-in-band (\S+) -> close (\d{4}) ([A-Z_]+)$/.exec(line);
      if (m) {
        const token = await exampleToken(m[1]!);
        const ws = new WebSocket(token ? `${h.url}?token=${token}` : h.url, ['storywire.v1', 'storywire.close-on-refusal']);
        const frames: string[] = [];
        ws.on('message', (d) => frames.push(String(d)));
        const [opened, code, reason] = await new Promise<[boolean, number, string]>((resolve, reject) => {
          let open = false;
          ws.on('open', () => (open = true));
          ws.on('error', reject);
          ws.on('close', (c, r) => resolve([open, c, r.toString()]));
        });
        t.ok(opened, `${line}: the socket opened`);
        t.equal(ws.protocol, 'storywire.v1', `${line}: the server answered storywire.v1`);
        t.equal(code, Number(m[2]), line);
        t.match(reason, new RegExp(`^${m[3]}: \\S`), `${line} (reason "${reason}")`);
        t.same(frames, [], `${line}: no frame before the close`);
        continue;
      }
      m = /^users: (.*)$/.exec(line);
      if (m) {
        for (const u of m[1]!.split(/,\s*/)) {
          const [, name, inside] = /^(\w+)(?:\((.*)\))?$/.exec(u)!;
          const c = await h.connect(name!, exampleClaims(inside));
          await c.type('connected');
          clients.set(name!, c);
        }
        continue;
      }
      m = /^(\w+)> (.*)$/.exec(line);
      if (m) {
        // `<subscription token for conversation:c1>`: the app's subscription token for this user and channel.
        let text = m[2]!;
        for (const [tag, channel] of text.matchAll(/<subscription token for ([^>]+)>/g)) text = text.replace(tag, await sign(m[1]!, { channel }));
        clients.get(m[1]!)!.send(text);
        continue;
      }
      m = /^(\w+)< (.*)$/.exec(line);
      if (m) {
        const expected = JSON.parse(m[2]!);
        const frame: Frame = await clients.get(m[1]!)!.next((f) => contains(f, expected));
        t.ok(frame, line);
        continue;
      }
      t.fail(`unparsed example line: ${line}`);
    }
  });
}

t.test('every error code is documented in protocol.md and every documented code exists', async (t) => {
  const section = doc.slice(doc.indexOf('## 6. Errors'), doc.indexOf('## 7.'));
  const documented = new Set([...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]));
  t.same([...documented].sort(), Object.values(ErrorCode).sort());
});

t.test('every close code is documented in protocol.md with its name and number', async (t) => {
  const section = doc.slice(doc.indexOf('## 7. Close codes'), doc.indexOf('## 8.'));
  const documented = Object.fromEntries([...section.matchAll(/^\| (\d{4}) \| `([A-Z_]+)` \|/gm)].map((m) => [m[2], Number(m[1])]));
  t.same(documented, CloseCode);
});

/** The rows of the first table under `heading` that match `row`, up to the next `## ` heading. */
function rows(heading: string, row: RegExp): RegExpExecArray[] {
  const start = doc.indexOf(heading);
  const end = doc.indexOf('\n## ', start + heading.length);
  return [...doc.slice(start, end).matchAll(row)];
}

t.test('section 6 shows each code with the status(es) and close code of src/wire/codes.ts', async (t) => {
  const documented = rows('## 6. Errors', /^\| `([A-Z_]+)` \| ([\d, ]+) \| (\d{4})? \| /gm);
  t.equal(documented.length, Object.keys(ERRORS).length, 'every row has a status and a close column');
  for (const [line, code, status, close] of documented) {
    const spec = errorSpec(code as ErrorCode);
    t.same(status!.split(', ').map(Number), 'otherStatus' in spec ? [spec.status, spec.otherStatus] : [spec.status], `${code} status (${line.slice(0, 60)})`);
    t.equal(close === undefined ? undefined : Number(close), spec.close, `${code} close code`);
  }
});

t.test('section 1 refusals: status, and close code in band, as src/wire/codes.ts maps them', async (t) => {
  const documented = rows('## 1. Connecting', /^\| (\d{3}) \| `([A-Z_]+)` \| ([^|]+) \|/gm);
  t.ok(documented.length >= 10, `${documented.length} refusals`);
  for (const [, status, code, inBand] of documented) {
    const spec = errorSpec(code as ErrorCode);
    t.ok([spec.status, 'otherStatus' in spec ? spec.otherStatus : undefined].includes(Number(status)), `${code}: ${status} is one of its statuses`);
    const mapped = [...new Set([refusalCloseCode({ code: code as ErrorCode }, false), refusalCloseCode({ code: code as ErrorCode }, true)])];
    if (inBand!.trim() === '(always HTTP)') t.same(mapped, [undefined], `${code}: never in band`);
    else t.same(inBand!.split('/').map(Number).sort(), mapped.sort(), `${code}: close ${inBand!.trim()}`);
  }
  const statuses = new Map<string, Set<number>>();
  for (const [, status, code] of documented) statuses.set(code!, (statuses.get(code!) ?? new Set()).add(Number(status)));
  t.same([...statuses.get('CONNECTION_LIMIT')!].sort(), [429, 503], 'CONNECTION_LIMIT: both statuses are shown');
});

t.test('section 7 calls a code "a refused upgrade told in band" exactly when section 1 refuses with it', async (t) => {
  const refusals = new Set(rows('## 1. Connecting', /^\| \d{3} \| `[A-Z_]+` \| ([\d /]+) \|/gm).flatMap((m) => m[1]!.split('/').map(Number)));
  const described = new Set(rows('## 7. Close codes', /^\| (\d{4}) \| `[A-Z_]+` \| .*refused upgrade told in band/gm).map((m) => Number(m[1])));
  t.same([...described].sort(), [...refusals].sort());
});

t.test('section 7 ranges are the ranges of src/wire/codes.ts and their policies', async (t) => {
  const documented = rows('## 7. Close codes', /^\| (4\d{3})-(4\d{3}) \| ([^|]+) \|/gm).map(([, from, to, text]) => ({
    from: Number(from),
    to: Number(to),
    policy: /reconnect now/.test(text!) ? 'now' : /backoff/.test(text!) ? 'backoff' : /do not reconnect/.test(text!) ? 'stop' : text!.trim(),
  }));
  t.same(documented, CLOSE_CODE_RANGES);
});
