// specs/asyncapi.json: current, valid for the AsyncAPI parser, complete, and true to the server: every frame of
// protocol.md's examples, as written and as a live server sends it, conforms to its message schema.
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';
import { Ajv, type ValidateFunction } from 'ajv';
import t, { type Test } from 'tap';
import { loadConfig } from '../src/config.js';
import { ErrorCode, WireError } from '../src/wire/codes.js';
import { EVENT_SCHEMAS } from '../src/wire/frame-schemas.js';
import { CHAT_EVENT_SCHEMAS } from '../src/wire/message-schemas.js';
import { CLIENT_TYPES, parseFrame } from '../src/wire/messages.js';
import { limitsOf } from '../src/wire/protocol.js';
import { specs } from '../scripts/gen-specs.js';
import { ackName, clientName, eventName, pascal } from '../scripts/specs/asyncapi.js';
import { startServer, sign, type Client, type Frame } from './helpers.js';

const ROOT = new URL('..', import.meta.url);
const text = readFileSync(new URL('specs/asyncapi.json', ROOT), 'utf8');
const spec = JSON.parse(text);
const doc = readFileSync(new URL('protocol.md', ROOT), 'utf8');
const schemas: Record<string, object> = spec.components.schemas;
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validators = new Map<string, ValidateFunction>(Object.entries(schemas).map(([name, s]) => [name, ajv.compile(s)]));
/** The same schemas without `required`: what a partial frame of an example (`alice< {...}`) may show. */
const partials = new Map<string, ValidateFunction>(Object.entries(schemas).map(([name, s]) => [name, ajv.compile(JSON.parse(JSON.stringify(s), (k, v) => (k === 'required' ? undefined : v)))]));

/** The message a frame the server sent is: its own type's, the ack of the request it answers, or a backend event. */
function serverMessage(frame: Frame, requestTypes: Map<string | number, string>): string {
  if (frame.type === 'ack') return ackName(requestTypes.get(frame.id!) ?? 'unknown');
  if (frame.type === 'error' || frame.type === 'pong' || frame.type === 'heartbeat' || frame.type === 'connected') return pascal(frame.type);
  return Object.hasOwn(EVENT_SCHEMAS, frame.type) || Object.hasOwn(CHAT_EVENT_SCHEMAS, frame.type) ? eventName(frame.type) : 'BackendEvent';
}

function check(t: Test, name: string, frame: unknown, label: string, partial = false): void {
  const v = (partial ? partials : validators).get(name);
  if (!v) {
    t.fail(`${label}: no message ${name} in specs/asyncapi.json`);
    return;
  }
  t.ok(v(frame), `${label} conforms to ${name}${v.errors ? `: ${ajv.errorsText(v.errors)}` : ''}`);
}

const blocks = [...doc.matchAll(/```exchange\n([\s\S]*?)```/g)].map((m) => m[1]!.trim().split('\n'));
/** Codes that say a frame is not a valid message (the others refuse a valid one: FORBIDDEN, TOO_MANY_IDS, ...). */
const MALFORMED: readonly string[] = [ErrorCode.BAD_JSON, ErrorCode.BAD_MESSAGE, ErrorCode.UNKNOWN_TYPE, ErrorCode.INVALID_PAYLOAD];

t.test('specs/asyncapi.json is what npm run gen:specs writes', async (t) => {
  t.equal(text, specs()['specs/asyncapi.json'], 'regenerate it: npm run gen:specs');
});

