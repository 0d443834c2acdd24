// A conversation's messages as the SDK holds them: one entry per message id, in history order (epochs in the
// order they were seen, offsets within one), each in its latest state. Frames may come twice (a replay after a
// reconnect, a retried send published again after a server restart) and out of order (a backfill after live
// events): applying one is idempotent, and an older state never replaces a newer one.
import type { ChatDeleted, ChatEdited, ChatMessage } from './types.js';

/** What applying a frame changed: nothing, a new message, or the new state of a message held. */
export type LogChange = { kind: 'none' } | { kind: 'added' | 'edited' | 'deleted'; message: ChatMessage };

const NONE: LogChange = { kind: 'none' };
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A `chat:message` payload with its place in history, or undefined when it is not one. */
export function toMessage(data: unknown, epoch: unknown, offset: unknown): ChatMessage | undefined {
  if (!isObj(data) || typeof data['id'] !== 'string' || typeof data['senderId'] !== 'string') return undefined;
  if (typeof epoch !== 'string' || typeof offset !== 'number') return undefined;
  const m: ChatMessage = {
    id: data['id'],
    clientMsgId: typeof data['clientMsgId'] === 'string' ? data['clientMsgId'] : '',
    senderId: data['senderId'],
    sentAt: typeof data['sentAt'] === 'number' ? data['sentAt'] : 0,
    epoch,
    offset,
  };
  if (typeof data['text'] === 'string') m.text = data['text'];
  if (isObj(data['data'])) m.data = data['data'];
  if (typeof data['editedAt'] === 'number') m.editedAt = data['editedAt'];
  if (data['deleted'] === true) {
    m.deleted = true;
    m.deletedAt = typeof data['deletedAt'] === 'number' ? data['deletedAt'] : m.sentAt;
    delete m.text;
    delete m.data;
  }
  return m;
}

export class ChatLog {
  private list: ChatMessage[] = [];
  private readonly byId = new Map<string, ChatMessage>();
  /** Epochs in the order first seen: a message of a later epoch sorts after every one of an earlier epoch. */
  private readonly epochs: string[] = [];
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  /** The messages, oldest first; a new array after each change (safe to hand to a UI). */
  get messages(): readonly ChatMessage[] {
    return this.list;
  }

  get(id: string): ChatMessage | undefined {
    return this.byId.get(id);
  }

  /** The newest message held, if any. */
  get last(): ChatMessage | undefined {
    return this.list[this.list.length - 1];
  }

  /** A `chat:message` (live, replayed, or an ack): added once per id; a replay of a later state updates the held one. */
  add(m: ChatMessage): LogChange {
    const held = this.byId.get(m.id);
    if (held) {
      if (m.deleted && !held.deleted) return this.replace(held, deletedState(held, m.deletedAt ?? m.sentAt), 'deleted');
      if (!held.deleted && m.editedAt !== undefined && m.editedAt > (held.editedAt ?? 0)) return this.replace(held, editedState(held, m.text, m.data, m.editedAt), 'edited');
      return NONE;
    }
    const rank = this.rank(m.epoch);
    let i = this.list.length;
    while (i > 0 && this.before(rank, m.offset, this.list[i - 1]!)) i--;
    const next = this.list.slice();
    next.splice(i, 0, m);
    this.byId.set(m.id, m);
    // Over the bound the oldest go (possibly m itself, when it is older than everything held).
    if (next.length > this.max) for (const gone of next.splice(0, next.length - this.max)) this.byId.delete(gone.id);
    this.list = next;
    return this.byId.has(m.id) ? { kind: 'added', message: m } : NONE;
  }

  /** A `chat:edited`: applied when it is newer than the state held (unknown and deleted messages are left alone). */
  edit(e: ChatEdited): LogChange {
    const held = this.byId.get(e.id);
    if (!held || held.deleted || (held.editedAt ?? 0) >= e.editedAt) return NONE;
    return this.replace(held, editedState(held, e.text, e.data, e.editedAt), 'edited');
  }

  /** A `chat:deleted`: the message keeps its place, without text or data. */
  delete(d: ChatDeleted): LogChange {
    const held = this.byId.get(d.id);
    if (!held || held.deleted) return NONE;
    return this.replace(held, deletedState(held, d.deletedAt), 'deleted');
  }

  private replace(held: ChatMessage, m: ChatMessage, kind: 'edited' | 'deleted'): LogChange {
    const i = this.list.indexOf(held);
    const next = this.list.slice();
    next[i] = m;
    this.list = next;
    this.byId.set(m.id, m);
    return { kind, message: m };
  }

  private rank(epoch: string): number {
    let r = this.epochs.indexOf(epoch);
    if (r < 0) r = this.epochs.push(epoch) - 1;
    return r;
  }

  /** True when a message at (rank, offset) sorts before `other`. */
  private before(rank: number, offset: number, other: ChatMessage): boolean {
    const r = this.epochs.indexOf(other.epoch);
    return rank < r || (rank === r && offset < other.offset);
  }
}

function editedState(held: ChatMessage, text: string | undefined, data: Record<string, unknown> | undefined, editedAt: number): ChatMessage {
  const m: ChatMessage = { ...held, editedAt };
  delete m.text;
  delete m.data;
  if (text !== undefined) m.text = text;
  if (data !== undefined) m.data = data;
  return m;
}

function deletedState(held: ChatMessage, deletedAt: number): ChatMessage {
  const m: ChatMessage = { ...held, deleted: true, deletedAt };
  delete m.text;
  delete m.data;
  return m;
}
