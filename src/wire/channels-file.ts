// The operator's channel namespaces (CHANNELS_FILE, JSON; its JSON Schema is channels.schema.json at the
// package root): read and checked at start, every problem named by its path, field and reason. The rules
// themselves (what a namespace allows) live in the registry, topics.ts.

/**
 * Who may do something on a channel. `proxy` names an entry of the file's `proxies`. `subscribers` (publish and
 * presenceRule only): the asking connection is subscribed to the channel (let in by the subscribe rule).
 */
export type Rule = 'public' | 'owner' | 'none' | 'token' | 'subscribers' | { readonly permission?: string; readonly claim?: string } | { readonly proxy: string };

export type PresenceMode = 'off' | 'counts' | 'members';

/** Chat on a namespace (protocol.md section 14): off, or on with read receipts announced to members or not. */
export type ChatSpec = false | { readonly receipts: boolean };

export interface NamespaceSpec {
  /** The id rule (a regular expression the whole id must match); null: one channel named like the namespace. */
  readonly id: RegExp | null;
  readonly subscribe: Rule;
  readonly publish: Rule;
  /** Kept events per channel and their age limit; null: nothing kept, the channel cannot be resumed. */
  readonly history: { readonly size: number; readonly ttlS: number } | null;
  readonly presence: PresenceMode;
  /** Who may ask for a channel's presence (counts or members); default "subscribers". */
  readonly presenceRule: Rule;
  readonly typing: boolean;
  /** Whether its channels take `chat:*` messages (a chat namespace has ids and history). */
  readonly chat: ChatSpec;
}

export interface ProxySpec {
  readonly url: string;
  readonly timeoutMs: number;
  /** How long an allow / deny decision is reused (0: never cached), and how many are kept. */
  readonly cacheTtlMs: number;
  readonly cacheMax: number;
  /** Requests to this backend in flight at once; past it, UNAVAILABLE at once. */
  readonly maxInFlight: number;
  readonly headers: Readonly<Record<string, string>>;
}

export interface ChannelsFile {
  readonly namespaces: ReadonlyMap<string, Partial<NamespaceSpec>>;
  readonly proxies: ReadonlyMap<string, ProxySpec>;
}

export const NAMESPACE_NAME = /^[a-z][a-z0-9-]{0,31}$/;
const RULE_WORDS = new Set(['public', 'owner', 'none', 'token']);
const NAMESPACE_KEYS = new Set(['id', 'subscribe', 'publish', 'history', 'presence', 'presenceRule', 'typing', 'chat']);
const PROXY_KEYS = new Set(['url', 'timeoutMs', 'cacheTtlMs', 'cacheMax', 'maxInFlight', 'headers']);
/** Header names a proxy may not set: the request's framing is storywire's. */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'host', 'transfer-encoding', 'connection']);

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks a parsed CHANNELS_FILE document; `problems` gets one line per fault ("<path>: <reason>"). */
export function checkChannelsFile(doc: unknown, problems: string[]): ChannelsFile {
  const namespaces = new Map<string, Partial<NamespaceSpec>>();
  const proxies = new Map<string, ProxySpec>();
  if (!isObj(doc)) {
    problems.push('(root): must be a JSON object with "namespaces" (and optionally "proxies")');
    return { namespaces, proxies };
  }
  for (const key of Object.keys(doc)) if (key !== 'namespaces' && key !== 'proxies' && key !== '$schema') problems.push(`${key}: unknown field (use namespaces, proxies)`);

  if (doc['proxies'] !== undefined) {
    if (!isObj(doc['proxies'])) problems.push('proxies: must be an object of name -> proxy');
    else for (const [name, raw] of Object.entries(doc['proxies'])) {
      const p = checkProxy(`proxies.${name}`, raw, problems);
      if (!NAMESPACE_NAME.test(name)) problems.push(`proxies.${name}: a proxy name is 1-32 characters [a-z0-9-], starting with a letter`);
      if (p) proxies.set(name, p);
    }
  }
  if (!isObj(doc['namespaces'])) {
    problems.push('namespaces: required, an object of namespace name -> options');
    return { namespaces, proxies };
  }
  for (const [name, raw] of Object.entries(doc['namespaces'])) {
    const at = `namespaces.${name}`;
    if (!NAMESPACE_NAME.test(name)) problems.push(`${at}: a namespace name is 1-32 characters [a-z0-9-], starting with a letter`);
    const ns = checkNamespace(at, raw, proxies, problems);
    if (ns) namespaces.set(name, ns);
  }
  return { namespaces, proxies };
}

