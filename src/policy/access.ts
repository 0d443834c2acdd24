// Who may subscribe to and publish on a channel: the namespace's rule (topics.ts) applied to a connection.
// Rules that need nothing but the token are decided in the same turn (no promise, no allocation); a proxy
// rule asks the app's backend (proxy.ts); a subscription token is the app's signed decision for one channel.
import type { JWTPayload } from 'jose';
import { hasPermission, type Verifier } from '../edge/auth.js';
import type { Conn } from '../edge/conn.js';
import { ErrorCode, WireError } from '../wire/codes.js';
import { ruleText, type Channels, type ParsedTopic, type Rule } from '../wire/topics.js';
import { BackendProxy, decisionKey, type ProxyDecision, type ProxyKind, type ProxyMetrics } from './proxy.js';

/** What a granted subscription carries: the token's expiry (seconds) and the channel info from a token or proxy. */
export interface Grant {
  readonly exp: number | undefined;
  readonly info: unknown;
}

const OPEN: Grant = { exp: undefined, info: undefined };

/** The outcome of a rule that needs no backend: granted, refused, or "ask the proxy". */
type Verdict = boolean | BackendProxy;

export class Access {
  readonly proxies: ReadonlyMap<string, BackendProxy>;

  constructor(
    readonly channels: Channels,
    private readonly verifier: Pick<Verifier, 'verifyPayload'>,
    metrics?: ProxyMetrics,
  ) {
    this.proxies = new Map([...channels.proxies].map(([name, spec]) => [name, new BackendProxy(name, spec, metrics ? { metrics } : {})]));
  }

  /** Idle kept-alive connections to the backends closed (shutdown). */
  close(): void {
    for (const p of this.proxies.values()) p.close();
  }

  /** The rule applied to what the token says; a proxy rule gives its proxy. */
  verdict(rule: Rule, conn: Conn, t: ParsedTopic): Verdict {
    switch (rule) {
      case 'public':
        return true;
      case 'owner':
        return t.id === conn.userId;
      case 'none':
      case 'token':
        return false;
      case 'subscribers':
        return conn.subscriptions?.has(t.id === undefined ? t.ns.name : `${t.ns.name}:${t.id}`) === true;
      default:
        if ('proxy' in rule) return this.proxies.get(rule.proxy)!;
        if (rule.permission !== undefined && !hasPermission(conn, rule.permission)) return false;
        if (rule.claim !== undefined && (t.id === undefined || conn.claims?.get(rule.claim)?.has(t.id) !== true)) return false;
        return true;
    }
  }

  /**
   * Throws TOPIC_FORBIDDEN unless the connection may subscribe to the channel: by the namespace's rule, or by a
   * subscription token for this user and channel. UNAVAILABLE when the rule's backend gave no answer.
   */
  subscribe(conn: Conn, topic: string, t: ParsedTopic, token: string | undefined): Grant | Promise<Grant> {
    const rule = t.ns.subscribe;
    if (token !== undefined) {
      if (rule === 'none') throw new WireError(ErrorCode.TOPIC_FORBIDDEN, `${t.ns.name} channels cannot be subscribed to`);
      return this.subscriptionToken(conn, topic, token);
    }
    const v = this.verdict(rule, conn, t);
    if (v === true) return OPEN;
    if (v === false) throw refused('subscribe to', topic, rule);
    const d = this.ask(v, 'subscribe', conn, topic);
    return d instanceof Promise ? d.then((x) => subscribeGrant(x, topic)) : subscribeGrant(d, topic);
  }

  /**
   * Throws FORBIDDEN unless the connection may publish on the channel. With a publish proxy, resolves to the
   * data the backend wants broadcast (undefined: as sent). `extra`: more of the request body (chat's `chat`).
   */
  publish(conn: Conn, topic: string, t: ParsedTopic, data: unknown, extra?: Readonly<Record<string, unknown>>): undefined | Promise<unknown> {
    const rule = t.ns.publish;
    const v = this.verdict(rule, conn, t);
    if (v === true) return undefined;
    if (v === false) throw new WireError(ErrorCode.FORBIDDEN, refused('publish on', topic, rule).message);
    return v.ask('publish', { ...this.body(conn, topic), data, ...extra }).then((d) => {
      if (!d.allow) throw new WireError(ErrorCode.FORBIDDEN, `not allowed to publish on ${topic.slice(0, 140)}: ${d.reason}`);
      return d.data;
    });
  }

