// @ts-check
// Which seqs of a conversation the local cache holds completely. No DOM.
//
// Rows alone cannot say it: a history page may leave out records that only
// change others (edits, retractions, reactions: their effect is folded into
// the messages it returns), and a jump to a search result loads a window in
// the middle of a conversation. So every source records the range it is
// complete for (a history page from `before` down to its oldest message, a
// sync walk from its first to its last message of the conversation, a live
// message its own seq), and paging reads the cache only inside those runs.

/** A set of seqs as sorted, disjoint, non-adjacent closed intervals [lo, hi]. */
export class SeqRuns {
  /** @param {Array<[number, number]>} [runs] as from toJSON */
  constructor(runs = []) {
    /** @type {Array<[number, number]>} */
    this.runs = [];
    for (const [lo, hi] of runs) this.add(lo, hi);
  }

  /**
   * Adds [lo, hi] (merging with the runs it touches or adjoins).
   * @param {number} lo
   * @param {number} hi
   */
  add(lo, hi) {
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo > hi || lo < 1) return;
    /** @type {Array<[number, number]>} */
    const out = [];
    let placed = false;
    for (const r of this.runs) {
      if (r[1] + 1 < lo) out.push(r);
      else if (hi + 1 < r[0]) {
        if (!placed) {
          out.push([lo, hi]);
          placed = true;
        }
        out.push(r);
      } else {
        lo = Math.min(lo, r[0]);
        hi = Math.max(hi, r[1]);
      }
    }
    if (!placed) out.push([lo, hi]);
    this.runs = out;
  }

  /** @param {number} seq */
  has(seq) {
    return this.runs.some(([lo, hi]) => lo <= seq && seq <= hi);
  }

  /**
   * The run holding `seq`, or null.
   * @param {number} seq
   * @returns {[number, number]|null}
   */
  runOf(seq) {
    return this.runs.find(([lo, hi]) => lo <= seq && seq <= hi) || null;
  }

  /**
   * The lowest L with [L, before-1] complete; `before` when before-1 is not held.
   * @param {number} before
   */
  completeDownFrom(before) {
    const r = this.runOf(before - 1);
    return r ? r[0] : before;
  }

  /**
   * The highest H with [after+1, H] complete; `after` when after+1 is not held.
   * @param {number} after
   */
  completeUpFrom(after) {
    const r = this.runOf(after + 1);
    return r ? r[1] : after;
  }

  /** The highest seq held, 0 when none. */
  get max() {
    return this.runs.length ? this.runs[this.runs.length - 1][1] : 0;
  }

  /** @returns {Array<[number, number]>} */
  toJSON() {
    return this.runs.map(([lo, hi]) => [lo, hi]);
  }
}

/**
 * The runs a set of seqs forms by itself (a cache written before runs were
 * recorded is complete where its seqs are consecutive).
 * @param {number[]} seqs
 * @returns {SeqRuns}
 */
export function runsOf(seqs) {
  const r = new SeqRuns();
  const sorted = [...seqs].sort((a, b) => a - b);
  let lo = 0;
  let prev = 0;
  for (const s of sorted) {
    if (lo && s === prev + 1) {
      prev = s;
      continue;
    }
    if (s === prev) continue;
    if (lo) r.add(lo, prev);
    lo = s;
    prev = s;
  }
  if (lo) r.add(lo, prev);
  return r;
}

/**
 * What one history page (newest first, answered for `before`) proves
 * complete: from its oldest message (1 when there is nothing older) up to
 * before-1, or to the newest message for the newest page.
 * @param {{seq: number}[]} msgs
 * @param {number} before exclusive; Infinity for the newest page
 * @param {boolean} more
 * @returns {[number, number]|null}
 */
export function historyCover(msgs, before, more) {
  const seqs = msgs.map((m) => m.seq).filter((s) => Number.isInteger(s) && s > 0);
  const top = before === Infinity ? (seqs.length ? Math.max(...seqs) : 0) : before - 1;
  if (top < 1) return null;
  const lo = !more ? 1 : seqs.length ? Math.min(...seqs) : top + 1;
  return lo <= top ? [lo, top] : null;
}
