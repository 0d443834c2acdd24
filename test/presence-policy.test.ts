// Who may watch whom: the presence namespace's subscribe rule decides presence:query and presence:<id>.
import t from 'tap';
import { appBackend } from './app-backend.js';
import { startServer } from './helpers.js';

const PROD = { STORYWIRE_DEV: '0', PRESENCE_GRACE_MS: '0' };

t.test('production default: only the ids of the watch claim; the others are forbidden, their state never told', async (t) => {
  const h = await startServer(t, {}, PROD);
  await Promise.all(['bob', 'carol', 'dave'].map((u) => h.connect(u)));
  const alice = await h.connect('alice', { watch: ['bob', 'erin'] });
  const r = await alice.request('presence:query', { userIds: ['bob', 'carol', 'dave', 'erin'] });
  t.same(r.data, { online: ['bob'], forbidden: ['carol', 'dave'] }, 'erin is allowed and offline; carol and dave are not watchable');
  t.match(await alice.request('subscribe', { topic: 'presence:carol' }), { type: 'error', error: { code: 'TOPIC_FORBIDDEN' } });
  t.match(await alice.request('subscribe', { topic: 'presence:bob' }), { type: 'ack' });
  const mallory = await h.connect('mallory');
  t.same((await mallory.request('presence:query', { userIds: ['alice', 'bob'] })).data, { online: [], forbidden: ['alice', 'bob'] }, 'no claim: nobody');
});

t.test('dev default: presence is public', async (t) => {
  const h = await startServer(t, {}, { PRESENCE_GRACE_MS: '0' });
  await h.connect('bob');
  const alice = await h.connect('alice');
  t.same((await alice.request('presence:query', { userIds: ['bob', 'carol'] })).data, { online: ['bob'], forbidden: [] });
});

t.test('PRESENCE_BROADCAST=true is public presence: everyone may query everyone', async (t) => {
  const h = await startServer(t, {}, { ...PROD, PRESENCE_BROADCAST: 'true' });
  await h.connect('bob');
  const alice = await h.connect('alice');
  t.same((await alice.request('presence:query', { userIds: ['bob', 'carol'] })).data, { online: ['bob'], forbidden: [] });
});

t.test('a presence proxy: the backend says who may watch whom (kind "presence"), once per pair', async (t) => {
  const app = await appBackend(t, (b) => (b['channel'] === 'presence:bob' ? { allow: true } : { allow: false, reason: 'not a follower' }), {
    presence: { subscribe: { proxy: 'app' } },
  });
  const h = await startServer(t, {}, { ...PROD, CHANNELS_FILE: app.channelsFile });
  await Promise.all(['bob', 'carol'].map((u) => h.connect(u)));
  const alice = await h.connect('alice');
  t.same((await alice.request('presence:query', { userIds: ['carol', 'bob'] })).data, { online: ['bob'], forbidden: ['carol'] });
  t.same((await alice.request('presence:query', { userIds: ['bob'] })).data, { online: ['bob'], forbidden: [] });
  t.equal(app.asked.length, 2, 'each pair asked once, then cached');
  t.same(app.asked.map((b) => `${b['kind']} ${b['user']} ${b['channel']}`).sort(), ['presence alice presence:bob', 'presence alice presence:carol']);
});
