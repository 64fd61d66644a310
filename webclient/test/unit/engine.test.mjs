// The JavaScript transfer engine over an in-memory link (no WebRTC):
// re-requests, resume, cancel, decline, SHA-256 verification.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { TransferEngine, MemorySink, TransferErrorCode } from '../../src/transfer/engine.js';
import { decodeFrame, encodeFrame, FrameType } from '../../src/transfer/frames.js';
import { sha256, SHA256 } from '../../src/transfer/sha256.js';

// One direction of a link: frames reach `to` in order, unless drop() says so.
class Link {
  constructor(to, drop = () => false) {
    this.to = to;
    this.drop = drop;
    this.closed = false;
    this.chain = Promise.resolve();
    this.local = null; // the receiving engine's own channel for this link
  }

  async send(bytes) {
    if (this.closed) throw new Error('link closed');
    if (this.drop(bytes)) return;
    const copy = bytes.slice();
    this.chain = this.chain.then(() => (this.closed ? null : this.to.handleFrame(this.local, copy))).catch(() => {});
  }
}

function pair({ drop, accept = true, ...opts } = {}) {
  const results = new Map();
  const sinks = new Map();
  const progress = new Map();
  const onDone = (r) => results.set(`${r.dir}:${r.file.fileID}`, r);
  const a = new TransferEngine({ ...opts, onDone });
  const b = new TransferEngine({
    ...opts,
    onDone,
    onProgress: (p) => progress.set(p.file.fileID, p),
    onOffer: (info) => {
      const sink = new MemorySink();
      sinks.set(info.fileID, sink);
      queueMicrotask(() => (accept ? b.accept(info.fileID, sink) : b.decline(info.fileID)));
    },
  });
  const p = { a, b, results, sinks, progress };
  p.connect = () => {
    p.ab = new Link(b, drop);
    p.ba = new Link(a);
    p.ab.local = p.ba;
    p.ba.local = p.ab;
    a.attach(p.ab);
    b.attach(p.ba);
  };
  p.disconnect = () => {
    a.detach(p.ab);
    b.detach(p.ba);
    p.ab.closed = true;
    p.ba.closed = true;
  };
  p.close = () => { a.close(); b.close(); };
  p.connect();
  return p;
}

async function waitFor(what, cond, ms = 20000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function bothDone(p, id) {
  await waitFor(`results of ${id}`, () => p.results.has(`sending:${id}`) && p.results.has(`receiving:${id}`));
  return [p.results.get(`sending:${id}`), p.results.get(`receiving:${id}`)];
}

const blobOf = (bytes) => new Blob([bytes]);
const hex = (b) => Buffer.from(b).toString('hex');

test('sha256 matches node:crypto, whole and incremental', () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 1000, 70000]) {
    const b = randomBytes(n);
    const want = createHash('sha256').update(b).digest('hex');
    assert.equal(hex(sha256(new Uint8Array(b))), want);
    const h = new SHA256();
    for (let i = 0; i < n; i += 13) h.update(new Uint8Array(b.subarray(i, i + 13)));
    assert.equal(hex(h.digest()), want);
  }
});

test('transfers files of awkward sizes, progress reaches 100%', async () => {
  const p = pair();
  try {
    for (const size of [0, 1, 16384, 16385, 300001]) {
      const data = new Uint8Array(randomBytes(size));
      const info = await p.a.sendFile(blobOf(data), { name: `f${size}`, mime: 'application/octet-stream' });
      const [s, r] = await bothDone(p, info.fileID);
      assert.equal(s.error, null);
      assert.equal(r.error, null);
      assert.deepEqual(p.sinks.get(info.fileID).bytes(), data);
      if (size > 0) assert.equal(p.progress.get(info.fileID).bytes, size);
    }
  } finally { p.close(); }
});

test('recovers dropped chunks through re-requests', async () => {
  let n = 0;
  const p = pair({ drop: (b) => b[0] === FrameType.CHUNK && ++n % 7 === 0, requestTimeout: 200 });
  try {
    const data = new Uint8Array(randomBytes(2 << 20));
    const info = await p.a.sendFile(blobOf(data));
    const [, r] = await bothDone(p, info.fileID);
    assert.equal(r.error, null);
    assert.deepEqual(p.sinks.get(info.fileID).bytes(), data);
    assert.ok(p.b.stats(info.fileID).reRequests > 0);
  } finally { p.close(); }
});

