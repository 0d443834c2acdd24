// The topic registry: the channel namespaces (built-in, or declared by the operator in CHANNELS_FILE), their id
// rules, who may subscribe, publish and see presence, which are recoverable (numbered, kept in history) and
// which events are never stored, where typing may go, and the automatic topics. No other module knows topic
// rules. A channel is `<namespace>:<id>`, or `<namespace>` alone for a namespace whose id is null (`stories`).
import { readFileSync } from 'node:fs';
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';
import { ID_PATTERN } from '../edge/auth.js';
import { checkChannelsFile, type ChatSpec, type NamespaceSpec, type ProxySpec, type Rule } from './channels-file.js';
import { ErrorCode, WireError } from './codes.js';

export type { ChatSpec, NamespaceSpec, ProxySpec, Rule } from './channels-file.js';

export const STORIES = 'stories';
export const PRESENCE_ALL = 'presence';

export const userTopic = (id: string): string => `user:${id}`;
export const storyTopic = (id: string): string => `story:${id}`;
export const authorTopic = (id: string): string => `author:${id}`;
export const presenceTopic = (id: string): string => `presence:${id}`;

/** A namespace with its name. */
export interface Namespace extends NamespaceSpec {
  readonly name: string;
}

export interface ParsedTopic {
  readonly ns: Namespace;
  /** The id after `<namespace>:`; undefined for a namespace of one channel. */
  readonly id: string | undefined;
}

const UNSAFE_ID = /[:\s]/;

/** The namespace part of a channel name (`stories` for `stories`, `story` for `story:42`). */
function nsName(topic: string): string {
  const colon = topic.indexOf(':');
  return colon === -1 ? topic : topic.slice(0, colon);
}

/** Events that are never stored nor numbered, even on recoverable topics: they are only true now. */
const EPHEMERAL: ReadonlySet<string> = new Set(['user:typing', 'user:stopped_typing', 'notifications:read', 'chat:read', 'chat:receipt']);

/** The built-in `conversation` namespace's history: what a member offline for a while can still resume. */
export const CONVERSATION_HISTORY = { size: 1000, ttlS: 2592000 } as const;

/** The built-in namespaces: today's behaviour, with the safe defaults of issue #15 (see protocol.md, "Channels"). */
export function builtinNamespaces(config: Pick<Config, 'historySize' | 'historyTtlS' | 'publishPermission' | 'production'>): Map<string, NamespaceSpec> {
  const history = { size: config.historySize, ttlS: config.historyTtlS };
  const base = { id: ID_PATTERN, publish: 'none', history: null, presence: 'off', presenceRule: 'subscribers', typing: false, chat: false } as const;
  return new Map<string, NamespaceSpec>([
    ['user', { ...base, subscribe: 'owner', history, typing: true }],
    // A story's chapters are written by its author: the token lists the author's story ids (`stories` claim).
    ['story', { ...base, subscribe: 'public', publish: { permission: config.publishPermission, claim: 'stories' }, history, typing: true }],
    ['author', { ...base, subscribe: 'public' }],
    // Who may watch whom: the people the token lists (`watch` claim, e.g. who the user follows). Dev: anyone.
    ['presence', { ...base, subscribe: config.production ? { claim: 'watch' } : 'public' }],
    [STORIES, { ...base, id: null, subscribe: 'public', publish: { permission: config.publishPermission } }],
    // Chat (protocol.md section 14): membership is the app's decision (a subscription token; fails closed without
    // a backend), and a member may send because it was let in.
    [
      'conversation',
      { ...base, id: /^[A-Za-z0-9_-]{1,64}$/, subscribe: 'token', publish: 'subscribers', history: CONVERSATION_HISTORY, presence: 'members', typing: true, chat: { receipts: true } },
    ],
  ]);
}

/** The registry of one server: built-in namespaces, overridden and extended by CHANNELS_FILE. */
export class Channels {
  private readonly byName: ReadonlyMap<string, Namespace>;
  private readonly limitsByName = new Map<string, { readonly size: number; readonly ttlMs: number }>();
  /** Token claims that some rule reads: only these are kept on a connection. */
  readonly claims: ReadonlySet<string>;

  constructor(
    namespaces: ReadonlyMap<string, NamespaceSpec>,
    readonly proxies: ReadonlyMap<string, ProxySpec> = new Map(),
  ) {
    const byName = new Map<string, Namespace>();
    const claims = new Set<string>();
    for (const [name, spec] of namespaces) {
      byName.set(name, { name, ...spec });
      for (const rule of [spec.subscribe, spec.publish, spec.presenceRule]) if (typeof rule === 'object' && 'claim' in rule && rule.claim) claims.add(rule.claim);
    }
    this.byName = byName;
    this.claims = claims;
    for (const ns of byName.values()) if (ns.history) this.limitsByName.set(ns.name, { size: ns.history.size, ttlMs: ns.history.ttlS * 1000 });
  }

  /**
   * A channel's history limits (its namespace's `history`, in ms) for the history stores; undefined for a
   * namespace without history. Bound, so that a store can hold it as a plain function.
   */
  readonly historyLimits = (topic: string): { readonly size: number; readonly ttlMs: number } | undefined => this.limitsByName.get(nsName(topic));

