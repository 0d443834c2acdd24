// Writes specs/asyncapi.json (the WebSocket protocol) and specs/openapi.json (the /v1 HTTP API) from the
// server's own schemas and codes (scripts/specs/*.ts). `npm run gen:specs`; test/asyncapi.test.ts and
// test/openapi.test.ts fail when a committed document is not what this writes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { asyncapi } from './specs/asyncapi.js';
import { openapi } from './specs/openapi.js';

/** Each document's path under the repository root and its text. */
export function specs(): Record<string, string> {
  return {
    'specs/asyncapi.json': `${JSON.stringify(asyncapi(), null, 2)}\n`,
    'specs/openapi.json': `${JSON.stringify(openapi(), null, 2)}\n`,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const root = new URL('../', import.meta.url);
  mkdirSync(new URL('specs/', root), { recursive: true });
  for (const [path, text] of Object.entries(specs())) {
    writeFileSync(new URL(path, root), text);
    process.stdout.write(`wrote ${path}\n`);
  }
}
