// @ts-check
// Receiver-driven file transfer over an RTCDataChannel: the JavaScript twin
// of the Go filexfer.Engine (filexfer/engine.go), speaking the frames of
// frames.js. The receiver asks for the chunks it lacks, `window` at a time
// (flow control), asks again for chunks that do not arrive (early, from the
// order chunks come back in, and after `requestTimeout`), and after
// attach() with a new channel asks only for what is still missing (resume).
// A sender describes a file at once (sha256 all zero: "digest follows"),
// serves chunks while it hashes the file in the background, and sends the
// SHA-256 in a digest frame; the receiver verifies it before a file is
// reported done.

import {
  CancelReason, decodeFrame, encodeFrame, FrameType, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_RANGES_PER_REQUEST,
} from './frames.js';
import { SHA256 } from './sha256.js';

/** Why a transfer ended (Result.error.code). */
export const TransferErrorCode = Object.freeze({
  CANCELLED: 'cancelled',
  DECLINED: 'declined',
  HASH_MISMATCH: 'hash_mismatch',
  CLOSED: 'closed',
  IO: 'io',
  UNKNOWN_FILE: 'unknown_file',
});

// What a peer's cancel reason means for our side of the transfer.
const reasonCodes = new Map([
  [CancelReason.DECLINED, TransferErrorCode.DECLINED],
  [CancelReason.HASH_MISMATCH, TransferErrorCode.HASH_MISMATCH],
  [CancelReason.IO, TransferErrorCode.IO],
  [CancelReason.UNKNOWN_FILE, TransferErrorCode.UNKNOWN_FILE],
  // A receiver's limits: to the sender's user, the file was declined.
  [CancelReason.TOO_LARGE, TransferErrorCode.DECLINED],
  [CancelReason.BUSY, TransferErrorCode.DECLINED],
]);

export class TransferError extends Error {
  constructor(code, message) {
    super(`filexfer: ${message}`);
    this.name = 'TransferError';
    this.code = code;
  }
}

const randomID = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
const chunksOf = (info) => Math.ceil(info.size / info.chunkSize);
const chunkLen = (info, c) => Math.min(info.chunkSize, info.size - c * info.chunkSize);
/** A describe's sha256 of zeros means the sender has not hashed the file yet. */
const hashKnown = (info) => info.sha256.some((b) => b !== 0);
// The sender hashes in reads of this size. Larger than transfers.js's
// BlockSource blocks, so these reads go to the file directly and do not
// evict the blocks the chunks are being served from.
const HASH_BLOCK = 2 << 20;
// Hashing holds the event loop at most about this long before it lets
// other tasks run (chunk requests, the data channel's events, the UI): it
// hashes a read in pieces of HASH_PIECE bytes (~2 ms each) and looks at
// the clock between them.
const HASH_SLICE_MS = 10;
const HASH_PIECE = 256 << 10;

/**
 * Adapts an RTCDataChannel: send() resolves once the frame is queued and
 * waits while more than maxBuffered bytes are buffered (Chrome fails at
 * ~16 MiB buffered; bigger buffers only add latency).
 */
export class DataChannelTransport {
  constructor(dc, { maxBuffered = 1 << 20, lowThreshold = 16 * 1024 } = {}) {
    this.dc = dc;
    this.maxBuffered = maxBuffered;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = lowThreshold;
    this.waiters = [];
    dc.addEventListener('bufferedamountlow', () => this.wake());
    dc.addEventListener('close', () => this.wake());
  }

  wake() {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  async send(frame) {
    while (this.dc.bufferedAmount > this.maxBuffered && this.dc.readyState === 'open') {
      await new Promise((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50); // in case an event is missed
      });
    }
    if (this.dc.readyState !== 'open') throw new TransferError(TransferErrorCode.CLOSED, 'data channel closed');
    this.dc.send(frame);
  }