t.test('the AsyncAPI parser accepts the document, and refuses a broken copy', async (t) => {
  const parser = new Parser();
  const r = await parser.parse(text);
  const serious = r.diagnostics.filter((d) => d.severity <= 1);
  t.same(serious.map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`), [], 'no error or warning');
  t.ok(r.document, 'parsed');
  t.equal(r.document?.version(), '3.0.0');
  t.equal(r.document?.operations().all().length, Object.keys(spec.operations).length, 'every operation read');
  const broken = structuredClone(spec);
  broken.operations.receivePing.channel = { $ref: '#/channels/nowhere' };
  const b = await parser.parse(JSON.stringify(broken));
  t.ok(b.diagnostics.some((d) => d.severity === 0), 'a dangling reference is an error');
});

t.test('every client message the server handles and every event it sends is in the document', async (t) => {
  const messages = spec.channels.connection.messages;
  for (const type of CLIENT_TYPES) {
    t.ok(messages[clientName(type)], `client ${type}`);
    t.ok(type === 'ping' || messages[ackName(type)], `the ack of ${type}`);
    t.ok(spec.operations[`receive${pascal(type)}`], `operation receive${pascal(type)}`);
  }
  for (const type of [...Object.keys(EVENT_SCHEMAS), ...Object.keys(CHAT_EVENT_SCHEMAS)]) t.ok(messages[eventName(type)], `event ${type}`);
  // Every event type protocol.md section 4 lists is a message of the document (a type the server sends without a schema fails here).
  const section4 = doc.slice(doc.indexOf('## 4. Server -> client events'), doc.indexOf('## 5.'));
  const listed = [...section4.matchAll(/^\| ((?:`[a-z:_]+`(?:, )?)+) \|/gm)].flatMap((m) => [...m[1]!.matchAll(/`([a-z:_]+)`/g)].map((x) => x[1]!));
  t.ok(listed.length >= 20, `${listed.length} event types in section 4`);
  // (`ack` is one message per request type, checked above.)
  for (const type of listed.filter((x) => x !== 'ack')) t.ok(messages[eventName(type)] ?? messages[pascal(type)], `section 4's ${type}`);
  for (const name of ['Connected', 'Heartbeat', 'Error', 'Pong', 'BackendEvent']) t.ok(messages[name], name);
  const clientNames = Object.values(spec.operations as Record<string, { action: string; title: string }>).filter((o) => o.action === 'receive').map((o) => o.title);
  t.same(clientNames.sort(), [...CLIENT_TYPES].sort(), 'no client message the server does not handle');
});

t.test('every client frame of the examples conforms to its schema exactly when the server parses it', async (t) => {
  const limits = limitsOf(loadConfig({ STORYWIRE_DEV: '1' }));
  let n = 0;
  for (const line of blocks.flat()) {
    const m = /^\w+> (.*)$/.exec(line);
    if (!m) continue;
    n++;
    let parsed = true;
    try {
      parseFrame(m[1]!, limits);
    } catch (err) {
      if (!(err instanceof WireError) || !MALFORMED.includes(err.code)) throw err;
      parsed = false;
    }
    let frame: unknown;
    let valid = false;
    try {
      frame = JSON.parse(m[1]!);
      const type = (frame as { type?: unknown }).type;
      valid = typeof type === 'string' && CLIENT_TYPES.includes(type as never) && validators.get(clientName(type))?.(frame) === true;
    } catch {
      valid = false;
    }
    t.equal(valid, parsed, `${line.slice(0, 100)}: ${parsed ? 'parsed, so it must conform' : 'refused as malformed, so it must not conform'}`);
  }
  t.ok(n >= 20, `${n} client frames`);
});

t.test('every server frame the examples show conforms to its schema (the fields they show)', async (t) => {
  for (const lines of blocks) {
    const requestTypes = new Map<string | number, string>();
    for (const line of lines) {
      const out = /^\w+> (.*)$/.exec(line);
      if (out) {
        try {
          const f = JSON.parse(out[1]!);
          if (f.id !== undefined) requestTypes.set(f.id, f.type);
        } catch {}
      }
      const m = /^\w+< (.*)$/.exec(line);
      if (m) check(t, serverMessage(JSON.parse(m[1]!), requestTypes), JSON.parse(m[1]!), line.slice(0, 100), true);
    }
  }
  // Whole frames of the ```json blocks (those that are JSON: some elide with {...}).
  for (const [, block] of doc.matchAll(/```json\n([\s\S]*?)```/g)) {
    const frames: unknown[] = [];
    try {
      frames.push(JSON.parse(block!));
    } catch {
      for (const l of block!.split('\n')) {
        try {
          frames.push(JSON.parse(l));
        } catch {}
      }
    }
    for (const f of frames as Frame[]) {
      if (typeof f?.type === 'string' && typeof f.ts === 'number' && f.type !== 'ack') check(t, serverMessage(f, new Map()), f, `json block: ${JSON.stringify(f).slice(0, 80)}`);
    }
  }
});

/** True when every field of `expected` is in `actual` with the same value (as test/protocol-doc.test.ts matches). */
function contains(actual: unknown, expected: unknown): boolean {
  if (Array.isArray(expected)) return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => contains(actual[i], e));
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
    return Object.entries(expected).every(([k, v]) => contains((actual as Record<string, unknown>)[k], v));
  }
  return actual === expected;
}

