// Options of the stand-alone bench scripts (soak, cluster, recovery): `--name value` numbers and lists,
// checked before anything starts. A wrong or unknown option ends the script with the usage and exit code 2.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';

export interface NumberOption {
  default: number;
  /** Smallest accepted value (default 1: counts and durations). */
  min?: number;
  /** Largest accepted value (none by default). */
  max?: number;
  /** Whole numbers only. */
  int?: boolean;
  doc: string;
}

/** A comma-separated list of some of `choices` (parsed as string[]). */
export interface ListOption {
  default: string;
  /** Accepted items. */
  choices: readonly string[];
  doc: string;
}

/** Exactly one of `oneOf` (parsed as that string). */
export interface OneOfOption<T extends string = string> {
  default: T;
  oneOf: readonly T[];
  doc: string;
}

/** Free text (a path, K=V pairs), checked by `valid` when given: a message says why it is refused. */
export interface TextOption {
  default: string;
  text: true;
  valid?: (value: string) => string | undefined;
  doc: string;
}

export type Spec = Record<string, NumberOption | ListOption | OneOfOption | TextOption>;

/** The options of the spec, and `out`: every stand-alone scenario takes `--out FILE` as bench/run.ts does. */
type Parsed<S extends Spec> = { [K in keyof S]: S[K] extends OneOfOption<infer T> ? T : S[K] extends ListOption ? string[] : S[K] extends TextOption ? string : number } & {
  out: string | undefined;
};

export function usage(command: string, spec: Spec): string {
  const lines = Object.entries(spec).map(([name, o]) => `  --${name.padEnd(12)} ${o.doc} (default ${o.default}${'oneOf' in o ? `; one of ${o.oneOf.join(', ')}` : ''})`);
  lines.push(`  --${'out FILE'.padEnd(12)} also append the JSON lines to FILE`);
  return `usage: ${command} [options]\n\n${lines.join('\n')}\n`;
}

/** Parses `argv` against `spec`; throws an Error whose message includes the usage. */
export function parseOptions<S extends Spec>(command: string, spec: S, argv: readonly string[]): Parsed<S> {
  const help = usage(command, spec);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(Object.keys(spec).map((k) => [k, { type: 'string' as const }])),
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new Error(`${(err as Error).message}\n\n${help}`);
  }
  if (values['help']) throw new Error(help);
  if (values['out'] === '') throw new Error(`--out needs a file name\n\n${help}`);
  const out: Record<string, number | string | string[] | undefined> = { out: values['out'] as string | undefined };
  for (const [name, o] of Object.entries(spec)) {
    const raw = values[name] as string | undefined;
    if ('text' in o) {
      const v = raw ?? o.default;
      const why = raw === undefined ? undefined : o.valid?.(v);
      if (why !== undefined) throw new Error(`--${name}: ${why}, got "${raw}"\n\n${help}`);
      out[name] = v;
      continue;
    }
    if ('oneOf' in o) {
      const v = raw ?? o.default;
      if (!o.oneOf.includes(v)) throw new Error(`--${name} takes one of ${o.oneOf.join(', ')}, got "${raw}"\n\n${help}`);
      out[name] = v;
      continue;
    }
    if ('choices' in o) {
      const items = (raw ?? o.default).split(',').map((s) => s.trim()).filter(Boolean);
      const bad = items.find((i) => !o.choices.includes(i));
      if (items.length === 0 || bad !== undefined) throw new Error(`--${name} takes a comma-separated list of ${o.choices.join(', ')}, got "${raw}"\n\n${help}`);
      out[name] = items;
      continue;
    }
    if (raw === undefined) {
      out[name] = o.default;
      continue;
    }
    const n = raw.trim() === '' ? NaN : Number(raw);
    const min = o.min ?? 1;
    const max = o.max ?? Infinity;
    if (!Number.isFinite(n) || n < min || n > max || (o.int && !Number.isInteger(n))) {
      const range = max === Infinity ? `>= ${min}` : `from ${min} to ${max}`;
      throw new Error(`--${name} must be ${o.int ? 'a whole number' : 'a number'} ${range}, got "${raw}"\n\n${help}`);
    }
    out[name] = n;
  }
  return out as Parsed<S>;
}

/** parseOptions on process.argv, or the message on stderr and exit 2. */
export function cliOptions<S extends Spec>(command: string, spec: S): Parsed<S> {
  try {
    return parseOptions(command, spec, process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}`);
    process.exit(2);
  }
}

/** Prints one JSON line per result on stdout and, with `--out FILE`, appends it to FILE too. */
export function jsonLines(file: string | undefined): (result: object) => void {
  if (file) mkdirSync(dirname(file), { recursive: true });
  return (result) => {
    const line = `${JSON.stringify(result)}\n`;
    process.stdout.write(line);
    if (file) appendFileSync(file, line);
  };
}
