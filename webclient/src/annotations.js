// @ts-check
// Edits, retractions and reactions (docs/protocol.md "Edits, retractions,
// reactions, replies"), folded into the messages they refer to. No DOM.
//
// An annotation is a record of its own in the conversation (own id and seq,
// delivered live and in sync): {type: "edit"|"retract"|"reaction", ref, body}.
// The server stores only those it accepted, so folding trusts them; what it
// must get right is order. Annotations can arrive out of order (a resumed
// session's redeliveries, sync overlapping live) and a server copy of a
// message (history page, search result) already has some of them folded in,
// so every rule here is idempotent and keyed by seq:
//   - a message keeps `base`: the seq up to which annotations are already in
//     it (a server copy's `base` is the conversation's last seq known when it
//     was asked for: everything up to there was committed before the answer);
//   - an edit applies if newer than the last applied one (`editSeq`, or the
//     `edited` time of a server copy), a reaction if newer than that user's
//     last one (`reactSeq`), a retraction always (it is final).

/**
 * @typedef {object} Msg
 * @property {string} [id]
 * @property {number} [seq]
 * @property {number} [ts]
 * @property {string} [from]
 * @property {string} [to]
 * @property {string} [group]
 * @property {string} [type]
 * @property {string} [body]
 * @property {object} [meta]
 * @property {string} [ref]       annotations: the id they refer to
 * @property {string} [reply_to]  a reply: the id it answers
 * @property {number} [edited]    time of the latest edit
 * @property {boolean} [retracted]
 * @property {Record<string, string[]>} [reactions] emoji -> users, in order of reacting
 * @property {number} [base]      annotations up to this seq are folded in
 * @property {number} [editSeq]   seq of the edit applied last
 * @property {Record<string, number>} [reactSeq] user -> seq of their reaction applied last
 * @property {string} [pending]   an unsent change shown ahead of the server (see overlay)
 * @property {string} [cid]       the sender's client id of the message (also on our unsent ones)
 * @property {string} [error]     why an unsent message of ours failed
 */

/** Annotation types: records that change another message instead of showing. */
export const annotationTypes = Object.freeze(['edit', 'retract', 'reaction']);

/**
 * Whether `m` is an annotation (edit, retract, reaction) rather than a message to show.
 * @param {Msg|null|undefined} m
 */
export function isAnnotation(m) {
  return !!m && typeof m.ref === 'string' && annotationTypes.includes(m.type || '');
}

/**
 * `target` with `ann` applied; `target` itself (the same object) when `ann`
 * changes nothing (not for it, older than what is folded in, or a repeat).
 * @param {Msg} target
 * @param {Msg} ann
 * @returns {Msg}
 */
export function applyAnnotation(target, ann) {
  if (!isAnnotation(ann) || ann.ref !== target.id) return target;
  const seq = ann.seq || 0;
  if (seq && seq <= (target.base || 0)) return target;
  switch (ann.type) {
    case 'edit': {
      if (target.retracted || ann.from !== target.from || typeof ann.body !== 'string') return target;
      if (target.editSeq ? seq <= target.editSeq : (ann.ts || 0) < (target.edited || 0)) return target;
      if (target.body === ann.body && target.edited === ann.ts) return target;
      return { ...target, body: ann.body, edited: ann.ts || target.edited || 1, editSeq: seq || target.editSeq };
    }
    case 'retract': {
      if (target.retracted) return target;
      const out = { ...target, retracted: true };
      delete out.body;
      delete out.meta;
      delete out.reactions;
      return out;
    }
    case 'reaction': {
      const user = ann.from;
      if (!user || target.retracted) return target;
      const last = (target.reactSeq && target.reactSeq[user]) || 0;
      if (seq && seq <= last) return target;
      const emoji = typeof ann.body === 'string' ? ann.body : '';
      const reactions = withReaction(target.reactions, user, emoji);
      const out = { ...target, reactSeq: { ...(target.reactSeq || {}), [user]: seq } };
      if (Object.keys(reactions).length) out.reactions = reactions;
      else delete out.reactions;
      return out;
    }
    default:
      return target;
  }
}

/**
 * Reactions with `user`'s one reaction set to `emoji` ("" removes it).
 * @param {Record<string, string[]>|undefined} reactions
 * @param {string} user
 * @param {string} emoji
 * @returns {Record<string, string[]>}
 */
export function withReaction(reactions, user, emoji) {
  /** @type {Record<string, string[]>} */
  const out = {};
  for (const [e, users] of Object.entries(reactions || {})) {
    const rest = users.filter((u) => u !== user);
    if (rest.length) out[e] = rest;
  }
  if (emoji) out[emoji] = [...(out[emoji] || []), user];
  return out;
}

