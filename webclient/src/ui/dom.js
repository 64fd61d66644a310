// @ts-check
// Small DOM helpers. Everything that comes from the network is put in the page
// as text (textContent / text nodes), never parsed as HTML.

/**
 * What h() takes as children: nodes, text, and lists of them, one level deep
 * (null, undefined and false are left out).
 * @typedef {Node|string|number|boolean|null|undefined} Leaf
 * @typedef {Leaf|Leaf[]} Child
 */

/**
 * Creates an element. attrs: "class", "text" (textContent), "on{event}"
 * handlers, "dataset" object, boolean and string attributes.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), /** @type {EventListener} */ (v));
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const svgNS = 'http://www.w3.org/2000/svg';

const icons = {
  send: 'M3.4 20.4 21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z',
  edit: 'M4 17.2V20h2.8l8.3-8.3-2.8-2.8zM19.7 7a1 1 0 0 0 0-1.4l-1.3-1.3a1 1 0 0 0-1.4 0l-1.1 1.1 2.8 2.8z',
  group: 'M16 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6zm-8 0a3 3 0 1 0 0-6 3 3 0 0 0 0 6zm0 2c-2.3 0-7 1.2-7 3.5V19h14v-2.5C15 14.2 10.3 13 8 13zm8 0c-.3 0-.6 0-1 .1 1.2.8 2 1.9 2 3.4V19h6v-2.5c0-2.3-4.7-3.5-7-3.5z',
  logout: 'M10 17l1.4-1.4L8.8 13H20v-2H8.8l2.6-2.6L10 7l-5 5zM4 5h8V3H4a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h8v-2H4z',
  back: 'M20 11H7.8l5.6-5.6L12 4l-8 8 8 8 1.4-1.4L7.8 13H20z',
  info: 'M11 7h2v2h-2zm0 4h2v6h-2zm1-9a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 18a8 8 0 1 1 0-16 8 8 0 0 1 0 16z',
  check: 'M9 16.2 4.8 12l-1.4 1.4L9 19 21 7l-1.4-1.4z',
  checks: 'M.4 13.4 6 19l1.4-1.4L1.8 12zM22.2 5.6 11.6 16.2 7.4 12 6 13.4l5.6 5.6 12-12zM18 7l-1.4-1.4-6.3 6.3 1.4 1.4z',
  clock: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 18a8 8 0 1 1 0-16 8 8 0 0 1 0 16zm.5-13H11v6l5.2 3.2.8-1.3-4.5-2.7z',
  alert: 'M1 21h22L12 2zm12-3h-2v-2h2zm0-4h-2v-4h2z',
  close: 'M19 6.4 17.6 5 12 10.6 6.4 5 5 6.4 10.6 12 5 17.6 6.4 19 12 13.4 17.6 19 19 17.6 13.4 12z',
  search: 'M15.5 14h-.79l-.28-.27A6.47 6.47 0 0 0 16 9.5 6.5 6.5 0 1 0 9.5 16c1.61 0 3.09-.59 4.23-1.57l.27.28v.79l5 4.99L20.49 19l-4.99-5zm-6 0C7.01 14 5 11.99 5 9.5S7.01 5 9.5 5 14 7.01 14 9.5 11.99 14 9.5 14z',
  bell: 'M12 22a2 2 0 0 0 2-2h-4a2 2 0 0 0 2 2zm6-6v-5c0-3.1-1.6-5.6-4.5-6.3V4a1.5 1.5 0 0 0-3 0v.7C7.6 5.4 6 7.9 6 11v5l-2 2v1h16v-1z',
  bellOff: 'M20 18.7 5.3 4 4 5.3l2.9 2.9C6.3 9 6 10 6 11v5l-2 2v1h13.7l2 2 1.3-1.3zM12 22a2 2 0 0 0 2-2h-4a2 2 0 0 0 2 2zm6-7.2V11c0-3.1-1.6-5.6-4.5-6.3V4a1.5 1.5 0 0 0-3 0v.7c-.5.1-1 .3-1.4.6z',
  chat: 'M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2z',
  reply: 'M10 9V5l-7 7 7 7v-4.1c5 0 8.5 1.6 11 5.1-1-5-4-10-11-11z',
  trash: 'M6 19a2 2 0 0 0 2 2h8a2 2 0 0 0 2-2V7H6zM19 4h-3.5l-1-1h-5l-1 1H5v2h14z',
  down: 'M7.4 8.6 12 13.2l4.6-4.6L18 10l-6 6-6-6z',
  // File transfers.
  attach: 'M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z',
  arrowUp: 'M4 12l1.4 1.4L11 7.8V20h2V7.8l5.6 5.6L20 12l-8-8z',
  arrowDown: 'M20 12l-1.4-1.4-5.6 5.6V4h-2v12.2l-5.6-5.6L4 12l8 8z',
  file: 'M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8zm-1 7V3.5L18.5 9z',
};

