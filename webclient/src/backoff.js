// @ts-check
// The one retry pause of the web client: exponential from base, capped at
// max, with up to `jitter` more at random so that a server restart is not
// met by every browser at the same instant. Used by the MQTT connection
// (connection.js), the HTTP fallback (fallback.js) and the file-transfer
// resume (transfer/session-state.js).

/**
 * The pause before retry number attempt (1 for the first): base, 2 base,
 * 4 base ... at most max, times 1 + up to jitter (0.3: up to 30% more).
 * @param {number} attempt
 * @param {{base?: number, max?: number, jitter?: number, random?: () => number}} [o]
 * @returns {number} milliseconds, whole
 */
export function backoff(attempt, { base = 1000, max = 30_000, jitter = 0.3, random = Math.random } = {}) {
  const n = Math.max(0, Math.floor(attempt) - 1);
  // Capped before the power so a long outage never overflows.
  const d = Math.min(max, base * 2 ** Math.min(n, 30));
  return Math.round(d * (1 + random() * jitter));
}
