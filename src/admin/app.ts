// The admin view's script (DOM only: tsconfig.browser.json builds it into dist/admin/app.js). It asks for the
// API key once per tab (sessionStorage), polls /admin/api/stats and /admin/api/topics every second, turns the
// cumulative counters into rates, draws the charts as SVG polylines, and looks users up and disconnects them.
import type { ByLabel, Stats, TopTopics, UserView } from './api-types.js';

const KEY_ITEM = 'storywire.admin.apiKey';
const POLL_MS = 1000;
/** Points kept per chart: two minutes at one poll a second. */
const CHART_POINTS = 120;
const ID_PATTERN = /^[A-Za-z0-9_.@|+=-]{1,128}$/;

const $ = <T extends HTMLElement = HTMLElement>(selector: string): T => {
  const el = document.querySelector<T>(selector);
  if (el === null) throw new Error(`admin page: ${selector} is missing`);
  return el;
};

class Unauthorized extends Error {}

/** A call to /admin/api/ with the key; a 401 means the key is wrong (back to the login form). */
async function call<T>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
  const key = sessionStorage.getItem(KEY_ITEM) ?? '';
  const res = await fetch(path, { ...init, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } });
  if (res.status === 401) throw new Unauthorized('wrong API key');
  const body = (await res.json()) as T;
  return { status: res.status, body };
}

const errorText = (body: unknown): string => {
  const e = (body as { error?: { code?: string; message?: string } } | null)?.error;
  return e ? `${e.code ?? 'ERROR'}: ${e.message ?? ''}` : 'unexpected answer';
};

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const sum = (by: ByLabel): number => Object.values(by).reduce((a, b) => a + b, 0);
const bytes = (n: number): string => (n >= 1 << 30 ? `${fmt(n / (1 << 30), 2)} GiB` : `${fmt(n / (1 << 20), 1)} MiB`);

/** Per second between two readings of a counter (0 on the first, and after a restart resets it). */
const rate = (now: number, before: number | undefined, dtS: number): number => (before === undefined || dtS <= 0 || now < before ? 0 : (now - before) / dtS);

/** The last CHART_POINTS values of one series, drawn into its SVG polyline scaled to its own maximum. */
class Chart {
  private readonly values: number[] = [];

  constructor(private readonly id: string) {}

  push(v: number, label: string): void {
    this.values.push(v);
    if (this.values.length > CHART_POINTS) this.values.shift();
    const max = Math.max(1, ...this.values);
    const step = 300 / (CHART_POINTS - 1);
    // The newest point at the right edge: the line grows from the right as readings come in.
    const left = 300 - (this.values.length - 1) * step;
    const points = this.values.map((y, i) => `${(left + i * step).toFixed(1)},${(78 - (y / max) * 74).toFixed(1)}`).join(' ');
    const svg = $(`#chart-${this.id}`);
    svg.querySelector('polyline')?.setAttribute('points', points);
    svg.setAttribute('data-points', String(this.values.length));
    $(`#c-${this.id}-last`).textContent = `${label} (max ${fmt(max, max < 10 ? 1 : 0)})`;
  }
}

const charts = { connections: new Chart('connections'), in: new Chart('in'), out: new Chart('out') };
let previous: Stats | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;

function setFigure(id: string, value: string, sub: string): void {
  $(`#f-${id}`).textContent = value;
  $(`#f-${id}-sub`).textContent = sub;
}

