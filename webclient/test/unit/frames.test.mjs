// Runs the shared frame vectors (testdata/vectors/frames.json) against the
// JavaScript codec; the Go codec runs the same file (filexfer/frame_test.go).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  decodeFrame, encodeFrame, FrameError, FrameType, MAX_CHUNK_SIZE, MAX_FRAME_SIZE,
} from '../../src/transfer/frames.js';

const vectors = JSON.parse(readFileSync(fileURLToPath(new URL('../../../testdata/vectors/frames.json', import.meta.url)), 'utf8'));
const fromHex = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
const toHex = (b) => Buffer.from(b).toString('hex');

// The decoded frame in the vectors' JSON shape (bytes as hex).
function plain(f) {
  const o = { ...f };
  if (o.sha256) o.sha256 = toHex(o.sha256);
  if (o.data) o.data = toHex(o.data);
  return o;
}

test('vectors are present', () => {
  assert.ok(vectors.valid.length > 5 && vectors.invalid.length > 10);
});

for (const v of vectors.valid) {
  test(`valid: ${v.name}`, () => {
    const raw = fromHex(v.hex);
    const want = { ...v.frame };
    const reencodeDiffers = want.reencodeDiffers;
    delete want.reencodeDiffers;
    assert.deepEqual(plain(decodeFrame(raw)), want);
    const f = { ...want };
    if (f.sha256) f.sha256 = fromHex(f.sha256);
    if (f.data !== undefined) f.data = fromHex(f.data);
    const enc = encodeFrame(f);
    assert.equal(toHex(enc) === v.hex, !reencodeDiffers, `encode: ${toHex(enc).slice(0, 80)}...`);
  });
}

for (const v of vectors.invalid) {
  test(`invalid: ${v.name}`, () => {
    assert.throws(() => decodeFrame(fromHex(v.hex)), (e) => e instanceof FrameError && e.code === v.error);
  });
}

test('decodes from an ArrayBuffer and a Uint8Array view with an offset', () => {
  const raw = encodeFrame({ type: FrameType.CANCEL, fileID: 'abc' });
  const padded = new Uint8Array(raw.length + 5);
  padded.set(raw, 5);
  assert.equal(decodeFrame(padded.subarray(5)).fileID, 'abc');
  assert.equal(decodeFrame(raw.slice().buffer).fileID, 'abc');
});

test('the largest chunk fits exactly; one more byte is refused', () => {
  const fileID = 'F'.repeat(64);
  const data = new Uint8Array(MAX_CHUNK_SIZE);
  assert.equal(encodeFrame({ type: FrameType.CHUNK, fileID, chunkID: 0, data }).length, MAX_FRAME_SIZE);
  assert.throws(() => encodeFrame({ type: FrameType.CHUNK, fileID, chunkID: 0, data: new Uint8Array(MAX_CHUNK_SIZE + 1) }),
    (e) => e.code === 'too_big');
});

test('encode refuses what decode would refuse', () => {
  const sha256 = new Uint8Array(32);
  for (const [f, code] of [
    [{ type: FrameType.CANCEL, fileID: '' }, 'invalid_field'],
    [{ type: 0x01, fileID: 'x' }, 'unknown_type'],
    [{ type: FrameType.REQUEST, fileID: 'x', ranges: [] }, 'invalid_field'],
    [{ type: FrameType.REQUEST, fileID: 'x', ranges: [[2 ** 32 - 1, 2]] }, 'invalid_field'],
    [{ type: FrameType.DESCRIBE, fileID: 'x', name: 'a', size: 2 ** 53, mime: '', sha256, chunkSize: 1 }, 'invalid_field'],
    [{ type: FrameType.DESCRIBE, fileID: 'x', name: 'a', size: 1, mime: '', sha256, chunkSize: 0 }, 'invalid_field'],
  ]) {
    assert.throws(() => encodeFrame(f), (e) => e instanceof FrameError && e.code === code, JSON.stringify(f));
  }
});

test('random bytes never crash the decoder', () => {
  let seed = 1;
  const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
  const seeds = vectors.valid.map((v) => fromHex(v.hex)).filter((b) => b.length < 4096);
  for (let i = 0; i < 20000; i++) {
    const base = seeds[i % seeds.length];
    const b = base.slice(0, rnd() % (base.length + 1));
    if (b.length) b[rnd() % b.length] = rnd() & 0xff;
    try {
      const f = decodeFrame(b);
      const again = decodeFrame(encodeFrame(f));
      assert.deepEqual(plain(again), plain(f));
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
    }
  }
});