  /** Feeds the channel's messages to engine and detaches it on close. */
  bind(engine) {
    this.dc.addEventListener('message', (ev) => {
      // A frame the engine refuses has ended its transfer (onDone reports
      // it); the channel goes on for the others.
      if (typeof ev.data !== 'string') engine.handleFrame(this, ev.data).catch((err) => console.debug('transfer: frame refused:', err));
    });
    this.dc.addEventListener('close', () => engine.detach(this));
    if (this.dc.readyState === 'open') engine.attach(this);
    else this.dc.addEventListener('open', () => engine.attach(this), { once: true });
    return this;
  }
}

/** An in-memory sink; large files should use an OPFS-backed sink instead. */
export class MemorySink {
  constructor() { this.buf = new Uint8Array(0); this.length = 0; }

  async write(offset, bytes) {
    const end = offset + bytes.length;
    if (end > this.buf.length) {
      const grown = new Uint8Array(Math.max(end, this.buf.length * 2));
      grown.set(this.buf.subarray(0, this.length));
      this.buf = grown;
    }
    this.buf.set(bytes, offset);
    this.length = Math.max(this.length, end);
  }

  async read(offset, length) { return this.buf.slice(offset, Math.min(offset + length, this.length)); }

  bytes() { return this.buf.subarray(0, this.length); }
}

/**
 * new TransferEngine({ onOffer(info), onProgress({file, dir, bytes, bytesPerSec}),
 *   onDone({file, dir, error, remote}), chunkSize, window, requestTimeout, now })
 *
 * A channel is any object with async send(Uint8Array). A source is a Blob
 * (File) or {size, slice(start, end) -> Blob|Uint8Array}. A sink has async
 * write(offset, bytes) and async read(offset, length) (read back to verify).
 */
export class TransferEngine {
  constructor(opts = {}) {
    this.chunkSize = Math.min(opts.chunkSize ?? DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE);
    this.window = opts.window ?? 64;
    this.requestTimeout = opts.requestTimeout ?? 2000;
    this.progressInterval = opts.progressInterval ?? 100;
    this.unordered = !!opts.unordered;
    this.onOffer = opts.onOffer ?? null;
    this.onProgress = opts.onProgress ?? (() => {});
    this.onDone = opts.onDone ?? (() => {});
    this.now = opts.now ?? (() => performance.now());
    this.ch = null;
    this.dead = [];
    this.out = new Map();
    this.in = new Map();
    this.queue = [];
    this.sending = false;
    this.closed = false;
    this.rx = Promise.resolve();
    this.hashing = Promise.resolve(); // files are hashed one at a time, in sendFile order
    this.timer = setInterval(() => this.tick(), Math.max(this.requestTimeout / 4, 1));
  }

  /** Makes ch the current channel; unfinished transfers resume on it. */
  attach(ch) {
    if (this.ch) this.detachCurrent();
    this.ch = ch;
    // A file hashed by now is described with its SHA-256, standing in for a
    // digest frame that may have been lost with the old channel.
    for (const o of this.out.values()) if (!o.ended) this.sendFrames([describeFrame(o.info)]);
    for (const f of this.in.values()) this.sendFrames(this.pump(f));
    this.serve();
  }

  /** Forgets ch if it is current: its requests in flight will be asked for again. */
  detach(ch) { if (this.ch === ch) this.detachCurrent(); }

  detachCurrent() {
    this.dead.push(this.ch);
    if (this.dead.length > 8) this.dead.shift();
    this.ch = null;
    this.queue = [];
    for (const f of this.in.values()) {
      for (const c of f.inflight.keys()) f.lost.push(c);
      f.inflight.clear();
    }
  }

  /**
   * Describes source to the peer at once and serves its chunks; hashes it
   * in the background meanwhile and sends the SHA-256 in a digest frame.
   * Returns the file info, whose sha256 is all zero until the hash is done
   * (then info.sha256 is replaced; the onDone result's file is this info).
   */
  async sendFile(source, { name = source.name ?? 'file', mime = source.type ?? '' } = {}) {
    if (this.closed) throw new TransferError(TransferErrorCode.CLOSED, 'engine closed');
    const info = { fileID: randomID(), name, mime, size: source.size, sha256: new Uint8Array(32), chunkSize: this.chunkSize };
    encodeFrame(describeFrame(info)); // validates name, size...
    const o = { info, source, sent: new Uint8Array(chunksOf(info)), meter: newMeter(this.now()), stats: newStats(), ended: false };
    this.out.set(info.fileID, o);
    if (this.ch) this.sendFrames([describeFrame(info)]);
    // hashOut handles its own errors: the chain never rejects.
    this.hashing = this.hashing.then(() => this.hashOut(o));
    return info;
  }

