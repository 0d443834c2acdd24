// Client addresses (src/edge/address.ts): parsing, canonical text, the walk over forwarded entries, and
// TRUSTED_PROXIES / TRUST_PROXY_HEADER checked at start.
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.js';
import { ClientAddresses, formatIp, parseIp } from '../src/edge/address.js';
import { SECRET } from './helpers.js';

const canonical = (s: string) => {
  const b = parseIp(s);
  return b && formatIp(b);
};

t.test('addresses as uWS and proxies write them, in canonical text', async (t) => {
  const cases: [string, string | undefined][] = [
    ['1.2.3.4', '1.2.3.4'],
    [' 9.9.9.9 ', '9.9.9.9'],
    ['1.2.3.4:8080', '1.2.3.4'],
    // uWS writes IPv6 peers in full; an IPv4 client of a `::` listener is IPv4-mapped.
    ['0000:0000:0000:0000:0000:ffff:7f00:0001', '127.0.0.1'],
    ['0000:0000:0000:0000:0000:0000:0000:0001', '::1'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['[2001:db8::1]:443', '2001:db8::1'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0'],
    ['::', '::'],
    ['unknown', undefined],
    ['01.2.3.4', undefined],
    ['256.1.1.1', undefined],
    ['1.2.3', undefined],
    ['1::2::3', undefined],
    ['1:2:3:4:5:6:7:8:9', undefined],
    ['', undefined],
  ];
  for (const [input, want] of cases) t.equal(canonical(input), want, JSON.stringify(input));
});

t.test('the right-most entry that is not a trusted proxy', async (t) => {
  const a = new ClientAddresses(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);
  const peer = parseIp('127.0.0.1')!;
  const cases: [string, string][] = [
    ['', '127.0.0.1'],
    ['6.6.6.6', '6.6.6.6'],
    ['6.6.6.6,1.1.1.1', '1.1.1.1'],
    ['6.6.6.6, 1.1.1.1, 10.0.0.5', '1.1.1.1'],
    ['10.0.0.1,10.0.0.2', '10.0.0.1'],
    ['garbage, 10.0.0.3', '10.0.0.3'],
    ['6.6.6.6,,10.0.0.3', '10.0.0.3'],
    ['fd00::5, 2001:db8::7, fd00::1', '2001:db8::7'],
  ];
  for (const [header, want] of cases) t.equal(a.resolve(peer, header), want, JSON.stringify(header));
  t.ok(a.isTrusted(parseIp('::ffff:10.9.9.9')!), 'an IPv4-mapped address matches its IPv4 block');
  t.notOk(a.isTrusted(parseIp('11.0.0.1')!));
});

t.test('TRUSTED_PROXIES is checked at start, every bad entry named', async (t) => {
  const load = (env: Record<string, string>) => loadConfig({ JWT_SECRET: SECRET, ...env });
  t.same(load({ TRUSTED_PROXIES: '10.0.0.0/8, 192.168.1.5,::1,fd00::/8,::ffff:10.0.0.0/104' }).trustedProxies, ['10.0.0.0/8', '192.168.1.5', '::1', 'fd00::/8', '::ffff:10.0.0.0/104']);
  t.equal(load({}).trustedProxies, undefined, 'default: none (the header is ignored)');
  t.equal(load({}).trustProxyHeader, 'x-forwarded-for');
  t.throws(() => load({ TRUSTED_PROXIES: '10.0.0.1/8,1.2.3.4/33,proxy.local,[::1],10.0.0.1:80' }), new ConfigError([
    'TRUSTED_PROXIES: "10.0.0.1/8" has bits set past /8: did you mean 10.0.0.0/8?',
    'TRUSTED_PROXIES: "1.2.3.4/33": the prefix length must be 0-32',
    'TRUSTED_PROXIES: "proxy.local" is not an IPv4 or IPv6 address or CIDR block (like 10.0.0.0/8 or fd00::/8)',
    'TRUSTED_PROXIES: "[::1]" is not an IPv4 or IPv6 address or CIDR block (like 10.0.0.0/8 or fd00::/8)',
    'TRUSTED_PROXIES: "10.0.0.1:80" is not an IPv4 or IPv6 address or CIDR block (like 10.0.0.0/8 or fd00::/8)',
  ]));
  // The header used to be believed from any peer: alone, it now stops the start and says what to set.
  t.throws(() => load({ TRUST_PROXY_HEADER: 'x-forwarded-for' }), /TRUST_PROXY_HEADER is read only from TRUSTED_PROXIES: set TRUSTED_PROXIES/);
  t.equal(load({ TRUST_PROXY_HEADER: 'X-Real-IP', TRUSTED_PROXIES: '10.0.0.0/8' }).trustProxyHeader, 'X-Real-IP');
  t.throws(() => load({ TRUST_PROXY_HEADER: 'x forwarded', TRUSTED_PROXIES: '10.0.0.0/8' }), /TRUST_PROXY_HEADER must be a header name/);
});