/** The figures and charts of one reading, rates against the previous one. */
function showStats(s: Stats): void {
  const p = previous;
  const dtS = p ? (s.ts - p.ts) / 1000 : 0;
  const c = s.counters;
  const inTotal = sum(c.messagesIn);
  const refused = sum(c.connections) - (c.connections['accepted'] ?? 0);
  const pRefused = p ? sum(p.counters.connections) - (p.counters.connections['accepted'] ?? 0) : undefined;
  const inRate = rate(inTotal, p && sum(p.counters.messagesIn), dtS);
  const outRate = rate(c.messagesOut, p?.counters.messagesOut, dtS);
  setFigure('connections', fmt(s.connections.open), `${fmt(s.connections.onlineUsers)} ${s.connections.onlineUsers === 1 ? 'user' : 'users'} online`);
  setFigure('in', fmt(inRate, 1), `${fmt(inTotal)} in all`);
  setFigure('out', fmt(outRate, 1), `${fmt(c.messagesOut)} in all`);
  setFigure('notifications', fmt(rate(c.notificationsDelivered, p?.counters.notificationsDelivered, dtS), 1), `${fmt(c.notificationsDelivered)} delivered`);
  setFigure('slow', fmt(c.backpressureCloses), 'since start');
  setFigure('refused', fmt(rate(refused, pRefused, dtS), 1), `${fmt(refused)} in all`);
  setFigure('lag', `${fmt(s.eventLoopLagP99S * 1000, 1)} ms`, '');
  setFigure('rss', bytes(s.residentBytes), '');
  charts.connections.push(s.connections.open, fmt(s.connections.open));
  charts.in.push(inRate, `${fmt(inRate, 1)}/s`);
  charts.out.push(outRate, `${fmt(outRate, 1)}/s`);
  showHeader(s);
  showNodes(s);
  showTypes(s, p, dtS);
  previous = s;
}

function showHeader(s: Stats): void {
  $('#node-id').textContent = s.nodeId;
  const bp = $('#backplane');
  bp.dataset['up'] = String(s.backplane.up);
  bp.textContent = `${s.backplane.kind}${s.backplane.single ? ' (single node)' : ''}: ${s.backplane.up ? 'up' : 'DOWN'}`;
  $('#updated').textContent = `updated ${new Date(s.ts).toLocaleTimeString()}`;
}

/** Replaces a table body's rows with cells made as text (never HTML: ids and topics come from users). */
function fillRows(tbody: HTMLElement, rows: { cells: string[]; data?: Record<string, string> }[]): void {
  tbody.replaceChildren(
    ...rows.map(({ cells, data }) => {
      const tr = document.createElement('tr');
      for (const [k, v] of Object.entries(data ?? {})) tr.dataset[k] = v;
      cells.forEach((text, i) => {
        const td = document.createElement('td');
        td.textContent = text;
        if (i > 0 && /^[\d,.]+$/.test(text)) td.className = 'n';
        tr.append(td);
      });
      return tr;
    }),
  );
}

function showNodes(s: Stats): void {
  const rows = s.nodes.map((n) => ({
    cells: [n.nodeId + (n.self ? ' (this node)' : ''), n.alive ? 'alive' : 'lease expired', fmt(n.connections)],
    data: { node: n.nodeId, alive: String(n.alive) },
  }));
  fillRows($('#nodes tbody'), rows);
  $('#cluster-error').textContent = s.clusterError ?? '';
}

function showTypes(s: Stats, p: Stats | undefined, dtS: number): void {
  const { messagesIn, publishes } = s.counters;
  const types = [...new Set([...Object.keys(messagesIn), ...Object.keys(publishes)])].sort();
  const rows = types.map((type) => ({
    cells: [
      type,
      fmt(rate(messagesIn[type] ?? 0, p?.counters.messagesIn[type], dtS), 1),
      fmt(messagesIn[type] ?? 0),
      fmt(rate(publishes[type] ?? 0, p?.counters.publishes[type], dtS), 1),
      fmt(publishes[type] ?? 0),
    ],
    data: { type },
  }));
  fillRows($('#by-type tbody'), rows);
}

function showTopics(t: TopTopics): void {
  $('#topics').replaceChildren(
    ...t.topics.map(({ topic, subscribers }) => {
      const li = document.createElement('li');
      li.dataset['topic'] = topic;
      const count = document.createElement('span');
      count.className = 'count';
      count.textContent = fmt(subscribers);
      li.append(count, topic);
      return li;
    }),
  );
}

