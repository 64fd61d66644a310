// @ts-check
// Topic names and conversation ids of the mqim wire protocol (docs/protocol.md).
//
// A conversation id is "dm:{peer}" or "g:{gid}", the same ids that
// GET /api/v1/conversations returns, so server and cache agree on the key.

/** @param {string} me */
export function inboxFilter(me) {
  return `im/u/${me}/#`;
}

export const presenceFilter = 'im/presence/+';

/** Topic to publish a message into a conversation. */
export function sendTopic(me, conv) {
  const { kind, name } = splitConv(conv);
  return kind === 'dm' ? `im/u/${name}/dm/${me}` : `im/g/${name}`;
}

export function receiptTopic(me, to) {
  return `im/u/${to}/receipt/${me}`;
}

/** Where our "typing" goes: to the DM peer, or to a group (the server fans it out). */
export function typingTopic(me, conv) {
  const { kind, name } = splitConv(conv);
  return kind === 'group' ? `im/g/${name}/typing` : `im/u/${name}/typing/${me}`;
}

export function presenceTopic(user) {
  return `im/presence/${user}`;
}

export function dmConv(peer) {
  return `dm:${peer}`;
}

export function groupConv(gid) {
  return `g:${gid}`;
}

/** @returns {{kind: 'dm'|'group', name: string}} */
export function splitConv(conv) {
  const i = conv.indexOf(':');
  const prefix = conv.slice(0, i);
  return { kind: prefix === 'g' ? 'group' : 'dm', name: conv.slice(i + 1) };
}

/** The conversation a delivered envelope belongs to, as seen by `me`. */
export function convOf(me, msg) {
  if (msg.group) return groupConv(msg.group);
  return dmConv(msg.from === me ? msg.to : msg.from);
}

/**
 * Parses a topic delivered to `me`.
 * @returns {{kind: string, other?: string} | null} kind is one of
 *   dm, g, receipt, typing, signal, error, groups, profile, requests, presence; null for anything else.
 */
export function parseTopic(me, topic) {
  const parts = topic.split('/');
  if (parts[0] !== 'im') return null;
  if (parts[1] === 'presence' && parts.length === 3) return { kind: 'presence', other: parts[2] };
  if (parts[1] !== 'u' || parts[2] !== me) return null;
  if (parts.length === 4 && parts[3] === 'error') return { kind: 'error' };
  if (parts.length === 4 && parts[3] === 'groups') return { kind: 'groups' };
  if (parts.length === 4 && (parts[3] === 'profile' || parts[3] === 'requests')) return { kind: parts[3] };
  if (parts.length === 5) return { kind: parts[3], other: parts[4] };
  return null;
}

const userRe = /^[a-z0-9][a-z0-9_.-]{0,31}$/;

/** Whether `s` is a valid user (or group) id. */
export function validUser(s) {
  return userRe.test(s);
}
