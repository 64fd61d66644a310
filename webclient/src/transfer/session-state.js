// @ts-check
// The ROAP session state machine of a file transfer, without WebRTC or the
// DOM: which state a session is in, which signals it takes in that state,
// and what it does when its connection breaks. transfers.js owns the peer
// connection, the timers and the messages; it asks this machine what to do
// and does it. Unit tests: test/unit/session-state.test.mjs.
//
// Caller (offerer):  new -> offer-sent -> answer-received -> open
// Callee:            new -> answer-sent -> open
// A renegotiation (an OFFER on a new connection, to resume) starts again
// from offer-sent (caller) or answer-sent (callee) without going back to new.

import { backoff } from '../backoff.js';
import { RoapErrorType } from './roap.js';

/** @typedef {'new'|'offer-sent'|'answer-sent'|'answer-received'|'open'} SessionStateName */

export const SessionState = Object.freeze({
  NEW: /** @type {SessionStateName} */ ('new'),
  OFFER_SENT: /** @type {SessionStateName} */ ('offer-sent'),
  ANSWER_SENT: /** @type {SessionStateName} */ ('answer-sent'),
  ANSWER_RECEIVED: /** @type {SessionStateName} */ ('answer-received'),
  OPEN: /** @type {SessionStateName} */ ('open'),
});

/** OFFERs the caller makes in a row to resume before it gives up. */
export const RECONNECT_TRIES = 3;
/** How long a callee waits for the caller's resuming OFFER. */
export const RESUME_GRACE = 30000;

/**
 * What to do about a broken connection (see SessionMachine.lost).
 * @typedef {{do: 'end', errorType: string, tell: boolean}
 *   | {do: 'wait', ms: number}
 *   | {do: 'reoffer', delay: number}} LostAction
 */

export class SessionMachine {
  /**
   * @param {{me: string, peer: string, offerer: boolean}} o
   */
  constructor({ me, peer, offerer }) {
    this.me = me;
    this.peer = peer;
    this.offerer = offerer;
    /** @type {SessionStateName} */
    this.state = SessionState.NEW;
    /** OFFERs since the data channel last opened. */
    this.reconnects = 0;
  }

  /** Our OFFER went out (a new session, or a resume). */
  offerSent() {
    this.state = SessionState.OFFER_SENT;
  }

  /**
   * A peer's OFFER for this session. 'ignore': glare, both offered and the
   * lower user id's offer wins, so the higher id ignores the other's;
   * 'answer': answer on the session's first connection (state new);
   * 'renegotiate': answer on a new connection (a resume).
   * @returns {'ignore'|'answer'|'renegotiate'}
   */
  onOffer() {
    if (this.state === SessionState.OFFER_SENT && this.me < this.peer) return 'ignore';
    return this.state === SessionState.NEW ? 'answer' : 'renegotiate';
  }

  /** Our ANSWER went out. */
  answerSent() {
    this.state = SessionState.ANSWER_SENT;
  }

  /**
   * A peer's ANSWER: taken only after our OFFER, and only the first (a
   * second device of the peer's answering lost to the first).
   * @returns {boolean} whether to apply it
   */
  onAnswer() {
    return this.step(SessionState.OFFER_SENT, SessionState.ANSWER_RECEIVED);
  }

  /** The ANSWER is applied and OK sent: the caller's session is open. */
  answerApplied() {
    this.state = SessionState.OPEN;
  }

  /**
   * The peer's OK: the callee's session is open.
   * @returns {boolean} whether it was expected (after our ANSWER)
   */
  onOK() {
    return this.step(SessionState.ANSWER_SENT, SessionState.OPEN);
  }

  /**
   * Moves from one state to another, if in from.
   * @param {SessionStateName} from
   * @param {SessionStateName} to
   */
  step(from, to) {
    if (this.state !== from) return false;
    this.state = to;
    return true;
  }

  /** The data channel opened: a resume starts counting its tries again. */
  channelOpened() {
    this.reconnects = 0;
  }

  /**
   * The connection broke. Before the session opened, or with nothing left
   * to move, the session ends; the caller tells the peer, the callee does
   * not: it may be one of several devices of the user that answered, whose
   * answer lost to another's, and its ERROR would end the session that won.
   * Otherwise the caller offers again after a growing pause, up to
   * RECONNECT_TRIES times in a row, and the callee waits RESUME_GRACE for
   * that OFFER.
   * @param {boolean} allEnded every file of the session has ended
   * @returns {LostAction}
   */
  lost(allEnded) {
    if (allEnded) return { do: 'end', errorType: '', tell: this.offerer };
    if (this.state !== SessionState.OPEN) return { do: 'end', errorType: RoapErrorType.FAILED, tell: this.offerer };
    if (!this.offerer) return { do: 'wait', ms: RESUME_GRACE };
    if (this.reconnects >= RECONNECT_TRIES) return { do: 'end', errorType: RoapErrorType.FAILED, tell: true };
    this.reconnects++;
    return { do: 'reoffer', delay: backoff(this.reconnects, { base: 250, max: 250 * 2 ** (RECONNECT_TRIES - 1), jitter: 0 }) };
  }

  /**
   * Whether a receiving side that never learnt which file was meant should
   * show a failed transfer when the session ends with errorType: only for a
   * connection that could not form (FAILED) after an OFFER came.
   * @param {string} errorType
   * @param {number} items how many items the session has
   */
  showsUnknownFailure(errorType, items) {
    return !this.offerer && errorType === RoapErrorType.FAILED && items === 0 && this.state !== SessionState.NEW;
  }
}
