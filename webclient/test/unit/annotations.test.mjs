// Folding edits, retractions and reactions into messages (src/annotations.js),
// in any arrival order, over server copies that already hold some of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyAnnotation, canEdit, canRetract, fold, isAnnotation, isOneEmoji, myReaction, reactionList,
  snippet, visible, withReaction,
} from '../../src/annotations.js';

const orig = { id: 'm1', seq: 1, ts: 100, from: 'alice', to: 'bob', type: 'text', body: 'helo' };
const edit = (seq, body, ts = 100 + seq) => ({ id: `e${seq}`, seq, ts, from: 'alice', to: 'bob', type: 'edit', ref: 'm1', body });
const react = (seq, from, body) => ({ id: `r${seq}`, seq, ts: 100 + seq, from, to: 'bob', type: 'reaction', ref: 'm1', body });
const retract = (seq, from = 'alice') => ({ id: `x${seq}`, seq, ts: 100 + seq, from, to: 'bob', type: 'retract', ref: 'm1' });

test('isAnnotation knows the three types, and only with a ref', () => {
  assert.equal(isAnnotation(edit(2, 'x')), true);
  assert.equal(isAnnotation(retract(2)), true);
  assert.equal(isAnnotation(react(2, 'bob', '👍')), true);
  assert.equal(isAnnotation(orig), false);
  assert.equal(isAnnotation({ type: 'edit', body: 'no ref' }), false);
  assert.equal(isAnnotation(null), false);
});

test('edits apply newest last, whatever the arrival order', () => {
  const orders = [[2, 3, 4], [4, 3, 2], [3, 4, 2], [2, 4, 3]];
  for (const order of orders) {
    let m = orig;
    for (const s of order) m = applyAnnotation(m, edit(s, `v${s}`));
    assert.equal(m.body, 'v4', `order ${order}`);
    assert.equal(m.edited, 104);
    assert.equal(m.editSeq, 4);
  }
  // A repeat changes nothing (same object back).
  const m = applyAnnotation(orig, edit(2, 'v2'));
  assert.equal(applyAnnotation(m, edit(2, 'v2')), m);
});

table('refused or foreign annotations change nothing', [
  ['edit by someone else', { ...edit(2, 'x'), from: 'bob' }],
  ['for another message', { ...edit(2, 'x'), ref: 'm9' }],
  ['edit without a body', { ...edit(2, 'x'), body: undefined }],
  ['not an annotation', { id: 'z', seq: 2, type: 'text', body: 'x', ref: 'm1' }],
], (_, ann) => {
  assert.equal(applyAnnotation(orig, ann), orig);
});

test('a server copy with base: annotations it already holds are not applied again', () => {
  // History answered with v3 folded in, when the last known seq was 3.
  const copy = { ...orig, body: 'v3', edited: 103, base: 3, reactions: { '👍': ['bob'] } };
  assert.equal(applyAnnotation(copy, edit(2, 'v2')), copy);
  assert.equal(applyAnnotation(copy, react(3, 'bob', '')), copy);
  // Newer than base, but older than the copy's edit time: still v3.
  assert.equal(applyAnnotation({ ...copy, base: 1 }, edit(2, 'v2', 102)).body, 'v3');
  assert.equal(applyAnnotation(copy, edit(5, 'v5')).body, 'v5');
});

test('a retraction is final: body gone, later edits and reactions ignored', () => {
  let m = fold(orig, [react(2, 'bob', '👍'), retract(3), edit(4, 'again'), react(5, 'carol', '❤️')]);
  assert.equal(m.retracted, true);
  assert.equal('body' in m, false);
  assert.equal(m.reactions, undefined);
  assert.deepEqual(reactionList(m, 'bob'), []);
  assert.equal(applyAnnotation(m, retract(6)), m);
  // An edit that arrives after the retraction but is older is ignored too.
  m = fold(orig, [retract(3), edit(2, 'early')]);
  assert.equal(m.retracted, true);
  assert.equal(m.body, undefined);
});

test('reactions: one per user, the newest wins, "" removes', () => {
  const m = fold(orig, [react(2, 'bob', '👍'), react(3, 'carol', '👍'), react(4, 'bob', '❤️'), react(5, 'dave', '😂'), react(6, 'dave', '')]);
  assert.deepEqual(m.reactions, { '👍': ['carol'], '❤️': ['bob'] });
  assert.equal(myReaction(m, 'bob'), '❤️');
  assert.equal(myReaction(m, 'dave'), '');
  // Out of order: bob's older 👍 after his ❤️ does not bring it back.
  const n = fold(orig, [react(4, 'bob', '❤️'), react(2, 'bob', '👍')].reverse());
  assert.deepEqual(n.reactions, { '❤️': ['bob'] });
  const o = applyAnnotation(applyAnnotation(orig, react(4, 'bob', '❤️')), react(2, 'bob', '👍'));
  assert.deepEqual(o.reactions, { '❤️': ['bob'] });
  // All removed: no reactions field left.
  assert.equal(fold(orig, [react(2, 'bob', '👍'), react(3, 'bob', '')]).reactions, undefined);
});

