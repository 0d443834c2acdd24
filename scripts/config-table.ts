// Rewrites the configuration table of README.md from src/config.ts (npm run docs:config).
import { readFileSync, writeFileSync } from 'node:fs';
import { configTable } from '../src/config.js';

const path = new URL('../README.md', import.meta.url);
const readme = readFileSync(path, 'utf8');
const next = readme.replace(/(<!-- config:start -->\n)[\s\S]*?(\n<!-- config:end -->)/, `$1${configTable()}$2`);
writeFileSync(path, next);
