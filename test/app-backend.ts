// A node:http server playing the app's backend for the proxy tests: records every request body and answers
// with what `decide` returns; a CHANNELS_FILE naming it as the proxy "app" (plus any namespaces).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface AppBackend {
  readonly asked: Record<string, unknown>[];
  /** A CHANNELS_FILE with proxy "app" pointing here and these namespaces. */
  channelsFile: string;
  /** The backend goes down: its port closed, its kept-alive connections cut. */
  close(): Promise<void>;
}

export async function appBackend(t: Teardown, decide: (body: Record<string, unknown>) => object, namespaces: Record<string, unknown> = {}): Promise<AppBackend> {
  const asked: Record<string, unknown>[] = [];
  const app = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d));
    req.on('end', () => {
      const body = JSON.parse(text) as Record<string, unknown>;
      asked.push(body);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(decide(body)));
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  t.teardown(() => (app.listening ? close() : undefined));
  const dir = mkdtempSync(join(tmpdir(), 'sw-app-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const channelsFile = join(dir, 'channels.json');
  const url = `http://127.0.0.1:${(app.address() as AddressInfo).port}/storywire`;
  writeFileSync(channelsFile, JSON.stringify({ proxies: { app: { url, cacheTtlMs: 600000 } }, namespaces }));
  const close = () => {
    app.closeAllConnections();
    return new Promise<void>((resolve) => app.close(() => resolve()));
  };
  return { asked, channelsFile, close };
}