test('withReaction moves a user and drops empty emoji', () => {
  assert.deepEqual(withReaction({ '👍': ['a', 'b'] }, 'a', '🎉'), { '👍': ['b'], '🎉': ['a'] });
  assert.deepEqual(withReaction({ '👍': ['a'] }, 'a', ''), {});
  assert.deepEqual(withReaction(undefined, 'a', '👍'), { '👍': ['a'] });
});

test('reactionList: most used first, with mine marked', () => {
  const m = { ...orig, reactions: { '❤️': ['bob'], '👍': ['carol', 'alice'] } };
  assert.deepEqual(reactionList(m, 'alice'), [
    { emoji: '👍', users: ['carol', 'alice'], mine: true },
    { emoji: '❤️', users: ['bob'], mine: false },
  ]);
});

test('visible: annotations hidden and folded, pending ones shown on top', () => {
  const msgs = [edit(3, 'v3'), orig, { id: 'm2', seq: 2, ts: 102, from: 'bob', to: 'alice', type: 'text', body: 'hi' }, react(4, 'bob', '👍')];
  const shown = visible(msgs);
  assert.deepEqual(shown.map((m) => m.seq), [1, 2]);
  assert.equal(shown[0].body, 'v3');
  assert.deepEqual(shown[0].reactions, { '👍': ['bob'] });
  // Pending (unsent) edit and reaction of alice's.
  const p = visible(msgs, [{ type: 'edit', ref: 'm1', from: 'alice', body: 'v4' }, { type: 'reaction', ref: 'm2', from: 'alice', body: '🎉' }]);
  assert.equal(p[0].body, 'v4');
  assert.equal(p[0].pending, 'edit');
  assert.equal(p[0].editSeq, 3, 'pending overlay keeps the stored state');
  assert.deepEqual(p[1].reactions, { '🎉': ['alice'] });
  assert.equal(p[1].pending, 'reaction');
  // A pending retraction.
  const r = visible(msgs, [{ type: 'retract', ref: 'm1', from: 'alice' }]);
  assert.equal(r[0].retracted, true);
  assert.equal(r[0].pending, 'retract');
  // Messages without ids (unsent ones) pass through.
  assert.equal(visible([{ from: 'alice', body: 'unsent', cid: 'c1' }]).length, 1);
});

test('who may edit and retract', () => {
  assert.equal(canEdit(orig, 'alice'), true);
  assert.equal(canEdit(orig, 'bob'), false);
  assert.equal(canEdit({ ...orig, type: 'file' }, 'alice'), false);
  assert.equal(canEdit({ ...orig, retracted: true }, 'alice'), false);
  assert.equal(canEdit({ ...orig, id: undefined }, 'alice'), false, 'not yet stamped');
  assert.equal(canRetract(orig, 'alice'), true);
  assert.equal(canRetract(orig, 'bob'), false);
  const g = { ...orig, to: undefined, group: 'g1' };
  assert.equal(canRetract(g, 'bob', 'bob'), true, 'the group owner');
  assert.equal(canRetract(g, 'bob', 'carol'), false);
  assert.equal(canRetract({ ...orig, group: undefined }, 'bob', 'bob'), false, 'no owner in a DM');
});

table('isOneEmoji', [
  ['👍', true], ['❤️', true], ['👍🏽', true], ['🇨🇳', true], ['👩‍👩‍👧', true],
  ['👍👍', false], ['a', false], ['', false], ['天', false], ['1', false],
], (s, want) => {
  assert.equal(isOneEmoji(s), want);
});

test('snippet', () => {
  assert.equal(snippet({ body: ' a\n b ' }), 'a b');
  assert.equal(snippet({ retracted: true }), 'Message deleted');
  assert.equal(snippet(undefined), 'Original message not loaded');
  assert.equal(snippet({ body: '天'.repeat(130) }, 120), `${'天'.repeat(120)}…`);
});

/** A table-driven test: one subtest per row, named by its first cell; `fn` gets the row's cells. */
function table(name, rows, fn) {
  test(name, async (t) => {
    for (const row of rows) await t.test(String(row[0]), () => fn(...row));
  });
}
