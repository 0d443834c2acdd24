// The storytelling app decides, storywire applies: one real node:http backend plays the app (who follows
// whom, who owns which story, who blocked whom, who paid for which premium story) behind the proxies of
// CHANNELS_FILE, and each policy is shown allowed, refused, revoked, and with the backend down.
import t from 'tap';
import { appBackend } from './app-backend.js';
import { API_KEY, api } from './cluster/redis.js';
import { startServer, type Client } from './helpers.js';

/** The app's data. */
const follows: Record<string, string[]> = { alice: ['bob'] };
const owns: Record<string, string[]> = { bob: ['42'] };
const blocked: Record<string, string[]> = { bob: ['carol'] };
const paid = new Set(['alice premium-story:p1']);

function decide(q: Record<string, unknown>): object {
  const user = String(q['user']);
  const channel = String(q['channel']);
  const [ns, id] = channel.split(':') as [string, string];
  switch (q['kind']) {
    case 'notify': {
      const to = String(q['recipient']);
      return blocked[to]?.includes(user) ? { allow: false, reason: `${to} blocked you` } : { allow: true };
    }
    case 'publish':
      return ns === 'story' && owns[user]?.includes(id) ? { allow: true } : { allow: false, reason: 'not your story' };
    default:
      if (ns === 'presence') return follows[user]?.includes(id) ? { allow: true } : { allow: false, reason: 'you do not follow them' };
      if (ns === 'premium-story') return paid.has(`${user} ${channel}`) ? { allow: true } : { allow: false, reason: 'not paid' };
      return { allow: false, reason: 'unknown' };
  }
}

async function connected(c: Client): Promise<Client> {
  await c.type('connected');
  return c;
}

t.test('the app decides: followers, owners, a blocked user, a paid story; revoked; backend down', async (t) => {
  const app = await appBackend(t, decide, {
    presence: { subscribe: { proxy: 'app' } },
    story: { publish: { proxy: 'app' } },
    'premium-story': { subscribe: { proxy: 'app' }, history: { size: 20, ttlS: 3600 } },
  });
  const h = await startServer(t, {}, { CHANNELS_FILE: app.channelsFile, NOTIFY_POLICY: 'proxy', NOTIFY_PROXY: 'app', API_KEY });
  const alice = await connected(await h.connect('alice'));
  const bob = await connected(await h.connect('bob', { roles: ['stories:publish'] }));
  const carol = await connected(await h.connect('carol', { roles: ['stories:publish'] }));

  // Followers: alice follows bob and may watch him; carol does not.
  t.equal((await alice.request('subscribe', { topic: 'presence:bob' })).type, 'ack', 'a follower watches');
  const stranger = await carol.request('subscribe', { topic: 'presence:bob' });
  t.equal(stranger.error?.code, 'TOPIC_FORBIDDEN', 'a stranger does not');
  t.match(stranger.error?.message, /you do not follow them/);

  // Blocking: bob blocked carol; alice may notify him.
  const blockedNote = await carol.request('send:notification', { userId: 'bob', notification: { title: 'hi', message: 'x', type: 'message' } });
  t.equal(blockedNote.error?.code, 'FORBIDDEN', 'a blocked user cannot notify');
  t.equal((await alice.request('send:notification', { userId: 'bob', notification: { title: 'hi', message: 'x', type: 'message' } })).type, 'ack');
  t.equal((await bob.next((f) => f.type === 'notification:received')).data.from, 'alice', 'the allowed one arrives');

  // Owners: chapters only in one's own story.
  t.equal((await bob.request('chapter:published', { storyId: '42', id: 'c1', title: 'Un' })).type, 'ack', 'the owner publishes');
  const intruder = await carol.request('chapter:published', { storyId: '42', id: 'c2', title: 'Deux' });
  t.equal(intruder.error?.code, 'FORBIDDEN', "not into another author's story");
  t.match(intruder.error?.message, /not your story/);

  // Paid content: alice paid for p1; carol did not.
  t.equal((await alice.request('subscribe', { topic: 'premium-story:p1' })).type, 'ack', 'a buyer reads');
  t.equal((await carol.request('subscribe', { topic: 'premium-story:p1' })).error?.code, 'TOPIC_FORBIDDEN', 'a non-buyer does not');

  // Revoked: the app refunds alice, forgets her purchase and revokes; her next subscribe asks the app again.
  paid.delete('alice premium-story:p1');
  t.same(await api(h, 'POST', '/v1/channels/unsubscribe', { userId: 'alice', channel: 'premium-story:p1', reason: 'refunded' }), { status: 200, body: { revoked: 1 } });
  const ended = await alice.next((f) => f.type === 'unsubscribed');
  t.same(ended.data, { topic: 'premium-story:p1', code: 'SUBSCRIPTION_REVOKED', reason: 'refunded' });
  t.equal((await alice.request('subscribe', { topic: 'premium-story:p1' })).error?.code, 'TOPIC_FORBIDDEN', 'the revoked decision is not reused from the cache');

  // The backend down: what it had decided stays decided (cached); anything new is UNAVAILABLE, never an allow.
  const asked = app.asked.length;
  await app.close();
  t.equal((await alice.request('send:notification', { userId: 'bob', notification: { title: 'again', message: 'x', type: 'message' } })).type, 'ack', 'a cached pair still notifies');
  t.equal(app.asked.length, asked, 'without asking the backend');
  const down = await alice.request('subscribe', { topic: 'premium-story:p2' });
  t.equal(down.error?.code, 'UNAVAILABLE', 'a new decision with the backend down: UNAVAILABLE');
  t.equal((await carol.request('chapter:published', { storyId: '43', id: 'c3', title: 'Trois' })).error?.code, 'UNAVAILABLE', 'publish proxy down: UNAVAILABLE');
});