  /**
   * Throws TOPIC_FORBIDDEN unless the connection may see the channel's presence (`presence:channel`): the
   * namespace's presenceRule. UNAVAILABLE when its backend gave no answer.
   */
  presence(conn: Conn, topic: string, t: ParsedTopic): undefined | Promise<void> {
    const rule = t.ns.presenceRule;
    const v = this.verdict(rule, conn, t);
    if (v === true) return undefined;
    const at = `not allowed to see the presence of ${topic.slice(0, 140)}`;
    if (v === false) {
      const why = rule === 'subscribers' ? 'only its subscribers may (subscribe first)' : rule === 'none' || rule === 'token' ? 'nobody may' : rule === 'owner' ? 'only its owner may' : `needs ${ruleText(rule)}`;
      throw new WireError(ErrorCode.TOPIC_FORBIDDEN, `${at}: ${why}`);
    }
    const check = (d: ProxyDecision) => {
      if (!d.allow) throw new WireError(ErrorCode.TOPIC_FORBIDDEN, `${at}: ${d.reason}`);
    };
    const d = this.ask(v, 'presence', conn, topic);
    if (d instanceof Promise) return d.then(check);
    check(d);
    return undefined;
  }

  /**
   * A cached decision about this user on this channel (one Map lookup: no request body, no promise), else the
   * backend's, cached under decisionKey (what a revocation forgets). `extra`: more of the request body.
   */
  ask(proxy: BackendProxy, kind: ProxyKind, conn: Conn, channel: string, extra?: Readonly<Record<string, unknown>>): ProxyDecision | Promise<ProxyDecision> {
    const key = decisionKey(kind, conn.userId, channel);
    return proxy.decided(kind, key) ?? proxy.ask(kind, extra ? { ...this.body(conn, channel), ...extra } : this.body(conn, channel), key);
  }

  private body(conn: Conn, channel: string): { user: string; channel: string; connection: { id: string; ip: string } } {
    return { user: conn.userId, channel, connection: { id: conn.id, ip: conn.ip } };
  }

  private async subscriptionToken(conn: Conn, topic: string, token: string): Promise<Grant> {
    let claims: JWTPayload;
    try {
      claims = await this.verifier.verifyPayload(token);
    } catch (err) {
      if (err instanceof WireError && err.code === ErrorCode.UNAVAILABLE) throw err;
      const why = err instanceof WireError && err.code === ErrorCode.TOKEN_EXPIRED ? 'expired' : 'invalid';
      throw new WireError(ErrorCode.SUBSCRIPTION_TOKEN_INVALID, `subscription token ${why}${err instanceof WireError && why === 'invalid' ? ` (${err.message})` : ''}`);
    }
    if (claims.sub !== conn.userId) throw new WireError(ErrorCode.SUBSCRIPTION_TOKEN_INVALID, 'subscription token invalid (sub is not this connection\'s user)');
    if (claims['channel'] !== topic) throw new WireError(ErrorCode.SUBSCRIPTION_TOKEN_INVALID, 'subscription token invalid (channel is not the one subscribed to)');
    if (typeof claims.exp !== 'number') throw new WireError(ErrorCode.SUBSCRIPTION_TOKEN_INVALID, 'subscription token invalid (exp is required)');
    return { exp: claims.exp, info: claims['info'] };
  }
}

/** A proxy's subscribe decision as a grant, or TOPIC_FORBIDDEN with the backend's reason. */
function subscribeGrant(d: ProxyDecision, topic: string): Grant {
  if (!d.allow) throw new WireError(ErrorCode.TOPIC_FORBIDDEN, `not allowed to subscribe to ${topic.slice(0, 140)}: ${d.reason}`);
  return d.info === undefined ? OPEN : { exp: undefined, info: d.info };
}

function refused(what: string, topic: string, rule: Rule): WireError {
  const why = rule === 'none' ? 'nobody may' : rule === 'token' ? 'a subscription token is needed to' : rule === 'owner' ? 'only its owner may' : rule === 'subscribers' ? 'only its subscribers (subscribe first) may' : `needs ${ruleText(rule)} to`;
  return new WireError(ErrorCode.TOPIC_FORBIDDEN, `not allowed to ${what} ${topic.slice(0, 140)}: ${why} ${what.split(' ')[0]}`);
}
