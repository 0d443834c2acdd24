// A connection's state: what uWS holds for each socket, the refused upgrade (its own type), and the functions
// that change the state.
import type { Principal } from './auth.js';
import type { TypingOwner } from '../features/typing.js';
import type { ConnectionRates } from './rates.js';
import type { Position } from '../seams/history/types.js';
import type { UWS } from '../uws.js';

/**
 * Per-connection state, held by uWS behind one property (see Held). Every connection keeps it for its whole
 * life, so it is flat: the principal's fields and the personal topic's position are fields here rather
 * than objects of their own (bench/RESULTS.md, "Figures behind the code").
 */
export interface Conn extends Principal, TypingOwner {
  /** The principal's, replaced by a token refresh (`auth`); userId never changes. */
  permissions: ReadonlySet<string>;
  exp: number | undefined;
  /** The principal's list claims a rule reads, replaced by a token refresh too. */
  claims: ReadonlyMap<string, ReadonlySet<string>> | undefined;
  /** `<node id>-<sequence in base 36>`: told to the client, and the key of the connection in presence. */
  readonly id: string;
  readonly ip: string;
  /** Seconds since the server started: a small integer, so no number box per connection. */
  readonly openedS: number;
  /**
   * Topics joined by request (the automatic ones are not counted), with the position at which the connection
   * joined when the topic is recoverable (null otherwise, and while the join reads the history). Created on
   * the first, as most connections make none.
   */
  subscriptions: Map<string, Position | null> | undefined;
  /**
   * The personal topic: until it is joined, where to resume it from (`?since=`); then the position at which
   * the connection joined it. The epoch is unset when there is none (no `?since=`, or the history was
   * unreachable). See personalPosition.
   */
  personalEpoch: string | undefined;
  personalOffset: number;
  /** Token buckets, created on the first message: most connections only listen. */
  rates: ConnectionRates | undefined;
  /** Backpressure checks in a row that found the outgoing buffer over half the budget, the last one `slowCheck`. */
  slowStrikes: number;
  /** The backpressure check (Connections' count of them) that last found it over half the budget; 0: none. */
  slowCheck: number;
  closed: boolean;
}

/** The personal topic's position of a connection (resume point before the join, joined position after). */
export const personalPosition = (conn: Conn): Position | undefined =>
  conn.personalEpoch === undefined ? undefined : { epoch: conn.personalEpoch, offset: conn.personalOffset };

/** Sets the personal topic's position (undefined: none). */
export function setPersonalPosition(conn: Conn, p: Position | undefined): void {
  conn.personalEpoch = p?.epoch;
  conn.personalOffset = p?.offset ?? 0;
}

/**
 * What uWS holds for a socket: the state behind one property, because uWS copies every property of the
 * user data onto its socket object at the upgrade, a cost per property and per handshake.
 */
export interface Held {
  readonly conn: Conn;
}

/**
 * A refused upgrade made into a socket for a client that offered `storywire.close-on-refusal`: open()
 * closes it at once with this code and reason. Such a socket is never registered, subscribed or handed to
 * any other handler, so only the lifecycle's three handlers ever see this type.
 */
export interface Refused {
  readonly refusal: { readonly code: number; readonly reason: string };
}

/** An accepted connection's socket: what every handler past open() is given. */
export type Socket = UWS.WebSocket<Held>;
/** What uWS hands the lifecycle handlers: either kind. */
export type AnySocket = UWS.WebSocket<Held | Refused>;

export const isRefused = (data: Held | Refused): data is Refused => 'refusal' in data;

/** A socket's state once it is known to be accepted. */
export const connOf = (ws: Socket): Conn => ws.getUserData().conn;

