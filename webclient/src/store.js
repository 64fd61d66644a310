// @ts-check
// Local storage of chat records, after the seed paper: message bodies in
// IndexedDB with indexes on time and type, the recent conversation list in
// localStorage.
//
// IndexedDB ("mqim-{user}", one database per account so two accounts on one
// browser never mix):
//   messages  key [conv, seq]; indexes ts, type, id (unique), ref. The key orders a
//             conversation by seq, and putting the same message twice (live,
//             then again from sync or history) overwrites it: de-duplication
//             comes from the key. Edits, retractions and reactions are rows
//             too (indexed by `ref`, the id they change) and are folded into
//             the row they change as they are written (src/annotations.js),
//             so a reload shows what the last session showed.
//   outbox    key cid; messages written but not yet acknowledged by the broker,
//             so they survive a reload while offline.
//   meta      key "key"; the sync cursor, per-conversation flags, and
//             "runs:{conv}": the seq ranges the cache holds completely (src/seqrun.js).

import { applyAnnotation, fold, isAnnotation } from './annotations.js';
import { SeqRuns, runsOf } from './seqrun.js';

/** 2: the ref index and seq runs (edits, retractions, reactions). */
const dbVersion = 2;

/** Fields that hold what annotations did to a message. */
const foldedFields = ['body', 'edited', 'retracted', 'reactions', 'base', 'editSeq', 'reactSeq'];

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error || new Error('transaction aborted'));
    tx.onerror = () => reject(tx.error);
  });
}

export class MessageStore {
  /** @param {IDBDatabase} db */
  constructor(db) {
    this.db = db;
  }

  /** Opens (creating or upgrading) the database of `user`. */
  static async open(user) {
    const r = indexedDB.open(`mqim-${user}`, dbVersion);
    r.onupgradeneeded = (ev) => {
      const db = r.result;
      if (!db.objectStoreNames.contains('messages')) {
        const m = db.createObjectStore('messages', { keyPath: ['conv', 'seq'] });
        m.createIndex('ts', 'ts');
        m.createIndex('type', 'type');
        m.createIndex('id', 'id', { unique: true });
      }
      if (!db.objectStoreNames.contains('outbox')) {
        const o = db.createObjectStore('outbox', { keyPath: 'cid' });
        o.createIndex('conv', 'conv');
      }
      if (!db.objectStoreNames.contains('meta')) db.createObjectStore('meta', { keyPath: 'key' });
      const msgs = r.transaction.objectStore('messages');
      if (!msgs.indexNames.contains('ref')) msgs.createIndex('ref', 'ref');
      if (ev.oldVersion === 1) upgradeRuns(msgs, r.transaction.objectStore('meta'));
    };
    // A tab of an older version keeps the database open and holds the upgrade back until it closes.
    r.onblocked = () => console.warn('store: waiting for another tab of mqim to close (database upgrade)');
    const db = await req(r);
    // And this tab lets a newer version upgrade: it closes (and reloads into the new version).
    // A deletion (sign-out in another tab) still waits for this tab to close, as before.
    db.onversionchange = (ev) => {
      if (ev.newVersion === null) return;
      db.close();
      location.reload();
    };
    return new MessageStore(db);
  }

  /** Deletes the database of `user` (sign out on a shared browser). */
  static remove(user) {
    // Best effort: a database another tab holds open is deleted once it
    // closes; sign-out goes on either way.
    return req(indexedDB.deleteDatabase(`mqim-${user}`)).catch((err) => console.warn('store: cache not deleted:', err));
  }