test('recovers a lost last chunk by timeout', async () => {
  let dropped = false;
  const p = pair({
    requestTimeout: 100,
    drop: (b) => {
      if (b[0] !== FrameType.CHUNK || dropped) return false;
      if (decodeFrame(b).chunkID !== 9) return false;
      dropped = true;
      return true;
    },
  });
  try {
    const data = new Uint8Array(randomBytes(10 * 16384));
    const info = await p.a.sendFile(blobOf(data));
    const [, r] = await bothDone(p, info.fileID);
    assert.equal(r.error, null);
    assert.ok(dropped);
    assert.equal(p.b.stats(info.fileID).reRequests, 1);
  } finally { p.close(); }
});

test('resumes after reconnect, fetching only the missing chunks', async () => {
  let cut = false;
  let count = 0;
  const p = pair({ requestTimeout: 60000, drop: (b) => b[0] === FrameType.CHUNK && (cut || (++count > 100 && (cut = true))) });
  try {
    const data = new Uint8Array(randomBytes(400 * 16384));
    const info = await p.a.sendFile(blobOf(data));
    await waitFor('100 chunks', () => p.b.stats(info.fileID)?.received === 100);
    p.disconnect();
    await new Promise((r) => setTimeout(r, 0));
    const before = p.b.stats(info.fileID);
    const sentBefore = p.a.stats(info.fileID).sent;
    assert.equal(before.missing, 300);
    cut = false;
    count = -Infinity;
    p.connect();
    const [, r] = await bothDone(p, info.fileID);
    assert.equal(r.error, null);
    const after = p.b.stats(info.fileID);
    assert.equal(after.requested - before.requested, 300);
    assert.equal(after.received - before.received, 300);
    assert.equal(p.a.stats(info.fileID).sent - sentBefore, 300);
    assert.deepEqual(p.sinks.get(info.fileID).bytes(), data);
  } finally { p.close(); }
});

for (const side of ['sender', 'receiver']) {
  test(`cancel from the ${side}`, async () => {
    const p = pair({ window: 2 });
    try {
      const data = new Uint8Array(randomBytes(1 << 20));
      // Chunk reads after the first few wait for the gate (hashing reads
      // more at a time and is free).
      let open;
      const gate = new Promise((r) => { open = r; });
      let reads = 0;
      const source = {
        size: data.length,
        slice: (s, e) => ({ arrayBuffer: async () => { if (e - s <= 16384 && ++reads > 4) await gate; return data.slice(s, e).buffer; } }),
      };
      const info = await p.a.sendFile(source, { name: 'slow' });
      await waitFor('progress', () => (p.b.stats(info.fileID)?.received ?? 0) >= 3);
      (side === 'sender' ? p.a : p.b).cancel(info.fileID);
      open();
      const [s, r] = await bothDone(p, info.fileID);
      assert.equal(s.error.code, TransferErrorCode.CANCELLED);
      assert.equal(r.error.code, TransferErrorCode.CANCELLED);
      assert.equal(s.remote, side === 'receiver');
      assert.equal(r.remote, side === 'sender');
    } finally { p.close(); }
  });
}

test('decline', async () => {
  const p = pair({ accept: false });
  try {
    const info = await p.a.sendFile(blobOf(new Uint8Array([1, 2, 3])));
    const [s, r] = await bothDone(p, info.fileID);
    assert.equal(r.error.code, TransferErrorCode.DECLINED);
    assert.equal(s.error.code, TransferErrorCode.DECLINED); // from the cancel's reason
    assert.ok(s.remote);
  } finally { p.close(); }
});

test('a file that changed after hashing fails verification', async () => {
  const p = pair();
  try {
    const data = new Uint8Array(randomBytes(100000));
    // The hashing pass (reads larger than a chunk) sees the file as it was; chunk 0 has changed.
    const source = { size: data.length, slice: (s, e) => { const b = data.slice(s, e); if (e - s <= 16384 && s === 0) b[0] ^= 1; return b; } };
    const info = await p.a.sendFile(source, { name: 'x' });
    const [s, r] = await bothDone(p, info.fileID);
    assert.equal(r.error.code, TransferErrorCode.HASH_MISMATCH);
    assert.equal(s.error.code, TransferErrorCode.HASH_MISMATCH);
  } finally { p.close(); }
});

