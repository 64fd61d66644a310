// @ts-check
// File transfer frames on the RTCDataChannel: the JavaScript twin of the
// Go package filexfer (frame.go). Both must pass testdata/vectors/frames.json.
//
//   frame = type(1) field*      field = length(2, big-endian) bytes
//
//   0x10 describe  fileID, name, size(8), mime, sha256(32), chunkSize(4)
//   0x11 complete  fileID                      (mqim extension: verified)
//   0x12 digest    fileID, sha256(32)          (mqim extension, sender -> receiver)
//   0x20 request   fileID, ranges (n x [first(4) count(4)])
//   0x40 chunk     fileID, chunkID(4), data
//   0x80 cancel    fileID [, reason(1)]     (reason: mqim extension)
//
// A describe whose sha256 is all zero says "digest follows": the sender
// describes a file at once and sends its SHA-256 in a digest frame once it
// has read the file through. Text fields are UTF-8; sizes are at most 2^53-1; a frame is at most 65535
// bytes (pion/webrtc v3 cannot read a 65536-byte message). Well-formed
// fields after the defined ones are ignored, so fields can be appended.

export const FrameType = Object.freeze({
  DESCRIBE: 0x10,
  COMPLETE: 0x11,
  DIGEST: 0x12,
  REQUEST: 0x20,
  CHUNK: 0x40,
  CANCEL: 0x80,
});

/** Why a file was cancelled (optional second field of cancel; absent = CANCELLED). */
export const CancelReason = Object.freeze({
  CANCELLED: 0,
  DECLINED: 1,
  HASH_MISMATCH: 2,
  IO: 3,
  UNKNOWN_FILE: 4,
  TOO_LARGE: 5, // the file is larger than the receiver takes
  BUSY: 6, // the receiver has too many files in progress
});

export const MAX_FRAME_SIZE = 65535;
export const MAX_FILE_ID_LEN = 64;
export const MAX_NAME_LEN = 1024;
export const MAX_MIME_LEN = 255;
export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER; // 2^53-1
const CHUNK_OVERHEAD = 1 + 2 + 2 + 4 + 2;
export const MAX_CHUNK_SIZE = MAX_FRAME_SIZE - CHUNK_OVERHEAD - MAX_FILE_ID_LEN; // 65460
export const DEFAULT_CHUNK_SIZE = 16 * 1024;
export const MAX_RANGES_PER_REQUEST = Math.floor((MAX_FRAME_SIZE - 1 - 2 - MAX_FILE_ID_LEN - 2) / 8);

/** A codec error; code is one of empty, unknown_type, truncated, too_big, invalid_field. */
export class FrameError extends Error {
  constructor(code, message) {
    super(`filexfer: ${message}`);
    this.name = 'FrameError';
    this.code = code;
  }
}

const utf8 = new TextEncoder();
const strictUTF8 = new TextDecoder('utf-8', { fatal: true });

/** @type {Map<number, number>} */
const fieldCounts = new Map([
  [FrameType.DESCRIBE, 6],
  [FrameType.COMPLETE, 1],
  [FrameType.DIGEST, 2],
  [FrameType.REQUEST, 2],
  [FrameType.CHUNK, 3],
  [FrameType.CANCEL, 1],
]);

function typeName(t) {
  for (const [k, v] of Object.entries(FrameType)) if (v === t) return k.toLowerCase();
  return `0x${t.toString(16).padStart(2, '0')}`;
}

function text(field, bytes) {
  try {
    return strictUTF8.decode(bytes);
  } catch {
    throw new FrameError('invalid_field', `${field} is not UTF-8`);
  }
}

function checkFileIDBytes(n) {
  if (n === 0 || n > MAX_FILE_ID_LEN) {
    throw new FrameError('invalid_field', `fileID of ${n} bytes, want 1..${MAX_FILE_ID_LEN}`);
  }
}

function sha256Field(type, bytes) {
  if (bytes.length !== 32) throw new FrameError('invalid_field', `${typeName(type)} sha256 field of ${bytes.length} bytes, want 32`);
  return bytes.slice();
}

