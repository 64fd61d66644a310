// @ts-check
// What to tell the user about new messages: the tab title's unread count and
// desktop notifications. No DOM: ui/notifications.js shows what these decide.
//
// Rules: a muted conversation counts in neither; a notification only for a
// live message from someone else while the tab is hidden (a visible tab shows
// the message itself); notifications are silent (no sound by default).

/**
 * Unread messages over the recent list, muted conversations left out.
 * @param {Iterable<{unread?: number, muted?: boolean}>} entries
 */
export function unreadTotal(entries) {
  let n = 0;
  for (const e of entries) if (!e.muted && e.unread > 0) n += e.unread;
  return n;
}

/** "(3) mqim", or the base title with nothing unread. */
export function titleWith(base, n) {
  if (n <= 0) return base;
  return `(${n > 99 ? '99+' : n}) ${base}`;
}

/**
 * The desktop notification for message `m` in conversation entry `e`, or
 * null when none is due.
 * @param {{from: string, body?: string, type?: string, group?: string}} m
 * @param {{conv: string, kind: string, name?: string, muted?: boolean}} e
 * @param {{me: string, hidden: boolean, sound?: boolean, name?: (id: string) => string}} ctx a user's display name: `name`
 * @returns {{title: string, body: string, tag: string, silent: boolean} | null}
 */
export function notificationFor(m, e, { me, hidden, sound = false, name = (id) => id }) {
  if (!hidden || !e || e.muted || m.from === me) return null;
  const text = m.type === 'file' ? `File: ${m.body || ''}` : m.type && m.type !== 'text' ? `[${m.type}]` : (m.body || '');
  const body = text.length > 140 ? `${text.slice(0, 139)}…` : text;
  const title = e.kind === 'group' ? `${name(m.from)} in ${e.name || e.conv}` : name(m.from);
  // One notification per conversation: a newer one replaces it (same tag).
  return { title, body, tag: e.conv, silent: !sound };
}