  /** Hashes an outgoing file (stopping if it ends) and sends its digest. */
  async hashOut(o) {
    const { info, source } = o;
    const h = new SHA256();
    try {
      await nextTask(); // whatever is queued already (a request for this file) goes first
      let held = performance.now();
      for (let off = 0; off < info.size; off += HASH_BLOCK) {
        if (o.ended) return;
        const bytes = await readBytes(source, off, Math.min(off + HASH_BLOCK, info.size));
        for (let i = 0; i < bytes.length; i += HASH_PIECE) {
          if (performance.now() - held > HASH_SLICE_MS) {
            await nextTask();
            if (o.ended) return;
            held = performance.now();
          }
          h.update(bytes.subarray(i, i + HASH_PIECE));
        }
      }
    } catch (err) {
      this.failRead(o, `hash ${info.name}: ${err.message}`);
      return;
    }
    if (o.ended) return;
    info.sha256 = h.digest();
    this.sendFrames([{ type: FrameType.DIGEST, fileID: info.fileID, sha256: info.sha256 }]);
  }

  /** Starts receiving an offered file into sink. */
  accept(fileID, sink) {
    const f = this.in.get(fileID);
    if (!f || f.accepted || f.ended) throw new TransferError('unknown', `unknown file ${fileID}`);
    f.accepted = true;
    f.sink = sink;
    f.meter = newMeter(this.now());
    if (f.info.size === 0) this.verify(f);
    else this.sendFrames(this.pump(f));
  }

  decline(fileID) { this.end(fileID, TransferErrorCode.DECLINED, 'declined'); }

  cancel(fileID) { this.end(fileID, TransferErrorCode.CANCELLED, 'cancelled'); }

  end(fileID, code, why) {
    const results = [];
    const o = this.out.get(fileID);
    if (o && !o.ended) results.push(this.endOut(o, new TransferError(code, why), false));
    const f = this.in.get(fileID);
    if (f && !f.ended) results.push(this.endIn(f, new TransferError(code, why), false));
    if (!results.length) throw new TransferError('unknown', `unknown file ${fileID}`);
    const reason = code === TransferErrorCode.DECLINED ? CancelReason.DECLINED : CancelReason.CANCELLED;
    this.sendFrames([{ type: FrameType.CANCEL, fileID, reason }]);
    results.forEach((r) => this.onDone(r));
  }

  endOut(o, error, remote) {
    o.ended = true;
    o.source = null;
    this.queue = this.queue.filter((q) => q.file !== o);
    return { file: o.info, dir: 'sending', error, remote };
  }

  endIn(f, error, remote) {
    f.ended = true;
    f.sink = null;
    f.lost = [];
    f.inflight.clear();
    return { file: f.info, dir: 'receiving', error, remote };
  }

  stats(fileID) {
    const o = this.out.get(fileID);
    const f = this.in.get(fileID);
    if (!o && !f) return null;
    const s = { ...(o?.stats ?? newStats()) };
    if (f) {
      for (const k of ['requested', 'reRequests', 'received', 'duplicates']) s[k] += f.stats[k];
      s.missing = chunksOf(f.info) - f.nhave;
    }
    return s;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    if (this.ch) this.detachCurrent();
    const results = [];
    for (const o of this.out.values()) if (!o.ended) results.push(this.endOut(o, new TransferError(TransferErrorCode.CLOSED, 'engine closed'), false));
    for (const f of this.in.values()) if (!f.ended) results.push(this.endIn(f, new TransferError(TransferErrorCode.CLOSED, 'engine closed'), false));
    results.forEach((r) => this.onDone(r));
  }