function checkSHA256(sha) {
  if (!(sha instanceof Uint8Array) || sha.length !== 32) throw new FrameError('invalid_field', 'sha256 must be 32 bytes');
}

function checkRange(first, count) {
  if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count <= 0 ||
      first > 0xffffffff || first + count > 2 ** 32) {
    throw new FrameError('invalid_field', `range ${first}+${count}`);
  }
}

/**
 * Decodes one frame. Throws FrameError for anything malformed.
 * Returns {type, fileID, ...}: describe adds name, size, mime, sha256
 * (Uint8Array), chunkSize; digest adds sha256; request adds ranges ([[first, count], ...]);
 * chunk adds chunkID and data (a Uint8Array view into the input); cancel
 * adds reason when it is present and not 0.
 * @param {Uint8Array|ArrayBuffer} input
 */
export function decodeFrame(input) {
  const b = input instanceof Uint8Array ? input : new Uint8Array(input);
  if (b.length === 0) throw new FrameError('empty', 'empty frame');
  if (b.length > MAX_FRAME_SIZE) throw new FrameError('too_big', `frame of ${b.length} bytes`);
  const type = b[0];
  const want = fieldCounts.get(type);
  if (want === undefined) throw new FrameError('unknown_type', `type ${typeName(type)}`);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const fields = [];
  let off = 1;
  while (off < b.length) {
    if (b.length - off < 2) throw new FrameError('truncated', `${typeName(type)}: dangling length byte`);
    const n = view.getUint16(off);
    if (b.length - off - 2 < n) {
      throw new FrameError('truncated', `${typeName(type)} field ${fields.length + 1}: length ${n}, ${b.length - off - 2} bytes left`);
    }
    fields.push(b.subarray(off + 2, off + 2 + n));
    off += 2 + n;
  }
  if (fields.length < want) {
    throw new FrameError('truncated', `${typeName(type)} has ${fields.length} fields, want ${want}`);
  }
  checkFileIDBytes(fields[0].length);
  const frame = { type, fileID: text('fileID', fields[0]) };
  const fv = (f) => new DataView(f.buffer, f.byteOffset, f.byteLength);
  switch (type) {
    case FrameType.DESCRIBE: {
      const [, name, size, mime, sha, cs] = fields;
      if (name.length > MAX_NAME_LEN) throw new FrameError('invalid_field', `name of ${name.length} bytes`);
      frame.name = text('name', name);
      if (size.length !== 8) throw new FrameError('invalid_field', `size field of ${size.length} bytes, want 8`);
      const big = fv(size).getBigUint64(0);
      if (big > BigInt(MAX_FILE_SIZE)) throw new FrameError('invalid_field', `size ${big} over 2^53-1`);
      frame.size = Number(big);
      if (mime.length > MAX_MIME_LEN) throw new FrameError('invalid_field', `mime of ${mime.length} bytes`);
      frame.mime = text('mime', mime);
      frame.sha256 = sha256Field(type, sha);
      if (cs.length !== 4) throw new FrameError('invalid_field', `chunkSize field of ${cs.length} bytes, want 4`);
      frame.chunkSize = fv(cs).getUint32(0);
      if (frame.chunkSize === 0 || frame.chunkSize > MAX_CHUNK_SIZE) {
        throw new FrameError('invalid_field', `chunk size ${frame.chunkSize} not in 1..${MAX_CHUNK_SIZE}`);
      }
      break;
    }
    case FrameType.DIGEST:
      frame.sha256 = sha256Field(type, fields[1]);
      break;
    case FrameType.REQUEST: {
      const rs = fields[1];
      if (rs.length === 0 || rs.length % 8 !== 0) {
        throw new FrameError('invalid_field', `ranges field of ${rs.length} bytes, want a positive multiple of 8`);
      }
      const v = fv(rs);
      frame.ranges = [];
      for (let i = 0; i < rs.length; i += 8) {
        const r = [v.getUint32(i), v.getUint32(i + 4)];
        checkRange(r[0], r[1]);
        frame.ranges.push(r);
      }
      break;
    }
    case FrameType.CHUNK: {
      if (fields[1].length !== 4) throw new FrameError('invalid_field', `chunkID field of ${fields[1].length} bytes, want 4`);
      frame.chunkID = fv(fields[1]).getUint32(0);
      frame.data = fields[2];
      break;
    }
    case FrameType.CANCEL: {
      if (fields.length > 1) {
        if (fields[1].length !== 1) throw new FrameError('invalid_field', `cancel reason field of ${fields[1].length} bytes, want 1`);
        if (fields[1][0] !== 0) frame.reason = fields[1][0];
      }
      break;
    }
    default:
  }
  return frame;
}

