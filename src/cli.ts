// The command line's own words, --help and --version; every other flag is a setting of config.ts.
import { readFileSync } from 'node:fs';
import { OPTIONS } from './config.js';

/** The package's version, from the package.json next to src/ or dist/. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const VALUE: Record<string, string> = { int: ' <n>', string: ' <value>', list: ' <a,b>', bool: ' <true|false>', switch: '' };

/** The doc up to its first full stop outside parentheses, at most about 110 characters. */
function firstSentence(doc: string): string {
  let depth = 0;
  let end = doc.length;
  for (let i = 0; i < doc.length; i++) {
    const c = doc[i];
    if (c === '(') depth++;
    else if (c === ')') depth = Math.max(0, depth - 1);
    else if (c === '.' && depth === 0 && (i + 1 === doc.length || doc[i + 1] === ' ')) {
      end = i + 1;
      break;
    }
  }
  const s = doc.slice(0, end);
  return s.length <= 110 ? s : `${s.slice(0, s.lastIndexOf(' ', 107))} ...`;
}

/** The help text: every setting as its flag, its variable and its default, with the first sentence of its doc. */
export function help(): string {
  const rows = OPTIONS.map((o) => {
    const flag = `--${o.flag ?? o.env.toLowerCase().replaceAll('_', '-')}${VALUE[o.kind] ?? ''}`;
    const def = o.default === undefined || o.default === false ? '' : ` (default ${String(o.default)})`;
    return `  ${flag.padEnd(34)} ${o.env}${def}\n      ${firstSentence(o.doc.replaceAll('`', ''))}`;
  });
  return [
    `storywire ${version()}: a real-time WebSocket server on uWebSockets.js`,
    '',
    'Usage: storywire [flags]       (npm start -- [flags] in a clone)',
    '       storywire --dev         a laptop: loopback, generated credentials printed',
    '',
    'Every flag is also an environment variable (flags win): --port 9001, --port=9001.',
    '',
    ...rows,
    `  ${'-h, --help'.padEnd(34)} this help`,
    `  ${'--version'.padEnd(34)} the version`,
    '',
    'Reference: README.md ("Configuration") and protocol.md in the package.',
    '',
  ].join('\n');
}

/** What to print instead of starting, when the command line asks for help or the version; undefined otherwise. */
export function cliInfo(argv: readonly string[]): string | undefined {
  if (argv.includes('--help') || argv.includes('-h')) return help();
  if (argv.includes('--version')) return `${version()}\n`;
  return undefined;
}