  /**
   * Stores messages (each with its `conv`) and, in the same transaction, the
   * sync cursor that follows them, so a crash cannot record a cursor past
   * messages that were never written. Annotations are stored and folded into
   * the rows they change; a message is stored with the annotations already
   * held folded in.
   * @param {object[]} msgs
   * @param {string} [cursor]
   * @param {{base?: Map<string, number>, cover?: Map<string, Array<[number, number]>>}} [o]
   *   base: per conversation, the seq up to which server copies among `msgs`
   *   already hold annotations (history, search); cover: seq ranges `msgs`
   *   prove complete (src/seqrun.js)
   * @returns {Promise<object[]>} the message rows as written (annotations
   *   not included; the rows they changed are)
   */
  async put(msgs, cursor, { base, cover } = {}) {
    const tx = this.db.transaction(['messages', 'meta'], 'readwrite');
    const finished = done(tx);
    const store = tx.objectStore('messages');
    /** @type {Map<string, object>} id -> row written */
    const written = new Map();
    const write = (m) => {
      // A message id seen under another key would violate the unique index and
      // abort the batch; skip it instead (ids are unique server-side).
      store.put(m).onerror = (e) => {
        e.preventDefault();
        e.stopPropagation();
      };
    };
    try {
      // Seq order: a message before the annotations of it in the same batch.
      for (const m of [...msgs].sort((a, b) => a.seq - b.seq)) {
        if (isAnnotation(m)) {
          write(m);
          const t = written.get(m.ref) || await req(store.index('id').get(m.ref));
          if (!t || t.conv !== m.conv) continue; // not cached: a later copy of it is folded from this row
          const next = applyAnnotation(t, m);
          if (next !== t) {
            write(next);
            written.set(next.id, next);
          }
          continue;
        }
        let row = m;
        const b = Math.max(m.base || 0, (base && base.get(m.conv)) || 0);
        if (b) row = { ...row, base: b };
        const old = written.get(m.id) || await req(store.get([m.conv, m.seq]));
        // A copy that knows less than what is stored (sync's plain copy of a
        // message a history page brought folded) keeps the stored state.
        if (old && old.id === m.id && (old.base || 0) > (row.base || 0)) row = withFolded(row, old);
        const anns = await req(store.index('ref').getAll(m.id));
        row = fold(row, anns.filter((a) => a.conv === m.conv));
        write(row);
        written.set(m.id, row);
      }
      const meta = tx.objectStore('meta');
      for (const [conv, ranges] of cover || []) {
        const key = `runs:${conv}`;
        const got = await req(meta.get(key));
        const runs = new SeqRuns(got ? got.value : []);
        for (const [lo, hi] of ranges) runs.add(lo, hi);
        meta.put({ key, value: runs.toJSON() });
      }
      if (cursor !== undefined) meta.put({ key: 'cursor', value: cursor });
    } catch (err) {
      tx.abort();
      await finished.catch(() => {});
      throw err;
    }
    await finished;
    return [...written.values()];
  }

  /**
   * The seq ranges of `conv` the cache holds completely.
   * @param {string} conv
   * @returns {Promise<SeqRuns>}
   */
  async runs(conv) {
    return new SeqRuns((await this.getMeta(`runs:${conv}`)) || []);
  }

  /**
   * The stored row with message id `id`, if any.
   * @param {string} id
   */
  byId(id) {
    return req(this.db.transaction('messages').objectStore('messages').index('id').get(id));
  }

  /**
   * Rows of `conv` with lo <= seq <= hi, oldest first, at most `limit`.
   * @returns {Promise<object[]>}
   */
  range(conv, lo, hi, limit = 200) {
    const range = IDBKeyRange.bound([conv, lo], [conv, hi]);
    return req(this.db.transaction('messages').objectStore('messages').getAll(range, limit));
  }

  /**
   * Up to `limit` messages of `conv` with seq < before, newest first.
   * @returns {Promise<object[]>}
   */
  async page(conv, before = Infinity, limit = 50) {
    const upper = before === Infinity ? [conv, Infinity] : [conv, before];
    const range = IDBKeyRange.bound([conv, -Infinity], upper, false, true);
    const tx = this.db.transaction('messages');
    const out = [];
    await new Promise((resolve, reject) => {
      const cur = tx.objectStore('messages').openCursor(range, 'prev');
      cur.onsuccess = () => {
        const c = cur.result;
        if (!c || out.length >= limit) return resolve();
        out.push(c.value);
        c.continue();
      };
      cur.onerror = () => reject(cur.error);
    });
    return out;
  }

  /** Messages of one type, across conversations, newest first (uses the type index). */
  async byType(type, limit = 100) {
    const tx = this.db.transaction('messages');
    const all = await req(tx.objectStore('messages').index('type').getAll(type));
    return all.sort((a, b) => b.ts - a.ts).slice(0, limit);
  }

