// Client addresses behind proxies (issue #17, item 3): X-Forwarded-For is believed only from TRUSTED_PROXIES,
// every line of it is read, and the client is the right-most entry that is not a trusted proxy.
import t, { type Test } from 'tap';
import type { Config } from '../../src/config.js';
import { Client, expectReject, sign, startServer, type Harness } from '../helpers.js';

type Headers = Record<string, string | string[]>;
/** `ws` types headers as strings; Node's http sends an array value as one header line per item. */
const lines = (h: Headers) => h as Record<string, string>;

/**
 * The address the server counts for a handshake with these headers, read from the per-address refusal
 * (MAX_CONNECTIONS_PER_IP=1 names the address): one connection holds the slot, the next one is refused.
 */
async function addressOf(t: Test, h: Harness, headers: Headers, url = h.url): Promise<string> {
  const first = await Client.open(`${url}?token=${await sign('holder')}`, { headers: lines(headers) });
  t.teardown(() => first.close());
  const refused = await expectReject(Client.open(`${url}?token=${await sign('probe')}`, { headers: lines(headers) }));
  first.close();
  await first.closed;
  t.equal(refused.status, 429);
  const m = /^too many connections from (\S+)$/.exec(refused.body.error.message as string);
  if (!m) throw new Error(`unexpected refusal ${JSON.stringify(refused.body)}`);
  return m[1]!;
}

const start = (t: Test, overrides: Partial<Config>, env: Record<string, string> = {}) => startServer(t, { maxConnectionsPerIp: 1, ...overrides }, env);

t.test('without TRUSTED_PROXIES the header is ignored: the client is its TCP peer', async (t) => {
  const h = await start(t, {});
  t.equal(await addressOf(t, h, { 'x-forwarded-for': '6.6.6.6' }), '127.0.0.1');
  // Two clients claiming two addresses are one address.
  const a = await Client.open(`${h.url}?token=${await sign('a')}`, { headers: { 'x-forwarded-for': '1.1.1.1' } });
  t.teardown(() => a.close());
  const b = await expectReject(Client.open(`${h.url}?token=${await sign('b')}`, { headers: { 'x-forwarded-for': '2.2.2.2' } }));
  t.match(b, { status: 429, body: { error: { code: 'CONNECTION_LIMIT', message: 'too many connections from 127.0.0.1' } } });
});

t.test('a peer that is not a trusted proxy cannot choose its address, even one inside TRUSTED_PROXIES', async (t) => {
  const h = await start(t, { trustedProxies: ['10.0.0.0/8'] });
  t.equal(await addressOf(t, h, { 'x-forwarded-for': ['6.6.6.6', '10.0.0.1'] }), '127.0.0.1');
});

t.test('from a trusted proxy: every header line is read, the right-most untrusted entry is the client', async (t) => {
  const h = await start(t, { trustedProxies: ['127.0.0.1'] });
  // HAProxy's `option forwardfor` adds its own line after the one the client wrote: uWS's getHeader
  // returns the client's line alone.
  t.equal(await addressOf(t, h, { 'x-forwarded-for': ['6.6.6.6', '203.0.113.7'] }), '203.0.113.7', 'the spoofed first line is not the address');
  t.equal(await addressOf(t, h, { 'x-forwarded-for': '6.6.6.6, 203.0.113.8' }), '203.0.113.8', 'one line, the right-most entry');
  t.equal(await addressOf(t, h, {}), '127.0.0.1', 'no header: the proxy itself');
  // Two clients behind the proxy are two addresses.
  const one = await Client.open(`${h.url}?token=${await sign('a')}`, { headers: lines({ 'x-forwarded-for': ['9.9.9.9', '198.51.100.1'] }) });
  t.teardown(() => one.close());
  const two = await Client.open(`${h.url}?token=${await sign('b')}`, { headers: lines({ 'x-forwarded-for': ['9.9.9.9', '198.51.100.2'] }) });
  t.teardown(() => two.close());
  t.pass('two clients behind one proxy each have their own slot');
});

t.test('a chain of trusted proxies is skipped; an entry that is not an address stops at the last trusted hop', async (t) => {
  const h = await start(t, { trustedProxies: ['127.0.0.1', '10.0.0.0/8', 'fd00::/8'] });
  t.equal(await addressOf(t, h, { 'x-forwarded-for': ['6.6.6.6', '203.0.113.9, 10.1.2.3', '10.0.0.2'] }), '203.0.113.9');
  t.equal(await addressOf(t, h, { 'x-forwarded-for': '2001:DB8:0:0::1, [fd00::1]:443, 10.0.0.3:5000' }), '2001:db8::1', 'IPv6, ports and brackets as proxies write them; canonical text');
  t.equal(await addressOf(t, h, { 'x-forwarded-for': '10.0.0.4, 10.0.0.5' }), '10.0.0.4', 'every entry trusted: the left-most');
  t.equal(await addressOf(t, h, { 'x-forwarded-for': 'unknown, 10.0.0.6' }), '10.0.0.6', 'garbage left of a trusted hop: that hop');
});

t.test('TRUST_PROXY_HEADER names another header; an IPv6 proxy', async (t) => {
  const h = await start(t, { trustedProxies: ['::1'] }, { HOST: '::1', TRUST_PROXY_HEADER: 'X-Real-IP' });
  const url = h.url.replace('127.0.0.1', '[::1]');
  t.equal(await addressOf(t, h, { 'x-real-ip': '203.0.113.10', 'x-forwarded-for': '6.6.6.6' }, url), '203.0.113.10');
  t.equal(await addressOf(t, h, {}, url), '::1', 'the IPv6 peer, in canonical form');
});
