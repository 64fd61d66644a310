// @ts-check
// Every refusal, as one sentence a person can act on. No DOM.
//
// Refusals come three ways: an HTTP error ({status, code, message} from
// api.js's ApiError), an error notice on im/u/{me}/error ({code, topic,
// detail}), or an MQTT 5 reason code on a PUBACK (a number). All meet here,
// keyed by the server's stable codes (docs/protocol.md "HTTP API", "Error
// notices").

/** MQTT 5 PUBACK reason codes, as the server's error codes. */
const reasonCodes = {
  0x83: 'conflict', 0x87: 'forbidden', 0x90: 'not_found', 0x95: 'too_large', 0x97: 'rate_limited', 0x99: 'invalid', 0x80: 'internal',
};

/** How a refusal starts, by what was being done. */
const actionText = {
  send: 'The message was not sent',
  edit: 'The message was not edited',
  retract: 'The message was not deleted',
  reaction: 'The reaction was not saved',
};

/** Why a change to a message is refused, when the server says forbidden. */
const changeActions = {
  edit: 'only its sender can edit a text message.',
  retract: 'only its sender (or the group owner) can delete it.',
  reaction: 'you cannot react in this conversation.',
};

/** Sentence-cased server detail, ending in a full stop. */
function sentence(s) {
  const t = String(s || '').trim().replace(/^groups: /, '');
  if (!t) return '';
  return t[0].toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.');
}

/**
 * @param {{status?: number, code?: string|number, message?: string, detail?: string, topic?: string}|string|number} err
 * @param {{user?: string, group?: boolean, action?: string}} [ctx] what was being done:
 *   `user` the user asked about, `group` whether it was about a group, `action` "send" for a
 *   message, "edit" | "retract" | "reaction" for a change to one
 * @returns {string}
 */
export function humanError(err, ctx = {}) {
  let code = typeof err === 'object' && err ? err.code : err;
  if (typeof code === 'number') code = reasonCodes[code] || 'internal';
  const detail = (typeof err === 'object' && err && (err.detail || err.message)) || '';
  const topic = (typeof err === 'object' && err && err.topic) || '';
  const named = /no such user "([^"]+)"/.exec(detail);
  const user = ctx.user || (named && named[1]) || '';
  const inGroup = ctx.group || /^im\/g\//.test(topic);
  const what = actionText[ctx.action] || 'That did not work';
  switch (code) {
    case 'network':
      return 'You are offline. Try again when the connection is back.';
    case 'unauthorized':
      return 'Your session has expired. Please sign in again.';
    case 'not_found':
      if (changeActions[ctx.action]) return `${what}: it is not in this conversation (any more).`;
      if (user) return `There is no user called “${user}”.`;
      if (inGroup || /group/.test(detail)) return 'This group no longer exists.';
      return ctx.action === 'send' ? 'The message was not sent: nobody by that name exists here.' : 'That does not exist (any more).';
    case 'forbidden':
      if (changeActions[ctx.action] && !/not a member/.test(detail)) return `${what}: ${changeActions[ctx.action]}`;
      if (/left this group/.test(detail)) return `${user || 'That user'} left this group; only they can rejoin it.`;
      if (/owner/.test(detail)) return 'Only the group owner can do that, and the owner cannot leave the group.';
      if (inGroup || /not a member/.test(detail)) return 'You are no longer a member of this group.';
      return `${what}: you are not allowed to do that.`;
    case 'conflict':
      if (changeActions[ctx.action]) return `${what}: it has been deleted.`;
      return 'That name is already taken. Try another.';
    case 'too_large':
      return ctx.action === 'send' ? 'The message was not sent: it is too long for the server.' : `${what}: it is too large. ${sentence(detail)}`.trim();
    case 'rate_limited':
      return `${what}: you are going too fast. Wait a moment and try again.`;
    case 'quota_exceeded':
      return `${what}: you have reached a limit of this server. ${sentence(detail)}`.trim();
    case 'storage_full':
      return `${what}: the server is out of storage. Try again later.`;
    case 'busy':
      return 'The server is busy. Try again in a moment.';
    case 'invalid':
      return `${what}: the server did not accept it. ${sentence(detail)}`.trim();
    default:
      return `${what}: something went wrong on the server. Try again.`;
  }
}
