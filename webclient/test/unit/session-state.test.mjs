// The ROAP session state machine of file transfers (src/transfer/session-state.js)
// without WebRTC: the states, glare, duplicate answers, and what a broken
// connection leads to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RECONNECT_TRIES, RESUME_GRACE, SessionMachine, SessionState } from '../../src/transfer/session-state.js';
import { RoapErrorType } from '../../src/transfer/roap.js';
import { backoff } from '../../src/backoff.js';

const caller = (me = 'alice', peer = 'bob') => new SessionMachine({ me, peer, offerer: true });
const callee = (me = 'bob', peer = 'alice') => new SessionMachine({ me, peer, offerer: false });

test('caller: new, offer-sent, answer-received, open', () => {
  const m = caller();
  assert.equal(m.state, SessionState.NEW);
  m.offerSent();
  assert.equal(m.state, SessionState.OFFER_SENT);
  assert.equal(m.onOK(), false, 'an OK before our ANSWER is not expected');
  assert.equal(m.onAnswer(), true);
  assert.equal(m.state, SessionState.ANSWER_RECEIVED);
  assert.equal(m.onAnswer(), false, "a second device's ANSWER loses to the first");
  m.answerApplied();
  assert.equal(m.state, SessionState.OPEN);
});

test('callee: new, answer-sent, open on OK; an OK twice is ignored', () => {
  const m = callee();
  assert.equal(m.onOffer(), 'answer', 'the first OFFER is answered on the first connection');
  m.answerSent();
  assert.equal(m.state, SessionState.ANSWER_SENT);
  assert.equal(m.onAnswer(), false, 'a callee takes no ANSWER');
  assert.equal(m.onOK(), true);
  assert.equal(m.state, SessionState.OPEN);
  assert.equal(m.onOK(), false);
  assert.equal(m.onOffer(), 'renegotiate', 'an OFFER on an open session resumes on a new connection');
});

test('glare: the lower user id offer wins', () => {
  const low = caller('alice', 'bob');
  low.offerSent();
  assert.equal(low.onOffer(), 'ignore', 'alice keeps her own OFFER');
  const high = caller('bob', 'alice');
  high.offerSent();
  assert.equal(high.onOffer(), 'renegotiate', "bob answers alice's OFFER");
});

test('lost before open: the session fails; only the caller tells the peer', () => {
  const c = caller();
  c.offerSent();
  assert.deepEqual(c.lost(false), { do: 'end', errorType: RoapErrorType.FAILED, tell: true });
  const d = callee();
  d.answerSent();
  assert.deepEqual(d.lost(false), { do: 'end', errorType: RoapErrorType.FAILED, tell: false });
});

test('lost with every file ended: a clean end', () => {
  const c = caller();
  c.offerSent(); c.onAnswer(); c.answerApplied();
  assert.deepEqual(c.lost(true), { do: 'end', errorType: '', tell: true });
  assert.deepEqual(callee().lost(true), { do: 'end', errorType: '', tell: false });
});

test('lost while open: the callee waits for the resume, the caller reoffers with a growing pause, then gives up', () => {
  const d = callee();
  d.answerSent(); d.onOK();
  assert.deepEqual(d.lost(false), { do: 'wait', ms: RESUME_GRACE });

  const c = caller();
  c.offerSent(); c.onAnswer(); c.answerApplied();
  const delays = [];
  for (let i = 0; i < RECONNECT_TRIES; i++) {
    const a = c.lost(false);
    assert.equal(a.do, 'reoffer');
    delays.push(a.delay);
    c.offerSent(); c.onAnswer(); c.answerApplied(); // the resume's OFFER went through, the channel did not open
  }
  assert.deepEqual(delays, [250, 500, 1000]);
  assert.deepEqual(c.lost(false), { do: 'end', errorType: RoapErrorType.FAILED, tell: true });

  c.channelOpened(); // a channel that opens starts the count again
  assert.equal(c.lost(false).do, 'reoffer');
});

test('an unknown failure is shown only by a callee that got an OFFER and no file', () => {
  const d = callee();
  assert.equal(d.showsUnknownFailure(RoapErrorType.FAILED, 0), false, 'state new: nothing came');
  d.onOffer(); d.answerSent();
  assert.equal(d.showsUnknownFailure(RoapErrorType.FAILED, 0), true);
  assert.equal(d.showsUnknownFailure(RoapErrorType.FAILED, 1), false, 'the item itself shows it');
  assert.equal(d.showsUnknownFailure(RoapErrorType.TIMEOUT, 0), false);
  const c = caller();
  c.offerSent();
  assert.equal(c.showsUnknownFailure(RoapErrorType.FAILED, 0), false);
});

test('backoff: doubles from base up to max, jitter on top', () => {
  const none = { jitter: 0 };
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoff(n, none)), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(backoff(1e9, { base: 1000, max: 10_000, jitter: 0 }), 10_000, 'no overflow on a long outage');
  assert.equal(backoff(0, none), 1000, 'attempt 0 counts as the first');
  assert.equal(backoff(1, { random: () => 1 }), 1300, 'up to 30% more by default');
  assert.equal(backoff(2, { base: 250, max: 1000, jitter: 0 }), 500);
});
