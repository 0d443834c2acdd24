// SECURITY.md names real settings only, and says what every limit of protocol.md's limits table protects.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { OPTIONS } from '../src/config.js';
import { ERRORS } from '../src/wire/codes.js';

const read = (name: string) => readFileSync(new URL(`../${name}`, import.meta.url), 'utf8');
const security = read('SECURITY.md');
const settings = new Set(OPTIONS.map((o) => o.env));
/** Upper-case words in backticks that are neither a setting nor an error code, and why they are named. */
const NOT_SETTINGS: Record<string, string> = { NODE_ENV: 'named as not read' };

/**
 * The upper-case names in backticks of a Markdown text: `A_B` words anywhere in a span (`A_B=1` too), and a
 * one-word name (`HOST`, `FORBIDDEN`) when it is the whole span.
 */
function backtickedNames(md: string): Set<string> {
  const names = new Set<string>();
  for (const [, span] of md.matchAll(/`([^`\n]+)`/g)) {
    if (/^[A-Z]{3,}$/.test(span!)) names.add(span!);
    for (const [name] of span!.matchAll(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g)) names.add(name);
  }
  return names;
}

t.test('every setting SECURITY.md names exists in the configuration table', async (t) => {
  const names = [...backtickedNames(security)];
  t.ok(names.length > 40, `it names settings (${names.length} names)`);
  const unknown = names.filter((n) => !settings.has(n) && !(n in ERRORS) && !(n in NOT_SETTINGS));
  t.same(unknown, [], 'no name that is neither a setting, an error code nor a listed exception');
  for (const key of ['STORYWIRE_DEV', 'JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWT_JWKS_URL', 'API_KEY', 'ALLOWED_ORIGINS', 'TRUSTED_PROXIES']) t.ok(names.includes(key), `the checklist names ${key}`);
  t.match(security, /`--dev`/, 'the dev flag');
});

t.test('every setting of protocol.md\'s limits table is in SECURITY.md\'s table of what each limit protects', async (t) => {
  const protocol = read('protocol.md');
  const limits = /## 8\. Limits\n([\s\S]*?)\n## 9\./.exec(protocol)?.[1] ?? '';
  const rows = limits.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| limit') && !l.startsWith('|---'));
  t.ok(rows.length > 20, `the limits table is found (${rows.length} rows)`);
  const table = /## What each limit protects\n([\s\S]*?)\n## /.exec(security)?.[1] ?? '';
  t.ok(table.length > 0, 'SECURITY.md has the section');
  const covered = backtickedNames(table);
  const wanted = new Set(rows.flatMap((r) => [...backtickedNames(r.split('|')[3] ?? '')]).filter((n) => settings.has(n)));
  t.ok(wanted.size > 20, `settings in the limits table (${wanted.size})`);
  t.same([...wanted].filter((n) => !covered.has(n)), [], 'each is in the table of what it protects');
});