function checkProxy(at: string, raw: unknown, problems: string[]): ProxySpec | undefined {
  if (!isObj(raw)) {
    problems.push(`${at}: must be an object with at least "url"`);
    return undefined;
  }
  for (const key of Object.keys(raw)) if (!PROXY_KEYS.has(key)) problems.push(`${at}.${key}: unknown field (use ${[...PROXY_KEYS].join(', ')})`);
  const url = raw['url'];
  if (typeof url !== 'string' || !/^https?:\/\/[^\s/]+/.test(url)) problems.push(`${at}.url: required, an http(s) URL`);
  const int = (key: string, def: number, min: number, max: number): number => {
    const v = raw[key];
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      problems.push(`${at}.${key}: must be an integer from ${min} to ${max}`);
      return def;
    }
    return v;
  };
  const headers: Record<string, string> = {};
  if (raw['headers'] !== undefined) {
    if (!isObj(raw['headers'])) problems.push(`${at}.headers: must be an object of header name -> string`);
    else for (const [h, v] of Object.entries(raw['headers'])) {
      if (!/^[A-Za-z0-9-]{1,64}$/.test(h) || RESERVED_HEADERS.has(h.toLowerCase())) problems.push(`${at}.headers.${h}: not a header name a proxy may set`);
      else if (typeof v !== 'string' || /[\r\n]/.test(v)) problems.push(`${at}.headers.${h}: must be a one-line string`);
      else headers[h.toLowerCase()] = v;
    }
  }
  return {
    url: typeof url === 'string' ? url : '',
    timeoutMs: int('timeoutMs', 1000, 10, 60000),
    cacheTtlMs: int('cacheTtlMs', 30000, 0, 86_400_000),
    cacheMax: int('cacheMax', 10000, 0, 10_000_000),
    maxInFlight: int('maxInFlight', 256, 1, 100000),
    headers,
  };
}

function checkRule(at: string, raw: unknown, proxies: ReadonlyMap<string, ProxySpec>, problems: string[], subscribers = false): Rule | undefined {
  if (typeof raw === 'string') {
    if (RULE_WORDS.has(raw) || (subscribers && raw === 'subscribers')) return raw as Rule;
    if (raw === 'subscribers') {
      problems.push(`${at}: "subscribers" is a rule of publish and presenceRule only`);
      return undefined;
    }
    problems.push(`${at}: "${raw.slice(0, 40)}" is not a rule (use "public", "owner", "none", "token", {"permission": ...}, {"claim": ...} or {"proxy": ...})`);
    return undefined;
  }
  if (!isObj(raw)) {
    problems.push(`${at}: must be a rule: "public", "owner", "none", "token", {"permission": ...}, {"claim": ...} or {"proxy": ...}`);
    return undefined;
  }
  const keys = Object.keys(raw);
  if (keys.includes('proxy')) {
    if (keys.length !== 1) problems.push(`${at}: {"proxy": ...} takes no other field`);
    const name = raw['proxy'];
    if (typeof name !== 'string' || !proxies.has(name)) {
      problems.push(`${at}.proxy: must name an entry of "proxies"${proxies.size ? ` (${[...proxies.keys()].join(', ')})` : ' (there is none)'}`);
      return undefined;
    }
    return { proxy: name };
  }
  for (const k of keys) if (k !== 'permission' && k !== 'claim') problems.push(`${at}.${k}: unknown field (a rule object has permission and/or claim, or proxy)`);
  const out: { permission?: string; claim?: string } = {};
  for (const k of ['permission', 'claim'] as const) {
    const v = raw[k];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(v)) problems.push(`${at}.${k}: must be a name of 1-64 characters [A-Za-z0-9_.:-]`);
    else out[k] = v;
  }
  // Only an empty object: a rule with a bad permission or claim, or an unknown field, was named above.
  if (keys.length === 0) problems.push(`${at}: a rule object needs "permission", "claim" or "proxy"`);
  return out;
}