  sendFrames(frames) {
    const ch = this.ch;
    if (!ch) return;
    // A send fails only on a closing channel, whose close detaches it and
    // ends or resumes the transfers: nothing to do per frame.
    for (const f of frames) Promise.resolve(ch.send(encodeFrame(f))).catch(() => { /* the channel's close handles it */ });
  }

  /** Processes one frame that arrived on ch; frames are handled one at a time, in order. */
  handleFrame(ch, data) {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    const p = this.rx.then(() => this.handle(ch, bytes));
    this.rx = p.catch(() => { /* the caller gets p's error; the queue goes on */ });
    return p;
  }

  async handle(ch, bytes) {
    const f = decodeFrame(bytes);
    if (this.closed || this.dead.includes(ch)) return;
    switch (f.type) {
      case FrameType.DESCRIBE: return this.onDescribe(f);
      case FrameType.REQUEST: return this.onRequest(f);
      case FrameType.CHUNK: return this.onChunk(f);
      case FrameType.CANCEL: return this.onCancel(f);
      case FrameType.COMPLETE: return this.onComplete(f);
      case FrameType.DIGEST: return this.onDigest(f);
      default:
    }
  }

  onDescribe(fr) {
    const info = { fileID: fr.fileID, name: fr.name, mime: fr.mime, size: fr.size, sha256: fr.sha256, chunkSize: fr.chunkSize };
    const known = this.in.get(info.fileID);
    if (known) {
      const bothHashed = hashKnown(known.info) && hashKnown(info);
      if (known.info.size !== info.size || (bothHashed && !sameBytes(known.info.sha256, info.sha256)) || known.info.chunkSize !== info.chunkSize) {
        throw new TransferError('protocol', `${info.fileID} described twice differently`);
      }
      // A re-describe after reconnect; it carries the SHA-256 if the sender
      // has it by now, in case the digest frame was lost.
      if (!known.ended && !hashKnown(known.info) && hashKnown(info)) this.learnDigest(known, info.sha256);
      this.sendFrames(this.pump(known));
      return;
    }
    const n = chunksOf(info);
    this.in.set(info.fileID, {
      info, sink: null, accepted: false, ended: false, have: new Uint8Array(n), asked: new Uint8Array(n),
      nhave: 0, next: 0, lost: [], inflight: new Map(), seq: 0, meter: newMeter(this.now()), stats: newStats(), sum: null,
    });
    if (this.onOffer) this.onOffer(info);
    else this.decline(info.fileID);
  }

  onDigest(fr) {
    const f = this.in.get(fr.fileID);
    if (!f) throw new TransferError('unknown', `digest for unknown file ${fr.fileID}`);
    if (f.ended) return; // the digest of a file that ended meanwhile
    if (!hashKnown(fr)) throw new TransferError('protocol', `${fr.fileID}: digest of zeros`);
    if (hashKnown(f.info)) {
      if (!sameBytes(f.info.sha256, fr.sha256)) throw new TransferError('protocol', `${fr.fileID}: digest differs from the SHA-256 described`);
      return; // described with it after a reconnect
    }
    this.learnDigest(f, fr.sha256);
  }

  /** Records the sender's SHA-256; a sink hashed already is checked now. */
  learnDigest(f, sha) {
    f.info.sha256 = sha;
    if (f.sum) this.check(f, f.sum);
  }

  pump(f) {
    if (!f.accepted || f.ended || !this.ch) return [];
    let free = this.window - f.inflight.size;
    if (free < Math.ceil(this.window / 2)) return [];
    const now = this.now();
    const ranges = [];
    const add = (c) => {
      f.seq++;
      f.inflight.set(c, { at: now, seq: f.seq, again: f.asked[c] === 1 });
      f.stats.requested++;
      if (f.asked[c]) f.stats.reRequests++;
      f.asked[c] = 1;
      const last = ranges[ranges.length - 1];
      if (last && last[0] + last[1] === c) last[1]++;
      else ranges.push([c, 1]);
      free--;
    };
    while (free > 0 && f.lost.length) {
      const c = f.lost.shift();
      if (!f.have[c] && !f.inflight.has(c)) add(c);
    }
    const n = chunksOf(f.info);
    for (; free > 0 && f.next < n; f.next++) if (!f.have[f.next]) add(f.next);
    const frames = [];
    for (let i = 0; i < ranges.length; i += MAX_RANGES_PER_REQUEST) {
      frames.push({ type: FrameType.REQUEST, fileID: f.info.fileID, ranges: ranges.slice(i, i + MAX_RANGES_PER_REQUEST) });
    }
    return frames;
  }

