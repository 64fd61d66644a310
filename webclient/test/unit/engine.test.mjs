// The JavaScript transfer engine over an in-memory link (no WebRTC):
// re-requests, resume, cancel, decline, SHA-256 verification.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { TransferEngine, MemorySink, TransferErrorCode } from '../../src/transfer/engine.js';
import { decodeFrame, FrameType } from '../../src/transfer/frames.js';
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
      // Reads after hashing and the first few chunks wait for the gate.
      let open;
      const gate = new Promise((r) => { open = r; });
      let reads = 0;
      const source = {
        size: data.length,
        slice: (s, e) => ({ arrayBuffer: async () => { if (++reads > 4) await gate; return data.slice(s, e).buffer; } }),
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
    let reads = 0;
    const source = { size: data.length, slice: (s, e) => { reads++; const b = data.slice(s, e); if (reads > 1 && s === 0) b[0] ^= 1; return b; } };
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