/** An inline SVG icon (built as DOM, so no inline markup is parsed). */
export function icon(name, cls = '') {
  const svg = document.createElementNS(svgNS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', `icon ${cls}`.trim());
  const path = document.createElementNS(svgNS, 'path');
  path.setAttribute('d', icons[name] || '');
  svg.append(path);
  return svg;
}

const urlRe = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const trailing = /[.,;:!?)\]}]+$/;

/**
 * Untrusted text as DOM: text nodes, with http(s) URLs turned into anchors
 * that open in a new tab without access to this window.
 */
export function linkify(text) {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const match of String(text).matchAll(urlRe)) {
    let raw = match[0];
    const trail = raw.match(trailing);
    if (trail) raw = raw.slice(0, -trail[0].length);
    const start = match.index;
    let url = null;
    try {
      url = new URL(raw);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) continue;
    if (start > last) frag.append(document.createTextNode(text.slice(last, start)));
    const a = document.createElement('a');
    a.href = url.href;
    a.textContent = raw;
    a.target = '_blank';
    a.rel = 'noopener noreferrer nofollow';
    frag.append(a);
    last = start + raw.length;
  }
  if (last < text.length) frag.append(document.createTextNode(text.slice(last)));
  return frag;
}

/** A stable colour class for a name, so each person keeps their colour. */
export function colorClass(name) {
  let x = 0;
  for (const ch of String(name)) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return `c${x % 8}`;
}

export function initials(name) {
  const parts = String(name).split(/[\s._-]+/).filter(Boolean);
  const s = parts.length > 1 ? parts[0][0] + parts[1][0] : String(name).slice(0, 2);
  return s.toUpperCase();
}

/**
 * A round avatar with initials (or the picture at `src`) and, optionally, a
 * presence dot.
 * @param {string} name
 * @param {{presence?: string, group?: boolean, size?: string, src?: string}} [o]
 */
export function avatar(name, { presence, group = false, size = '', src = '' } = {}) {
  const el = h('span', { class: `avatar ${colorClass(name)} ${size}`.trim(), 'aria-hidden': 'true' });
  if (group) el.append(icon('group', 'avatar-icon'));
  else if (src) el.append(h('img', { class: 'avatar-img', src, alt: '' }));
  else el.textContent = initials(name);
  if (presence) el.append(h('span', { class: `dot ${presence}`, dataset: { status: presence } }));
  return el;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const shortDayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

export function clock(ts) {
  return timeFmt.format(new Date(ts));
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** "Today", "Yesterday" or the date, for day separators. */
export function dayLabel(ts) {
  const d = new Date(ts);
  const now = new Date();
  if (sameDay(d, now)) return 'Today';
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return 'Yesterday';
  return dayFmt.format(d);
}

/** Time for the conversation list: clock today, date otherwise. */
export function shortWhen(ts) {
  if (!ts) return '';
  return sameDay(new Date(ts), new Date()) ? clock(ts) : shortDayFmt.format(new Date(ts));
}

export function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}
