// A node:http server playing the app's backend for the chat tests: membership (the subscribe proxy), the
// message store (the publish proxy: one stored row per idempotencyKey, its own ids), refusals, and every
// request it was asked, with a CHANNELS_FILE naming it as the `conversation` namespace's proxy.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface Asked {
  kind: string;
  user: string;
  channel: string;
  data?: { text?: string; data?: Record<string, unknown> };
  chat?: { op: string; clientMsgId?: string; idempotencyKey?: string; messageId?: string };
}

export interface StoredRow {
  id: string;
  key: string;
  user: string;
  channel: string;
  text: string;
}

export interface ChatBackend {
  readonly asked: Asked[];
  /** The app's message table: one row per idempotencyKey, however often storywire asked. */
  readonly rows: Map<string, StoredRow>;
  /** Who is a member of which channel (the test may change it). */
  readonly members: Map<string, Set<string>>;
  channelsFile: string;
  close(): Promise<void>;
}

/**
 * Members of `conversation:c1` are alice and bob by default. A publish (kind `publish`) of a member is stored
 * (trimmed) under its idempotencyKey and allowed with the stored row's id; "spam" is refused; an edit is
 * allowed with its text upper-cased when it holds "shout"; everything of a non-member is refused.
 */
export async function chatBackend(t: Teardown, namespace: Record<string, unknown> = {}): Promise<ChatBackend> {
  const asked: Asked[] = [];
  const rows = new Map<string, StoredRow>();
  const members = new Map<string, Set<string>>([['conversation:c1', new Set(['alice', 'bob'])]]);
  const decide = (q: Asked): object => {
    const member = members.get(q.channel)?.has(q.user) === true;
    if (!member) return { allow: false, reason: 'not a member' };
    if (q.kind !== 'publish' || q.chat === undefined) return { allow: true };
    const text = (q.data?.text ?? '').trim();
    if (text.includes('spam')) return { allow: false, reason: 'looks like spam' };
    if (q.chat.op === 'send') {
      const key = q.chat.idempotencyKey!;
      let row = rows.get(key);
      if (row === undefined) {
        row = { id: `msg-${rows.size + 1}`, key, user: q.user, channel: q.channel, text };
        rows.set(key, row);
      }
      return { allow: true, data: { id: row.id, text: row.text } };
    }
    if (q.chat.op === 'edit') return { allow: true, data: { text: text.includes('shout') ? text.toUpperCase() : text } };
    return { allow: true };
  };
  const app = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      const q = JSON.parse(body) as Asked;
      asked.push(q);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(decide(q)));
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const close = () => {
    app.closeAllConnections();
    return new Promise<void>((resolve) => app.close(() => resolve()));
  };
  t.teardown(() => (app.listening ? close() : undefined));
  const dir = mkdtempSync(join(tmpdir(), 'sw-chat-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const channelsFile = join(dir, 'channels.json');
  const url = `http://127.0.0.1:${(app.address() as AddressInfo).port}/storywire`;
  writeFileSync(
    channelsFile,
    JSON.stringify({
      proxies: { app: { url, timeoutMs: 5000, cacheTtlMs: 60000 } },
      namespaces: { conversation: { subscribe: { proxy: 'app' }, publish: { proxy: 'app' }, ...namespace } },
    }),
  );
  return { asked, rows, members, channelsFile, close };
}