  /** The longest history TTL any namespace has (ms; 0 when none has its own): what a shared age sweep may use. */
  get longestHistoryTtlMs(): number {
    let longest = 0;
    for (const l of this.limitsByName.values()) longest = Math.max(longest, l.ttlMs);
    return longest;
  }

  namespace(name: string): Namespace | undefined {
    return this.byName.get(name);
  }

  /** Parses a channel a client or the API names; INVALID_TOPIC when no namespace has it. */
  parse(topic: string): ParsedTopic {
    const colon = topic.indexOf(':');
    const ns = this.byName.get(colon === -1 ? topic : topic.slice(0, colon));
    if (ns !== undefined) {
      if (colon === -1 && ns.id === null) return { ns, id: undefined };
      const id = topic.slice(colon + 1);
      // Whatever an operator's id pattern allows, an id never holds ':' or whitespace (topics, keys, logs).
      if (colon !== -1 && ns.id !== null && ns.id.test(id) && !UNSAFE_ID.test(id)) return { ns, id };
    }
    throw new WireError(ErrorCode.INVALID_TOPIC, `unknown topic "${topic.slice(0, 140)}": use one of ${this.forms()}`);
  }

  /** The channel's namespace without checking its id (hot path: the publisher named a valid channel). */
  private nsOf(topic: string): Namespace | undefined {
    const colon = topic.indexOf(':');
    return this.byName.get(colon === -1 ? topic : topic.slice(0, colon));
  }

  /** Events on the channel carry offsets and are kept in history: it can be resumed. */
  isRecoverable(topic: string): boolean {
    return this.nsOf(topic)?.history != null;
  }

  /** An event of this type on this channel is numbered and stored. */
  isNumbered(type: string, topic: string): boolean {
    return this.isRecoverable(topic) && !EPHEMERAL.has(type);
  }

  /** The chat option of a channel's namespace (false for a topic of no namespace). */
  chatOf(topic: string): ChatSpec {
    return this.nsOf(topic)?.chat ?? false;
  }

  /** A typing target: a channel of a namespace that allows typing. */
  checkTypingTarget(target: string): ParsedTopic {
    const t = this.parse(target);
    if (!t.ns.typing) throw new WireError(ErrorCode.INVALID_TOPIC, `typing is not allowed on ${t.ns.name} channels (typing targets: ${this.typingForms()})`);
    return t;
  }

  private forms(): string {
    return [...this.byName.values()].map((ns) => (ns.id === null ? ns.name : ns.name === 'user' ? 'user:<your id>' : `${ns.name}:<id>`)).join(', ');
  }

  private typingForms(): string {
    return [...this.byName.values()].filter((ns) => ns.typing && ns.id !== null).map((ns) => `${ns.name}:<id>`).join(', ') || 'none';
  }
}

/** The built-in registry at the default settings: for code built without a server (tests, tools). */
export const DEFAULT_CHANNELS = new Channels(builtinNamespaces({ historySize: 50, historyTtlS: 604800, publishPermission: 'stories:publish', production: false }));

/** The namespaces that must exist: the server's own features publish on them. */
const REQUIRED = ['user', 'story', 'author', 'presence', STORIES];

/** The server's registry: the built-in namespaces, with CHANNELS_FILE's on top when it is set. */
export function loadChannels(config: Config): Channels {
  const builtin = builtinNamespaces(config);
  if (config.channelsFile === undefined) return new Channels(builtin);
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(config.channelsFile, 'utf8'));
  } catch (err) {
    throw new ConfigError([`CHANNELS_FILE ${config.channelsFile}: ${(err as Error).message}`]);
  }
  const problems: string[] = [];
  const file = checkChannelsFile(doc, problems);
  const namespaces = new Map(builtin);
  for (const [name, spec] of file.namespaces) {
    const base = builtin.get(name);
    // A new namespace starts from nothing allowed: it says what it allows.
    const merged = { id: ID_PATTERN, subscribe: 'none', publish: 'none', history: null, presence: 'off', presenceRule: 'subscribers', typing: false, chat: false, ...base, ...spec } as NamespaceSpec;
    if (REQUIRED.includes(name) && (merged.id === null) !== (name === STORIES)) problems.push(`namespaces.${name}.id: ${name === STORIES ? 'must stay null (one channel)' : 'cannot be null (the server publishes to its ids)'}`);
    if (merged.subscribe === 'owner' && merged.id === null) problems.push(`namespaces.${name}.subscribe: "owner" needs ids (the id is the user's own)`);
    // Chat messages are numbered, kept and edited in place: a chat namespace keeps history, one channel per id.
    if (merged.chat !== false && (merged.history === null || merged.id === null)) problems.push(`namespaces.${name}.chat: needs ids and "history" (chat messages are numbered and kept)`);
    namespaces.set(name, merged);
  }
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `CHANNELS_FILE ${config.channelsFile}: ${p}`));
  return new Channels(namespaces, file.proxies);
}

/** Rule in words, for errors and logs. */
export function ruleText(rule: Rule): string {
  if (typeof rule === 'string') return rule;
  if ('proxy' in rule) return `proxy ${rule.proxy}`;
  return [rule.permission && `permission "${rule.permission}"`, rule.claim && `the "${rule.claim}" claim`].filter(Boolean).join(' and ');
}
