// The floor for this stack: raw uWebSockets.js doing the minimum storywire does for the bench workload.
// HS256 verified synchronously on upgrade, `user:<sub>` and `stories` joined on open, one JSON.parse per
// incoming frame, one JSON.stringify per publish, app.publish for the fan-out. It speaks the subset of
// storywire's wire protocol the bench uses (ping, send:notification, story:published), so the same load
// clients drive both. Plain JavaScript run by plain `node`, like storywire's dist build.
//
// Env: PORT (required), HOST (127.0.0.1), JWT_SECRET (required, HS256 key), WS_PATH (/ws).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const uWS = require('uWebSockets.js');
const binary = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
if (!Object.keys(require.cache).some((k) => k.endsWith(binary))) {
  // The package silently falls back to a slow JS implementation; a floor measured on it would be a lie.
  process.stderr.write(`uws-raw: native ${binary} did not load; refusing to run on the JS fallback\n`);
  process.exit(1);
}

const port = Number(process.env.PORT);
const host = process.env.HOST || '127.0.0.1';
const secret = process.env.JWT_SECRET;
const path = process.env.WS_PATH || '/ws';
if (!Number.isInteger(port) || !secret) {
  process.stderr.write('uws-raw: PORT and JWT_SECRET are required\n');
  process.exit(1);
}
const PUBLISH_ROLE = 'stories:publish';

/** Minimal HS256 check: header alg, signature (constant time), exp. Returns the claims or undefined. */
function verify(token) {
  const dot1 = token.indexOf('.');
  const dot2 = token.indexOf('.', dot1 + 1);
  if (dot1 < 1 || dot2 < 0) return undefined;
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, dot1), 'base64url').toString());
    if (header.alg !== 'HS256') return undefined;
    const mac = createHmac('sha256', secret).update(token.slice(0, dot2)).digest();
    const sig = Buffer.from(token.slice(dot2 + 1), 'base64url');
    if (sig.length !== mac.length || !timingSafeEqual(sig, mac)) return undefined;
    const claims = JSON.parse(Buffer.from(token.slice(dot1 + 1, dot2), 'base64url').toString());
    if (typeof claims.sub !== 'string' || (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now())) return undefined;
    return claims;
  } catch {
    return undefined;
  }
}

const decoder = new TextDecoder();
const app = uWS.App();
app.ws(path, {
  compression: uWS.DISABLED,
  maxPayloadLength: 16 * 1024,
  idleTimeout: 40,
  maxBackpressure: 1024 * 1024,

  upgrade(res, req, context) {
    const claims = verify(req.getQuery('token') || '');
    if (!claims) {
      res.writeStatus('401 Unauthorized').end();
      return;
    }
    res.upgrade(
      { userId: claims.sub, publisher: Array.isArray(claims.roles) && claims.roles.includes(PUBLISH_ROLE) },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },

  open(ws) {
    ws.subscribe(`user:${ws.getUserData().userId}`);
    ws.subscribe('stories');
  },

  message(ws, message) {
    let msg;
    try {
      msg = JSON.parse(decoder.decode(message));
    } catch {
      return;
    }
    switch (msg.type) {
      case 'ping':
        ws.send(JSON.stringify({ type: 'pong', id: msg.id, ts: Date.now() }));
        break;
      case 'send:notification': {
        const d = msg.data;
        const topic = `user:${d.userId}`;
        app.publish(topic, JSON.stringify({ type: 'notification:received', topic, data: { ...d.notification, from: ws.getUserData().userId, ts: Date.now() } }));
        break;
      }
      case 'story:published':
        if (ws.getUserData().publisher) app.publish('stories', JSON.stringify({ type: 'story:new', topic: 'stories', data: msg.data, ts: Date.now() }));
        break;
    }
  },
});

app.listen(host, port, (ls) => {
  if (!ls) {
    process.stderr.write(`uws-raw: could not listen on ${host}:${port}\n`);
    process.exit(1);
  }
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
