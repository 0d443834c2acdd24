// What one configuration option is (config.ts's table, and the tables of the rooms that own theirs).
export type Kind = 'int' | 'string' | 'bool' | 'list' | 'switch';

export interface Option<K extends string = string> {
  key: K;
  env: string;
  /** The flag, when it is not the variable's name in kebab case. */
  flag?: string;
  kind: Kind;
  default: unknown;
  min?: number;
  max?: number;
  oneOf?: readonly string[];
  doc: string;
}

/** An http(s) URL the server sends to; outside dev mode https, unless its host is a loopback address. */
export function urlProblem(name: string, raw: string, dev: boolean, why: string): string | undefined {
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) return `${name} must be an http(s) URL, got "${raw}"`;
  if (url.protocol === 'http:' && !dev && !LOOPBACK.test(url.hostname)) return `${name} must be https:// outside dev mode (${why}), got "${raw}"`;
  return undefined;
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;