/**
 * `target` with every annotation of `anns` that refers to it applied, in seq order.
 * @param {Msg} target
 * @param {Msg[]} anns
 * @returns {Msg}
 */
export function fold(target, anns) {
  let out = target;
  for (const a of [...anns].sort((x, y) => (x.seq || 0) - (y.seq || 0))) out = applyAnnotation(out, a);
  return out;
}

/**
 * Messages to show, oldest first: annotations taken out and folded into their
 * targets, then `pending` (unsent annotations of ours, from the outbox) shown
 * on top, marked `pending: "edit"|"retract"|"reaction"` until the server's copy comes.
 * @param {Msg[]} msgs stamped records (messages and annotations), any order
 * @param {Msg[]} [pending] unsent annotations ({type, ref, body, from}), oldest first
 * @returns {Msg[]}
 */
export function visible(msgs, pending = []) {
  const byId = new Map();
  const anns = [];
  for (const m of msgs) {
    if (isAnnotation(m)) anns.push(m);
    else if (m.id) byId.set(m.id, m);
  }
  for (const a of anns.sort((x, y) => (x.seq || 0) - (y.seq || 0))) {
    const t = byId.get(a.ref);
    if (t) byId.set(a.ref, applyAnnotation(t, a));
  }
  for (const p of pending) {
    const t = byId.get(p.ref);
    if (!t) continue;
    // Unsent: no seq yet, so it is newer than anything folded in.
    const next = applyAnnotation({ ...t, base: 0, editSeq: 0 }, { ...p, seq: 0, ts: Date.now() });
    if (next !== t) byId.set(p.ref, { ...next, base: t.base, editSeq: t.editSeq, pending: p.type });
  }
  const out = [];
  for (const m of msgs) {
    if (isAnnotation(m)) continue;
    out.push(m.id ? byId.get(m.id) : m);
  }
  return out.sort((a, b) => (a.seq || 0) - (b.seq || 0));
}

/**
 * Whether `me` may edit `m`: their own stamped text message, not retracted.
 * @param {Msg} m
 * @param {string} me
 */
export function canEdit(m, me) {
  return !!m.id && m.from === me && (m.type || 'text') === 'text' && !m.retracted;
}

/**
 * Whether `me` may retract `m`: their own message, or any in a group they own.
 * @param {Msg} m
 * @param {string} me
 * @param {string} [owner] the group's owner, for a group message
 */
export function canRetract(m, me, owner = '') {
  return !!m.id && !m.retracted && (m.from === me || (!!m.group && owner === me));
}

/**
 * The reactions of `m` for display: most used first, then by emoji.
 * @param {Msg} m
 * @param {string} me
 * @returns {{emoji: string, users: string[], mine: boolean}[]}
 */
export function reactionList(m, me) {
  if (m.retracted || !m.reactions) return [];
  return Object.entries(m.reactions)
    .filter(([, users]) => Array.isArray(users) && users.length)
    .map(([emoji, users]) => ({ emoji, users, mine: users.includes(me) }))
    .sort((a, b) => b.users.length - a.users.length || (a.emoji < b.emoji ? -1 : a.emoji > b.emoji ? 1 : 0));
}

/**
 * The emoji `me` reacted to `m` with, or "".
 * @param {Msg} m
 * @param {string} me
 */
export function myReaction(m, me) {
  for (const [emoji, users] of Object.entries(m.reactions || {})) {
    if (users.includes(me)) return emoji;
  }
  return '';
}

const segmenter = typeof Intl !== 'undefined' && Intl.Segmenter ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null;

/**
 * Whether `s` is exactly one emoji (one grapheme with an emoji code point:
 * flags, skin tones and ZWJ sequences count as one).
 * @param {string} s
 */
export function isOneEmoji(s) {
  if (typeof s !== 'string' || !s || s.length > 32) return false;
  const n = segmenter ? [...segmenter.segment(s)].length : [...s].length;
  return n === 1 && /\p{Extended_Pictographic}|\p{Regional_Indicator}/u.test(s);
}

/**
 * The short text a reply quote or the conversation list shows for `m`.
 * @param {Msg|undefined} m
 */
export function snippet(m, max = 120) {
  if (!m) return 'Original message not loaded';
  if (m.retracted) return 'Message deleted';
  if (m.type === 'file') return `File: ${m.body || ''}`;
  const body = String(m.body || '').replace(/\s+/g, ' ').trim();
  return [...body].length > max ? `${[...body].slice(0, max).join('')}…` : body;
}