test('several files at once', async () => {
  const p = pair();
  try {
    const files = [1, 2, 3].map((i) => new Uint8Array(randomBytes(200000 + i * 777)));
    const infos = await Promise.all(files.map((d) => p.a.sendFile(blobOf(d))));
    for (const [i, info] of infos.entries()) {
      const [, r] = await bothDone(p, info.fileID);
      assert.equal(r.error, null);
      assert.deepEqual(p.sinks.get(info.fileID).bytes(), files[i]);
    }
  } finally { p.close(); }
});

// A source whose hashing pass (reads larger than a chunk) is held after
// `free` reads until open(); chunk reads go through.
function gatedSource(data, free = 0) {
  let open;
  const gate = new Promise((r) => { open = r; });
  const g = {
    size: data.length,
    hashReads: 0,
    open,
    slice: (s, e) => ({
      arrayBuffer: async () => {
        if (e - s > 16384 && ++g.hashReads > free) await gate;
        return data.slice(s, e).buffer;
      },
    }),
  };
  return g;
}

test('the describe goes out and chunks are served before the file is hashed', { timeout: 30000 }, async () => {
  const p = pair();
  try {
    const data = new Uint8Array(randomBytes(3 << 20));
    const src = gatedSource(data);
    const info = await p.a.sendFile(src, { name: 'big' });
    assert.ok(info.sha256.every((b) => b === 0), 'sha256 is zero until hashed');
    await waitFor('every chunk received', () => p.b.stats(info.fileID)?.missing === 0);
    assert.ok(src.hashReads <= 1, `${src.hashReads} hash reads went through`);
    assert.equal(p.results.size, 0, 'nothing ends before the digest');
    src.open();
    const [s, r] = await bothDone(p, info.fileID);
    assert.equal(s.error, null);
    assert.equal(r.error, null);
    const want = createHash('sha256').update(data).digest('hex');
    assert.equal(hex(s.file.sha256), want);
    assert.equal(hex(r.file.sha256), want);
  } finally { p.close(); }
});

test('a digest lost with the channel is made good by the describe after reconnect', { timeout: 30000 }, async () => {
  let dropDigests = true;
  let dropped = 0;
  const p = pair({ drop: (b) => b[0] === FrameType.DIGEST && dropDigests && ++dropped > 0 });
  try {
    const data = new Uint8Array(randomBytes(64 * 16384));
    const info = await p.a.sendFile(blobOf(data));
    await waitFor('digest dropped, sink hashed', () => dropped === 1 && p.b.in.get(info.fileID)?.sum);
    assert.equal(p.results.size, 0);
    p.disconnect();
    dropDigests = false;
    p.connect();
    const [s, r] = await bothDone(p, info.fileID);
    assert.equal(s.error, null);
    assert.equal(r.error, null);
  } finally { p.close(); }
});

test('cancelling a file being hashed stops reading it; the next file is hashed', { timeout: 30000 }, async () => {
  const p = pair({ accept: false });
  const sent = [];
  p.a.detach(p.ab);
  p.a.attach({ send: async (b) => { sent.push(decodeFrame(b)); } });
  try {
    const src = gatedSource(new Uint8Array(8 << 20), 1);
    const info = await p.a.sendFile(src, { name: 'big' });
    await waitFor('second hash read held', () => src.hashReads === 2);
    p.a.cancel(info.fileID);
    src.open();
    const next = await p.a.sendFile(blobOf(new Uint8Array([1, 2, 3])));
    await waitFor('next digest', () => sent.some((f) => f.type === FrameType.DIGEST && f.fileID === next.fileID));
    assert.equal(src.hashReads, 2);
    assert.ok(!sent.some((f) => f.type === FrameType.DIGEST && f.fileID === info.fileID));
  } finally { p.close(); }
});

// A receiving engine fed frames by the test, standing in for a sender.
function feeder() {
  const sent = [];
  const results = [];
  const ch = { send: async (b) => { sent.push(decodeFrame(b)); } };
  const e = new TransferEngine({ onDone: (r) => results.push(r), onOffer: (info) => e.accept(info.fileID, new MemorySink()) });
  e.attach(ch);
  const feed = (f) => e.handleFrame(ch, encodeFrame(f));
  return { e, sent, results, feed };
}

const zeros = new Uint8Array(32);
const wrong = sha256(new TextEncoder().encode('something else'));

