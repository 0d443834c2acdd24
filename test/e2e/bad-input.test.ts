// Whatever a client sends: a documented error or close code, and the server keeps serving.
import t from 'tap';
import { startServer } from '../helpers.js';

t.test('malformed frames each get their documented error and the connection stays usable', async (t) => {
  const h = await startServer(t);
  const c = await h.connect('alice');
  await c.type('connected');
  const cases: [string, string][] = [
    ['{', 'BAD_JSON'],
    ['', 'BAD_JSON'],
    ['null', 'BAD_MESSAGE'],
    ['42', 'BAD_MESSAGE'],
    ['"ping"', 'BAD_MESSAGE'],
    ['[{"type":"ping"}]', 'BAD_MESSAGE'],
    ['{}', 'BAD_MESSAGE'],
    ['{"type":42}', 'BAD_MESSAGE'],
    ['{"type":"ping","id":{"a":1}}', 'BAD_MESSAGE'],
    [`{"type":"ping","id":"${'x'.repeat(65)}"}`, 'BAD_MESSAGE'],
    ['{"type":"__proto__"}', 'UNKNOWN_TYPE'],
    ['{"type":"toString"}', 'UNKNOWN_TYPE'],
    ['{"type":"send:notification"}', 'INVALID_PAYLOAD'],
    ['{"type":"send:notification","data":[]}', 'INVALID_PAYLOAD'],
    ['{"type":"send:notification","data":{"userId":-1,"notification":{"title":"a","message":"b"}}}', 'INVALID_PAYLOAD'],
    ['{"type":"send:notification","data":{"userId":1.5,"notification":{"title":"a","message":"b"}}}', 'INVALID_PAYLOAD'],
    ['{"type":"send:notification","data":{"userId":"b","notification":{"title":"","message":"b"}}}', 'INVALID_PAYLOAD'],
    ['{"type":"send:notification","data":{"userId":"b","notification":{"title":"a","message":5}}}', 'INVALID_PAYLOAD'],
    ['{"type":"send:notification","data":{"userId":"b","notification":{"title":"a","message":"b","data":"x"}}}', 'INVALID_PAYLOAD'],
    [`{"type":"send:notification","data":{"userId":"b","notification":{"title":"a","message":"${'m'.repeat(1999)}","data":{"x":"${'y'.repeat(3000)}"}}}}`, 'PAYLOAD_TOO_LARGE'],
    ['{"type":"subscribe","data":{"topic":7}}', 'INVALID_PAYLOAD'],
    ['{"type":"subscribe","data":{"topic":"story:a b"}}', 'INVALID_TOPIC'],
    ['{"type":"chapter:published","data":{"storyId":"1","id":"1","title":"t","number":-2}}', 'INVALID_PAYLOAD'],
    ['{"type":"typing:start","data":{"target":null}}', 'INVALID_PAYLOAD'],
    ['{"type":"auth","data":{}}', 'INVALID_PAYLOAD'],
    ['{"type":"auth","data":{"token":"garbage"}}', 'TOKEN_INVALID'],
  ];
  for (const [frame, code] of cases) {
    c.send(frame);
    const e = await c.type('error');
    t.equal(e.error?.code, code, `${frame.slice(0, 80)} -> ${code}`);
    t.type(e.error?.message, 'string');
  }
  c.send('{"type":"send:notification","id":7,"data":{}}');
  t.match(await c.type('error'), { id: 7, error: { code: 'INVALID_PAYLOAD' } }, 'integer ids are echoed');
  t.equal((await c.request('ping')).type, 'pong', 'still serving after all of that');
});

t.test('binary frames get BINARY_NOT_SUPPORTED', async (t) => {
  const h = await startServer(t);
  const c = await h.connect('alice');
  c.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
  t.equal((await c.type('error')).error?.code, 'BINARY_NOT_SUPPORTED');
  t.equal((await c.request('ping')).type, 'pong');
});

t.test('invalid UTF-8 in a text frame closes the connection, the server goes on', async (t) => {
  const h = await startServer(t);
  const c = await h.connect('alice');
  await c.type('connected');
  // The ws client validates its own output, so write the raw frame: FIN+text, masked, 3 bytes.
  const mask = Buffer.from([1, 2, 3, 4]);
  const payload = Buffer.from([0xff, 0xfe, 0x22]).map((b, i) => b ^ mask[i % 4]!);
  (c.ws as unknown as { _socket: { write(b: Buffer): void } })._socket.write(Buffer.concat([Buffer.from([0x81, 0x83]), mask, payload]));
  const closed = await c.closed;
  t.ok([1006, 1007].includes(closed.code), `closed with ${closed.code}`);
  const d = await h.connect('bob');
  t.equal((await d.request('ping')).type, 'pong');
});

t.test('frames over MAX_PAYLOAD_BYTES close with 1009; far over it, 1006', async (t) => {
  const h = await startServer(t, { maxPayloadBytes: 1024 });
  const a = await h.connect('alice');
  a.send(`{"type":"ping","pad":"${'x'.repeat(2000)}"}`);
  const closed = await a.closed;
  t.equal(closed.code, 1009);
  t.match(closed.reason, /too big/);
  const b = await h.connect('bob');
  b.send('x'.repeat(10000));
  t.equal((await b.closed).code, 1006);
  const c = await h.connect('carol');
  t.equal((await c.request('ping')).type, 'pong', 'others unaffected');
});
