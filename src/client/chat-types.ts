// The SDK's chat types (protocol.md section 14, "Chat"): a conversation's messages and events, and the options
// of `sw.conversation()`. Re-exported by types.ts, with the rest of the SDK's types.

/** A conversation message in its latest state, with its place in the conversation's history. */
export interface ChatMessage {
  /** The message id: the backend's, or one derived from (channel, sender, clientMsgId): the same on every retry. */
  id: string;
  /** The sender's idempotency key (the SDK draws one per send() and keeps it across retries). */
  clientMsgId: string;
  senderId: string;
  /** Absent once deleted. */
  text?: string;
  data?: Record<string, unknown>;
  /** ms since the epoch, set by the server. */
  sentAt: number;
  editedAt?: number;
  deleted?: true;
  deletedAt?: number;
  /** The conversation history's epoch and the message's offset in it. */
  epoch: string;
  offset: number;
}
/** `chat:edited`: the message's new text and data. */
export interface ChatEdited {
  id: string;
  senderId: string;
  text?: string;
  data?: Record<string, unknown>;
  editedAt: number;
}
/** `chat:deleted`: the message stays in place, without text or data. */
export interface ChatDeleted {
  id: string;
  senderId: string;
  deletedAt: number;
}
/** `chat:receipt`: another member read the conversation up to `offset`. */
export interface ChatReceipt {
  userId: string;
  offset: number;
}
/** `chat:read` on `user:<me>`: one of this user's devices marked a conversation read. */
export interface ChatReadSync {
  channel: string;
  offset: number;
  unread: number;
}
/** Another member started (typing: true) or stopped typing in the conversation. */
export interface ChatTyping {
  userId: string;
  typing: boolean;
}

export interface ConversationOptions {
  /**
   * true: the app gates the conversation with subscription tokens, asked from the client's `subscriptionToken`
   * provider (again before each expiry); a string: that subscription token (not renewed).
   */
  token?: true | string;
  /** Messages asked from the server's history when joining without a position, and after a gap. Default 50 (0: none). */
  history?: number;
  /** Messages held in `messages`, the oldest dropped first. Default 1000. */
  maxMessages?: number;
  /** ms without a typing() call after which `typing:stop` is sent. Default 3000. */
  typingIdleMs?: number;
  /** Reply timeout of one attempt of a send(), edit(), delete() or markRead(). Default the client's requestTimeoutMs. */
  timeoutMs?: number;
}
