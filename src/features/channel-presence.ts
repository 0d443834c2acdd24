// Presence of a channel (`presence:channel`): who is subscribed to a channel of a namespace with presence on,
// counted per user on every node. Only those namespaces are tracked: a subscription to any other costs one
// field read, a close or an unsubscribe one map lookup while nothing is tracked on this node.
import type { Logger } from 'pino';
import type { Conn } from '../edge/conn.js';
import type { ChannelPresenceStore } from '../seams/channel-presence/types.js';
import { ErrorCode, WireError } from '../wire/codes.js';
import type { Namespace, ParsedTopic } from '../wire/topics.js';

/** The ack of `presence:channel`: `members` only for a namespace with `"presence": "members"`. */
export interface ChannelPresenceAck {
  channel: string;
  count: number;
  members?: string[];
  truncated?: true;
}

export class ChannelPresence {
  /** The tracked channels of each connection on this node (only channels of namespaces with presence on). */
  private readonly byConn = new Map<Conn, Set<string>>();

  constructor(
    private readonly store: ChannelPresenceStore,
    private readonly maxMembers: number,
    private readonly log: Logger,
  ) {}

  /** A connection joined a channel by `subscribe`. */
  joined(conn: Conn, channel: string, ns: Namespace): void {
    if (ns.presence === 'off' || conn.closed) return;
    let channels = this.byConn.get(conn);
    if (channels === undefined) {
      channels = new Set();
      this.byConn.set(conn, channels);
    } else if (channels.has(channel)) return;
    channels.add(channel);
    this.settled(this.store.add(channel, conn.userId, conn.id), conn, channel);
  }

  /** A connection left a channel: unsubscribe, revocation, subscription token expiry (the server's `left`). */
  left(conn: Conn, channel: string): void {
    if (this.byConn.size === 0) return;
    const channels = this.byConn.get(conn);
    if (channels === undefined || !channels.delete(channel)) return;
    if (channels.size === 0) this.byConn.delete(conn);
    this.settled(this.store.remove(channel, conn.userId, conn.id), conn, channel);
  }

  /** A connection closed: it leaves every channel it was counted in. */
  closed(conn: Conn): void {
    if (this.byConn.size === 0) return;
    const channels = this.byConn.get(conn);
    if (channels === undefined) return;
    this.byConn.delete(conn);
    for (const channel of channels) this.settled(this.store.remove(channel, conn.userId, conn.id), conn, channel);
  }

  /**
   * The channel's presence as the namespace offers it. INVALID_TOPIC when its presence is off; who may ask is
   * checked before (Access.presence).
   */
  async query(channel: string, t: ParsedTopic): Promise<ChannelPresenceAck> {
    const mode = t.ns.presence;
    if (mode === 'off') throw new WireError(ErrorCode.INVALID_TOPIC, `${t.ns.name} channels have no presence (the namespace's "presence" is "off")`);
    if (mode === 'counts') {
      const { count } = await this.store.read(channel, 0);
      return { channel, count };
    }
    const { count, members } = await this.store.read(channel, this.maxMembers);
    const list = members.slice(0, this.maxMembers);
    return count > list.length ? { channel, count, members: list, truncated: true } : { channel, count, members: list };
  }

  private settled(p: void | Promise<void>, conn: Conn, channel: string): void {
    p?.catch((err: unknown) => this.log.error({ err, userId: conn.userId, channel }, 'channel presence write failed'));
  }
}
