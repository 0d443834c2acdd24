// Standard Webhooks signatures (https://www.standardwebhooks.com/): what the sender puts on each request and
// what a receiver (our tests, the demo receiver) checks.
//
// - A secret is `whsec_<base64>`; the HMAC key is the base64-decoded bytes. The prefix is optional, as in the
//   reference libraries, but the rest is base64 either way: a secret read as raw UTF-8 bytes would be a
//   different key from the one the receiver's Standard Webhooks library derives from the same string, and
//   every signature would fail there. A string that is not base64, or decodes to fewer than 24 bytes (the
//   spec's minimum), is refused with an error naming the problem (never the secret).
// - Headers: `webhook-id` (the event id, the same on every retry), `webhook-timestamp` (unix seconds of this
//   attempt), `webhook-signature`: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, one per secret,
//   space-separated (several secrets during a rotation: the receiver accepts any of them).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const PREFIX = 'whsec_';
const MIN_KEY_BYTES = 24;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The HMAC key of a secret; throws on a secret that is not `[whsec_]<base64 of at least 24 bytes>`. */
export function secretKey(secret: string): Buffer {
  const b64 = secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret;
  if (!BASE64.test(b64) || b64.length % 4 === 1) throw new Error('webhook secret: expected whsec_ followed by base64');
  const key = Buffer.from(b64, 'base64');
  if (key.length < MIN_KEY_BYTES) throw new Error(`webhook secret: the key is ${key.length} bytes, at least ${MIN_KEY_BYTES} are needed`);
  return key;
}

/** `whsec_` + 32 random bytes in base64. */
export function generateSecret(): string {
  return PREFIX + randomBytes(32).toString('base64');
}

function digest(key: Buffer, id: string, timestamp: number | string, body: string): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
}

/** A signer for a list of secrets, decoded once (a bad secret throws here, at configuration time). */
export class Signer {
  private readonly keys: Buffer[];

  constructor(secrets: readonly string[]) {
    if (secrets.length === 0) throw new Error('webhook secret: at least one is needed');
    this.keys = secrets.map(secretKey);
  }

  /** The `webhook-signature` value: `v1,<sig>` for each secret, space-separated. */
  signature(id: string, timestampS: number, body: string): string {
    return this.keys.map((k) => `v1,${digest(k, id, timestampS, body).toString('base64')}`).join(' ');
  }

  /** The three headers of one attempt. */
  headers(id: string, body: string, nowMs = Date.now()): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
    const ts = Math.floor(nowMs / 1000);
    return { 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': this.signature(id, ts, body) };
  }
}

/** `webhook-signature` for one secret (the spec's test vector is stated this way). */
export function sign(secret: string, id: string, timestampS: number, body: string): string {
  return new Signer([secret]).signature(id, timestampS, body);
}

export type VerifyResult = { ok: true } | { ok: false; reason: 'missing headers' | 'bad timestamp' | 'timestamp out of tolerance' | 'no matching signature' };

type HeaderBag = Readonly<Record<string, string | readonly string[] | undefined>>;

function header(headers: HeaderBag, name: string): string | undefined {
  const v = headers[name] ?? headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : (v as string | undefined);
}

/**
 * Checks a request as a receiver would: the timestamp within `toleranceS` of now (either way), and one of the
 * `v1,` signatures equal (constant time) to the HMAC under `secret`. `headers` as Node gives them (lower case).
 */
export function verify(secret: string, headers: HeaderBag, body: string, toleranceS = 300, nowMs = Date.now()): VerifyResult {
  const id = header(headers, 'webhook-id');
  const tsText = header(headers, 'webhook-timestamp');
  const sigs = header(headers, 'webhook-signature');
  if (id === undefined || tsText === undefined || sigs === undefined) return { ok: false, reason: 'missing headers' };
  if (!/^\d{1,12}$/.test(tsText)) return { ok: false, reason: 'bad timestamp' };
  if (Math.abs(nowMs / 1000 - Number(tsText)) > toleranceS) return { ok: false, reason: 'timestamp out of tolerance' };
  const expected = digest(secretKey(secret), id, tsText, body);
  for (const part of sigs.split(' ')) {
    const comma = part.indexOf(',');
    if (comma < 0 || part.slice(0, comma) !== 'v1') continue;
    const given = Buffer.from(part.slice(comma + 1), 'base64');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true };
  }
  return { ok: false, reason: 'no matching signature' };
}
