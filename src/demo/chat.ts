// The demo page's chat panel: a conversation between the user and one other, written against the SDK's
// Conversation only. The dev backend (src/api/demo-chat.ts) plays the app: it names the pair's conversation and
// signs the subscription tokens that let its two members in; with examples/demo-channels.json it stores messages.
import type { ChatMessage, Conversation, StorywireClient, StorywireError } from '../client/index.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};
const ID = /^[A-Za-z0-9_.@|+=-]{1,128}$/;

let me = '';
let client: StorywireClient | undefined;
let conv: Conversation | undefined;
let peer = '';
/** Channel -> the other member, for the subscription token requests (the backend checks the pair). */
const peers = new Map<string, string>();
let report: (text: string) => void = () => {};

async function devJson<T>(path: string): Promise<T> {
  const r = await fetch(path, { cache: 'no-store' });
  if (!r.ok) throw new Error(`${path.split('?')[0]} : HTTP ${r.status}`);
  return (await r.json()) as T;
}

/** The SDK's subscriptionToken provider: the dev backend signs one for a member of the pair's conversation. */
export async function chatToken(channel: string): Promise<string> {
  const other = peers.get(channel) ?? '';
  const q = new URLSearchParams({ user: me, with: other, channel });
  return (await devJson<{ token: string }>(`/dev/chat/token?${q}`)).token;
}

/** A new client (a login): the panel starts empty, for this user. */
export function chatStarted(c: StorywireClient, user: string, log: (text: string) => void): void {
  client = c;
  me = user;
  report = log;
  conv = undefined;
  peer = '';
  peers.clear();
  $('chat-title').textContent = 'Conversation';
  render();
}

/** Opens (or reopens) the conversation with `other`. */
export async function openChat(other: string): Promise<void> {
  const c = client;
  if (!c || !ID.test(other) || other === me) return report('conversation : un autre utilisateur, id valide');
  if (other === peer && conv) return;
  void conv?.close();
  const q = new URLSearchParams({ user: me, with: other });
  const { channel } = await devJson<{ channel: string }>(`/dev/chat/conversation?${q}`);
  peers.set(channel, other);
  peer = other;
  const cv = c.conversation(channel, { token: true });
  conv = cv;
  $('chat-title').textContent = `Conversation avec ${other}`;
  $('chat').dataset['channel'] = channel;
  for (const on of [cv.onMessage, cv.onEdit, cv.onDelete, cv.onReceipt, cv.onUnread] as const) on.call(cv, () => render());
  cv.onTyping(() => renderTyping());
  render();
}

function itemOf(m: ChatMessage, read: boolean): HTMLLIElement {
  const el = document.createElement('li');
  const mine = m.senderId === me;
  el.className = `msg${mine ? ' mine' : ''}${mine && read ? ' read' : ''}`;
  el.dataset['id'] = m.id;
  el.dataset['offset'] = String(m.offset);
  const who = document.createElement('strong');
  who.textContent = `${m.senderId} : `;
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = m.deleted ? '(message supprimé)' : (m.text ?? '');
  el.append(who, text);
  if (mine) {
    const tick = document.createElement('span');
    tick.className = 'meta tick';
    tick.textContent = el.classList.contains('read') ? ' ✓✓ lu' : ' ✓';
    el.append(tick);
  }
  return el;
}

function render(): void {
  const cv = conv;
  const ready = cv !== undefined && cv.endedBy === undefined;
  $<HTMLInputElement>('chat-text').disabled = !ready;
  $<HTMLButtonElement>('chat-send').disabled = !ready;
  $<HTMLButtonElement>('chat-mark-read').disabled = !ready;
  const unread = cv?.unreadCount ?? 0;
  $('chat-unread').textContent = String(unread);
  $('chat-unread').dataset['count'] = String(unread);
  if (!cv) return void $('chat-messages').replaceChildren();
  // Read by the other member: the receipt they sent covers it.
  const items = cv.messages.map((m) => itemOf(m, cv.readBy(m).includes(peer)));
  for (const p of cv.pending) {
    const el = document.createElement('li');
    el.className = 'msg mine pending';
    el.textContent = `${me} : ${p.text} (envoi…)`;
    items.push(el);
  }
  $('chat-messages').replaceChildren(...items);
  const list = $('chat-messages');
  list.scrollTop = list.scrollHeight;
}

function renderTyping(): void {
  const who = conv?.typingUsers ?? [];
  $('chat-typing').textContent = who.length ? `${who.join(', ')} écrit…` : '';
}

$('chat-open-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('chat-with');
  openChat(input.value.trim()).catch((e: Error) => report(`conversation : ${e.message}`));
});
$('chat-text').addEventListener('input', () => {
  void conv?.typing();
});
$('chat-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('chat-text');
  const text = input.value.trim();
  const cv = conv;
  if (!cv || !text) return;
  input.value = '';
  // Offline, the message waits (shown as pending) and goes once the conversation is joined again.
  cv.send(text).then(render, (e: StorywireError) => {
    report(`message non envoyé : ${e.code} ${e.message}`);
    render();
  });
  render();
});
$('chat-mark-read').addEventListener('click', () => {
  conv?.markRead().catch((e: StorywireError) => report(`lu : ${e.code} ${e.message}`));
});
