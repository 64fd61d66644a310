// @ts-check
// What the server will take, checked before sending. No DOM.
//
// The server counts a message body in UTF-8 bytes (docs/protocol.md
// "Envelope", advertised as limits.body_bytes by GET /api/v1/connect), not in
// characters: 6000 CJK characters are 18 000 bytes.

/** The server's default, used until GET /api/v1/connect answers. */
export const defaultBodyBytes = 16384;

const encoder = new TextEncoder();

/** Bytes of `s` in UTF-8 (a lone surrogate counts 3, as TextEncoder writes U+FFFD). */
export function utf8Length(s) {
  return encoder.encode(s).length;
}

/**
 * Where a draft stands against the limit.
 * @param {string} text the body as it would be sent (trimmed)
 * @param {number} limit bytes
 * @returns {{bytes: number, limit: number, over: boolean, near: boolean, text: string}}
 *   `near` from 80% of the limit, when a counter is worth showing; `text` says it in words.
 */
export function checkBody(text, limit = defaultBodyBytes) {
  const bytes = utf8Length(text);
  const over = bytes > limit;
  const near = over || bytes >= limit * 0.8;
  const n = (x) => x.toLocaleString('en').replace(/,/g, ' ');
  let msg = '';
  if (over) msg = `Too long to send: ${n(bytes)} of ${n(limit)} bytes. Shorten it, or send it as a file.`;
  else if (near) msg = `${n(limit - bytes)} bytes left`;
  return { bytes, limit, over, near, text: msg };
}
