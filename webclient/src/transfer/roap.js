// @ts-check
// ROAP signalling messages (seed paper, Table 1) as carried on
// im/u/{to}/signal/{from}: the JavaScript twin of the Go package roap
// (message.go). Both must pass testdata/vectors/roap.json, so the checks
// below run in the same order as Go's and give the same error codes.

export const RoapType = Object.freeze({
  OFFER: 'OFFER',
  ANSWER: 'ANSWER',
  OK: 'OK',
  CANDIDATE: 'CANDIDATE',
  SHUTDOWN: 'SHUTDOWN',
  ERROR: 'ERROR',
});

/** Known errorType values; receivers accept any ^[A-Z][A-Z0-9_]{0,31}$. */
export const RoapErrorType = Object.freeze({
  OFFLINE: 'OFFLINE',
  REFUSED: 'REFUSED',
  TIMEOUT: 'TIMEOUT',
  BAD_SDP: 'BAD_SDP',
  FAILED: 'FAILED',
  NO_SESSION: 'NO_SESSION',
});

export const MAX_MESSAGE_SIZE = 64 * 1024;
export const MAX_SDP_SIZE = 48 * 1024;
export const MAX_CANDIDATE_SIZE = 1024;

/**
 * A decode or validation error. code is one of malformed, too_large,
 * unknown_field, unknown_type, missing_field, invalid_field, unexpected_field.
 */
export class RoapError extends Error {
  constructor(code, message) {
    super(`roap: ${message}`);
    this.name = 'RoapError';
    this.code = code;
  }
}

const USER_RE = /^[a-z0-9][a-z0-9_.-]{0,31}$/;
const SESSION_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const ERROR_TYPE_RE = /^[A-Z][A-Z0-9_]{0,31}$/;
const TOP_KEYS = new Set(['type', 'from', 'to', 'sessionID', 'sdp', 'candidate', 'errorType']);
const CAND_KEYS = new Set(['candidate', 'sdpMid', 'sdpMLineIndex', 'usernameFragment']);
const STRING_KEYS = ['type', 'from', 'to', 'sessionID', 'sdp', 'errorType'];
const utf8 = new TextEncoder();
const byteLength = (s) => utf8.encode(s).length;
const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parses and validates one ROAP message (a string or UTF-8 bytes). Keys are
 * case-sensitive, unknown keys are refused, and so is any field the type
 * does not use. Throws RoapError.
 */
export function decodeRoap(input) {
  const bytes = typeof input === 'string' ? utf8.encode(input) : input;
  if (bytes.length > MAX_MESSAGE_SIZE) {
    throw new RoapError('too_large', `${bytes.length} bytes, limit ${MAX_MESSAGE_SIZE}`);
  }
  const textIn = typeof input === 'string' ? input : new TextDecoder().decode(input);
  let obj;
  try {
    obj = JSON.parse(textIn);
  } catch (e) {
    throw new RoapError('malformed', e.message);
  }
  if (!isObject(obj)) throw new RoapError('malformed', 'not a JSON object');
  for (const k of Object.keys(obj)) {
    if (!TOP_KEYS.has(k)) throw new RoapError('unknown_field', JSON.stringify(k));
  }
  const msg = {};
  for (const k of STRING_KEYS) {
    if (!has(obj, k)) continue;
    if (typeof obj[k] !== 'string') throw new RoapError('invalid_field', `${k}: not a string`);
    msg[k] = obj[k];
  }
  if (has(obj, 'candidate')) msg.candidate = decodeCandidate(obj.candidate);
  validate(msg, (k) => has(obj, k));
  return msg;
}

function decodeCandidate(c) {
  if (!isObject(c)) throw new RoapError('invalid_field', 'candidate: not an object');
  for (const k of Object.keys(c)) {
    if (!CAND_KEYS.has(k)) throw new RoapError('unknown_field', `candidate.${JSON.stringify(k)}`);
  }
  const out = { candidate: '' };
  if (has(c, 'candidate')) {
    if (typeof c.candidate !== 'string') throw new RoapError('invalid_field', 'candidate.candidate: not a string');
    out.candidate = c.candidate;
  }
  for (const k of ['sdpMid', 'usernameFragment']) {
    if (!has(c, k) || c[k] === null) continue;
    if (typeof c[k] !== 'string') throw new RoapError('invalid_field', `candidate.${k}: not a string`);
    out[k] = c[k];
  }
  if (has(c, 'sdpMLineIndex') && c.sdpMLineIndex !== null) {
    const v = c.sdpMLineIndex;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) {
      throw new RoapError('invalid_field', 'candidate.sdpMLineIndex: want an integer 0..65535');
    }
    out.sdpMLineIndex = v;
  }
  return out;
}

