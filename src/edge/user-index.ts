// Open connections by user id. Most users have one connection: it is held directly, and a Set is made only
// for a second device (an empty Set with its table is ~170 bytes; at 20,000 connections that is 3 MB).
export class UserIndex<S extends object> {
  private readonly map = new Map<string, S | Set<S>>();

  /** Users with at least one connection. */
  get size(): number {
    return this.map.size;
  }

  add(userId: string, socket: S): void {
    const cur = this.map.get(userId);
    if (cur === undefined) this.map.set(userId, socket);
    else if (cur instanceof Set) cur.add(socket);
    else if (cur !== socket) this.map.set(userId, new Set([cur, socket]));
  }

  delete(userId: string, socket: S): void {
    const cur = this.map.get(userId);
    if (cur === undefined) return;
    if (!(cur instanceof Set)) {
      if (cur === socket) this.map.delete(userId);
      return;
    }
    cur.delete(socket);
    if (cur.size === 1) this.map.set(userId, cur.values().next().value as S);
    else if (cur.size === 0) this.map.delete(userId);
  }

  /** The user's entry as held: undefined, one socket, or a Set of them (iterated live: a close deletes from it). */
  get(userId: string): S | Set<S> | undefined {
    return this.map.get(userId);
  }

  count(userId: string): number {
    const cur = this.map.get(userId);
    return cur === undefined ? 0 : cur instanceof Set ? cur.size : 1;
  }

  /** A copy: safe to close the sockets while iterating. */
  of(userId: string): S[] {
    const cur = this.map.get(userId);
    return cur === undefined ? [] : cur instanceof Set ? [...cur] : [cur];
  }

  /** Calls `fn` for each socket of the user, without a copy (`fn` may close them: a Set iterates past deletions). */
  each(userId: string, fn: (socket: S) => void): void {
    const cur = this.map.get(userId);
    if (cur !== undefined) visit(cur, fn);
  }

  /**
   * Calls `fn` for every socket, without allocating: a generator made an iterator result per socket, which
   * at 10,000 idle connections and two sweeps a second was ~1.5 MB/s of garbage. `fn` may close sockets (Map
   * and Set iteration tolerate deletions).
   */
  forEach(fn: (socket: S) => void): void {
    for (const cur of this.map.values()) visit(cur, fn);
  }
}

/** One user's entry: a socket, or a Set of them (iterated live: deletions by `fn` are tolerated). */
function visit<S extends object>(cur: S | Set<S>, fn: (socket: S) => void): void {
  if (cur instanceof Set) for (const s of cur) fn(s);
  else fn(cur);
}
