// @ts-check
// Message search (GET /api/v1/search): a query's pages of results and the
// parts of a result to highlight. No DOM.

import { convOf } from './topics.js';

/** The longest query the server takes, in UTF-8 bytes (docs/protocol.md "Search"). */
export const maxQueryBytes = 256;

/**
 * `q` trimmed, cut at whole characters to at most maxQueryBytes of UTF-8.
 * @param {string} q
 */
export function clampQuery(q) {
  let out = '';
  let n = 0;
  for (const ch of String(q).trim()) {
    const b = new TextEncoder().encode(ch).length;
    if (n + b > maxQueryBytes) break;
    out += ch;
    n += b;
  }
  return out.trim();
}

/**
 * The `conv` parameter of /search for a conversation id: "dm:bob" -> "dm/bob", "g:g1" -> "g/g1".
 * @param {string} conv
 */
export function searchScope(conv) {
  const i = conv.indexOf(':');
  return i < 0 ? '' : `${conv.slice(0, i)}/${conv.slice(i + 1)}`;
}

/**
 * The words of a query: split on white space, without duplicates, lowercased.
 * @param {string} q
 */
export function terms(q) {
  return [...new Set(String(q).toLowerCase().split(/\s+/u).filter(Boolean))];
}

/**
 * `text` cut into runs, `hit` where a query word matches (case-insensitive,
 * anywhere: Chinese and Japanese have no spaces between words).
 * @param {string} text
 * @param {string} q
 * @returns {{text: string, hit: boolean}[]}
 */
export function highlight(text, q) {
  const s = String(text || '');
  const words = terms(q);
  const lower = s.toLowerCase();
  // Lowercasing may change the length of a few characters (İ): then the
  // offsets would not line up, so nothing is marked rather than the wrong part.
  if (!words.length || lower.length !== s.length) return s ? [{ text: s, hit: false }] : [];
  const marks = new Uint8Array(s.length);
  for (const w of words) {
    for (let i = lower.indexOf(w); i >= 0; i = lower.indexOf(w, i + 1)) marks.fill(1, i, i + w.length);
  }
  /** @type {{text: string, hit: boolean}[]} */
  const out = [];
  let start = 0;
  for (let i = 1; i <= s.length; i++) {
    if (i === s.length || marks[i] !== marks[start]) {
      out.push({ text: s.slice(start, i), hit: marks[start] === 1 });
      start = i;
    }
  }
  return out;
}

/**
 * A window of `body` around its first hit, so a match deep in a long message shows.
 * @param {string} body
 * @param {string} q
 * @param {number} [width] characters kept
 */
export function excerpt(body, q, width = 140) {
  const s = String(body || '').replace(/\s+/g, ' ').trim();
  if (s.length <= width) return s;
  const lower = s.toLowerCase();
  const first = Math.min(...terms(q).map((w) => lower.indexOf(w)).filter((i) => i >= 0), s.length);
  const from = first === s.length ? 0 : Math.max(0, Math.min(first - Math.floor(width / 3), s.length - width));
  return `${from > 0 ? '…' : ''}${s.slice(from, from + width)}${from + width < s.length ? '…' : ''}`;
}

/**
 * One search: its results so far, and the next page on demand.
 * `api.search(q, {conv, before, limit})` answers {messages, more}, newest first.
 */
export class SearchQuery {
  /**
   * @param {{search: (q: string, o: {conv?: string, before?: string, limit?: number}) => Promise<{messages?: object[], more?: boolean}>}} api
   * @param {string} me
   * @param {string} q
   * @param {string} [conv] a conversation id to search only there
   */
  constructor(api, me, q, conv = '') {
    this.api = api;
    this.me = me;
    this.q = clampQuery(q);
    this.conv = conv;
    /** @type {object[]} results, newest first, each with its `conv` */
    this.results = [];
    this.more = true;
    this.loading = false;
  }

  /**
   * Loads the next page (the first on the first call).
   * @returns {Promise<object[]>} the results it added
   */
  async next(limit = 20) {
    if (!this.q || !this.more || this.loading) return [];
    this.loading = true;
    try {
      const last = this.results[this.results.length - 1];
      const page = await this.api.search(this.q, {
        conv: this.conv ? searchScope(this.conv) : undefined,
        before: last ? last.id : undefined,
        limit,
      });
      const seen = new Set(this.results.map((m) => m.id));
      const added = (page.messages || [])
        .filter((m) => m && m.id && typeof m.seq === 'number' && !m.retracted && !seen.has(m.id))
        .map((m) => ({ ...m, conv: convOf(this.me, m) }));
      this.results.push(...added);
      this.more = !!page.more && added.length > 0;
      return added;
    } finally {
      this.loading = false;
    }
  }
}
