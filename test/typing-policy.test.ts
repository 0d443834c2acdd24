// Typing may only target a channel the typist is subscribed to or may publish on; user:<id> follows NOTIFY_POLICY.
import t from 'tap';
import { appBackend } from './app-backend.js';
import { startServer } from './helpers.js';

const PROD = { STORYWIRE_DEV: '0' };

t.test('abuse: typing onto a stranger\'s phone is refused under the defaults', async (t) => {
  const h = await startServer(t, {}, PROD);
  const mallory = await h.connect('mallory');
  const bob = await h.connect('bob');
  t.match(await mallory.request('typing:start', { target: 'user:bob' }), { type: 'error', error: { code: 'FORBIDDEN', message: /follows the notification policy/ } });
  t.ok(await bob.none((f) => f.type === 'user:typing'), 'bob sees nothing');
});

t.test('a story channel: only once subscribed (or allowed to publish on it)', async (t) => {
  const h = await startServer(t, {}, PROD);
  const reader = await h.connect('reader');
  const other = await h.connect('other');
  const author = await h.connect('victor', { roles: ['stories:publish'], stories: ['42'] });
  t.match(await other.request('typing:start', { target: 'story:42' }), { type: 'error', error: { code: 'FORBIDDEN', message: /subscribe to it first/ } });
  t.equal((await reader.request('subscribe', { topic: 'story:42' })).type, 'ack');
  t.equal((await other.request('subscribe', { topic: 'story:42' })).type, 'ack');
  t.match(await other.request('typing:start', { target: 'story:42' }), { type: 'ack', data: { relayed: true } });
  t.match((await reader.type('user:typing')).data, { userId: 'other', target: 'story:42' });
  t.match(await author.request('typing:start', { target: 'story:42' }), { type: 'ack', data: { relayed: true } }, 'its author may publish there');
  t.match(await other.request('typing:start', { target: 'author:victor' }), { type: 'error', error: { code: 'INVALID_TOPIC' } }, 'a namespace without typing');
});

t.test('dev default (NOTIFY_POLICY=any): direct typing works, as on the demo page', async (t) => {
  const h = await startServer(t);
  const alice = await h.connect('alice');
  const bob = await h.connect('bob');
  t.match(await alice.request('typing:start', { target: 'user:bob' }), { type: 'ack', data: { relayed: true } });
  t.match((await bob.type('user:typing')).data, { userId: 'alice', target: 'user:bob' });
});

t.test('NOTIFY_POLICY=proxy: direct typing when the backend approves the pair', async (t) => {
  const app = await appBackend(t, (b) => (b['user'] === 'alice' ? { allow: true } : { allow: false }));
  const h = await startServer(t, {}, { ...PROD, NOTIFY_POLICY: 'proxy', NOTIFY_PROXY: 'app', CHANNELS_FILE: app.channelsFile });
  const alice = await h.connect('alice');
  const mallory = await h.connect('mallory');
  const bob = await h.connect('bob');
  t.match(await alice.request('typing:start', { target: 'user:bob' }), { type: 'ack', data: { relayed: true } });
  t.match((await bob.type('user:typing')).data, { userId: 'alice' });
  t.match(await mallory.request('typing:start', { target: 'user:bob' }), { type: 'error', error: { code: 'FORBIDDEN' } });
  t.match(app.asked[0], { kind: 'notify', user: 'alice', recipient: 'bob' });
});
