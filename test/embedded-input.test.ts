// The embedded API takes what plain JavaScript passes: a notification is checked like one from the wire.
import t from 'tap';
import { startServer } from './helpers.js';

t.test('sendNotificationToUser without a type stores the default and the inbox still lists it', async (t) => {
  const h = await startServer(t);
  const bob = await h.connect('bob');
  const sent = h.server.sendNotificationToUser('bob', { title: 'Nouveau follower', message: 'alice' } as never);
  await sent.delivered;
  t.match((await bob.type('notification:received')).data, { title: 'Nouveau follower', type: 'info' });
  const list = await bob.request('notifications:list');
  t.equal(list.type, 'ack', 'the inbox answers (a stored "type":undefined made it INTERNAL)');
  t.match(list.data.notifications, [{ title: 'Nouveau follower', type: 'info' }]);
});

t.test('a malformed embedded notification is refused with the field named, and nothing is stored', async (t) => {
  const h = await startServer(t);
  const bob = await h.connect('bob');
  t.throws(() => h.server.sendNotificationToUser('bob', { title: 5, message: 'x' } as never), { code: 'INVALID_PAYLOAD', message: /notification\.title/ });
  t.throws(() => h.server.sendNotificationToUser('bob', null as never), { code: 'INVALID_PAYLOAD' });
  t.same((await bob.request('notifications:list')).data.notifications, [], 'nothing stored');
});
