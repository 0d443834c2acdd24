// specs/openapi.json: current, valid for an OpenAPI 3.1 parser, naming every route the server registers, and
// true to it: each operation's example, sent to a live server, is answered with a documented status and body.
import { readFileSync, readdirSync } from 'node:fs';
import { dereference, validate } from '@readme/openapi-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import t from 'tap';
import { specs } from '../scripts/gen-specs.js';
import { startServer } from './helpers.js';

const ROOT = new URL('..', import.meta.url);
const text = readFileSync(new URL('specs/openapi.json', ROOT), 'utf8');
const spec = JSON.parse(text);
const API_KEY = 'openapi-test-key-0123456789';
const METHODS = ['get', 'post'] as const;

t.test('specs/openapi.json is what npm run gen:specs writes', async (t) => {
  t.equal(text, specs()['specs/openapi.json'], 'regenerate it: npm run gen:specs');
});

t.test('the OpenAPI parser validates the document, and refuses a broken copy', async (t) => {
  const r = await validate(structuredClone(spec));
  t.ok(r.valid, JSON.stringify(r));
  t.same(r.warnings, []);
  t.equal(spec.openapi, '3.1.0');
  const broken = structuredClone(spec);
  broken.paths['/v1/stories'].post.responses['200'].content['application/json'].schema = { $ref: '#/components/schemas/Nowhere' };
  t.notOk((await validate(broken)).valid, 'a dangling reference is refused');
});

t.test('the document has every route the server registers, and no other', async (t) => {
  const source = readdirSync(new URL('src/api/', ROOT))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => readFileSync(new URL(`src/api/${f}`, ROOT), 'utf8'))
    .join('\n');
  const registered = [...source.matchAll(/(?:route|app\.get)\((?:'(get|post)', )?'(\/(?:v1\/[^']+|healthz|readyz|metrics))'/g)].map(([, method, path]) => `${method ?? 'get'} ${path!.replace(/:(\w+)/g, '{$1}')}`);
  const documented = Object.entries(spec.paths).flatMap(([path, ops]) => METHODS.filter((m) => (ops as object)[m as never] !== undefined).map((m) => `${m} ${path}`));
  t.ok(registered.length >= 10, `${registered.length} routes found in src/api/`);
  t.same([...new Set(registered)].sort(), documented.sort());
});

t.test('each operation answers its example with a documented status and a body of its schema', async (t) => {
  const deref = await dereference(structuredClone(spec));
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  const h = await startServer(t, {}, { API_KEY });
  const base = `http://127.0.0.1:${h.port}`;
  const calls: { method: string; path: string; headers?: Record<string, string>; body?: unknown; expect?: number }[] = [];
  for (const [path, ops] of Object.entries(deref.paths as Record<string, Record<string, any>>)) {
    for (const method of METHODS) {
      const op = ops[method];
      if (!op) continue;
      const query = (op.parameters ?? []).filter((p: any) => p.in === 'query').map((p: any) => `${p.name}=${encodeURIComponent(p.example)}`);
      const url = path.replace('{id}', '42') + (query.length ? `?${query.join('&')}` : '');
      const body = op.requestBody?.content['application/json'].example;
      calls.push({ method, path: url, body });
      if (op.parameters?.some((p: any) => p.name === 'Idempotency-Key')) calls.push({ method, path: url, body, headers: { 'idempotency-key': `k-${path}` } }, { method, path: url, body, headers: { 'idempotency-key': `k-${path}` } });
      if (method === 'post') calls.push({ method, path: url, body: '{"nope', expect: 400 });
    }
  }
  calls.push({ method: 'post', path: '/v1/stories', headers: { authorization: 'Bearer wrong-key-wrong-key' }, body: {}, expect: 401 });
  const statuses = new Set<number>();
  for (const c of calls) {
    const res = await fetch(base + c.path, {
      method: c.method.toUpperCase(),
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...c.headers },
      ...(c.body === undefined ? {} : { body: typeof c.body === 'string' ? c.body : JSON.stringify(c.body) }),
    });
    const label = `${c.method.toUpperCase()} ${c.path}${c.headers ? ` ${JSON.stringify(c.headers)}` : ''}`;
    const template = Object.keys(deref.paths).find((p) => new RegExp(`^${p.replace('{id}', '[^/]+')}$`).test(c.path.split('?')[0]!))!;
    const documented = deref.paths[template][c.method].responses[String(res.status)];
    if (c.expect !== undefined) t.equal(res.status, c.expect, `${label}: ${c.expect}`);
    t.ok(documented, `${label}: ${res.status} is documented`);
    statuses.add(res.status);
    const type = (res.headers.get('content-type') ?? '').split(';')[0]!;
    const media = documented?.content?.[type];
    t.ok(media, `${label}: ${type} is documented for ${res.status}`);
    const body = type === 'application/json' ? await res.json() : await res.text();
    if (!media) continue;
    const check = ajv.compile(media.schema);
    t.ok(check(body), `${label}: ${JSON.stringify(body).slice(0, 80)} conforms${check.errors ? `: ${ajv.errorsText(check.errors)}` : ''}`);
  }
  t.same([...statuses].sort(), [200, 400, 401, 404], 'answers of each kind were checked');
});
