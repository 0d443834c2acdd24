// Client addresses: the TCP peer, or behind trusted proxies the right-most forwarded entry that is not one of them.
import type { UWS } from '../uws.js';

/** An address as 4 (IPv4) or 16 (IPv6) bytes; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is its IPv4 one. */
type Bytes = Uint8Array;

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseV4(text: string): Bytes | undefined {
  const m = IPV4.exec(text);
  if (!m) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = m[i + 1]!;
    const n = Number(part);
    // No leading zeros: "010.0.0.1" is octal to some parsers and decimal to others.
    if (n > 255 || (part.length > 1 && part.startsWith('0'))) return undefined;
    out[i] = n;
  }
  return out;
}

function parseV6(text: string): Bytes | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const words: number[] = [];
  const push = (parts: string[], last: boolean): boolean => {
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (last && i === parts.length - 1 && p.includes('.')) {
        const v4 = parseV4(p);
        if (!v4) return false;
        words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) words.push(Number.parseInt(p, 16));
      else return false;
    }
    return true;
  };
  if (!push(head, halves.length === 1)) return undefined;
  const headWords = words.length;
  if (!push(tail, true)) return undefined;
  const missing = 8 - words.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...words.slice(0, headWords), ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...words.slice(headWords)];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

const isMapped = (b: Bytes): boolean => b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;

/** `1.2.3.4`, `2001:db8::1`, `::ffff:1.2.3.4` (as IPv4). */
function parseBare(s: string): Bytes | undefined {
  const b = s.includes(':') ? parseV6(s) : parseV4(s);
  return b && isMapped(b) ? b.slice(12) : b;
}

/** An address, also as proxies may write one: with spaces around, `1.2.3.4:5678`, `[2001:db8::1]:443`. */
export function parseIp(text: string): Bytes | undefined {
  let s = text.trim();
  const bracket = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(s);
  if (bracket) s = bracket[1]!;
  else if (/^[\d.]+:\d{1,5}$/.test(s)) s = s.slice(0, s.lastIndexOf(':'));
  return parseBare(s);
}

/** The canonical text of an address (RFC 5952 for IPv6: lower case, the longest run of zero groups as `::`). */
export function formatIp(b: Bytes): string {
  if (b.length === 4) return b.join('.');
  const words = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  return best === -1 ? hex(words) : `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`;
}

interface Cidr {
  readonly bytes: Bytes;
  readonly prefix: number;
}

/** One `TRUSTED_PROXIES` entry: an address, or an address with `/prefix`; a problem's text otherwise. */
function parseCidr(entry: string): Cidr | string {
  const [addr = '', prefixText, extra] = entry.split('/');
  const bytes = parseBare(addr.trim());
  if (!bytes || extra !== undefined) return `"${entry}" is not an IPv4 or IPv6 address or CIDR block (like 10.0.0.0/8 or fd00::/8)`;
  const max = bytes.length * 8;
  // ::ffff:10.0.0.0/104 is 10.0.0.0/8: a mapped address is matched as IPv4.
  const mappedOffset = addr.includes(':') && bytes.length === 4 ? 96 : 0;
  const prefix = prefixText === undefined ? max : Number(prefixText) - mappedOffset;
  if (prefixText !== undefined && (!/^\d{1,3}$/.test(prefixText) || prefix < 0 || prefix > max)) return `"${entry}": the prefix length must be 0-${max + mappedOffset}`;
  for (let bit = prefix; bit < max; bit++) {
    if (bytes[bit >> 3]! & (0x80 >> (bit & 7))) return `"${entry}" has bits set past /${prefixText}: did you mean ${formatIp(masked(bytes, prefix))}/${prefixText}?`;
  }
  return { bytes, prefix };
}

function masked(bytes: Bytes, prefix: number): Bytes {
  const out = bytes.slice();
  for (let bit = prefix; bit < out.length * 8; bit++) out[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return out;
}

function contains(c: Cidr, b: Bytes): boolean {
  if (c.bytes.length !== b.length) return false;
  const whole = c.prefix >> 3;
  for (let i = 0; i < whole; i++) if (c.bytes[i] !== b[i]) return false;
  const rest = c.prefix & 7;
  return rest === 0 || ((c.bytes[whole]! ^ b[whole]!) & (0xff << (8 - rest)) & 0xff) === 0;
}

/** What is wrong with a `TRUSTED_PROXIES` list, one line per bad entry (config.ts reports them at start). */
export function trustedProxiesProblems(entries: readonly string[]): string[] {
  return entries.map(parseCidr).filter((c): c is string => typeof c === 'string').map((p) => `TRUSTED_PROXIES: ${p}`);
}

/**
 * The client address of each request. Without trusted proxies, the TCP peer as uWS writes it. With them,
 * the forwarded header counts only when the peer is one of them: its lines are joined in order (uWS's
 * getHeader returns the first line alone, which the client wrote when a proxy appends a line of its own),
 * and the entries are read from the right, each proxy's own, until the first that is not a trusted proxy:
 * that is the client. Every entry trusted: the left-most. An entry that is not an address stops the walk at
 * the last trusted hop (a proxy that did not write its entry cannot let the client choose one).
 */
export class ClientAddresses {
  private readonly trusted: readonly Cidr[];
  private readonly header: string;

  constructor(trustedProxies: readonly string[] | undefined, header = 'x-forwarded-for') {
    const parsed = (trustedProxies ?? []).map(parseCidr);
    const bad = parsed.find((c) => typeof c === 'string');
    if (bad !== undefined) throw new Error(`TRUSTED_PROXIES: ${bad}`);
    this.trusted = parsed as Cidr[];
    this.header = header.toLowerCase();
  }

  /** Read before the handler returns (uWS reuses the request). */
  of(res: UWS.HttpResponse, req: UWS.HttpRequest): string {
    const peerText = Buffer.from(res.getRemoteAddressAsText()).toString();
    // uWS writes IPv6 peers in full (an IPv4 client of a `::` listener is 0000:...:ffff:7f00:0001).
    if (this.trusted.length === 0 && !peerText.includes(':')) return peerText;
    const peer = parseBare(peerText);
    if (!peer) return peerText;
    if (!this.isTrusted(peer)) return formatIp(peer);
    let forwarded = '';
    req.forEach((name, value) => {
      if (name === this.header) forwarded = forwarded === '' ? value : `${forwarded},${value}`;
    });
    return this.resolve(peer, forwarded);
  }

  /** The client behind a trusted `peer` that sent the (joined) forwarded header. */
  resolve(peer: Bytes, forwarded: string): string {
    let hop = peer;
    const entries = forwarded.split(',');
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = parseIp(entries[i]!);
      if (!entry) break;
      hop = entry;
      if (!this.isTrusted(entry)) break;
    }
    return formatIp(hop);
  }

  isTrusted(b: Bytes): boolean {
    for (const c of this.trusted) if (contains(c, b)) return true;
    return false;
  }
}
