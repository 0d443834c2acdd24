// Presence in Redis for the Redis backplane, with a local mirror for re-registration after an outage. It lives
// with the membership (membership.ts): its registrations are re-made by each re-registration and the
// connections of a dead node removed by the sweep.
import type { Redis } from 'ioredis';
import type { ConnectionsLost, NodeConnection, PresenceChange, PresenceStore } from '../../presence/types.js';
import type { PartKeys, RedisKeys } from './keys.js';
import { sc, unavailable } from './scripts.js';

/** What presence needs of its node's backplane. */
export interface PresenceNode {
  readonly nodeId: string;
  /** Redis reachable and this node registered. */
  readonly up: boolean;
  /** A presence write failed without a disconnect: re-register at the next lease renewal. */
  dirty(): void;
}

/** Presence in Redis, mirrored locally so that this node can re-register its connections after an outage. */
export class RedisPresence implements PresenceStore {
  /** Open connections on this node: connection id -> user id. */
  readonly local = new Map<string, string>();
  /** Connections that closed while Redis was unreachable, applied at the next resync. */
  private readonly lost = new Map<string, string>();
  private readonly inflight = new Set<Promise<unknown>>();
  private changesWhileDown = 0;
  private handler: PresenceChange = () => {};
  private lostHandler: ConnectionsLost = () => {};

  constructor(
    private readonly bp: PresenceNode,
    private readonly cmd: Redis,
    private readonly keyOf: RedisKeys,
    private readonly graceMs: number,
  ) {}

  onChange(handler: PresenceChange): void {
    this.handler = handler;
  }

  changed(type: 'user:online' | 'user:offline', userId: string): void {
    this.handler(type, userId);
  }

  onConnectionsLost(handler: ConnectionsLost): void {
    this.lostHandler = handler;
  }

  /** The sweep removed these connections of a dead node (`flat`: connection id, user id, ...). */
  connectionsLost(nodeId: string, flat: readonly string[]): void {
    const connections: NodeConnection[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) connections.push({ connectionId: flat[i]!, userId: flat[i + 1]! });
    this.lostHandler(nodeId, connections);
  }

