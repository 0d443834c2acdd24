// The demo page's HTML and CSS (served at / by src/api/demo.ts); its behaviour lives in app.ts.

const escapeAttr = (s: string): string => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/** The page's stylesheet. */
const STYLE = `  :root { --ok: #1a9c4b; --ko: #d93025; --muted: #6b7280; --line: #e5e7eb; font-family: system-ui, sans-serif; }
  body { margin: 0; background: #f7f7f8; color: #111827; }
  header { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; padding: .75rem 1.25rem; background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 1.15rem; margin: 0; } header h1 small { color: var(--muted); font-weight: normal; }
  .status { display: inline-flex; align-items: center; gap: .4rem; font-weight: 600; padding: .2rem .7rem; border-radius: 999px; color: #fff; background: var(--ko); }
  .status[data-state="open"] { background: var(--ok); }
  .status .dot { width: .6rem; height: .6rem; border-radius: 50%; background: #fff; }
  #status-detail, .hint, .meta { color: var(--muted); font-size: .85rem; }
  #typing { min-height: 1.2em; margin: 0; padding: .3rem 1.25rem; color: var(--muted); font-style: italic; }
  main { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 1rem; padding: 0 1.25rem 1.25rem; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: .6rem; padding: .8rem 1rem; }
  #login { margin: 1rem 1.25rem; }
  h2 { font-size: 1rem; margin: 0 0 .6rem; display: flex; gap: .5rem; align-items: center; }
  form { display: flex; flex-wrap: wrap; gap: .4rem; margin-bottom: .6rem; }
  input, textarea { flex: 1 1 10rem; padding: .35rem .5rem; border: 1px solid #cbd5e1; border-radius: .35rem; font: inherit; }
  textarea { min-height: 2.5rem; }
  button { padding: .35rem .8rem; border: 0; border-radius: .35rem; background: #2563eb; color: #fff; font: inherit; cursor: pointer; }
  button.link { background: none; color: #2563eb; padding: 0 .2rem; font-weight: normal; font-size: .85rem; }
  h2 .link { margin-left: auto; }
  button:disabled { opacity: .5; cursor: default; }
  ul, ol { list-style: none; padding: 0; margin: 0; max-height: 18rem; overflow: auto; }
  li { padding: .4rem 0; border-top: 1px solid var(--line); }
  li.unread { font-weight: 600; } li.unread::before { content: "● "; color: #2563eb; }
  .badge { background: #2563eb; color: #fff; border-radius: 999px; padding: 0 .5rem; font-size: .8rem; }
  .badge[data-count="0"] { background: var(--muted); }
  .person::before { content: "● "; color: var(--muted); } .person.online::before { color: var(--ok); }
  #rtt { font-variant-numeric: tabular-nums; margin-left: .5rem; }
  #log li, #webhook-log li { font-size: .8rem; font-family: ui-monospace, monospace; }
  #webhook-log .type { font-weight: 600; margin-right: .4rem; }
  #chat-messages li.mine { text-align: right; } #chat-messages li.pending { color: var(--muted); }
  #chat-messages .tick { margin-left: .3rem; } #chat-messages li.read .tick { color: var(--ok); }
  #chat-typing { min-height: 1.2em; font-style: italic; }
`;

export function demoHtml(o: { wsPath: string; devMode: boolean; devWebhooks?: boolean }): string {
  return `<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="storywire-ws-path" content="${escapeAttr(o.wsPath)}">
<meta name="storywire-dev" content="${o.devMode ? '1' : '0'}">
<meta name="storywire-dev-webhooks" content="${o.devWebhooks ? '1' : '0'}">
<title>storywire · démo</title>
<style>
${STYLE}</style>
<script type="module" src="/demo/app.js"></script>
</head>
<body>
<header>
  <h1>storywire <small>démo temps réel</small></h1>
  <span id="status" class="status" data-state="idle" role="status" aria-live="polite"><span class="dot"></span><span id="status-text">Hors ligne</span></span>
  <span id="status-detail">pas connecté</span>
</header>
<p id="typing" aria-live="polite"></p>
<section id="login" class="card">
  <h2>Connexion</h2>
  <form id="login-form">
    <input id="user" name="user" placeholder="nom d'utilisateur" autocomplete="off">
    <textarea id="token" name="token" placeholder="jeton JWT (le serveur n'est pas en mode dev)" hidden></textarea>
    <button id="connect" type="submit">Se connecter</button>
    <button id="disconnect" type="button" disabled>Se déconnecter</button>
  </form>
  <p class="hint" id="login-hint"></p>
</section>
<main>
  <section class="card">
    <h2>Histoires en direct</h2>
    <form id="story-form"><input id="story-title" placeholder="titre de l'histoire" required><button id="publish" type="submit">Publier</button></form>
    <ul id="stories"></ul>
  </section>
  <section class="card">
    <h2>Notifications <span id="unread" class="badge" data-count="0">0</span> <button id="mark-all" class="link" type="button">tout marquer comme lu</button></h2>
    <ul id="notifications"></ul>
  </section>
  <section class="card">
    <h2>Envoyer une notification</h2>
    <form id="notify-form">
      <input id="notify-user" placeholder="id du destinataire" required>
      <input id="notify-title" placeholder="titre" required>
      <textarea id="notify-message" placeholder="message (le destinataire vous voit écrire)"></textarea>
      <button id="notify-send" type="submit">Envoyer</button>
    </form>
    <p class="meta" id="notify-result"></p>
  </section>
  <section class="card" id="chat">
    <h2><span id="chat-title">Conversation</span> <span id="chat-unread" class="badge" data-count="0">0</span> <button id="chat-mark-read" class="link" type="button" disabled>marquer comme lu</button></h2>
    <form id="chat-open-form"><input id="chat-with" placeholder="parler avec (id)" required><button type="submit">Ouvrir</button></form>
    <ol id="chat-messages"></ol>
    <p id="chat-typing" class="meta" aria-live="polite"></p>
    <form id="chat-form"><input id="chat-text" placeholder="votre message" autocomplete="off" disabled><button id="chat-send" type="submit" disabled>Envoyer</button></form>
  </section>
  <section class="card">
    <h2>Qui est en ligne</h2>
    <form id="watch-form"><input id="watch-user" placeholder="suivre un utilisateur" required><button type="submit">Suivre</button></form>
    <ul id="online"></ul>
  </section>
  <section class="card">
    <h2>Ping</h2>
    <button id="ping" type="button">Envoyer un ping</button><span id="rtt"></span>
  </section>
  <section class="card" id="webhooks" hidden>
    <h2>Webhooks <small class="meta">(ce que recevrait une app fermée)</small></h2>
    <p class="hint">Les événements que ce serveur envoie à son propre récepteur (DEV_WEBHOOKS) : ceux d'un backend, et les pushes des notifications qu'aucun appareil n'a reçues.</p>
    <ol id="webhook-log"></ol>
  </section>
  <section class="card">
    <h2>Journal</h2>
    <ol id="log"></ol>
  </section>
</main>
</body>
</html>
`;
}