for (const tc of [
  { name: 'hash in the describe (a sender without digests)', steps: ['describe-good', 'chunks 0 3'], ok: true },
  { name: 'digest before any chunk', steps: ['describe', 'digest', 'chunks 0 3'], ok: true },
  { name: 'digest before the last chunk', steps: ['describe', 'chunks 0 2', 'digest', 'chunks 2 3'], ok: true },
  { name: 'digest after the last chunk', steps: ['describe', 'chunks 0 3', 'waiting', 'digest'], ok: true },
  { name: 're-describe with the hash stands in for the digest', steps: ['describe', 'chunks 0 3', 'waiting', 'describe-good'], ok: true },
  { name: 'mismatch, digest after the last chunk', steps: ['describe', 'chunks 0 3', 'waiting', 'digest-wrong'], ok: false },
  { name: 'mismatch, digest before the chunks', steps: ['describe', 'digest-wrong', 'chunks 0 3'], ok: false },
]) {
  test(`receiver: ${tc.name}`, { timeout: 30000 }, async () => {
    const { e, sent, results, feed } = feeder();
    try {
      const data = new Uint8Array(randomBytes(2500));
      const fileID = 'f1';
      const sum = sha256(data);
      const describe = (sha) => ({ type: FrameType.DESCRIBE, fileID, name: 'f', mime: '', size: data.length, sha256: sha, chunkSize: 1000 });
      for (const step of tc.steps) {
        const [what, a, b] = step.split(' ');
        if (what === 'describe') await feed(describe(zeros));
        else if (what === 'describe-good') await feed(describe(sum));
        else if (what === 'digest') await feed({ type: FrameType.DIGEST, fileID, sha256: sum });
        else if (what === 'digest-wrong') await feed({ type: FrameType.DIGEST, fileID, sha256: wrong });
        else if (what === 'chunks') {
          for (let c = Number(a); c < Number(b); c++) await feed({ type: FrameType.CHUNK, fileID, chunkID: c, data: data.subarray(c * 1000, (c + 1) * 1000) });
        } else if (what === 'waiting') {
          await waitFor('sink hashed', () => e.in.get(fileID).sum);
          assert.equal(results.length, 0, 'concluded before the digest');
          assert.ok(!sent.some((f) => f.type === FrameType.COMPLETE || f.type === FrameType.CANCEL));
        }
      }
      await waitFor('result', () => results.length > 0);
      const ends = sent.filter((f) => f.type === FrameType.COMPLETE || f.type === FrameType.CANCEL);
      assert.equal(ends.length, 1);
      if (tc.ok) {
        assert.equal(results[0].error, null);
        assert.equal(ends[0].type, FrameType.COMPLETE);
        assert.equal(hex(results[0].file.sha256), hex(sum));
      } else {
        assert.equal(results[0].error.code, TransferErrorCode.HASH_MISMATCH);
        assert.equal(ends[0].type, FrameType.CANCEL);
        assert.equal(ends[0].reason, 2);
      }
    } finally { e.close(); }
  });
}

test('receiver: digests that make no sense are refused and change nothing', { timeout: 30000 }, async () => {
  const { e, results, feed } = feeder();
  try {
    const data = new Uint8Array(randomBytes(2500));
    const sum = sha256(data);
    await assert.rejects(feed({ type: FrameType.DIGEST, fileID: 'nobody', sha256: sum }), (err) => err.code === 'unknown');
    await feed({ type: FrameType.DESCRIBE, fileID: 'f1', name: 'f', mime: '', size: data.length, sha256: zeros, chunkSize: 1000 });
    await assert.rejects(feed({ type: FrameType.DIGEST, fileID: 'f1', sha256: zeros }), (err) => err.code === 'protocol');
    await feed({ type: FrameType.DIGEST, fileID: 'f1', sha256: sum });
    await assert.rejects(feed({ type: FrameType.DIGEST, fileID: 'f1', sha256: wrong }), (err) => err.code === 'protocol');
    await assert.rejects(feed({ type: FrameType.DESCRIBE, fileID: 'f1', name: 'f', mime: '', size: data.length, sha256: wrong, chunkSize: 1000 }),
      (err) => err.code === 'protocol');
    for (let c = 0; c < 3; c++) await feed({ type: FrameType.CHUNK, fileID: 'f1', chunkID: c, data: data.subarray(c * 1000, (c + 1) * 1000) });
    await waitFor('result', () => results.length > 0);
    assert.equal(results[0].error, null);
  } finally { e.close(); }
});
