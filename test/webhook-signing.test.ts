// Standard Webhooks signatures (src/webhooks/signing.ts): the spec's published vector, and what verify() refuses.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { Signer, generateSecret, secretKey, sign, verify } from '../src/webhooks/signing.js';

// The reference libraries' test vector (standard-webhooks / svix: testSignFunctionWorks).
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const TS = 1614265330;
const PAYLOAD = '{"test": 2432232314}';
const EXPECTED = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
const AT = TS * 1000;

const headers = (sig: string, id = ID, ts = TS) => ({ 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': sig });

t.test('the published test vector', async (t) => {
  t.equal(sign(SECRET, ID, TS, PAYLOAD), EXPECTED);
  t.equal(sign(SECRET.slice('whsec_'.length), ID, TS, PAYLOAD), EXPECTED, 'the prefix is optional, as in the reference libraries');
  t.same(verify(SECRET, headers(EXPECTED), PAYLOAD, 300, AT), { ok: true });
});

t.test('verify refuses what was not signed with the secret', async (t) => {
  t.same(verify(SECRET, headers(EXPECTED), '{"test": 2432232315}', 300, AT), { ok: false, reason: 'no matching signature' }, 'tampered body');
  t.same(verify(SECRET, headers(EXPECTED, 'msg_other'), PAYLOAD, 300, AT), { ok: false, reason: 'no matching signature' }, 'wrong id');
  t.same(verify(SECRET, headers(EXPECTED, ID, TS + 1), PAYLOAD, 300, AT), { ok: false, reason: 'no matching signature' }, 'timestamp changed');
  t.same(verify(generateSecret(), headers(EXPECTED), PAYLOAD, 300, AT), { ok: false, reason: 'no matching signature' }, 'wrong secret');
  t.same(verify(SECRET, headers(`v2,${EXPECTED.slice(3)}`), PAYLOAD, 300, AT), { ok: false, reason: 'no matching signature' }, 'another scheme is not v1');
  t.same(verify(SECRET, { 'webhook-id': ID }, PAYLOAD, 300, AT), { ok: false, reason: 'missing headers' });
  t.same(verify(SECRET, headers(EXPECTED, ID, Number.NaN), PAYLOAD, 300, AT), { ok: false, reason: 'bad timestamp' });
});

t.test('the timestamp tolerance', async (t) => {
  t.same(verify(SECRET, headers(EXPECTED), PAYLOAD, 300, AT + 300_000), { ok: true }, 'at the bound');
  t.same(verify(SECRET, headers(EXPECTED), PAYLOAD, 300, AT + 301_000), { ok: false, reason: 'timestamp out of tolerance' }, 'too old');
  t.same(verify(SECRET, headers(EXPECTED), PAYLOAD, 300, AT - 301_000), { ok: false, reason: 'timestamp out of tolerance' }, 'too far ahead');
  t.same(verify(SECRET, headers(EXPECTED), PAYLOAD, 3600, AT + 301_000), { ok: true }, 'a wider tolerance');
});

t.test('several secrets (a rotation): one signature each, any one verifies', async (t) => {
  const next = generateSecret();
  const h = new Signer([SECRET, next]).headers(ID, PAYLOAD, AT);
  const sigs = h['webhook-signature'].split(' ');
  t.equal(sigs.length, 2);
  t.equal(sigs[0], EXPECTED, 'the first is the old secret\'s');
  t.equal(h['webhook-timestamp'], String(TS));
  t.same(verify(SECRET, h, PAYLOAD, 300, AT), { ok: true }, 'a receiver on the old secret');
  t.same(verify(next, h, PAYLOAD, 300, AT), { ok: true }, 'a receiver on the new secret');
  t.same(verify(generateSecret(), h, PAYLOAD, 300, AT).ok, false, 'a receiver on neither');
  t.throws(() => new Signer([]), /at least one/);
});

t.test('secrets', async (t) => {
  const s = generateSecret();
  t.match(s, /^whsec_[A-Za-z0-9+/]{43}=$/);
  t.equal(secretKey(s).length, 32);
  t.not(generateSecret(), s);
  t.throws(() => secretKey('whsec_not base64!'), /expected whsec_ followed by base64/);
  t.throws(() => secretKey('whsec_c2hvcnQ='), /5 bytes, at least 24/);
  t.throws(() => secretKey(''), /webhook secret/);
});

t.test("protocol.md's Node verify() snippet accepts what storywire signs and refuses the rest", async (t) => {
  const doc = readFileSync(new URL('../protocol.md', import.meta.url), 'utf8');
  const block = /Verifying it in Node[^\n]*\n\n```js\n([\s\S]*?)\n```/.exec(doc);
  t.ok(block, 'the snippet is in protocol.md');
  // The snippet as a reader pastes it: its one import replaced by the same functions.
  const source = block![1]!.replace("import { createHmac, timingSafeEqual } from 'node:crypto';", '');
  const docVerify = new Function('createHmac', 'timingSafeEqual', `${source}\nreturn verify;`)(createHmac, timingSafeEqual) as (secret: string, h: Record<string, string>, body: string) => boolean;
  const now = Math.floor(Date.now() / 1000);
  const a = generateSecret();
  const b = generateSecret();
  const body = '{"type":"user.online","timestamp":"2026-12-02T10:00:00.000Z","data":{"userId":"bob"}}';
  const signed = (secrets: string[], ts = now) => headers(secrets.map((s) => sign(s, ID, ts, body)).join(' '), ID, ts);
  t.equal(docVerify(a, signed([a]), body), true, 'a signature of storywire');
  t.equal(docVerify(b, signed([a, b]), body), true, 'rotation: the second of two signatures');
  t.equal(docVerify(b, signed([a]), body), false, 'another secret');
  t.equal(docVerify(a, signed([a]), body.replace('bob', 'eve')), false, 'a changed body');
  t.equal(docVerify(a, signed([a], now - 600), body), false, 'a timestamp 10 minutes old');
  t.equal(verify(a, signed([a]), body).ok, true, 'and verify() agrees');
});