  /** Messages in a time window [from, to) across conversations (uses the ts index). */
  byTime(from, to) {
    const tx = this.db.transaction('messages');
    return req(tx.objectStore('messages').index('ts').getAll(IDBKeyRange.bound(from, to, false, true)));
  }

  async getMeta(key) {
    const row = await req(this.db.transaction('meta').objectStore('meta').get(key));
    return row ? row.value : undefined;
  }

  async setMeta(key, value) {
    const tx = this.db.transaction('meta', 'readwrite');
    tx.objectStore('meta').put({ key, value });
    await done(tx);
  }

  cursor() {
    return this.getMeta('cursor');
  }

  async addOutbox(item) {
    const tx = this.db.transaction('outbox', 'readwrite');
    tx.objectStore('outbox').put(item);
    await done(tx);
  }

  async removeOutbox(cid) {
    const tx = this.db.transaction('outbox', 'readwrite');
    tx.objectStore('outbox').delete(cid);
    await done(tx);
  }

  /** Queued messages, oldest first. */
  async outbox() {
    const all = await req(this.db.transaction('outbox').objectStore('outbox').getAll());
    return all.sort((a, b) => a.ts - b.ts);
  }

  close() {
    this.db.close();
  }
}

/** `row` with the annotation state of `old` instead of its own. */
function withFolded(row, old) {
  const out = { ...row };
  for (const f of foldedFields) {
    if (f in old) out[f] = old[f];
    else delete out[f];
  }
  return out;
}

/**
 * Version 1 recorded no seq runs: its rows are complete where their seqs are
 * consecutive (that is how version 1 paged), so those become the runs.
 */
function upgradeRuns(msgs, meta) {
  /** @type {Map<string, number[]>} */
  const seqs = new Map();
  const cur = msgs.openCursor();
  cur.onsuccess = () => {
    const c = cur.result;
    if (c) {
      const [conv, seq] = /** @type {[string, number]} */ (c.primaryKey);
      if (!seqs.has(conv)) seqs.set(conv, []);
      seqs.get(conv).push(seq);
      c.continue();
      return;
    }
    for (const [conv, list] of seqs) meta.put({ key: `runs:${conv}`, value: runsOf(list).toJSON() });
  };
}

/**
 * The recent conversation list, kept in localStorage per user so the sidebar
 * renders at once on reload, before any request. Entries:
 * {conv, kind: "dm"|"group", peer?, group?, name, last?: {from, body, type, ts, seq},
 *  lastSeq, unread, read, peerDelivered, peerRead, touched}
 */
export class RecentList {
  constructor(user, storage = localStorage) {
    this.key = `mqim.recent.${user}`;
    this.storage = storage;
    /** @type {Map<string, object>} */
    this.entries = new Map();
    try {
      for (const e of JSON.parse(storage.getItem(this.key) || '[]')) this.entries.set(e.conv, e);
    } catch {
      this.entries.clear();
    }
    /** @type {ReturnType<typeof setTimeout> | 0} */ 
    this.saveTimer = 0;
  }

  get(conv) {
    return this.entries.get(conv);
  }

  /** Returns the entry of `conv`, creating an empty one. */
  ensure(conv, init) {
    let e = this.entries.get(conv);
    if (!e) {
      e = { conv, unread: 0, read: 0, lastSeq: 0, peerDelivered: 0, peerRead: 0, touched: Date.now(), ...init };
      this.entries.set(conv, e);
    }
    return e;
  }

  delete(conv) {
    this.entries.delete(conv);
    this.save();
  }

  /** Entries, most recent activity first. */
  list() {
    const when = (e) => (e.last ? e.last.ts : 0) || e.touched || 0;
    return [...this.entries.values()].sort((a, b) => when(b) - when(a));
  }

  /** Saves soon; many updates in one burst (a sync page) cost one write. */
  save() {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => this.flush(), 50);
  }

  flush() {
    clearTimeout(this.saveTimer);
    this.saveTimer = 0;
    try {
      this.storage.setItem(this.key, JSON.stringify(this.list()));
    } catch (err) {
      console.warn('mqim: cannot save recent list', err);
    }
  }
}
