// Helpers of the package test: the Dockerfile read as its instructions, and a started process's output awaited.
import type { ChildProcess } from 'node:child_process';

export interface Instruction {
  op: string;
  args: string;
}

/** The Dockerfile's stages, each its instructions (continuation lines joined, comments dropped). */
export function dockerStages(text: string): Instruction[][] {
  const joined = text.replace(/\\\n/g, ' ');
  const stages: Instruction[][] = [];
  for (const line of joined.split('\n')) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!m || line.trim().startsWith('#')) continue;
    const ins = { op: m[1]!, args: m[2]!.trim() };
    if (ins.op === 'FROM') stages.push([]);
    stages.at(-1)?.push(ins);
  }
  return stages;
}

/** A COPY's flags, sources and destination (`COPY [--from=x] src... dest`). */
export function copyOf(args: string): { from: string | undefined; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const rest = words.filter((w) => !w.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: rest.slice(0, -1), dest: rest.at(-1)! };
}

/** `KEY=value KEY2=value2` of an ENV line. */
export function envOf(args: string): Record<string, string> {
  return Object.fromEntries([...args.matchAll(/(\w+)=("[^"]*"|\S+)/g)].map(([, k, v]) => [k, v!.replace(/^"|"$/g, '')]));
}

/** The JSON (exec) form of CMD, ENTRYPOINT or HEALTHCHECK's CMD. */
export function execForm(args: string): string[] {
  const json = args.slice(args.indexOf('['));
  return JSON.parse(json) as string[];
}

/** Everything a child process writes on stdout and stderr, and a wait for a line matching a pattern. */
export class Output {
  text = '';
  private waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void; reject: (e: Error) => void }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly child: ChildProcess) {
    const add = (d: Buffer) => {
      this.text += d.toString();
      for (const w of [...this.waiters]) {
        const m = w.re.exec(this.text);
        if (m) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    };
    child.stdout?.on('data', add);
    child.stderr?.on('data', add);
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    void this.exited.then(({ code, signal }) => {
      for (const w of this.waiters.splice(0)) w.reject(new Error(`exited (${code ?? signal}) before ${w.re}; output:\n${this.text.slice(-3000)}`));
    });
  }

  /** The first match of `re` in the output so far or to come; rejects when the process exits or after timeoutMs. */
  waitFor(re: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
    const m = re.exec(this.text);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${re} within ${timeoutMs} ms; output:\n${this.text.slice(-3000)}`)), timeoutMs);
      this.waiters.push({
        re,
        resolve: (x) => {
          clearTimeout(timer);
          resolve(x);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }
}
