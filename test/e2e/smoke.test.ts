import t from 'tap';
import { startServer } from '../helpers.js';

t.test('connect, ping, notify', async (t) => {
  const h = await startServer(t);
  const a = await h.connect('alice');
  const hello = await a.type('connected');
  t.equal(hello.data.userId, 'alice');
  const pong = await a.request('ping');
  t.equal(pong.type, 'pong');
  const b = await h.connect('bob');
  const ack = await a.request('send:notification', { userId: 'bob', notification: { title: 'Hi', message: 'there' } });
  t.equal(ack.type, 'ack', JSON.stringify(ack));
  const n = await b.type('notification:received');
  t.equal(n.data.from, 'alice');
});