/** An example user's claims: `bob(stories:publish stories=42/43)` (protocol.md's preamble). */
function claims(inside: string | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const roles = (inside ?? '').split(' ').filter((w) => w && !w.includes('='));
  for (const w of (inside ?? '').split(' ').filter((w) => w.includes('='))) out[w.slice(0, w.indexOf('='))] = w.slice(w.indexOf('=') + 1).split('/');
  if (roles.length > 0) out['roles'] = roles;
  return out;
}

t.test('every frame a live server sends through the examples conforms to its schema, whole', async (t) => {
  const seen = new Set<string>();
  for (const [i, lines] of blocks.entries()) {
    if (!lines.some((l) => l.startsWith('users: '))) continue;
    await t.test(`example ${i + 1}: ${lines[0]}`, async (t) => {
      const h = await startServer(t);
      const clients = new Map<string, Client>();
      const requestTypes = new Map<string | number, string>();
      const got = (c: Frame, label: string) => {
        const name = serverMessage(c, requestTypes);
        seen.add(name);
        check(t, name, c, `${label}: ${JSON.stringify(c).slice(0, 90)}`);
      };
      for (const line of lines) {
        const users = /^users: (.*)$/.exec(line);
        if (users) {
          for (const u of users[1]!.split(/,\s*/)) {
            const [, name, inside] = /^(\w+)(?:\((.*)\))?$/.exec(u)!;
            const c = await h.connect(name!, claims(inside));
            got(await c.type('connected'), name!);
            clients.set(name!, c);
          }
          continue;
        }
        const m = /^(\w+)([<>]) (.*)$/.exec(line);
        if (!m) continue;
        const c = clients.get(m[1]!)!;
        if (m[2] === '>') {
          // `<subscription token for conversation:c1>`: the app's token for this user and channel (as protocol-doc.test.ts signs it).
          let sent = m[3]!;
          for (const [tag, channel] of sent.matchAll(/<subscription token for ([^>]+)>/g)) sent = sent.replace(tag, await sign(m[1]!, { channel }));
          try {
            const f = JSON.parse(sent);
            if (f.id !== undefined) requestTypes.set(f.id, f.type);
          } catch {}
          c.send(sent);
        } else got(await c.next((f) => contains(f, JSON.parse(m[3]!))), m[1]!);
      }
      for (const [name, c] of clients) for (const f of c.frames) got(f, `${name} (not shown)`);
    });
  }
  for (const name of ['Connected', 'Pong', 'Error', 'SendNotificationAck', 'NotificationReceivedEvent', 'StoryNewEvent', 'ChapterNewEvent', 'UserTypingEvent', 'ChatSendAck', 'ChatMessageEvent', 'ChatEditedEvent', 'ChatDeletedEvent', 'ChatReceiptEvent', 'ChatUnreadAck']) t.ok(seen.has(name), `a live ${name} was checked`);
});

t.test('a frame unlike its schema is refused (the check bites)', async (t) => {
  t.notOk(validators.get('NotificationReceivedEvent')!({ type: 'notification:received', topic: 'user:bob', data: { id: 'x' }, ts: 1 }), 'a notification without its fields');
  t.notOk(validators.get('Pong')!({ type: 'pong', ts: 1, extra: true }), 'a field the serializer never writes');
  t.notOk(validators.get('Error')!({ type: 'error', error: { code: 'NOPE', message: '' }, ts: 1 }), 'an error code of no table');
  t.ok(validators.get('NotificationReceivedEvent')!({ type: 'notification:received', topic: 'user:bob', epoch: 'e', offset: 1, data: { id: 'x', title: 't', message: 'm', type: 'info', from: null, origin: 'system', ts: 1 }, ts: 1 }));
  const token = await sign('alice');
  t.ok(validators.get('AuthRequest')!({ type: 'auth', id: 1, data: { token } }));
});
