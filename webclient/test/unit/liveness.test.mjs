// The connection probe (src/liveness.js) and presence lines (src/presence.js),
// with a hand-driven clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Liveness } from '../../src/liveness.js';
import { ago, presenceLine } from '../../src/presence.js';

/** Timers that fire only when the test advances the clock. */
function fakeTimers() {
  let now = 0;
  let next = 1;
  const timers = new Map();
  return {
    setTimer: (fn, ms) => { timers.set(next, { fn, at: now + ms }); return next++; },
    clearTimer: (id) => timers.delete(id),
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = end;
    },
    get pending() { return timers.size; },
  };
}

function setup() {
  const t = fakeTimers();
  const log = [];
  const l = new Liveness({ ping: () => log.push('ping'), dead: (why) => log.push(`dead:${why}`), timeout: 4000, every: 20_000, ...t });
  return { t, log, l };
}

test('a probe without an answer reports the connection dead once, after the timeout', () => {
  const { t, log, l } = setup();
  l.start(true);
  l.probe('slow ack');
  l.probe('again'); // one probe at a time
  assert.deepEqual(log, ['ping']);
  t.advance(3999);
  assert.deepEqual(log, ['ping']);
  t.advance(1);
  assert.deepEqual(log, ['ping', 'dead:slow ack']);
  t.advance(60_000);
  assert.deepEqual(log, ['ping', 'dead:slow ack'], 'stopped after reporting');
});

test('an answer in time keeps it alive; a visible tab probes periodically, a hidden one does not', () => {
  const { t, log, l } = setup();
  l.start(true);
  t.advance(20_000);
  assert.deepEqual(log, ['ping']);
  l.alive();
  t.advance(10_000);
  assert.deepEqual(log, ['ping']);
  t.advance(10_000);
  assert.deepEqual(log, ['ping', 'ping']);
  l.alive();
  l.schedule(false); // hidden
  t.advance(100_000);
  assert.deepEqual(log, ['ping', 'ping']);
  l.stop();
  assert.equal(t.pending, 0);
});

test('a probe while stopped does nothing', () => {
  const { t, log, l } = setup();
  l.probe('x');
  t.advance(10_000);
  assert.deepEqual(log, []);
});

test('presence lines', () => {
  const now = Date.UTC(2026, 2, 20, 12, 0, 0);
  const cases = [
    [undefined, 'offline'],
    [{ status: 'online', ts: now - 5000 }, 'online'],
    [{ status: 'away', text: 'at lunch' }, 'away · at lunch'],
    [{ status: 'away' }, 'away'],
    [{ status: 'offline', ts: now - 20_000 }, 'last seen just now'],
    [{ status: 'offline', ts: now - 5 * 60_000 }, 'last seen 5 min ago'],
    [{ status: 'offline', ts: now - 3 * 3600_000 }, 'last seen 3 h ago'],
    [{ status: 'offline', ts: now - 30 * 3600_000 }, 'last seen yesterday'],
    [{ status: 'offline' }, 'offline'],
  ];
  for (const [doc, want] of cases) assert.equal(presenceLine(doc, now), want, JSON.stringify(doc));
  assert.match(presenceLine({ status: 'offline', ts: Date.UTC(2026, 2, 12, 12) }, now), /^last seen on .*12/);
  assert.equal(ago(now + 5000, now), 'just now', 'a clock ahead of ours');
});
