// Title count and notification rules (src/notify.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { notificationFor, titleWith, unreadTotal } from '../../src/notify.js';

test('unread total leaves muted conversations out', () => {
  assert.equal(unreadTotal([]), 0);
  assert.equal(unreadTotal([{ unread: 2 }, { unread: 3, muted: true }, { unread: 0 }, {}]), 2);
});

test('title', () => {
  assert.equal(titleWith('mqim', 0), 'mqim');
  assert.equal(titleWith('mqim', 3), '(3) mqim');
  assert.equal(titleWith('mqim', 250), '(99+) mqim');
});

test('when a notification is due, and what it says', () => {
  const dm = { conv: 'dm:bob', kind: 'dm', name: 'bob' };
  const grp = { conv: 'g:g1', kind: 'group', name: 'Trip' };
  const hidden = { me: 'alice', hidden: true };
  const cases = [
    [{ from: 'bob', body: 'hi' }, dm, hidden, { title: 'bob', body: 'hi', tag: 'dm:bob', silent: true }],
    [{ from: 'bob', body: 'hi' }, dm, { me: 'alice', hidden: false }, null],
    [{ from: 'alice', body: 'mine' }, dm, hidden, null],
    [{ from: 'bob', body: 'hi' }, { ...dm, muted: true }, hidden, null],
    [{ from: 'cat', body: 'yo', group: 'g1' }, grp, hidden, { title: 'cat in Trip', body: 'yo', tag: 'g:g1', silent: true }],
    [{ from: 'bob', type: 'file', body: 'a.pdf' }, dm, hidden, { title: 'bob', body: 'File: a.pdf', tag: 'dm:bob', silent: true }],
    [{ from: 'bob', body: 'x'.repeat(200) }, dm, { ...hidden, sound: true }, { title: 'bob', body: `${'x'.repeat(139)}…`, tag: 'dm:bob', silent: false }],
  ];
  for (const [m, e, ctx, want] of cases) assert.deepEqual(notificationFor(m, e, ctx), want, JSON.stringify([m, e.muted, ctx]));
});

test('a notification names the sender by its display name when given', () => {
  const name = (id) => ({ bob: 'Bob B' })[id] || id;
  const ctx = { me: 'alice', hidden: true, name };
  assert.equal(notificationFor({ from: 'bob', body: 'hi' }, { conv: 'dm:bob', kind: 'dm', name: 'bob' }, ctx).title, 'Bob B');
  assert.equal(notificationFor({ from: 'cat', body: 'yo', group: 'g1' }, { conv: 'g:g1', kind: 'group', name: 'Trip' }, ctx).title, 'cat in Trip');
});
