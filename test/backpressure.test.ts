// The slow-reader checks of Connections: a socket over its whole budget is closed at once (4101), one over half of
// it is closed only after four checks in a row (a check under half in between starts the count again), and a
// socket under half costs one native call per check.
import t from 'tap';
import pino from 'pino';
import { loadConfig } from '../src/config.js';
import { Connections } from '../src/edge/connections.js';
import type { Conn, Socket } from '../src/edge/conn.js';
import { Metrics } from '../src/metrics.js';

const BUDGET = 100_000;

function setup() {
  const config = loadConfig({ JWT_SECRET: 'x'.repeat(32), HOST: '127.0.0.1', PORT: '0', STORYWIRE_DEV: '1', MAX_BACKPRESSURE_BYTES: String(BUDGET) }, []);
  const metrics = new Metrics();
  const connections = new Connections(config, metrics, pino({ level: 'silent' }));
  let n = 0;
  const socket = (userId: string) => {
    const conn = { userId, id: `c${++n}`, ip: '127.0.0.1', exp: undefined, slowStrikes: 0, slowCheck: 0, closed: false } as unknown as Conn;
    const s = {
      buffered: 0,
      calls: 0,
      endedWith: undefined as number | undefined,
      getBufferedAmount() {
        s.calls++;
        return s.buffered;
      },
      getUserData() {
        s.calls++;
        return { conn };
      },
      end(code: number) {
        s.endedWith = code;
        conn.closed = true;
        connections.remove(s as unknown as Socket, code);
      },
    };
    connections.add(s as unknown as Socket);
    s.calls = 0;
    return s;
  };
  return { connections, socket, metrics };
}

t.test('over half the budget: closed with 4101 at the fourth check in a row, not before', async (t) => {
  const { connections, socket } = setup();
  const slow = socket('slow');
  slow.buffered = BUDGET * 0.6;
  for (let i = 1; i <= 3; i++) {
    connections.checkBackpressure();
    t.equal(slow.endedWith, undefined, `still open after check ${i}`);
  }
  connections.checkBackpressure();
  t.equal(slow.endedWith, 4101, 'closed at the fourth');
});

t.test('a check under half in between starts the count again', async (t) => {
  const { connections, socket } = setup();
  const s = socket('u');
  s.buffered = BUDGET * 0.6;
  connections.checkBackpressure();
  connections.checkBackpressure();
  connections.checkBackpressure();
  s.buffered = BUDGET * 0.4;
  connections.checkBackpressure();
  s.buffered = BUDGET * 0.6;
  for (let i = 1; i <= 3; i++) connections.checkBackpressure();
  t.equal(s.endedWith, undefined, 'three in a row since the reset: open');
  connections.checkBackpressure();
  t.equal(s.endedWith, 4101, 'the fourth in a row closes it');
});

t.test('over the whole budget: closed at the first check', async (t) => {
  const { connections, socket } = setup();
  const s = socket('u');
  s.buffered = BUDGET + 1;
  connections.checkBackpressure();
  t.equal(s.endedWith, 4101);
  const other = socket('v');
  other.buffered = BUDGET + 1;
  connections.checkOverBudget('v');
  t.equal(other.endedWith, 4101, 'and by the per-user check after a personal frame');
});

t.test('a socket under half the budget costs one native call per check, and is never closed', async (t) => {
  const { connections, socket } = setup();
  const sockets = [socket('a'), socket('b'), socket('c')];
  for (const s of sockets) s.buffered = BUDGET / 2;
  for (let i = 0; i < 10; i++) connections.checkBackpressure();
  t.same(
    sockets.map((s) => s.calls),
    [10, 10, 10],
    'getBufferedAmount only',
  );
  t.same(
    sockets.map((s) => s.endedWith),
    [undefined, undefined, undefined],
  );
});

t.test('a connection dropped with 1006 counts as a slow reader only when the last check found it over half', async (t) => {
  const { connections, socket, metrics } = setup();
  const count = async () => ((await metrics.registry.getSingleMetric('storywire_backpressure_closes_total')!.get()).values[0]?.value ?? 0) as number;
  const slow = socket('slow');
  slow.buffered = BUDGET * 0.6;
  connections.checkBackpressure();
  connections.remove(slow as unknown as Socket, 1006);
  t.equal(await count(), 1, 'over half at the last check: a slow reader');
  const was = socket('was');
  was.buffered = BUDGET * 0.6;
  connections.checkBackpressure();
  was.buffered = 0;
  connections.checkBackpressure();
  connections.remove(was as unknown as Socket, 1006);
  t.equal(await count(), 1, 'under half at the last check: a lost network, not counted');
});