  onRequest(fr) {
    const o = this.out.get(fr.fileID);
    if (o?.ended) return;
    if (!o) {
      this.sendFrames([{ type: FrameType.CANCEL, fileID: fr.fileID, reason: CancelReason.UNKNOWN_FILE }]);
      throw new TransferError('unknown', `request for unknown file ${fr.fileID}`);
    }
    const n = chunksOf(o.info);
    for (const [first, count] of fr.ranges) {
      if (first >= n || count > n - first) throw new TransferError('protocol', `request ${first}+${count} beyond ${n} chunks`);
    }
    for (const [first, count] of fr.ranges) {
      o.stats.requested += count;
      this.queue.push({ file: o, first, count });
    }
    this.serve();
  }

  /** Ends an outgoing file whose source could not be read (unless it ended already). */
  failRead(o, why) {
    if (o.ended) return;
    const r = this.endOut(o, new TransferError(TransferErrorCode.IO, why), false);
    this.sendFrames([{ type: FrameType.CANCEL, fileID: o.info.fileID, reason: CancelReason.IO }]);
    this.onDone(r);
  }

  /** Serves queued requests one chunk at a time, awaiting the channel's backpressure. */
  async serve() {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queue.length && this.ch && !this.closed) {
        const q = this.queue[0];
        const o = q.file;
        const c = q.first;
        q.first++;
        q.count--;
        if (q.count === 0) this.queue.shift();
        o.stats.sent++;
        const ch = this.ch;
        const { info } = o;
        let data;
        try {
          data = await readBytes(o.source, c * info.chunkSize, c * info.chunkSize + chunkLen(info, c));
        } catch (err) {
          this.failRead(o, `read ${info.name}: ${err.message}`);
          continue;
        }
        if (o.ended) continue;
        try {
          await ch.send(encodeFrame({ type: FrameType.CHUNK, fileID: info.fileID, chunkID: c, data }));
        } catch {
          continue; // broken channel: the receiver asks again after reconnect
        }
        if (!o.sent[c]) {
          o.sent[c] = 1;
          const p = this.meter(o.meter, data.length, info, 'sending', o.meter.bytes + data.length === info.size);
          if (p) this.onProgress(p);
        }
      }
    } finally {
      this.sending = false;
    }
  }

  meter(m, n, file, dir, last) {
    m.bytes += n;
    const now = this.now();
    const dt = now - m.lastT;
    if (dt >= 250 || (m.rate === 0 && dt > 0)) {
      const inst = ((m.bytes - m.lastBytes) * 1000) / dt;
      m.rate = m.rate === 0 ? inst : 0.7 * m.rate + 0.3 * inst;
      m.lastT = now;
      m.lastBytes = m.bytes;
    }
    if (!last && now - m.reported < this.progressInterval) return null;
    m.reported = now;
    return { file, dir, bytes: m.bytes, bytesPerSec: m.rate };
  }

  async onChunk(fr) {
    const f = this.in.get(fr.fileID);
    if (!f || !f.accepted || f.ended) return; // late chunks of an ended file
    const c = fr.chunkID;
    if (c >= chunksOf(f.info) || fr.data.length !== chunkLen(f.info, c)) {
      throw new TransferError('protocol', `chunk ${c} with ${fr.data.length} bytes`);
    }
    if (f.have[c]) { f.stats.duplicates++; return; }
    const req = f.inflight.get(c);
    f.inflight.delete(c);
    if (req && !req.again && !this.unordered) {
      // Requests are served in order on an ordered channel: anything asked
      // for before this chunk and still missing was lost.
      for (const [lc, r] of f.inflight) {
        if (r.seq < req.seq) { f.inflight.delete(lc); f.lost.push(lc); }
      }
    }
    f.have[c] = 1;
    f.nhave++;
    f.stats.received++;
    const complete = f.nhave === chunksOf(f.info);
    const p = this.meter(f.meter, fr.data.length, f.info, 'receiving', complete);
    const frames = this.pump(f);
    const { sink } = f;
    try {
      await sink.write(c * f.info.chunkSize, fr.data.slice());
    } catch (err) {
      if (!f.ended) {
        const r = this.endIn(f, new TransferError(TransferErrorCode.IO, `write ${f.info.name}: ${err.message}`), false);
        this.sendFrames([{ type: FrameType.CANCEL, fileID: f.info.fileID, reason: CancelReason.IO }]);
        this.onDone(r);
      }
      return;
    }
    this.sendFrames(frames);
    if (p) this.onProgress(p);
    if (complete) this.verify(f);
  }

  /**
   * Hashes a complete incoming file and checks it against the sender's
   * SHA-256, or, when the digest has not come yet, keeps the sum for
   * learnDigest.
   */
  async verify(f) {
    const { sink, info } = f;
    const h = new SHA256();
    try {
      for (let off = 0; off < info.size; off += 1 << 20) h.update(await sink.read(off, Math.min(1 << 20, info.size - off)));
    } catch (err) {
      this.conclude(f, new TransferError(TransferErrorCode.IO, `read back ${info.name}: ${err.message}`));
      return;
    }
    const sum = h.digest();
    if (f.ended) return;
    if (hashKnown(f.info)) this.check(f, sum);
    else f.sum = sum;
  }

  check(f, sum) {
    const ok = sameBytes(sum, f.info.sha256);
    this.conclude(f, ok ? null : new TransferError(TransferErrorCode.HASH_MISMATCH, `SHA-256 mismatch on ${f.info.name}`));
  }

  /** Ends an incoming file: complete to the sender, or cancel with the error's reason. */
  conclude(f, error) {
    if (f.ended) return;
    const { fileID } = f.info;
    const r = this.endIn(f, error, false);
    const reason = error?.code === TransferErrorCode.IO ? CancelReason.IO : CancelReason.HASH_MISMATCH;
    this.sendFrames([error ? { type: FrameType.CANCEL, fileID, reason } : { type: FrameType.COMPLETE, fileID }]);
    this.onDone(r);
  }

  onCancel(fr) {
    const code = reasonCodes.get(fr.reason) ?? TransferErrorCode.CANCELLED;
    const err = () => new TransferError(code, `${code} by peer`);
    const results = [];
    const o = this.out.get(fr.fileID);
    if (o && !o.ended) results.push(this.endOut(o, err(), true));
    const f = this.in.get(fr.fileID);
    if (f && !f.ended) results.push(this.endIn(f, err(), true));
    results.forEach((r) => this.onDone(r));
  }

  onComplete(fr) {
    const o = this.out.get(fr.fileID);
    if (!o || o.ended) return;
    this.onDone(this.endOut(o, null, false));
  }

  tick() {
    const now = this.now();
    for (const f of this.in.values()) {
      for (const [c, r] of f.inflight) {
        if (now - r.at >= this.requestTimeout) { f.inflight.delete(c); f.lost.push(c); }
      }
      this.sendFrames(this.pump(f));
    }
  }
}

function describeFrame(info) {
  return { type: FrameType.DESCRIBE, ...info };
}

function newMeter(now) { return { bytes: 0, lastT: now, lastBytes: 0, rate: 0, reported: -Infinity }; }

function newStats() { return { requested: 0, reRequests: 0, received: 0, duplicates: 0, sent: 0, missing: 0 }; }

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Resolves in a later task (a MessageChannel message: unlike timers, not throttled in background tabs). */
function nextTask() {
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      resolve();
    };
    port2.postMessage(null);
  });
}

async function readBytes(source, start, end) {
  const part = source.slice(start, end);
  if (part instanceof Uint8Array) return part;
  return new Uint8Array(await part.arrayBuffer());
}
