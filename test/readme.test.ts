// README's configuration table is the one src/config.ts describes (regenerate: npm run docs:config).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { configTable } from '../src/config.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

t.test('README starts with the two commands', async (t) => {
  t.match(readme.slice(0, 1500), /npm install && npm start -- --dev/, "the first command asks for dev mode (nothing else starts it)");
  t.match(readme.slice(0, 1500), /npm test/);
});

t.test('README configuration table matches src/config.ts', async (t) => {
  const m = /<!-- config:start -->\n([\s\S]*?)\n<!-- config:end -->/.exec(readme);
  t.ok(m, 'README has the config markers');
  t.equal(m?.[1], configTable());
});
