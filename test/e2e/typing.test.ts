// Typing indicators: relay once per window, auto-stop on silence, stop on disconnect, story threads.
import t from 'tap';
import { startServer } from '../helpers.js';

t.test('the server stops a silent typist by itself', async (t) => {
  const h = await startServer(t, { typingTimeoutMs: 300 });
  const alice = await h.connect('alice');
  const bob = await h.connect('bob');
  const started = Date.now();
  alice.send({ type: 'typing:start', data: { target: 'user:bob' } });
  await bob.type('user:typing');
  const stop = await bob.type('user:stopped_typing');
  t.match(stop.data, { userId: 'alice', target: 'user:bob' });
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 250, `not before the timeout (${elapsed} ms)`);
});

t.test('repeated starts extend the window without relaying again', async (t) => {
  const h = await startServer(t, { typingTimeoutMs: 400 });
  const alice = await h.connect('alice');
  const bob = await h.connect('bob');
  for (let i = 0; i < 5; i++) {
    alice.send({ type: 'typing:start', data: { target: 'user:bob' } });
    await new Promise((r) => setTimeout(r, 150));
  }
  await bob.type('user:typing');
  t.ok(await bob.none((f) => f.type === 'user:typing', 100), 'relayed once');
  t.ok(bob.frames.every((f) => f.type !== 'user:stopped_typing'), 'not stopped while typing continues');
  await bob.type('user:stopped_typing');
});

t.test('a typist that disconnects is stopped at once', async (t) => {
  const h = await startServer(t, { typingTimeoutMs: 60000 });
  const alice = await h.connect('alice');
  const bob = await h.connect('bob');
  alice.send({ type: 'typing:start', data: { target: 'user:bob' } });
  await bob.type('user:typing');
  alice.close();
  t.match((await bob.type('user:stopped_typing')).data, { userId: 'alice', target: 'user:bob' });
});

t.test('typing in a story thread reaches its subscribers but not the typist', async (t) => {
  const h = await startServer(t);
  const alice = await h.connect('alice');
  const bob = await h.connect('bob');
  await alice.request('subscribe', { topic: 'story:5' });
  await bob.request('subscribe', { topic: 'story:5' });
  t.same((await alice.request('typing:start', { target: 'story:5' })).data, { relayed: true });
  t.match(await bob.type('user:typing'), { topic: 'story:5', data: { userId: 'alice', target: 'story:5' } });
  t.ok(await alice.none((f) => f.type === 'user:typing'), 'the typist does not hear itself');
  t.same((await alice.request('typing:stop', { target: 'story:5' })).data, { relayed: true });
  await bob.type('user:stopped_typing');
  t.same((await alice.request('typing:stop', { target: 'story:5' })).data, { relayed: false }, 'stop when idle is not relayed');
});

t.test('typing targets are validated', async (t) => {
  const h = await startServer(t);
  const alice = await h.connect('alice');
  t.equal((await alice.request('typing:start', { target: 'stories' })).error?.code, 'INVALID_TOPIC');
  t.equal((await alice.request('typing:start', { target: 'author:x' })).error?.code, 'INVALID_TOPIC');
  t.equal((await alice.request('typing:start', {})).error?.code, 'INVALID_PAYLOAD');
});
