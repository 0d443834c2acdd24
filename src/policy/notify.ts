// Who may notify whom from a client (NOTIFY_POLICY), which notification types a client may choose
// (NOTIFY_TYPES), and who may see whose presence (the `presence` namespace's subscribe rule): the app decides.
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';
import type { Conn } from '../edge/conn.js';
import { ErrorCode, WireError } from '../wire/codes.js';
import { presenceTopic, userTopic, type Channels, type ParsedTopic } from '../wire/topics.js';
import type { Access } from './access.js';
import type { BackendProxy } from './proxy.js';

/** What a presence:query answers: the allowed ids that are online, and the ids the user may not watch. */
export interface PresenceAnswer {
  online: string[];
  forbidden: string[];
}

export class NotifyPolicy {
  readonly policy: Config['notifyPolicy'];
  private readonly proxy: BackendProxy | undefined;
  private readonly types: ReadonlySet<string>;
  private readonly broadcast: boolean;

  /** Throws a ConfigError when NOTIFY_PROXY names no proxy of CHANNELS_FILE. */
  constructor(
    config: Pick<Config, 'notifyPolicy' | 'notifyProxy' | 'notifyTypes' | 'presenceBroadcast' | 'channelsFile'>,
    private readonly access: Access,
    private readonly channels: Channels,
  ) {
    this.policy = config.notifyPolicy;
    // `info` is what a notification without a type gets: always allowed.
    this.types = new Set([...config.notifyTypes, 'info']);
    this.broadcast = config.presenceBroadcast;
    if (this.policy === 'proxy') {
      const name = config.notifyProxy;
      this.proxy = name === undefined ? undefined : access.proxies.get(name);
      if (this.proxy === undefined) {
        const known = [...access.proxies.keys()];
        throw new ConfigError([
          `NOTIFY_PROXY ${name === undefined ? 'is not set' : `"${name}" is not a proxy of CHANNELS_FILE`} (NOTIFY_POLICY=proxy; ${config.channelsFile === undefined ? 'CHANNELS_FILE is not set' : `proxies: ${known.join(', ') || 'none'}`})`,
        ]);
      }
    }
  }

  /**
   * Whether the connection's user may notify `recipient` (and type on `user:<recipient>`): `any` yes,
   * `backend` no, `proxy` the backend's decision for the pair (cached). UNAVAILABLE when the backend gave none.
   */
  mayNotify(conn: Conn, recipient: string): boolean | Promise<boolean> {
    if (this.policy === 'any') return true;
    if (this.proxy === undefined) return false;
    const d = this.access.ask(this.proxy, 'notify', conn, userTopic(recipient), { recipient });
    return d instanceof Promise ? d.then((x) => x.allow) : d.allow;
  }

  /**
   * Throws FORBIDDEN unless the user may notify the recipient, INVALID_PAYLOAD for a type not allowed; in the
   * same turn unless a backend must be asked (then a promise that rejects in the same way).
   */
  checkNotify(conn: Conn, recipient: string, type: string): undefined | Promise<void> {
    if (!this.types.has(type)) {
      throw new WireError(ErrorCode.INVALID_PAYLOAD, `data.notification.type "${type.slice(0, 64)}" is not allowed (allowed: ${[...this.types].join(', ')})`);
    }
    if (this.policy === 'backend') {
      throw new WireError(ErrorCode.FORBIDDEN, 'notifications between users are disabled (NOTIFY_POLICY=backend): only the app\'s backend sends notifications');
    }
    const may = this.mayNotify(conn, recipient);
    if (may === true) return undefined;
    if (may === false) throw refusedNotify(recipient);
    return may.then((yes) => {
      if (!yes) throw refusedNotify(recipient);
    });
  }

  /**
   * Throws FORBIDDEN unless the typist may type on the target: `user:<id>` when it may notify that user;
   * another channel (of a namespace that allows typing) when it is subscribed to it on this connection or
   * may publish on it by its namespace's rule without asking a backend.
   */
  checkTyping(conn: Conn, t: ParsedTopic, topic: string, subscribed: boolean): undefined | Promise<void> {
    if (t.ns.name === 'user') {
      const may = t.id === undefined ? false : this.mayNotify(conn, t.id);
      if (may === true) return undefined;
      const refused = () => new WireError(ErrorCode.FORBIDDEN, `not allowed to type on ${topic.slice(0, 140)}: typing to a user follows the notification policy (NOTIFY_POLICY=${this.policy})`);
      if (may === false) throw refused();
      return may.then((yes) => {
        if (!yes) throw refused();
      });
    }
    if (subscribed || this.access.verdict(t.ns.publish, conn, t) === true) return undefined;
    throw new WireError(ErrorCode.FORBIDDEN, `not allowed to type on ${topic.slice(0, 140)}: subscribe to it first (or be allowed to publish on it)`);
  }

  /**
   * Which of the ids the user may watch (the `presence` namespace's subscribe rule; everyone with
   * PRESENCE_BROADCAST, whose presence is public), and which it may not.
   */
  async watchable(conn: Conn, userIds: readonly string[]): Promise<{ allowed: string[]; forbidden: string[] }> {
    const allowed: string[] = [];
    const forbidden: string[] = [];
    if (this.broadcast) return { allowed: [...userIds], forbidden };
    const ns = this.channels.namespace('presence')!;
    const asks: Promise<void>[] = [];
    for (const id of userIds) {
      const v = this.access.verdict(ns.subscribe, conn, { ns, id });
      if (v === true) allowed.push(id);
      else if (v === false) forbidden.push(id);
      else {
        const d = this.access.ask(v, 'presence', conn, presenceTopic(id));
        if (!(d instanceof Promise)) (d.allow ? allowed : forbidden).push(id);
        else asks.push(d.then((x) => void (x.allow ? allowed : forbidden).push(id)));
      }
    }
    if (asks.length > 0) {
      await Promise.all(asks);
      // In the order asked, whatever order the backend answered in.
      const order = new Map(userIds.map((id, i) => [id, i]));
      const byOrder = (a: string, b: string) => order.get(a)! - order.get(b)!;
      allowed.sort(byOrder);
      forbidden.sort(byOrder);
    }
    return { allowed, forbidden };
  }
}

const refusedNotify = (recipient: string) => new WireError(ErrorCode.FORBIDDEN, `not allowed to notify ${recipient}: refused by the backend (NOTIFY_POLICY=proxy)`);
