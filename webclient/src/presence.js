// @ts-check
// How a contact's presence reads: "online", "away · at lunch", "last seen 5 min ago".
// No DOM: the sidebar and the conversation header use it, the unit tests too.

/**
 * The line under a contact's name.
 * @param {{status?: string, text?: string, ts?: number} | undefined} doc the retained presence document
 * @param {number} now unix ms
 */
export function presenceLine(doc, now) {
  const status = doc && doc.status;
  if (status === 'online') return 'online';
  if (status === 'away') return doc.text ? `away · ${doc.text}` : 'away';
  // The server stamps the offline document when the last device left.
  return doc && doc.ts ? `last seen ${ago(doc.ts, now)}` : 'offline';
}

/** "just now", "5 min ago", "3 h ago", "yesterday", "on 12 Mar". */
export function ago(ts, now) {
  const s = Math.max(0, Math.round((now - ts) / 1000));
  if (s < 60) return 'just now';
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const hrs = Math.floor(m / 60);
  if (hrs < 24) return `${hrs} h ago`;
  if (hrs < 48) return 'yesterday';
  return `on ${new Date(ts).toLocaleDateString(undefined, { day: 'numeric', month: 'short' })}`;
}
