// Node-to-node control over Redis: asking the nodes that hold a user's connections to close them, or to end
// their subscriptions to one channel (a revocation), and answering such requests (each node's own shard
// channel n:<node>).
import { randomBytes } from 'node:crypto';
import { ErrorCode, WireError } from '../../../wire/codes.js';
import type { DisconnectHandler, UnsubscribeHandler } from '../types.js';
import type { Link } from './link.js';
import { unavailable } from './scripts.js';

type Request = { op: 'disconnect'; id: string; userId: string; code: number; reason: string } | { op: 'unsubscribe'; id: string; userId: string; topic: string; reason: string };
/** The answer to either request: how many connections it closed or unsubscribed. */
type Message = Request | { op: 'closed'; id: string; closed: number };

/** Each kind of request without its id, which ask() gives it. */
type WithoutId<R> = R extends Request ? Omit<R, 'id'> : never;
type Asked = WithoutId<Request>;

interface Pending {
  waiting: number;
  closed: number;
  resolve(n: number): void;
  timer: NodeJS.Timeout;
}

export class Control {
  private disconnectHandler: DisconnectHandler = () => 0;
  private unsubscribeHandler: UnsubscribeHandler = () => 0;
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly link: Link) {}

  onDisconnect(handler: DisconnectHandler): void {
    this.disconnectHandler = handler;
  }

  onUnsubscribe(handler: UnsubscribeHandler): void {
    this.unsubscribeHandler = handler;
  }

  disconnectUser(userId: string, code: number, reason: string): Promise<number> {
    return this.ask(userId, { op: 'disconnect', userId, code, reason }, 'not disconnected on the other nodes');
  }

  unsubscribeUser(userId: string, topic: string, reason: string): Promise<number> {
    return this.ask(userId, { op: 'unsubscribe', userId, topic, reason }, 'not unsubscribed on the other nodes');
  }

  /** Sends the request to every other node holding connections of the user; resolves with the sum of their answers. */
  private async ask(userId: string, request: Asked, failed: string): Promise<number> {
    const { cmd, keys, nodeId } = this.link;
    if (!this.link.up) throw unavailable(failed);
    const nodes = new Set(Object.values(await cmd.hgetall(keys.user(userId)).catch(() => Promise.reject(unavailable(failed)))));
    nodes.delete(nodeId);
    if (nodes.size === 0) return 0;
    const id = randomBytes(8).toString('hex');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new WireError(ErrorCode.UNAVAILABLE, 'a node holding connections of this user did not answer', 503));
      }, this.link.timeoutMs);
      const req: Pending = { waiting: nodes.size, closed: 0, resolve, timer };
      this.pending.set(id, req);
      const msg = `${nodeId}\n${JSON.stringify({ ...request, id } satisfies Message)}`;
      for (const node of nodes) {
        // A node that receives nothing is gone: its connections died with it and are swept with its lease.
        cmd.spublish(keys.control(node), msg).then(
          (n) => n === 0 && this.answered(id, 0),
          () => {
            clearTimeout(timer);
            this.pending.delete(id);
            reject(unavailable(failed));
          },
        );
      }
    });
  }

  private answered(id: string, closed: number): void {
    const req = this.pending.get(id);
    if (!req) return;
    req.closed += closed;
    if (--req.waiting > 0) return;
    clearTimeout(req.timer);
    this.pending.delete(id);
    req.resolve(req.closed);
  }

  /** A message on this node's control channel, from node `origin`. */
  receive(origin: string, body: string): void {
    let msg: Message;
    try {
      msg = JSON.parse(body) as Message;
    } catch {
      return;
    }
    if (msg.op === 'closed') {
      this.answered(msg.id, msg.closed);
      return;
    }
    let closed: number;
    if (msg.op === 'disconnect') closed = this.disconnectHandler(msg.userId, msg.code, msg.reason);
    else if (msg.op === 'unsubscribe') closed = this.unsubscribeHandler(msg.userId, msg.topic, msg.reason);
    else return;
    const reply = `${this.link.nodeId}\n${JSON.stringify({ op: 'closed', id: msg.id, closed } satisfies Message)}`;
    this.link.cmd.spublish(this.link.keys.control(origin), reply).catch(() => {});
  }

  /** The node is closing: requests still waiting are left to time out without a timer. */
  close(): void {
    for (const req of this.pending.values()) clearTimeout(req.timer);
  }
}
