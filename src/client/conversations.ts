// The client's open conversations: one per channel, and the routing of what the connection hears to them
// (the channel's frames, duplicates included; `chat:read` on the personal topic; joins and losses).
import { Conversation, type ConversationHost } from './conversation.js';
import type { ServerFrame } from './requests.js';
import type { ChatReadSync, ConversationOptions, JoinPosition, Position } from './types.js';

export class Conversations {
  private readonly byChannel = new Map<string, Conversation>();

  constructor(private readonly host: Omit<ConversationHost, 'detach'>) {}

  /** The open conversation of `channel`, or a new one (options apply only to a new one). */
  open(channel: string, options: ConversationOptions): Conversation {
    const held = this.byChannel.get(channel);
    if (held) return held;
    const c: Conversation = new Conversation({ ...this.host, detach: (ch) => this.detach(ch, c) }, channel, options);
    this.byChannel.set(channel, c);
    return c;
  }

  /** A frame of a topic, before the client drops duplicates: a conversation applies each one idempotently. */
  frame(f: ServerFrame, personal: string | undefined): void {
    if (f.topic === undefined) return;
    const c = this.byChannel.get(f.topic);
    if (c) c.frame(f);
    else if (f.type === 'chat:read' && f.topic === personal) {
      const d = f.data as ChatReadSync | undefined;
      if (typeof d?.channel === 'string') this.byChannel.get(d.channel)?.readSynced(d);
    }
  }

  /** A subscribe ack of this connection, and the position it asked to resume from. */
  joined(topic: string, ack: unknown, asked: Position | undefined): void {
    this.byChannel.get(topic)?.joined((ack ?? {}) as Partial<JoinPosition>, asked);
  }

  lost(): void {
    for (const c of this.byChannel.values()) c.lost();
  }

  clientClosed(reason: string): void {
    for (const c of this.byChannel.values()) c.clientClosed(reason);
  }

  private detach(channel: string, c: Conversation): void {
    if (this.byChannel.get(channel) === c) this.byChannel.delete(channel);
  }
}
