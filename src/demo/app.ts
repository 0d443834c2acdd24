// The demo page's behaviour, written against the SDK only (no framework): runs in the browser as /demo/app.js.
import { StorywireClient, type ConnectionState, type NotificationStore, type StorywireError } from '../client/index.js';
import { chatStarted, chatToken, openChat } from './chat.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};
const meta = (name: string): string => document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') ?? '';
const li = (text: string, className = ''): HTMLLIElement => {
  const el = document.createElement('li');
  el.textContent = text;
  if (className) el.className = className;
  return el;
};
const time = (ts: number): string => new Date(ts).toLocaleTimeString('fr-FR');
const ID = /^[A-Za-z0-9_.@|+=-]{1,128}$/;

const dev = meta('storywire-dev') === '1';
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${meta('storywire-ws-path')}`;
let client: StorywireClient | undefined;
let me = '';
const people = new Set<string>();
const online = new Set<string>();
const typing = new Map<string, ReturnType<typeof setTimeout>>();

function log(text: string): void {
  const list = $('log');
  list.prepend(li(`${time(Date.now())} ${text}`));
  while (list.children.length > 40) list.lastElementChild?.remove();
}
const fail = (what: string) => (e: StorywireError | Error) => log(`${what} : ${'code' in e ? `${e.code} ` : ''}${e.message}`);

function renderState(s: ConnectionState): void {
  $('status').dataset['state'] = s.status;
  $('status-text').textContent = s.status === 'open' ? 'En ligne' : 'Hors ligne';
  const detail: Record<ConnectionState['status'], string> = {
    idle: 'pas connecté',
    connecting: s.attempt > 0 ? `connexion… (tentative ${s.attempt + 1})` : 'connexion…',
    open: `connecté en tant que ${s.info?.userId ?? '?'}`,
    reconnecting: `reconnexion dans ${((s.retryInMs ?? 0) / 1000).toFixed(1)} s (${s.reason?.reason ?? ''})`,
    closed: `déconnecté${s.reason ? ` : ${s.reason.reason}` : ''}`,
  };
  $('status-detail').textContent = detail[s.status];
  $<HTMLButtonElement>('disconnect').disabled = s.status === 'closed' || s.status === 'idle';
}

function renderNotifications(store: NotificationStore): void {
  const unread = $('unread');
  unread.textContent = String(store.unreadCount);
  unread.dataset['count'] = String(store.unreadCount);
  $('notifications').replaceChildren(
    ...store.items.map((n) => {
      const item = li(`${n.title} — ${n.message} `, n.read ? 'read' : 'unread');
      item.dataset['id'] = n.id;
      const from = document.createElement('span');
      from.className = 'meta';
      from.textContent = `de ${n.from ?? 'serveur'} à ${time(n.ts)} `;
      item.append(from);
      if (!n.read) {
        const b = document.createElement('button');
        b.className = 'link mark-read';
        b.type = 'button';
        b.textContent = 'marquer comme lu';
        b.onclick = () => store.markAsRead(n.id);
        item.append(b);
      }
      return item;
    }),
  );
}

function renderPeople(): void {
  $('online').replaceChildren(
    ...[...people].sort().map((p) => {
      const on = online.has(p);
      const item = li(`${p}${p === me ? ' (vous)' : ''} — ${on ? 'en ligne' : 'hors ligne'}`, `person${on ? ' online' : ''}`);
      item.dataset['user'] = p;
      return item;
    }),
  );
}

function renderTyping(): void {
  const who = [...typing.keys()];
  $('typing').textContent = who.length ? `${who.join(', ')} ${who.length > 1 ? 'écrivent' : 'écrit'}…` : '';
}

/** Watches a user's presence (user:online / user:offline) and asks who is online now. */
function follow(user: string): void {
  const c = client;
  if (!c || !ID.test(user) || people.has(user)) return;
  people.add(user);
  renderPeople();
  c.watchPresence([user]).catch(fail(`suivre ${user}`));
  if (c.isConnected) {
    c.queryPresence([user]).then((on) => {
      if (on.includes(user)) online.add(user);
      renderPeople();
    }, fail('présence'));
  }
}

async function devToken(user: string): Promise<string> {
  const r = await fetch(`/dev/token?user=${encodeURIComponent(user)}`, { cache: 'no-store' });
  if (!r.ok) throw new Error(`/dev/token : HTTP ${r.status}`);
  return ((await r.json()) as { token: string }).token;
}

function start(user: string, token: string): void {
  client?.close();
  me = user;
  people.clear();
  online.clear();
  renderPeople();
  $('stories').replaceChildren();
  // In dev mode the provider mints a token per attempt: after a server restart (new dev secret) it still gets in.
  const c = new StorywireClient({
    url: wsUrl,
    token: dev ? () => devToken(user) : token,
    reconnect: { minDelayMs: 250, maxDelayMs: 3000 },
    // The app's backend decides who is in a conversation: here the dev backend signs the subscription tokens.
    ...(dev ? { subscriptionToken: ({ channel }: { channel: string }) => chatToken(channel) } : {}),
  });
  client = c;
  chatStarted(c, user, log);
  c.watchState(renderState);
  c.notifications.onChange((_change, store) => renderNotifications(store));
  renderNotifications(c.notifications);
  c.on('open', (info) => {
    me = info.userId;
    follow(me);
    c.queryPresence([...people]).then((on) => {
      online.clear();
      for (const p of on) online.add(p);
      renderPeople();
    }, fail('présence'));
    log(`connecté (${info.connectionId})`);
  });
  c.on('reconnecting', (r) => log(`perdu (${r.reason.code} ${r.reason.reason}) ; nouvel essai dans ${r.delayMs} ms`));
  c.on('closed', (r) => log(`fermé : ${r.code} ${r.reason}`));
  c.on('error', fail('erreur'));
  // History lost (server restarted) or too much missed: a real app refetches from its REST API here.
  c.on('resync', (r) => log(`resynchronisation de ${r.topic} (${r.reason === 'epoch' ? 'historique perdu' : 'trop de messages manqués'})`));
  c.onNewStory((s, m) => {
    const item = li(`${s.title} — par ${s.authorId ?? 'le serveur'} à ${time(m.ts)}`);
    item.dataset['id'] = s.id;
    $('stories').prepend(item);
    if (s.authorId) follow(s.authorId);
  });
  c.onNotification((n) => {
    if (n.from) follow(n.from);
  });
  c.onUserOnline((u) => {
    online.add(u.userId);
    renderPeople();
  });
  c.onUserOffline((u) => {
    online.delete(u.userId);
    renderPeople();
  });
  c.onUserTyping((t) => {
    if (t.target !== `user:${me}`) return;
    clearTimeout(typing.get(t.userId));
    // The server sends user:stopped_typing by itself after its timeout; this only covers a lost stop.
    typing.set(
      t.userId,
      setTimeout(() => {
        typing.delete(t.userId);
        renderTyping();
      }, 15_000),
    );
    renderTyping();
    follow(t.userId);
  });
  c.onUserStoppedTyping((t) => {
    clearTimeout(typing.get(t.userId));
    typing.delete(t.userId);
    renderTyping();
  });
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const user = $<HTMLInputElement>('user').value.trim();
  const token = $<HTMLTextAreaElement>('token').value.trim();
  if (dev && !ID.test(user)) return log("nom d'utilisateur : 1 à 128 caractères [A-Za-z0-9_.@|+=-]");
  if (!dev && !token) return log('collez un jeton JWT');
  start(dev ? user : '', token);
});
$('disconnect').addEventListener('click', () => client?.close());

$('story-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('story-title');
  const title = input.value.trim();
  if (!client || !title) return;
  client.broadcastStoryPublished({ id: `${me}-${Date.now().toString(36)}`, title }).then((d) => log(`histoire publiée (${d.delivered} connexions)`), fail('publier'));
  input.value = '';
});

const target = (): string => $<HTMLInputElement>('notify-user').value.trim();
$('notify-message').addEventListener('input', () => {
  if (client?.isConnected && ID.test(target())) client.startTyping(`user:${target()}`).catch(() => {});
});
$('notify-message').addEventListener('blur', () => {
  if (client && ID.test(target())) client.stopTyping(`user:${target()}`).catch(() => {});
});
$('notify-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const to = target();
  if (!client || !ID.test(to)) return log('destinataire : un id valide');
  const title = $<HTMLInputElement>('notify-title').value.trim();
  const message = $<HTMLTextAreaElement>('notify-message').value;
  client.stopTyping(`user:${to}`).catch(() => {});
  if (!client.isConnected) $('notify-result').textContent = "hors ligne : en file d'attente";
  client.sendNotificationToUser(to, { title, message, type: 'message' }).then(
    () => ($('notify-result').textContent = `envoyée à ${to}`),
    (e: StorywireError) => ($('notify-result').textContent = `échec : ${e.code} ${e.message}`),
  );
  $<HTMLTextAreaElement>('notify-message').value = '';
  follow(to);
});
$('mark-all').addEventListener('click', () => client?.notifications.markAllAsRead());
$('watch-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('watch-user');
  follow(input.value.trim());
  input.value = '';
});
$('ping').addEventListener('click', () => {
  if (!client) return;
  client.ping().then(
    (rtt) => ($('rtt').textContent = `${rtt.toFixed(1)} ms`),
    (e: StorywireError) => ($('rtt').textContent = `échec : ${e.code}`),
  );
});

// The webhook log (DEV_WEBHOOKS): what the server tells the app's backend and its push sender, as the
// server's own receiver got it; polled, because a closed app hears it only through these events.
interface WebhookEntry {
  id: string;
  type: string;
  timestamp: string;
  data: Record<string, unknown> | null;
}
const str = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '?');

/** One line per event type; the others show their data. */
function webhookSummary(e: WebhookEntry): string {
  const d = e.data ?? {};
  if (e.type === 'notification.unread') {
    const listed = Array.isArray(d['notifications']) ? (d['notifications'] as { notification?: { title?: unknown } }[]) : [];
    const titles = listed.map((n) => str(n.notification?.title)).join(', ');
    return `push à ${str(d['userId'])} : ${str(d['count'])} non reçue(s) (non lues : ${str(d['unreadCount'])}) — ${titles}`;
  }
  if (e.type === 'user.online' || e.type === 'user.offline') return str(d['userId']);
  const text = JSON.stringify(d);
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
}

let webhooksSeen = '';
async function pollWebhooks(): Promise<void> {
  try {
    const r = await fetch('/dev/webhooks', { cache: 'no-store' });
    if (!r.ok) return;
    const { events } = (await r.json()) as { events: WebhookEntry[] };
    // Redrawn only when something new came (the list is newest first).
    if ((events[0]?.id ?? '') === webhooksSeen) return;
    webhooksSeen = events[0]?.id ?? '';
    $('webhook-log').replaceChildren(
      ...events.map((e) => {
        const item = li('');
        item.dataset['type'] = e.type;
        const type = document.createElement('span');
        type.className = 'type';
        type.textContent = e.type;
        const at = document.createElement('span');
        at.className = 'meta';
        at.textContent = `${time(Date.parse(e.timestamp))} `;
        item.append(type, at, webhookSummary(e));
        return item;
      }),
    );
  } catch {
    // The server restarts or is gone: the next poll tries again.
  }
}
if (meta('storywire-dev-webhooks') === '1') {
  $('webhooks').hidden = false;
  void pollWebhooks();
  setInterval(() => void pollWebhooks(), 2000);
}

// Setup: dev mode mints tokens by name (?user=alice connects at once); otherwise a JWT is pasted.
const params = new URLSearchParams(location.search);
$('token').hidden = dev;
$('user').hidden = !dev;
$('login-hint').textContent = dev
  ? 'Mode dev : le serveur signe un jeton pour ce nom. Ouvrez un second onglet avec un autre nom pour vous parler.'
  : 'Le serveur vérifie les jetons avec sa clé : collez un JWT valide.';
$<HTMLInputElement>('user').value = params.get('user') ?? `lecteur-${Math.random().toString(36).slice(2, 6)}`;
if (dev && params.has('user')) {
  start($<HTMLInputElement>('user').value, '');
  // ?chat=bob opens the conversation with bob at once.
  const peer = params.get('chat');
  if (peer) openChat(peer).catch((e: Error) => log(`conversation : ${e.message}`));
}