function checkNamespace(at: string, raw: unknown, proxies: ReadonlyMap<string, ProxySpec>, problems: string[]): Partial<NamespaceSpec> | undefined {
  if (!isObj(raw)) {
    problems.push(`${at}: must be an object of options`);
    return undefined;
  }
  const ns: { -readonly [K in keyof NamespaceSpec]?: NamespaceSpec[K] } = {};
  for (const key of Object.keys(raw)) if (!NAMESPACE_KEYS.has(key)) problems.push(`${at}.${key}: unknown field (use ${[...NAMESPACE_KEYS].join(', ')})`);
  if (raw['id'] !== undefined) {
    const id = raw['id'];
    if (id === null) ns.id = null;
    else if (typeof id !== 'string' || id.length > 200) problems.push(`${at}.id: must be a regular expression (a string of at most 200 characters) or null`);
    else {
      try {
        ns.id = new RegExp(`^(?:${id})$`);
        // Ids are written into topics, keys and logs: ':' and whitespace would make them ambiguous.
        if (ns.id.test('') || ns.id.test('a:b') || ns.id.test('a b')) problems.push(`${at}.id: must not match an empty id, ":" or whitespace`);
      } catch (err) {
        problems.push(`${at}.id: not a valid regular expression (${(err as Error).message})`);
      }
    }
  }
  for (const key of ['subscribe', 'publish', 'presenceRule'] as const) {
    if (raw[key] === undefined) continue;
    const rule = checkRule(`${at}.${key}`, raw[key], proxies, problems, key !== 'subscribe');
    if (rule !== undefined) ns[key] = rule;
  }
  if (raw['history'] !== undefined) {
    const h = raw['history'];
    if (h === false || h === null) ns.history = null;
    else if (!isObj(h)) problems.push(`${at}.history: must be false or {"size": 1-100000, "ttlS": 1-31536000}`);
    else {
      for (const key of Object.keys(h)) if (key !== 'size' && key !== 'ttlS') problems.push(`${at}.history.${key}: unknown field (use size, ttlS)`);
      const size = h['size'];
      const ttlS = h['ttlS'];
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > 100000) problems.push(`${at}.history.size: required, an integer from 1 to 100000`);
      if (typeof ttlS !== 'number' || !Number.isInteger(ttlS) || ttlS < 1 || ttlS > 31536000) problems.push(`${at}.history.ttlS: required, an integer from 1 to 31536000`);
      if (typeof size === 'number' && typeof ttlS === 'number') ns.history = { size, ttlS };
    }
  }
  if (raw['presence'] !== undefined) {
    const p = raw['presence'];
    if (p !== 'off' && p !== 'counts' && p !== 'members') problems.push(`${at}.presence: must be "off", "counts" or "members"`);
    else ns.presence = p;
  }
  if (raw['typing'] !== undefined) {
    if (typeof raw['typing'] !== 'boolean') problems.push(`${at}.typing: must be true or false`);
    else ns.typing = raw['typing'];
  }
  if (raw['chat'] !== undefined) {
    const c = raw['chat'];
    if (c === false) ns.chat = false;
    else if (c === true) ns.chat = { receipts: true };
    else if (!isObj(c)) problems.push(`${at}.chat: must be false, true or {"receipts": true|false}`);
    else {
      for (const key of Object.keys(c)) if (key !== 'receipts') problems.push(`${at}.chat.${key}: unknown field (use receipts)`);
      if (c['receipts'] !== undefined && typeof c['receipts'] !== 'boolean') problems.push(`${at}.chat.receipts: must be true or false`);
      ns.chat = { receipts: c['receipts'] !== false };
    }
  }
  return ns;
}