function validate(m, present) {
  if (!m.type) throw new RoapError('missing_field', 'type');
  let needs = '';
  switch (m.type) {
    case RoapType.OFFER:
    case RoapType.ANSWER: needs = 'sdp'; break;
    case RoapType.CANDIDATE: needs = 'candidate'; break;
    case RoapType.ERROR: needs = 'errorType'; break;
    case RoapType.OK:
    case RoapType.SHUTDOWN: break;
    default: throw new RoapError('unknown_type', JSON.stringify(m.type));
  }
  for (const k of ['from', 'to', 'sessionID']) {
    if (!m[k]) throw new RoapError('missing_field', k);
  }
  if (!USER_RE.test(m.from)) throw new RoapError('invalid_field', `from ${JSON.stringify(m.from)} is not a user id`);
  if (!USER_RE.test(m.to)) throw new RoapError('invalid_field', `to ${JSON.stringify(m.to)} is not a user id`);
  if (m.from === m.to) throw new RoapError('invalid_field', `from and to are both ${JSON.stringify(m.from)}`);
  if (!SESSION_RE.test(m.sessionID)) throw new RoapError('invalid_field', `sessionID must match ${SESSION_RE}`);
  for (const k of ['sdp', 'candidate', 'errorType']) {
    if (k !== needs && present(k)) throw new RoapError('unexpected_field', `${k} on ${m.type}`);
  }
  if (needs === 'sdp') {
    if (!m.sdp) throw new RoapError('missing_field', 'sdp');
    if (byteLength(m.sdp) > MAX_SDP_SIZE) throw new RoapError('invalid_field', 'sdp too large');
    if (!m.sdp.startsWith('v=0\r') && !m.sdp.startsWith('v=0\n')) {
      throw new RoapError('invalid_field', 'sdp does not start with v=0');
    }
  } else if (needs === 'candidate') {
    const c = m.candidate;
    if (!c) throw new RoapError('missing_field', 'candidate');
    if (byteLength(c.candidate) > MAX_CANDIDATE_SIZE) throw new RoapError('invalid_field', 'candidate too long');
    if (c.candidate !== '' && c.sdpMid === undefined && c.sdpMLineIndex === undefined) {
      throw new RoapError('missing_field', 'candidate needs sdpMid or sdpMLineIndex');
    }
    if ((c.sdpMid !== undefined && byteLength(c.sdpMid) > 64) ||
        (c.usernameFragment !== undefined && byteLength(c.usernameFragment) > 256)) {
      throw new RoapError('invalid_field', 'candidate sdpMid or usernameFragment too long');
    }
  } else if (needs === 'errorType') {
    if (!m.errorType) throw new RoapError('missing_field', 'errorType');
    if (!ERROR_TYPE_RE.test(m.errorType)) throw new RoapError('invalid_field', `errorType ${JSON.stringify(m.errorType)}`);
  }
}

/** Validates a message built in code (absent or empty optional fields count as absent). */
export function validateRoap(m) {
  validate(m, (k) => (k === 'candidate' ? m.candidate != null : !!m[k]));
}

/**
 * Validates m and returns its JSON text, with the same fields Go writes:
 * optional fields only when set; candidate as RTCIceCandidateInit minus nulls.
 * Accepts an RTCIceCandidate (or its toJSON()) as m.candidate.
 */
export function encodeRoap(m) {
  const out = { type: m.type, from: m.from, to: m.to, sessionID: m.sessionID };
  if (m.sdp) out.sdp = m.sdp;
  if (m.candidate != null) {
    const c = typeof m.candidate.toJSON === 'function' ? m.candidate.toJSON() : m.candidate;
    out.candidate = { candidate: c.candidate ?? '' };
    for (const k of ['sdpMid', 'sdpMLineIndex', 'usernameFragment']) {
      if (c[k] !== undefined && c[k] !== null) out.candidate[k] = c[k];
    }
  }
  if (m.errorType) out.errorType = m.errorType;
  validateRoap(out);
  return JSON.stringify(out);
}
