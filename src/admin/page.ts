// The admin view's HTML and CSS (served at /admin by routes.ts); its behaviour lives in app.ts. The page holds
// no data: everything it shows comes from /admin/api/, with the API key the operator types in.

const STYLE = `  :root { --ok: #1a9c4b; --ko: #d93025; --muted: #6b7280; --line: #e5e7eb; --accent: #2563eb; font-family: system-ui, sans-serif; }
  body { margin: 0; background: #f7f7f8; color: #111827; }
  [hidden] { display: none !important; }
  header { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; padding: .75rem 1.25rem; background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 1.15rem; margin: 0; } header h1 small { color: var(--muted); font-weight: normal; }
  .pill { font-weight: 600; padding: .15rem .7rem; border-radius: 999px; color: #fff; background: var(--muted); }
  .pill[data-up="true"] { background: var(--ok); } .pill[data-up="false"] { background: var(--ko); }
  .meta, small, .hint { color: var(--muted); font-size: .85rem; }
  #logout { margin-left: auto; }
  form { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; margin: 0 0 .6rem; }
  input, select { padding: .35rem .5rem; border: 1px solid #cbd5e1; border-radius: .35rem; font: inherit; }
  button { padding: .35rem .8rem; border: 0; border-radius: .35rem; background: var(--accent); color: #fff; font: inherit; cursor: pointer; }
  button.danger { background: var(--ko); } button.link { background: none; color: var(--accent); }
  #login { margin: 2rem 1.25rem; max-width: 28rem; flex-direction: column; align-items: stretch; }
  .error { color: var(--ko); min-height: 1.2em; margin: .3rem 0; }
  main { padding: 1rem 1.25rem; display: grid; gap: 1rem; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); }
  figure { margin: 0; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: .6rem; padding: .8rem 1rem; }
  .wide { grid-column: 1 / -1; }
  h2 { font-size: 1rem; margin: 0 0 .6rem; }
  .figures { display: grid; gap: .6rem; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); }
  .figure b { display: block; font-size: 1.6rem; font-variant-numeric: tabular-nums; }
  .figure span { color: var(--muted); font-size: .8rem; text-transform: uppercase; letter-spacing: .03em; }
  svg.chart { width: 100%; height: 80px; background: #f9fafb; border-radius: .35rem; }
  svg.chart polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: .3rem .4rem; border-top: 1px solid var(--line); font-size: .9rem; }
  td.n, th.n { text-align: right; }
  tr[data-alive="false"] td { color: var(--ko); }
  ol, ul { padding: 0; margin: 0; list-style: none; max-height: 20rem; overflow: auto; }
  li { padding: .35rem 0; border-top: 1px solid var(--line); font-size: .9rem; }
  li .count { float: right; font-variant-numeric: tabular-nums; }
  code { font-size: .85rem; }`;

/** The live figures: `f-<id>` holds the figure, `f-<id>-sub` a line under it (a total, a count). */
const FIGURES: readonly [id: string, label: string][] = [
  ['connections', 'Connections'],
  ['in', 'Messages in /s'],
  ['out', 'Frames out /s'],
  ['notifications', 'Notifications /s'],
  ['slow', 'Slow-consumer closes'],
  ['refused', 'Refused upgrades /s'],
  ['lag', 'Event-loop lag p99'],
  ['rss', 'Memory (RSS)'],
];

const CHARTS: readonly [id: string, label: string][] = [
  ['connections', 'Connections'],
  ['in', 'Messages in /s'],
  ['out', 'Frames out /s'],
];

const figure = ([id, label]: (typeof FIGURES)[number]) => `      <div class="figure"><span>${label}</span><b id="f-${id}">-</b><small id="f-${id}-sub"></small></div>`;
const chart = ([id, label]: (typeof CHARTS)[number]) =>
  `      <figure class="card"><h2>${label} <small id="c-${id}-last"></small></h2><svg class="chart" id="chart-${id}" viewBox="0 0 300 80" preserveAspectRatio="none"><polyline points=""></polyline></svg></figure>`;

/** The whole page: a login form, then the dashboard (hidden until a key is accepted). */
export function adminHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>storywire admin</title>
  <style>
${STYLE}
  </style>
  <script type="module" src="/admin/app.js"></script>
</head>
<body>
  <header>
    <h1>storywire <small>admin</small></h1>
    <span class="meta">node <code id="node-id">-</code></span>
    <span class="pill" id="backplane" data-up="">backplane</span>
    <span class="meta" id="updated"></span>
    <button class="link" id="logout" hidden>Forget the key</button>
  </header>
  <form id="login">
    <label for="key">API key (<code>API_KEY</code>), kept in this tab only</label>
    <input id="key" type="password" autocomplete="off" required>
    <button id="login-submit">Open the admin view</button>
    <p class="error" id="login-error"></p>
  </form>
  <main id="dashboard" hidden>
    <section class="card wide">
      <div class="figures">
${FIGURES.map(figure).join('\n')}
      </div>
    </section>
${CHARTS.map(chart).join('\n')}
    <section class="card">
      <h2>Nodes</h2>
      <table id="nodes"><thead><tr><th>node</th><th>state</th><th class="n">connections</th></tr></thead><tbody></tbody></table>
      <p class="error" id="cluster-error"></p>
    </section>
    <section class="card">
      <h2>Top topics <small>(subscribers on this node)</small></h2>
      <ol id="topics"></ol>
    </section>
    <section class="card">
      <h2>Messages by type</h2>
      <table id="by-type"><thead><tr><th>type</th><th class="n">in /s</th><th class="n">in</th><th class="n">published /s</th><th class="n">published</th></tr></thead><tbody></tbody></table>
    </section>
    <section class="card wide">
      <h2>User</h2>
      <form id="lookup">
        <input id="user-id" placeholder="user id" autocomplete="off" required>
        <button id="lookup-submit">Look up</button>
      </form>
      <div id="user" hidden>
        <p id="user-summary"></p>
        <ul id="user-connections"></ul>
        <form id="disconnect-form">
          <select id="disconnect-code">
            <option value="4409">4409 token revoked</option>
            <option value="4403">4403 forbidden (banned)</option>
            <option value="4001">4001 reconnect</option>
            <option value="4000">4000 shutdown</option>
          </select>
          <input id="disconnect-reason" placeholder="reason (optional)" maxlength="120" autocomplete="off">
          <button class="danger" id="disconnect">Disconnect everywhere</button>
        </form>
        <p id="disconnect-result"></p>
      </div>
      <p class="error" id="user-error"></p>
    </section>
  </main>
</body>
</html>
`;
}