  /** The user's keys and this node's connections, in the user's partition. */
  private keys(userId: string): string[] {
    const part = this.keyOf.forUser(userId);
    return [part.user(userId), part.conns(this.bp.nodeId), part.leaving, part.leavingBy];
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  async add(userId: string, connectionId: string): Promise<boolean> {
    this.local.set(connectionId, userId);
    this.lost.delete(connectionId);
    if (!this.bp.up) {
      this.changesWhileDown++;
      return false;
    }
    try {
      return (await this.track(sc(this.cmd).ADD(4, ...this.keys(userId), connectionId, this.bp.nodeId, userId))) === 1;
    } catch {
      this.bp.dirty();
      return false; // the next resync registers it, and reports it online if it is the first
    }
  }

  async remove(userId: string, connectionId: string): Promise<boolean> {
    this.local.delete(connectionId);
    if (this.bp.up) {
      try {
        const marker = `${this.bp.nodeId} ${connectionId}`;
        return (await this.track(sc(this.cmd).REMOVE(4, ...this.keys(userId), connectionId, userId, this.graceMs, marker, ''))) === 1;
      } catch {
        // fall through
      }
    }
    this.lost.set(connectionId, userId);
    this.changesWhileDown++;
    this.bp.dirty();
    return false;
  }

  async settle(userId: string, connectionId: string): Promise<boolean> {
    const [user, , leaving, leavingBy] = this.keys(userId);
    const marker = `${this.bp.nodeId} ${connectionId}`;
    try {
      return (await this.track(sc(this.cmd).SETTLE(3, user!, leaving!, leavingBy!, userId, marker))) === 1;
    } catch {
      return false; // a surviving node settles it one lease after its deadline (reported through onChange)
    }
  }

  async online(userIds: readonly string[]): Promise<string[]> {
    if (userIds.length === 0) return [];
    if (!this.bp.up) throw unavailable('presence unavailable');
    try {
      // One pipeline per partition (with Redis Cluster a pipeline holds the keys of one slot).
      const byPart = new Map<PartKeys, string[]>();
      for (const id of userIds) {
        const part = this.keyOf.forUser(id);
        const ids = byPart.get(part);
        if (ids === undefined) byPart.set(part, [id]);
        else ids.push(id);
      }
      const online = new Set<string>();
      await Promise.all(
        [...byPart].map(async ([part, ids]) => {
          const m = this.cmd.pipeline();
          for (const id of ids) m.exists(part.user(id));
          m.hmget(part.leavingBy, ...ids);
          const res = (await m.exec())!;
          const failed = res.find(([err]) => err);
          if (failed) throw failed[0];
          const leaving = res[ids.length]![1] as (string | null)[];
          ids.forEach((id, i) => {
            if (res[i]![1] === 1 || leaving[i] !== null) online.add(id);
          });
        }),
      );
      return userIds.filter((id) => online.has(id));
    } catch {
      throw unavailable('presence unavailable');
    }
  }

  async count(userId: string): Promise<number> {
    if (!this.bp.up) throw unavailable('presence unavailable');
    return this.cmd.hlen(this.keyOf.user(userId)).catch(() => Promise.reject(unavailable('presence unavailable')));
  }

  /**
   * Makes Redis agree with this node again: registers every local connection, and marks leaving the users
   * whose connections here closed meanwhile (a surviving node settles them one lease after their grace).
   * Returns how many users were reported online again; none after a data loss (`silent`), when every node
   * re-registers users that were online all along.
   */
  async resync(silent: boolean): Promise<number> {
    let again = 0;
    let seen: number;
    do {
      seen = this.changesWhileDown;
      again += await this.resyncPass(silent);
    } while (seen !== this.changesWhileDown);
    return again;
  }

  private async resyncPass(silent: boolean): Promise<number> {
    const registered: Record<string, string> = {};
    await Promise.all(this.keyOf.parts.map(async (part) => Object.assign(registered, await this.cmd.hgetall(part.conns(this.bp.nodeId)))));
    const removals = new Map(this.lost);
    for (const [conn, user] of Object.entries(registered)) if (!this.local.has(conn)) removals.set(conn, user);
    const adds = [...this.local].filter(([conn]) => registered[conn] === undefined);
    // One pipeline per partition (with Redis Cluster a pipeline holds the keys of one slot).
    const byPart = new Map<PartKeys, { removals: [string, string][]; adds: [string, string][] }>();
    const of = (user: string) => {
      const part = this.keyOf.forUser(user);
      const ops = byPart.get(part) ?? { removals: [], adds: [] };
      byPart.set(part, ops);
      return ops;
    };
    for (const r of removals) of(r[1]).removals.push(r);
    for (const a of adds) of(a[1]).adds.push(a);
    let again = 0;
    await Promise.all(
      [...byPart.values()].map(async (ops) => {
        const m = this.cmd.pipeline();
        for (const [conn, user] of ops.removals) sc(m).REMOVE(4, ...this.keys(user), conn, user, this.graceMs, `${this.bp.nodeId} ${conn}`, 'force');
        for (const [conn, user] of ops.adds) sc(m).ADD(4, ...this.keys(user), conn, this.bp.nodeId, user);
        const res = (await m.exec()) ?? [];
        const failed = res.find(([err]) => err);
        if (failed) throw failed[0];
        for (const [conn] of ops.removals) this.lost.delete(conn);
        ops.adds.forEach(([, user], i) => {
          if (res[ops.removals.length + i]![1] === 1 && !silent) {
            again++;
            this.changed('user:online', user);
          }
        });
      }),
    );
    return again;
  }

  /** Waits (a bounded time) for presence writes in flight, before the node unregisters. */
  async drain(): Promise<void> {
    await Promise.race([Promise.allSettled([...this.inflight]), new Promise((r) => setTimeout(r, 2000).unref())]);
  }
}
