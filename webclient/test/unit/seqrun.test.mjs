// Complete seq ranges of the cache (src/seqrun.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeqRuns, historyCover, runsOf } from '../../src/seqrun.js';

test('runs merge when they overlap or adjoin, stay apart otherwise', () => {
  const cases = [
    { add: [[1, 3], [4, 6]], want: [[1, 6]] },
    { add: [[5, 6], [1, 2]], want: [[1, 2], [5, 6]] },
    { add: [[1, 2], [5, 6], [3, 4]], want: [[1, 6]] },
    { add: [[10, 20], [12, 15]], want: [[10, 20]] },
    { add: [[10, 20], [1, 30]], want: [[1, 30]] },
    { add: [[1, 1], [3, 3], [7, 7], [2, 2]], want: [[1, 3], [7, 7]] },
    { add: [[3, 2], [0, 4], [1.5, 2]], want: [] },
  ];
  for (const c of cases) {
    const r = new SeqRuns();
    for (const [lo, hi] of c.add) r.add(lo, hi);
    assert.deepEqual(r.toJSON(), c.want, JSON.stringify(c.add));
    assert.deepEqual(new SeqRuns(r.toJSON()).toJSON(), c.want, 'round trip');
  }
});

test('completeDownFrom and completeUpFrom walk one run', () => {
  const r = new SeqRuns([[1, 5], [8, 20]]);
  assert.equal(r.completeDownFrom(21), 8);
  assert.equal(r.completeDownFrom(15), 8);
  assert.equal(r.completeDownFrom(8), 8, '7 not held');
  assert.equal(r.completeDownFrom(6), 1);
  assert.equal(r.completeUpFrom(7), 20);
  assert.equal(r.completeUpFrom(20), 20);
  assert.equal(r.completeUpFrom(0), 5);
  assert.equal(r.has(6), false);
  assert.equal(r.has(8), true);
  assert.equal(r.max, 20);
  assert.equal(new SeqRuns().max, 0);
});

test('runsOf: consecutive seqs of an old cache', () => {
  assert.deepEqual(runsOf([5, 1, 2, 3, 3, 9, 10]).toJSON(), [[1, 3], [5, 5], [9, 10]]);
  assert.deepEqual(runsOf([]).toJSON(), []);
});

test('historyCover: what one page proves complete', () => {
  const page = (...seqs) => seqs.map((seq) => ({ seq }));
  // Newest page: from its oldest to its newest.
  assert.deepEqual(historyCover(page(20, 19, 17), Infinity, true), [17, 20]);
  // Older page before 17 that skipped annotation seqs 14 and 12: complete down to 11.
  assert.deepEqual(historyCover(page(16, 15, 13, 11), 17, true), [11, 16]);
  // The first page of the conversation: down to 1 even if seq 1 was an annotation... or absent.
  assert.deepEqual(historyCover(page(4, 3), 5, false), [1, 4]);
  // A window page answered for before=40 around a search hit.
  assert.deepEqual(historyCover(page(39, 38, 30), 40, true), [30, 39]);
  // Nothing: an empty conversation, or a contradictory answer.
  assert.equal(historyCover([], Infinity, false), null);
  assert.equal(historyCover([], 10, true), null);
  assert.deepEqual(historyCover([], 10, false), [1, 9]);
});
