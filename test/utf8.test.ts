// A text frame that is not UTF-8 (issue #17, item 8): what the transport does with it, and protocol.md saying so.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { startServer } from './helpers.js';

const protocol = readFileSync(new URL('../protocol.md', import.meta.url), 'utf8');
const row = (first: string) => protocol.split('\n').find((l) => l.startsWith(`| ${first} |`)) ?? '';

for (const [name, bytes] of [
  ['bytes that are never UTF-8', [0xff, 0xfe]],
  ['a sequence cut short', [0x7b, 0xc3]],
  ['an encoded surrogate', [0xed, 0xa0, 0x80]],
] as const) {
  t.test(`${name}: the connection is failed without a close frame (1006), never answered; the server goes on`, async (t) => {
    const h = await startServer(t);
    const a = await h.connect('alice');
    await a.type('connected');
    a.ws.send(Buffer.from(bytes), { binary: false });
    t.equal((await a.closed).code, 1006, 'the client sees 1006: uWS drops the connection (RFC 6455 section 8.1)');
    t.same(a.frames.filter((f) => f.type === 'error'), [], 'no error reply');
    const b = await h.connect('bob');
    await b.type('connected');
    t.equal((await b.request('ping')).type, 'pong', 'other connections are not affected');
    t.match(await h.server.metrics.text(), /storywire_connection_closes_total\{code="1006"\} 1/, 'counted as a 1006 close');
  });
}

t.test('valid UTF-8 beyond ASCII is read as it was written', async (t) => {
  const h = await startServer(t);
  const a = await h.connect('alice');
  await a.type('connected');
  const id = 'é-😀-日本';
  t.match(await a.request('ping'), { type: 'pong' });
  a.send({ type: 'ping', id });
  t.equal((await a.next((f) => f.id === id)).type, 'pong', 'a multi-byte request id comes back intact');
});

t.test('protocol.md says what happens: 1006 for a frame that is not UTF-8, and BAD_JSON does not claim it', async (t) => {
  t.notMatch(row('`BAD_JSON`'), /or not UTF-8/, 'BAD_JSON is not the answer to a frame that is not UTF-8');
  t.match(row('`BAD_JSON`'), /not valid UTF-8 gets no reply/, 'its row says there is none');
  t.match(row('1006'), /not valid UTF-8/, 'the 1006 row names it');
});
