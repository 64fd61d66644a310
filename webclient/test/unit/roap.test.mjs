// Runs the shared ROAP vectors (testdata/vectors/roap.json) against the
// JavaScript model; the Go model runs the same file (roap/message_test.go).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { decodeRoap, encodeRoap, RoapError, RoapType } from '../../src/transfer/roap.js';

const vectors = JSON.parse(readFileSync(fileURLToPath(new URL('../../../testdata/vectors/roap.json', import.meta.url)), 'utf8'));

// Drops null-valued keys, as Go's encoder omits absent optional fields.
function stripNulls(v) {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null).map(([k, x]) => [k, stripNulls(x)]));
  }
  return v;
}

test('vectors are present', () => {
  assert.ok(vectors.valid.length > 5 && vectors.invalid.length > 20);
});

for (const v of vectors.valid) {
  test(`valid: ${v.name}`, () => {
    const m = decodeRoap(v.json);
    assert.deepEqual(JSON.parse(encodeRoap(m)), stripNulls(v.message));
    // Bytes decode like text.
    assert.deepEqual(decodeRoap(new TextEncoder().encode(v.json)), m);
  });
}

for (const v of vectors.invalid) {
  test(`invalid: ${v.name}`, () => {
    assert.throws(() => decodeRoap(v.json), (e) => e instanceof RoapError && e.code === v.error);
  });
}

test('encodeRoap takes an RTCIceCandidate-like object and refuses bad messages', () => {
  const cand = { toJSON: () => ({ candidate: 'candidate:1 1 udp 1 192.0.2.2 9 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: null }) };
  const text = encodeRoap({ type: RoapType.CANDIDATE, from: 'alice', to: 'bob', sessionID: 's', candidate: cand });
  assert.deepEqual(JSON.parse(text).candidate, { candidate: 'candidate:1 1 udp 1 192.0.2.2 9 typ host', sdpMid: '0', sdpMLineIndex: 0 });
  assert.throws(() => encodeRoap({ type: RoapType.OK, from: 'alice', to: 'bob', sessionID: 's', sdp: 'v=0\r\n' }),
    (e) => e.code === 'unexpected_field');
  assert.throws(() => encodeRoap({ type: RoapType.OFFER, from: 'alice', to: 'bob', sessionID: 's' }),
    (e) => e.code === 'missing_field');
});
