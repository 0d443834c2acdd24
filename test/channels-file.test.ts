// CHANNELS_FILE: channels.schema.json describes exactly what src/wire/channels-file.ts accepts, the example
// file is valid and loads, every bad file is refused with each problem named (path, field, reason), a bad
// file stops the process, and without a file the built-in namespaces keep today's behaviour.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.js';
import { loadChannels } from '../src/wire/topics.js';
import { SECRET, startServer } from './helpers.js';

const schema = JSON.parse(readFileSync(new URL('../channels.schema.json', import.meta.url), 'utf8'));
const EXAMPLE = new URL('../examples/channels.json', import.meta.url).pathname;
// strict: a keyword ajv does not know (a typo in the schema) fails the compile instead of being ignored.
const validate = new Ajv2020({ allErrors: true, strict: true }).compile(schema);

const dir = mkdtempSync(join(tmpdir(), 'storywire-channels-file-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** Writes a CHANNELS_FILE (a document, or raw text) and returns its path. */
function write(doc: unknown): string {
  const file = join(dir, `channels-${++files}.json`);
  writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return file;
}

/** The problems loadChannels names for a file, without the `CHANNELS_FILE <path>: ` prefix ([] when it loads). */
function problemsOf(file: string, env: Record<string, string> = {}): string[] {
  try {
    loadChannels(loadConfig({ JWT_SECRET: SECRET, CHANNELS_FILE: file, ...env }));
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const prefix = `CHANNELS_FILE ${file}: `;
    return err.problems.map((p) => (p.startsWith(prefix) ? p.slice(prefix.length) : `(no prefix) ${p}`));
  }
}

const RULE_WORDS = '"public", "owner", "none", "token", {"permission": ...}, {"claim": ...} or {"proxy": ...}';
const PROXY = { url: 'http://127.0.0.1:3000/authorize' };

t.test('the example file is valid for the schema and loads with its namespaces and proxy', async (t) => {
  const doc = JSON.parse(readFileSync(EXAMPLE, 'utf8'));
  t.ok(validate(doc), `schema errors: ${JSON.stringify(validate.errors)}`);
  t.same(problemsOf(EXAMPLE), []);
  const channels = loadChannels(loadConfig({ JWT_SECRET: SECRET, CHANNELS_FILE: EXAMPLE }));
  for (const name of ['user', 'story', 'author', 'presence', 'stories', 'conversation', 'premium-story', 'chapter-comments']) t.ok(channels.namespace(name), `namespace ${name}`);
  t.same(channels.namespace('conversation')!.subscribe, { proxy: 'app' });
  t.equal(channels.namespace('premium-story')!.subscribe, 'token');
  t.same(channels.namespace('story')!.publish, { permission: 'stories:publish', claim: 'stories' });
  t.same(channels.namespace('presence')!.subscribe, { claim: 'watch' });
  t.ok(channels.isRecoverable('conversation:c1'), 'conversation keeps history');
  t.notOk(channels.isRecoverable('chapter-comments:42-c1'), 'chapter-comments keeps none');
  t.ok(channels.isRecoverable('user:alice'), 'user keeps the built-in history (HISTORY_SIZE, HISTORY_TTL_S)');
  t.equal(channels.namespace('user')!.history?.size, 50);
  const ttls = ['user', 'story', 'conversation', 'premium-story'].map((n) => (channels.namespace(n)!.history?.ttlS ?? 0) * 1000);
  t.equal(channels.longestHistoryTtlMs, Math.max(...ttls), 'the longest history TTL of any namespace (the Redis age sweep uses it)');
  t.same([...channels.claims].sort(), ['stories', 'watch'], 'the claims kept on a connection are the ones a rule reads');
  t.same(channels.proxies.get('app'), { url: 'http://127.0.0.1:3000/storywire/authorize', timeoutMs: 1000, cacheTtlMs: 30000, cacheMax: 10000, maxInFlight: 256, headers: { authorization: 'Bearer change-me-shared-secret' } });
  t.equal(channels.parse('chapter-comments:42-c1').id, '42-c1');
  t.throws(() => channels.parse('chapter-comments:42'), { code: 'INVALID_TOPIC' }, 'the id rule applies');
  t.throws(() => channels.parse(`conversation:${'x'.repeat(65)}`), { code: 'INVALID_TOPIC' });
});

// Each bad file: the exact problem lines, and whether the schema alone sees it (some checks need the server:
// compiling a regular expression, cross references to "proxies", the built-in namespaces' invariants).
const BAD: { name: string; doc: unknown; problems: string[]; schemaSees: boolean }[] = [
  { name: 'not an object', doc: [], problems: ['(root): must be a JSON object with "namespaces" (and optionally "proxies")'], schemaSees: true },
  { name: 'no namespaces', doc: {}, problems: ['namespaces: required, an object of namespace name -> options'], schemaSees: true },
  { name: 'namespaces not an object', doc: { namespaces: [] }, problems: ['namespaces: required, an object of namespace name -> options'], schemaSees: true },
  { name: 'unknown root field', doc: { namespaces: {}, channels: {} }, problems: ['channels: unknown field (use namespaces, proxies)'], schemaSees: true },
  { name: 'bad namespace name', doc: { namespaces: { Chat_Room: {} } }, problems: ['namespaces.Chat_Room: a namespace name is 1-32 characters [a-z0-9-], starting with a letter'], schemaSees: true },
  { name: 'namespace name too long', doc: { namespaces: { ['a'.repeat(33)]: {} } }, problems: [`namespaces.${'a'.repeat(33)}: a namespace name is 1-32 characters [a-z0-9-], starting with a letter`], schemaSees: true },
  { name: 'namespace not an object', doc: { namespaces: { room: 'public' } }, problems: ['namespaces.room: must be an object of options'], schemaSees: true },
  {
    name: 'unknown namespace field',
    doc: { namespaces: { room: { subscribe: 'public', colour: 'red' } } },
    problems: ['namespaces.room.colour: unknown field (use id, subscribe, publish, history, presence, presenceRule, typing, chat)'],
    schemaSees: true,
  },
  { name: 'unknown rule word', doc: { namespaces: { room: { subscribe: 'everyone' } } }, problems: [`namespaces.room.subscribe: "everyone" is not a rule (use ${RULE_WORDS})`], schemaSees: true },
  { name: '"subscribers" as a subscribe rule', doc: { namespaces: { room: { subscribe: 'subscribers' } } }, problems: ['namespaces.room.subscribe: "subscribers" is a rule of publish and presenceRule only'], schemaSees: true },
  { name: 'chat of another type', doc: { namespaces: { room: { chat: 'on' } } }, problems: ['namespaces.room.chat: must be false, true or {"receipts": true|false}'], schemaSees: true },
  {
    name: 'chat with an unknown field, receipts not a boolean',
    doc: { namespaces: { room: { history: { size: 10, ttlS: 60 }, chat: { receipts: 'yes', typing: true } } } },
    problems: ['namespaces.room.chat.typing: unknown field (use receipts)', 'namespaces.room.chat.receipts: must be true or false'],
    schemaSees: true,
  },
  { name: 'chat without history', doc: { namespaces: { room: { subscribe: 'token', chat: true } } }, problems: ['namespaces.room.chat: needs ids and "history" (chat messages are numbered and kept)'], schemaSees: false },
  { name: 'the built-in conversation without history', doc: { namespaces: { conversation: { history: false } } }, problems: ['namespaces.conversation.chat: needs ids and "history" (chat messages are numbered and kept)'], schemaSees: false },
  { name: 'chat on one channel', doc: { namespaces: { lobby: { id: null, history: { size: 10, ttlS: 60 }, chat: true } } }, problems: ['namespaces.lobby.chat: needs ids and "history" (chat messages are numbered and kept)'], schemaSees: false },
  { name: 'rule of another type', doc: { namespaces: { room: { publish: 3 } } }, problems: [`namespaces.room.publish: must be a rule: ${RULE_WORDS}`], schemaSees: true },
  { name: 'empty rule object', doc: { namespaces: { room: { presenceRule: {} } } }, problems: ['namespaces.room.presenceRule: a rule object needs "permission", "claim" or "proxy"'], schemaSees: true },
  {
    name: 'unknown rule field',
    doc: { namespaces: { room: { subscribe: { permission: 'chat', role: 'x' } } } },
    problems: ['namespaces.room.subscribe.role: unknown field (a rule object has permission and/or claim, or proxy)'],
    schemaSees: true,
  },
  { name: 'bad permission name', doc: { namespaces: { room: { subscribe: { permission: 'two words' } } } }, problems: ['namespaces.room.subscribe.permission: must be a name of 1-64 characters [A-Za-z0-9_.:-]'], schemaSees: true },
  {
    name: 'proxy rule with another field',
    doc: { namespaces: { room: { subscribe: { proxy: 'app', claim: 'rooms' } } }, proxies: { app: PROXY } },
    problems: ['namespaces.room.subscribe: {"proxy": ...} takes no other field'],
    schemaSees: true,
  },
  { name: 'proxy rule, no proxies', doc: { namespaces: { room: { subscribe: { proxy: 'app' } } } }, problems: ['namespaces.room.subscribe.proxy: must name an entry of "proxies" (there is none)'], schemaSees: false },
  {
    name: 'proxy rule naming an undeclared proxy',
    doc: { namespaces: { room: { publish: { proxy: 'ap' } } }, proxies: { app: PROXY } },
    problems: ['namespaces.room.publish.proxy: must name an entry of "proxies" (app)'],
    schemaSees: false,
  },
  { name: 'history true', doc: { namespaces: { room: { history: true } } }, problems: ['namespaces.room.history: must be false or {"size": 1-100000, "ttlS": 1-31536000}'], schemaSees: true },
  {
    name: 'history out of range, unknown field',
    doc: { namespaces: { room: { history: { size: 0, ttlS: 31536001, keep: 'all' } } } },
    problems: ['namespaces.room.history.keep: unknown field (use size, ttlS)', 'namespaces.room.history.size: required, an integer from 1 to 100000', 'namespaces.room.history.ttlS: required, an integer from 1 to 31536000'],
    schemaSees: true,
  },
  { name: 'history without ttlS', doc: { namespaces: { room: { history: { size: 10 } } } }, problems: ['namespaces.room.history.ttlS: required, an integer from 1 to 31536000'], schemaSees: true },
  { name: 'history size not an integer', doc: { namespaces: { room: { history: { size: 1.5, ttlS: 60 } } } }, problems: ['namespaces.room.history.size: required, an integer from 1 to 100000'], schemaSees: true },
  { name: 'unknown presence mode', doc: { namespaces: { room: { presence: 'all' } } }, problems: ['namespaces.room.presence: must be "off", "counts" or "members"'], schemaSees: true },
  { name: 'typing not a boolean', doc: { namespaces: { room: { typing: 'yes' } } }, problems: ['namespaces.room.typing: must be true or false'], schemaSees: true },
  { name: 'id not a string', doc: { namespaces: { room: { id: 5 } } }, problems: ['namespaces.room.id: must be a regular expression (a string of at most 200 characters) or null'], schemaSees: true },
  { name: 'id too long', doc: { namespaces: { room: { id: 'a'.repeat(201) } } }, problems: ['namespaces.room.id: must be a regular expression (a string of at most 200 characters) or null'], schemaSees: true },
  {
    name: 'id not a regular expression',
    doc: { namespaces: { room: { id: '(' } } },
    problems: ['namespaces.room.id: not a valid regular expression (Invalid regular expression: /^(?:()$/: Unterminated group)'],
    schemaSees: false,
  },
  { name: 'id matching an empty id', doc: { namespaces: { room: { id: '[a-z]*' } } }, problems: ['namespaces.room.id: must not match an empty id, ":" or whitespace'], schemaSees: false },
  { name: 'id matching ":"', doc: { namespaces: { room: { id: '[a-z:]+' } } }, problems: ['namespaces.room.id: must not match an empty id, ":" or whitespace'], schemaSees: false },
  { name: 'id matching whitespace', doc: { namespaces: { room: { id: '[a-z ]+' } } }, problems: ['namespaces.room.id: must not match an empty id, ":" or whitespace'], schemaSees: false },
  { name: 'built-in story made one channel', doc: { namespaces: { story: { id: null } } }, problems: ['namespaces.story.id: cannot be null (the server publishes to its ids)'], schemaSees: false },
  { name: 'built-in stories given ids', doc: { namespaces: { stories: { id: '[0-9]+' } } }, problems: ['namespaces.stories.id: must stay null (one channel)'], schemaSees: false },
  { name: '"owner" on a namespace without ids', doc: { namespaces: { lobby: { id: null, subscribe: 'owner' } } }, problems: ['namespaces.lobby.subscribe: "owner" needs ids (the id is the user\'s own)'], schemaSees: false },
  { name: 'proxies not an object', doc: { namespaces: {}, proxies: ['app'] }, problems: ['proxies: must be an object of name -> proxy'], schemaSees: true },
  { name: 'proxy not an object', doc: { namespaces: {}, proxies: { app: 'http://x' } }, problems: ['proxies.app: must be an object with at least "url"'], schemaSees: true },
  { name: 'bad proxy name', doc: { namespaces: {}, proxies: { App: PROXY } }, problems: ['proxies.App: a proxy name is 1-32 characters [a-z0-9-], starting with a letter'], schemaSees: true },
  {
    name: 'proxy faults: unknown field, no url, reserved header, two-line header, limits out of range',
    doc: { namespaces: {}, proxies: { app: { retries: 2, headers: { Host: 'x', 'x-secret': 'a\nb', 'bad header': 'v' }, timeoutMs: 5, cacheTtlMs: -1, cacheMax: 1.5, maxInFlight: 0 } } },
    problems: [
      'proxies.app.retries: unknown field (use url, timeoutMs, cacheTtlMs, cacheMax, maxInFlight, headers)',
      'proxies.app.url: required, an http(s) URL',
      'proxies.app.headers.Host: not a header name a proxy may set',
      'proxies.app.headers.x-secret: must be a one-line string',
      'proxies.app.headers.bad header: not a header name a proxy may set',
      'proxies.app.timeoutMs: must be an integer from 10 to 60000',
      'proxies.app.cacheTtlMs: must be an integer from 0 to 86400000',
      'proxies.app.cacheMax: must be an integer from 0 to 10000000',
      'proxies.app.maxInFlight: must be an integer from 1 to 100000',
    ],
    schemaSees: true,
  },
  { name: 'proxy url not http(s)', doc: { namespaces: {}, proxies: { app: { url: 'ftp://backend' } } }, problems: ['proxies.app.url: required, an http(s) URL'], schemaSees: true },
  { name: 'reserved header in another case', doc: { namespaces: {}, proxies: { app: { ...PROXY, headers: { 'Content-Length': '1' } } } }, problems: ['proxies.app.headers.Content-Length: not a header name a proxy may set'], schemaSees: true },
];

t.test('each bad file is refused with its exact problems, and the schema agrees where a schema can see it', async (t) => {
  for (const { name, doc, problems, schemaSees } of BAD) {
    t.same(problemsOf(write(doc)), problems, `${name}: problems`);
    t.equal(validate(doc), !schemaSees, `${name}: schema ${schemaSees ? 'refuses it' : 'cannot see it (the server checks it)'}`);
  }
});

t.test('one file with many faults names every one of them', async (t) => {
  const doc = {
    namespaces: { room: { subscribe: 'everyone', history: { size: 0, ttlS: 60 } }, Bad: {}, story: { id: null } },
    proxies: { app: { url: 'nope' } },
    extra: true,
  };
  t.same(problemsOf(write(doc)), [
    'extra: unknown field (use namespaces, proxies)',
    'proxies.app.url: required, an http(s) URL',
    `namespaces.room.subscribe: "everyone" is not a rule (use ${RULE_WORDS})`,
    'namespaces.room.history.size: required, an integer from 1 to 100000',
    'namespaces.Bad: a namespace name is 1-32 characters [a-z0-9-], starting with a letter',
    'namespaces.story.id: cannot be null (the server publishes to its ids)',
  ]);
});

t.test('a file that cannot be read or is not JSON is named with the reason', async (t) => {
  const missing = join(dir, 'missing.json');
  t.same(problemsOf(missing), [`ENOENT: no such file or directory, open '${missing}'`]);
  t.same(problemsOf(write('{"namespaces": {')), ["Expected property name or '}' in JSON at position 16"], 'the JSON parser says what is wrong');
});

// Files the server accepts: the schema accepts them too (the schema is not stricter than the server).
const GOOD: { name: string; doc: unknown }[] = [
  { name: 'empty', doc: { namespaces: {} } },
  { name: '$schema pointer', doc: { $schema: './channels.schema.json', namespaces: {} } },
  { name: 'every rule kind', doc: { namespaces: { a: { subscribe: 'public', publish: 'none' }, b: { subscribe: 'owner' }, c: { subscribe: 'token' }, d: { subscribe: { permission: 'p' } }, e: { subscribe: { claim: 'rooms' } }, f: { subscribe: { permission: 'p', claim: 'rooms' } }, g: { subscribe: { proxy: 'app' }, publish: { proxy: 'app' }, presenceRule: { proxy: 'app' } } }, proxies: { app: PROXY } } },
  { name: 'history forms', doc: { namespaces: { a: { history: false }, b: { history: null }, c: { history: { size: 1, ttlS: 1 } }, d: { history: { size: 100000, ttlS: 31536000 } } } } },
  { name: 'one-channel namespace', doc: { namespaces: { lobby: { id: null, subscribe: 'public', presence: 'counts', presenceRule: 'public', typing: false } } } },
  { name: 'presence of subscribers', doc: { namespaces: { room: { subscribe: 'public', presence: 'members', presenceRule: 'subscribers' } } } },
  { name: 'chat forms, publish by subscribers', doc: { namespaces: { a: { history: { size: 10, ttlS: 60 }, chat: true, publish: 'subscribers' }, b: { history: { size: 10, ttlS: 60 }, chat: { receipts: false } }, c: { chat: false }, d: { history: { size: 1, ttlS: 1 }, chat: {} } } } },
  { name: 'the built-in conversation redeclared', doc: { namespaces: { conversation: { subscribe: { proxy: 'app' }, publish: { proxy: 'app' }, chat: { receipts: false } } }, proxies: { app: PROXY } } },
  { name: 'proxy limits at their bounds', doc: { namespaces: {}, proxies: { lo: { url: 'https://b.example', timeoutMs: 10, cacheTtlMs: 0, cacheMax: 0, maxInFlight: 1, headers: {} }, hi: { url: 'http://b:8080/x', timeoutMs: 60000, cacheTtlMs: 86400000, cacheMax: 10000000, maxInFlight: 100000, headers: { Authorization: 'Bearer x', 'X-App': '' } } } } },
  { name: 'built-ins redeclared', doc: { namespaces: { user: { typing: false }, story: { publish: { proxy: 'owners' } }, presence: { subscribe: 'public' }, stories: { id: null } }, proxies: { owners: PROXY } } },
];

t.test('every file the server accepts is valid for the schema', async (t) => {
  for (const { name, doc } of GOOD) {
    t.same(problemsOf(write(doc)), [], `${name}: loads`);
    t.ok(validate(doc), `${name}: schema accepts it (${JSON.stringify(validate.errors)})`);
  }
});

t.test('node src/main.ts with a bad CHANNELS_FILE exits 1 naming every problem', async (t) => {
  const file = write({ namespaces: { room: { subscribe: 'everyone', typing: 'yes' }, story: { id: null } } });
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('../src/main.ts', import.meta.url).pathname], {
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: '0', STORYWIRE_DEV: '1', CHANNELS_FILE: file },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  t.equal(code, 1, 'exit status 1');
  for (const problem of [`namespaces.room.subscribe: "everyone" is not a rule (use ${RULE_WORDS})`, 'namespaces.room.typing: must be true or false', 'namespaces.story.id: cannot be null (the server publishes to its ids)']) {
    t.ok(out.includes(`CHANNELS_FILE ${file}: ${problem}`), `names: ${problem}`);
  }
  t.notMatch(out, /listening/, 'never listened');
});

// Without CHANNELS_FILE: the channels of before the registry, with the one safe change of issue #15 (in
// production, presence:<id> needs the id in the token's `watch` claim).
const BUILTIN: [topic: string, dev: string, production: string][] = [
  ['stories', 'ack', 'ack'],
  ['story:42', 'ack', 'ack'],
  ['author:bob', 'ack', 'ack'],
  ['presence:bob', 'ack', 'TOPIC_FORBIDDEN'],
  ['presence:carol', 'ack', 'ack'],
  ['user:alice', 'ack', 'ack'],
  ['user:bob', 'TOPIC_FORBIDDEN', 'TOPIC_FORBIDDEN'],
  ['story', 'INVALID_TOPIC', 'INVALID_TOPIC'],
  ['stories:1', 'INVALID_TOPIC', 'INVALID_TOPIC'],
  ['story:a b', 'INVALID_TOPIC', 'INVALID_TOPIC'],
  ['sys:heartbeat', 'INVALID_TOPIC', 'INVALID_TOPIC'],
  ['premium-story:1', 'INVALID_TOPIC', 'INVALID_TOPIC'],
  // Chat (issue #16): membership is the app's decision, a subscription token, in every mode.
  ['conversation:c1', 'TOPIC_FORBIDDEN', 'TOPIC_FORBIDDEN'],
  ['conversation:a.b', 'INVALID_TOPIC', 'INVALID_TOPIC'],
];

t.test('without a file the built-in namespaces decide subscribe as before (dev and production)', async (t) => {
  for (const mode of ['dev', 'production'] as const) {
    const h = await startServer(t, {}, mode === 'production' ? { STORYWIRE_DEV: '0' } : {});
    // alice follows carol: her token lists carol in `watch` (read in production only).
    const alice = await h.connect('alice', { watch: ['carol'] });
    await alice.type('connected');
    for (const [topic, dev, production] of BUILTIN) {
      const reply = await alice.request('subscribe', { topic });
      t.equal(reply.type === 'ack' ? 'ack' : reply.error?.code, mode === 'dev' ? dev : production, `${mode}: subscribe ${topic}`);
    }
  }
});

t.test('protocol.md section 13: its CHANNELS_FILE example is valid and loads; its problem lines are the server\'s', async (t) => {
  const doc = readFileSync(new URL('../protocol.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## 13. Channels'));
  const example = /```json channels-file\n([\s\S]*?)```/.exec(section);
  t.ok(example, 'section 13 has a channels-file example');
  const parsed = JSON.parse(example![1]!);
  t.ok(validate(parsed), `schema errors: ${JSON.stringify(validate.errors)}`);
  t.same(problemsOf(write(parsed)), [], 'it loads');
  const shown = [...section.matchAll(/^ {2}- CHANNELS_FILE \/etc\/storywire\/channels\.json: (.*)$/gm)].map((m) => m[1]);
  t.equal(shown.length, 3);
  t.same(problemsOf(write({ namespaces: { room: { subscribe: 'everyone', history: { size: 0, ttlS: 60 } }, story: { id: null } } })), shown);
});