/** One poll; the next is scheduled when it is done, so a slow server is never asked twice at once. */
async function poll(): Promise<void> {
  try {
    const [stats, topics] = await Promise.all([call<Stats>('/admin/api/stats'), call<TopTopics>('/admin/api/topics?limit=10')]);
    if (stats.status === 200) showStats(stats.body);
    if (topics.status === 200) showTopics(topics.body);
    $('#cluster-error').textContent = stats.status === 200 ? (stats.body.clusterError ?? '') : errorText(stats.body);
  } catch (err) {
    if (err instanceof Unauthorized) return logout('the API key was refused');
    $('#updated').textContent = `the node did not answer (${(err as Error).message}); retrying`;
  }
  timer = setTimeout(() => void poll(), POLL_MS);
}

function showUser(u: UserView): void {
  $('#user').hidden = false;
  const where = new Set(u.connections.map((c) => c.nodeId));
  const online = u.online === null ? 'presence unknown' : u.online ? 'online' : 'offline';
  const summary = $('#user-summary');
  summary.dataset['online'] = String(u.online);
  summary.dataset['connections'] = String(u.connections.length);
  summary.textContent = `${u.userId}: ${online}, ${u.connections.length} connection(s) on ${where.size} node(s)${u.clusterError ? ` (${u.clusterError})` : ''}`;
  $('#user-connections').replaceChildren(
    ...u.connections.map((c) => {
      const li = document.createElement('li');
      li.dataset['connection'] = c.connectionId;
      li.dataset['node'] = c.nodeId;
      const l = c.local;
      li.textContent = l
        ? `${c.connectionId} on ${c.nodeId} (this node): ${l.ip}, open ${fmt(l.openS)} s, ${fmt(l.bufferedBytes)} bytes buffered, topics ${l.topics.join(', ')}`
        : `${c.connectionId} on ${c.nodeId}`;
      return li;
    }),
  );
}

/** The user id typed in, checked as the server checks it (sent in the path as it is: its characters need no escaping). */
function userId(): string | undefined {
  const id = $<HTMLInputElement>('#user-id').value.trim();
  if (ID_PATTERN.test(id)) return id;
  $('#user-error').textContent = 'a user id is 1-128 characters [A-Za-z0-9_.@|+=-]';
  return undefined;
}

async function lookup(): Promise<void> {
  $('#user-error').textContent = '';
  const id = userId();
  if (id === undefined) return;
  const r = await call<UserView>(`/admin/api/users/${id}`);
  if (r.status === 200) showUser(r.body);
  else $('#user-error').textContent = errorText(r.body);
}

async function disconnect(): Promise<void> {
  const id = userId();
  if (id === undefined) return;
  const code = Number($<HTMLSelectElement>('#disconnect-code').value);
  const reason = $<HTMLInputElement>('#disconnect-reason').value.trim();
  const body = JSON.stringify(reason === '' ? { code } : { code, reason });
  const r = await call<{ closed: number }>(`/admin/api/users/${id}/disconnect`, { method: 'POST', body });
  const result = $('#disconnect-result');
  result.dataset['closed'] = String(r.body.closed ?? 0);
  result.textContent = r.status === 200 ? `closed ${r.body.closed} connection(s) with ${code}` : errorText(r.body);
  await lookup();
}

function logout(message = ''): void {
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  previous = undefined;
  sessionStorage.removeItem(KEY_ITEM);
  $('#dashboard').hidden = true;
  $('#logout').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message;
}

function start(): void {
  $('#login').hidden = true;
  $('#dashboard').hidden = false;
  $('#logout').hidden = false;
  void poll();
}

/** Runs a form's action on submit, showing a refused key or a failure instead of throwing. */
function onSubmit(selector: string, action: () => Promise<void> | void): void {
  $(selector).addEventListener('submit', (e) => {
    e.preventDefault();
    Promise.resolve(action()).catch((err: unknown) => {
      if (err instanceof Unauthorized) logout('the API key was refused');
      else $('#user-error').textContent = (err as Error).message;
    });
  });
}

onSubmit('#login', () => {
  sessionStorage.setItem(KEY_ITEM, $<HTMLInputElement>('#key').value.trim());
  $<HTMLInputElement>('#key').value = '';
  start();
});
onSubmit('#lookup', lookup);
onSubmit('#disconnect-form', disconnect);
$('#logout').addEventListener('click', () => logout());
if (sessionStorage.getItem(KEY_ITEM)) start();