/**
 * Encodes a frame object (the shape decodeFrame returns). Throws FrameError
 * for frames the decoder would refuse.
 * @returns {Uint8Array}
 */
export function encodeFrame(f) {
  if (!fieldCounts.has(f.type)) throw new FrameError('unknown_type', `type ${f.type}`);
  const id = utf8.encode(f.fileID ?? '');
  checkFileIDBytes(id.length);
  const fields = [id];
  const u32 = (n) => { const a = new Uint8Array(4); new DataView(a.buffer).setUint32(0, n); return a; };
  switch (f.type) {
    case FrameType.DESCRIBE: {
      const name = utf8.encode(f.name ?? '');
      const mime = utf8.encode(f.mime ?? '');
      if (name.length > MAX_NAME_LEN) throw new FrameError('invalid_field', 'name too long');
      if (mime.length > MAX_MIME_LEN) throw new FrameError('invalid_field', 'mime too long');
      if (!Number.isInteger(f.size) || f.size < 0 || f.size > MAX_FILE_SIZE) {
        throw new FrameError('invalid_field', `size ${f.size}`);
      }
      checkSHA256(f.sha256);
      if (!Number.isInteger(f.chunkSize) || f.chunkSize < 1 || f.chunkSize > MAX_CHUNK_SIZE) {
        throw new FrameError('invalid_field', `chunk size ${f.chunkSize}`);
      }
      const size = new Uint8Array(8);
      new DataView(size.buffer).setBigUint64(0, BigInt(f.size));
      fields.push(name, size, mime, f.sha256, u32(f.chunkSize));
      break;
    }
    case FrameType.DIGEST:
      checkSHA256(f.sha256);
      fields.push(f.sha256);
      break;
    case FrameType.REQUEST: {
      const rs = f.ranges ?? [];
      if (rs.length === 0 || rs.length > MAX_RANGES_PER_REQUEST) {
        throw new FrameError('invalid_field', `${rs.length} ranges, want 1..${MAX_RANGES_PER_REQUEST}`);
      }
      const a = new Uint8Array(8 * rs.length);
      const v = new DataView(a.buffer);
      rs.forEach(([first, count], i) => {
        checkRange(first, count);
        v.setUint32(8 * i, first);
        v.setUint32(8 * i + 4, count);
      });
      fields.push(a);
      break;
    }
    case FrameType.CHUNK: {
      if (!Number.isInteger(f.chunkID) || f.chunkID < 0 || f.chunkID > 0xffffffff) {
        throw new FrameError('invalid_field', `chunkID ${f.chunkID}`);
      }
      const data = f.data ?? new Uint8Array(0);
      if (data.length > 0xffff) throw new FrameError('too_big', `${data.length} data bytes`);
      fields.push(u32(f.chunkID), data);
      break;
    }
    case FrameType.CANCEL: {
      const r = f.reason ?? 0;
      if (!Number.isInteger(r) || r < 0 || r > 255) throw new FrameError('invalid_field', `cancel reason ${r}`);
      if (r !== 0) fields.push(Uint8Array.of(r));
      break;
    }
    default:
  }
  const total = 1 + fields.reduce((n, x) => n + 2 + x.length, 0);
  if (total > MAX_FRAME_SIZE) throw new FrameError('too_big', `${typeName(f.type)} frame of ${total} bytes`);
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  out[0] = f.type;
  let off = 1;
  for (const x of fields) {
    v.setUint16(off, x.length);
    out.set(x, off + 2);
    off += 2 + x.length;
  }
  return out;
}
