// The import graph of src/: no cycle anywhere (type-only imports included), and the rooms depend one way.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import t from 'tap';

const SRC = new URL('../src/', import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative import, export-from and dynamic import of a file, as paths under src/. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"`;]*?from\s*'(\.{1,2}\/[^']+)'|import\(\s*'(\.{1,2}\/[^']+)'\s*\)|(?:^|\n)\s*import\s*'(\.{1,2}\/[^']+)'/g)) {
    const spec = (m[1] ?? m[2] ?? m[3])!;
    out.push(relative(SRC, normalize(join(dirname(file), spec.replace(/\.js$/, '.ts')))));
  }
  return out;
}

const graph = new Map(files(SRC).map((f) => [relative(SRC, f), importsOf(f)]));

t.test('every relative import names a file of src/', async (t) => {
  for (const [file, deps] of graph) for (const d of deps) t.ok(graph.has(d), `${file} -> ${d}`);
});

t.test('no import cycle in src/', async (t) => {
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'visiting') {
      cycles.push([...path.slice(path.indexOf(file)), file].join(' -> '));
      return;
    }
    state.set(file, 'visiting');
    for (const d of graph.get(file) ?? []) visit(d, [...path, file]);
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  t.same(cycles, [], 'cycles');
});

t.test('the rooms depend one way', async (t) => {
  const room = (f: string) => f.split('/')[0]!;
  // Lower rooms never import the ones that compose them (edge composes pubsub, features, seams, api).
  const forbidden: Record<string, string[]> = {
    seams: ['edge', 'api', 'features', 'pubsub', 'client', 'admin', 'webhooks'],
    // Webhooks are composed by edge: they take the push feature and the seams, never the node that holds them.
    webhooks: ['edge', 'api', 'client', 'admin'],
    pubsub: ['edge', 'api', 'features', 'client', 'admin'],
    features: ['api', 'client', 'admin', 'webhooks'],
    client: ['edge', 'api', 'features', 'pubsub', 'seams', 'admin'],
    // The admin view reads the node; nothing it serves is needed by the rooms that make the node, the HTTP API included.
    api: ['admin'],
  };
  for (const [file, deps] of graph) {
    for (const d of deps) {
      const bad = forbidden[room(file)]?.includes(room(d));
      if (bad) t.fail(`${file} imports ${d}`);
    }
  }
  t.pass('checked');
});
