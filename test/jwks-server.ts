// A JWKS endpoint on loopback (node:http) whose answer a test switches: the keys, an HTTP error, a redirect,
// garbage, an oversized set (declared or streamed), or no answer at all. Every answer is an event to await.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, SignJWT } from 'jose';

export type JwksMode = 'ok' | 503 | 500 | 302 | 'garbage' | 'not-a-set' | 'too-big' | 'too-big-streamed' | 'hang';

export interface JwksServer {
  url: string;
  mode: JwksMode;
  keys: object[];
  /** Requests received, whatever they were answered. */
  requests: number;
  /** Emits `answered` (mode) after each answer is written (or abandoned), `cut` when a streamed answer was abandoned by the reader. */
  events: EventEmitter;
  /** Resolves after the next answer given in `mode`. */
  answered(mode: JwksMode): Promise<void>;
  stop(): Promise<void>;
}

const STREAM_CHUNK = Buffer.alloc(64 * 1024, 'x');
/** A streamed oversized answer is 32 MiB when read whole: a reader without a cap would take it all. */
const STREAM_CHUNKS = 512;

export async function jwksServer(t: { teardown(fn: () => unknown): void }, keys: object[], mode: JwksMode = 'ok'): Promise<JwksServer> {
  const events = new EventEmitter();
  const state: JwksServer = {
    url: '',
    mode,
    keys,
    requests: 0,
    events,
    answered: async (m) => {
      for (;;) {
        const [got] = (await once(events, 'answered')) as [JwksMode];
        if (got === m) return;
      }
    },
    stop: async () => {},
  };
  const server = http.createServer((_req, res) => {
    state.requests++;
    const m = state.mode;
    const done = () => events.emit('answered', m);
    if (m === 'hang') return done();
    if (typeof m === 'number') {
      res.writeHead(m, m === 302 ? { location: 'http://127.0.0.1:1/elsewhere.json' } : {}).end(m === 302 ? '' : 'upstream error', done);
      return;
    }
    if (m === 'garbage') return void res.writeHead(200, { 'content-type': 'application/json' }).end('<html>not json</html>', done);
    if (m === 'not-a-set') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"error":"maintenance"}', done);
    if (m === 'too-big') {
      // A valid set that is only too long: a reader without a cap verifies with it.
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys, pad: 'x'.repeat(100_000) }), done);
    }
    if (m === 'too-big-streamed') return streamTooBig(res, state, events, done);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }), done);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  state.stop = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  t.teardown(() => server.listening && state.stop());
  return state;
}

/** Chunked, no content-length: `{"keys":[...],"pad":"xxx...` then `"}`; emits `cut` if the reader goes away first. */
function streamTooBig(res: http.ServerResponse, state: JwksServer, events: EventEmitter, done: () => void): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  let sent = 0;
  let finished = false;
  res.on('close', () => {
    if (finished) return;
    events.emit('cut', sent);
    done();
  });
  res.write(`{"keys":${JSON.stringify(state.keys)},"pad":"`);
  const more = (): void => {
    while (sent < STREAM_CHUNKS && !res.destroyed) {
      sent++;
      if (!res.write(STREAM_CHUNK)) return void res.once('drain', more);
    }
    if (res.destroyed) return;
    finished = true;
    res.end('"}', done);
  };
  more();
}

export interface RsaKey {
  priv: KeyObject;
  jwk: object;
}

export async function rsaKey(kid: string): Promise<RsaKey> {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { priv: privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

/** An RS256 token for `sub` with the key's kid, valid ten minutes. */
export function rsToken(k: RsaKey, sub: string, claims: Record<string, unknown> = {}): Promise<string> {
  const kid = (k.jwk as { kid: string }).kid;
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).setSubject(sub).setExpirationTime(Math.floor(Date.now() / 1000) + 600).sign(k.priv);
}
