// @ts-check
// The chat model: joins the HTTP API, the MQTT connection and the local store,
// and tells the UI what changed. It holds no DOM.
//
// Where messages come from, and how they meet:
//   live      MQTT deliveries on im/u/{me}/dm|g/...  (including carbons)
//   sync      GET /sync?since=cursor on every (re)connect, for what was missed
//   history   GET /history/... when scrolling past what IndexedDB holds
// All three go through addMessages, which stores by [conv, seq] (so a message
// seen twice is one record), updates the recent list, and the open view.
//
// Events (an EventTarget, all CustomEvent):
//   state          {state, retryIn, reason}  connection state changed
//   conversations  {}                        recent list / presence / typing changed
//   view           {conv, kind}              the open conversation changed:
//                                            kind "reset" | "append" | "prepend" | "newer" | "update"
//   notice         {text, level}             something to tell the user
//   incoming       {conv, msg}               a new live message from someone else
//   signout        {reason}                  the session ended (token refused)

import { isAnnotation, snippet, visible } from './annotations.js';
import { SearchQuery } from './search.js';
import { historyCover } from './seqrun.js';
import { ApiError } from './api.js';
import { humanError } from './errors.js';
import { Connection, claimDevice } from './connection.js';
import { defaultBodyBytes } from './limits.js';
import { People } from './people.js';
import { MessageStore, RecentList } from './store.js';
import {
  convOf, dmConv, groupConv, parseTopic, presenceTopic, receiptTopic, sendTopic, splitConv,
  typingTopic,
} from './topics.js';

/**
 * The details of the events above.
 * @typedef {{state: string, retryIn?: number, transport?: string, reason?: string}} StateDetail
 * @typedef {'reset'|'append'|'prepend'|'newer'|'update'} ViewKind
 * @typedef {{conv: string, kind: ViewKind}} ViewDetail
 * @typedef {{text: string, level: string}} NoticeDetail
 * @typedef {{conv: string, msg: import('./annotations.js').Msg}} IncomingDetail
 * @typedef {{reason: string}} SignoutDetail
 */

export const pageSize = 50;
/** How long a "typing" indication lasts without a refresh. */
const typingTTL = 6000;
/** How often we repeat our own "typing" while the user keeps typing. */
const typingEvery = 3000;
/** A new device keeps this many recent messages per conversation from its first sync. */
const bootstrapWindow = pageSize;

let cidCounter = 0;

function newCid() {
  const rnd = crypto.getRandomValues(new Uint8Array(4));
  const hex = Array.from(rnd, (b) => b.toString(16).padStart(2, '0')).join('');
  return `w${Date.now().toString(36)}-${(cidCounter++).toString(36)}-${hex}`;
}

function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export class ChatClient extends EventTarget {
  /**
   * @param {{user: string, token: string, api: import('./api.js').Api}} opts
   */
  constructor({ user, token, api }) {
    super();
    this.me = user;
    this.token = token;
    this.api = api;
    this.recent = new RecentList(user);
    /** @type {MessageStore|null} */
    this.store = null;
    /** @type {Connection|null} */
    this.conn = null;
    /** user -> presence doc */
    this.presence = new Map();
    /** conv -> {user, until} */
    this.typing = new Map();
    /** gid -> group */
    this.groups = new Map();
    /** cid -> outbox item (pending, sent or failed) */
    this.outbox = new Map();
    /** The open conversation: {conv, msgs: Map<seq, msg>, atStart, loading} */
    this.view = null;
    this.syncing = null;
    this.typingSent = 0;
    /** @type {ReturnType<typeof setTimeout> | 0} */
    this.typingIdleTimer = 0;
    this.typingTo = '';
    this.receiptTimers = new Map();
    this.visible = document.visibilityState === 'visible';
    /** @type {ReturnType<typeof setTimeout> | 0} */
    this.awayTimer = 0;
    this.away = false;
    /** The server's message body limit in bytes (GET /api/v1/connect). */
    this.bodyLimit = defaultBodyBytes;
    /** Names, avatars, contacts, blocks and message requests (people.js). */
    this.people = new People(api, user);
    this.people.addEventListener('change', () => {
      this.emit('conversations');
      if (this.view) this.emit('view', { conv: this.view.conv, kind: 'update' });
    });
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  notice(text, level = 'info') {
    this.emit('notice', { text, level });
  }

  get state() {
    return this.conn ? this.conn.state : 'offline';
  }

  /** Opens the local store and connects. Everything cached is usable before the network answers. */
  async start() {
    this.store = await MessageStore.open(this.me);
    for (const item of await this.store.outbox()) this.outbox.set(item.cid, item);
    const { device, primary } = await claimDevice(this.me);
    this.conn = new Connection({ user: this.me, token: this.token, device, primary });
    this.conn.addEventListener('state', (e) => this.emit('state', /** @type {CustomEvent<StateDetail>} */ (e).detail));
    this.conn.addEventListener('message', (e) => {
      const { topic, text } = /** @type {CustomEvent<{topic: string, text: string}>} */ (e).detail;
      this.handleMQTT(topic, text);
    });
    this.conn.addEventListener('connect', () => this.handleConnect());
    this.conn.addEventListener('authfailed', () => this.emit('signout', { reason: 'Your session has expired. Please sign in again.' }));
    this.conn.start();
    document.addEventListener('visibilitychange', this.onVisibility);
    window.addEventListener('pagehide', this.onPageHide);
    this.refreshGroups().catch(() => {});
    this.api.connectInfo().then((info) => {
      const n = info && info.limits && info.limits.body_bytes;
      if (Number.isInteger(n) && n > 0) this.bodyLimit = n;
    }, () => {});
  }

  stop() {
    document.removeEventListener('visibilitychange', this.onVisibility);
    window.removeEventListener('pagehide', this.onPageHide);
    clearTimeout(this.awayTimer);
    if (this.conn) this.conn.stop();
    this.recent.flush();
    if (this.store) this.store.close();
  }

  onPageHide = () => this.recent.flush();

  onVisibility = () => {
    this.visible = document.visibilityState === 'visible';
    clearTimeout(this.awayTimer);
    if (this.visible) {
      if (this.away) this.setStatus('online');
      if (this.view) this.markRead(this.view.conv);
    } else {
      // Hidden for a while: tell others we are away (not offline: messages still arrive).
      this.awayTimer = setTimeout(() => this.setStatus('away'), 60_000);
    }
  };

  setStatus(status, text) {
    this.away = status === 'away';
    const doc = { status };
    if (text) doc.text = text;
    this.conn.publish(presenceTopic(this.me), JSON.stringify(doc), 1).catch(() => {});
  }

  // ---- connection lifecycle -------------------------------------------------

  async handleConnect() {
    if (this.view && this.view.error) {
      this.view.error = ''; // older pages may load now
      this.emit('view', { conv: this.view.conv, kind: 'update' });
    }
    // Publish first what was written while offline, then catch up: the broker
    // replays the queued session, sync covers anything beyond it.
    await this.flushOutbox();
    await this.sync();
    this.refreshConversations().catch((err) => console.warn('mqim: conversations', err));
    this.refreshGroups().catch(() => {});
    this.refreshPresence().catch(() => {});
    this.people.refresh().catch((err) => console.warn('mqim: people', err));
  }

  /** Walks GET /sync from the stored cursor to the end. One run at a time. */
  sync() {
    if (!this.syncing) {
      this.syncing = this.runSync().finally(() => {
        this.syncing = null;
      });
    }
    return this.syncing;
  }

  async runSync() {
    let cursor = await this.store.cursor();
    const fresh = cursor === undefined;
    // A new device walks the whole mailbox (the API has no "start from now"),
    // but keeps only the recent window of each conversation; older pages come
    // from GET /history when scrolled to.
    const window = new Map();
    /** conv -> the last seq this walk brought (sync misses nothing in between) */
    const walked = new Map();
    try {
      for (;;) {
        const page = await this.api.sync(cursor, 500);
        const msgs = page.messages || [];
        if (fresh) {
          for (const m of msgs) {
            const conv = convOf(this.me, m);
            const w = window.get(conv) || [];
            w.push(m);
            if (w.length > bootstrapWindow) w.shift();
            window.set(conv, w);
          }
          cursor = page.cursor;
          if (!page.more) {
            const kept = [...window.values()].flat();
            await this.addMessages(kept, { source: 'sync', cursor, cover: syncCover(this.me, kept, new Map()) });
            break;
          }
        } else {
          cursor = page.cursor;
          await this.addMessages(msgs, { source: 'sync', cursor, cover: syncCover(this.me, msgs, walked) });
          if (!page.more) break;
        }
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      console.warn('mqim: sync failed', err);
    }
  }

  async refreshConversations() {
    const { conversations = [] } = await this.api.conversations();
    for (const c of conversations) {
      const conv = c.id || (c.kind === 'group' ? groupConv(c.group) : dmConv(c.peer));
      const e = this.ensureEntry(conv);
      if (c.name) e.name = c.name;
      if (c.last && (!e.last || (c.last.seq || 0) >= (e.last.seq || 0))) {
        // An edit or reaction as the last record: the list keeps the message it changed.
        if (!isAnnotation(c.last)) e.last = summary(c.last);
        e.lastSeq = Math.max(e.lastSeq, c.last.seq || 0);
      }
      const serverRead = typeof c.read === 'number' ? c.read : 0;
      e.readSent = Math.max(e.readSent || 0, serverRead);
      if (typeof c.unread === 'number') {
        // The server counts from its marker; ours may be ahead if the tab
        // closed before our read receipt went out (it is re-sent below).
        e.unread = (e.read || 0) > serverRead ? Math.min(c.unread, Math.max(0, e.lastSeq - e.read)) : c.unread;
      }
      e.read = Math.max(e.read || 0, serverRead);
      if (this.isViewing(conv)) this.markRead(conv);
      else if ((e.readSent || 0) < (e.read || 0)) this.sendRead(conv);
    }
    this.recent.save();
    this.emit('conversations');
  }

  async refreshGroups() {
    const { groups = [] } = await this.api.groups();
    const mine = new Set();
    for (const g of groups) {
      this.groups.set(g.id, g);
      mine.add(g.id);
      const e = this.ensureEntry(groupConv(g.id));
      e.name = g.name || g.id;
      e.left = false;
    }
    // Groups we were removed from stay readable, but cannot be written to.
    for (const e of this.recent.entries.values()) {
      if (e.kind === 'group' && !mine.has(e.group)) e.left = true;
    }
    this.recent.save();
    this.emit('conversations');
    if (this.view && this.view.conv.startsWith('g:')) this.emit('view', { conv: this.view.conv, kind: 'update' });
  }

  async refreshPresence() {
    const users = [...this.recent.entries.values()].filter((e) => e.kind === 'dm').map((e) => e.peer);
    if (!users.length) return;
    const { presence = {} } = await this.api.presence(users);
    for (const [u, doc] of Object.entries(presence)) {
      if (doc && !this.presence.has(u)) this.presence.set(u, doc);
    }
    this.emit('conversations');
  }

  // ---- incoming MQTT --------------------------------------------------------

  handleMQTT(topic, text) {
    const t = parseTopic(this.me, topic);
    if (!t) return;
    switch (t.kind) {
      case 'dm':
      case 'g': {
        const m = parseJSON(text);
        if (m && typeof m.seq === 'number') this.addMessages([m], { source: 'live' });
        break;
      }
      case 'receipt':
        this.handleReceipt(t.other, parseJSON(text));
        break;
      case 'typing':
        this.handleTyping(t.other, parseJSON(text) || {});
        break;
      case 'presence': {
        const doc = parseJSON(text);
        if (doc) {
          this.presence.set(t.other, doc);
          this.emit('conversations');
        }
        break;
      }
      case 'error':
        this.handleError(parseJSON(text) || {});
        break;
      case 'groups':
        this.handleGroupEvent(parseJSON(text) || {});
        break;
      case 'profile':
        this.people.setProfile(parseJSON(text));
        break;
      case 'requests':
        this.people.handleRequestEvent(parseJSON(text));
        break;
      default:
        // signal/... belong to file transfer, which listens on the connection itself.
        break;
    }
  }

  handleReceipt(from, r) {
    if (!r || typeof r.seq !== 'number') return;
    if (from === this.me) {
      // One of my other devices read something: clear it here too.
      const conv = r.group ? groupConv(r.group) : null;
      const e = conv && this.recent.get(conv);
      if (e && r.type === 'read' && r.seq >= (e.read || 0)) {
        e.read = r.seq;
        e.unread = 0;
        this.recent.save();
        this.emit('conversations');
      }
      return;
    }
    if (r.group) return;
    const conv = dmConv(from);
    const e = this.ensureEntry(conv);
    if (r.type === 'read') {
      e.peerRead = Math.max(e.peerRead || 0, r.seq);
      e.peerDelivered = Math.max(e.peerDelivered || 0, r.seq);
    } else if (r.type === 'delivered') {
      e.peerDelivered = Math.max(e.peerDelivered || 0, r.seq);
    }
    this.recent.save();
    if (this.view && this.view.conv === conv) this.emit('view', { conv, kind: 'update' });
  }

  /**
   * A group changed (im/u/{me}/groups): a new group shows at once, a removed
   * member's view turns read-only, names and members stay current.
   */
  handleGroupEvent({ event, group: g }) {
    if (!g || typeof g.id !== 'string') return;
    const conv = groupConv(g.id);
    if (event === 'removed') {
      this.groups.delete(g.id);
      const e = this.recent.get(conv);
      if (!e) return; // left from this device: the entry is gone already
      e.left = true;
    } else if (event === 'added' || event === 'changed') {
      this.groups.set(g.id, g);
      const known = this.recent.get(conv);
      const e = this.ensureEntry(conv);
      e.name = g.name || g.id;
      e.left = false;
      if (!known) e.touched = Date.now();
    } else {
      return;
    }
    this.recent.save();
    this.emit('conversations');
    if (this.view && this.view.conv === conv) this.emit('view', { conv, kind: 'update' });
  }

  handleTyping(from, doc) {
    // In a group the server adds "group"; otherwise it is the DM with `from`.
    const conv = typeof doc.group === 'string' ? groupConv(doc.group) : dmConv(from);
    if (doc.state === 'typing') {
      this.typing.set(conv, { user: from, until: Date.now() + typingTTL });
      setTimeout(() => {
        const t = this.typing.get(conv);
        if (t && t.until <= Date.now()) {
          this.typing.delete(conv);
          this.emit('conversations');
        }
      }, typingTTL + 50);
    } else {
      this.typing.delete(conv);
    }
    this.emit('conversations');
  }

  /** Who is typing in `conv`, if anyone. */
  typingIn(conv) {
    const t = this.typing.get(conv);
    return t && t.until > Date.now() ? t.user : '';
  }

  handleError(n) {
    const item = n.cid && this.outbox.get(n.cid);
    if (item && item.ref) {
      // A refused edit, retraction or reaction: the message stays as it was.
      this.discard(item.cid);
      this.notice(humanError(n, { action: item.type }), 'error');
      return;
    }
    const gm = n.code === 'forbidden' && typeof n.topic === 'string' && n.topic.match(/^im\/g\/([^/]+)$/);
    if (gm) {
      const e = this.recent.get(groupConv(gm[1]));
      if (e) {
        e.left = true;
        this.recent.save();
        this.emit('conversations');
      }
    }
    const { kind, name } = item ? splitConv(item.conv) : { kind: '', name: '' };
    const text = humanError(n, { action: 'send', group: kind === 'group', user: kind === 'dm' && n.code === 'not_found' ? name : '' });
    if (item) this.failItem(item, text);
    this.notice(text, 'error');
  }

  // ---- messages ---------------------------------------------------------------

  ensureEntry(conv) {
    const { kind, name } = splitConv(conv);
    const init = kind === 'dm' ? { kind, peer: name, name } : { kind, group: name, name: (this.groups.get(name) || {}).name || name };
    return this.recent.ensure(conv, init);
  }

  isViewing(conv) {
    return !!(this.view && this.view.conv === conv && this.visible);
  }

  /**
   * The one way messages enter: store, match our pending sends, update the
   * recent list and the open view, acknowledge delivery.
   * @param {object[]} msgs delivered envelopes
   * @param {{source: 'live'|'sync'|'history', cursor?: string, base?: Map<string, number>, cover?: Map<string, Array<[number, number]>>}} how
   *   base and cover: see MessageStore.put (a live message covers its own seq)
   */
  async addMessages(msgs, { source, cursor, base, cover }) {
    const rows = [];
    for (const m of msgs) {
      if (!m || typeof m.seq !== 'number' || !m.id) continue;
      rows.push({ ...m, conv: convOf(this.me, m) });
    }
    if (source === 'live') {
      cover = new Map();
      for (const m of rows) cover.set(m.conv, [...(cover.get(m.conv) || []), [m.seq, m.seq]]);
    }
    const written = await this.store.put(rows, cursor, { base, cover });

    const touched = new Set();
    const fresh = []; // new live messages from others, for notifications
    const toAck = new Map(); // DM peer -> highest seq received from them
    let gap = false; // a live message skipped seqs: the broker dropped or has not yet resent some
    for (const m of rows) {
      // Our own message (a carbon of this device's send, or another device's).
      if (m.from === this.me && m.cid && this.outbox.has(m.cid)) {
        this.outbox.delete(m.cid);
        this.store.removeOutbox(m.cid).catch(() => {});
      }
      if (source !== 'history') {
        const e = this.ensureEntry(m.conv);
        if (source === 'live' && e.lastSeq && m.seq > e.lastSeq + 1) gap = true;
        const ann = isAnnotation(m); // an edit, retraction or reaction: not a new message
        if (m.seq > (e.lastSeq || 0)) {
          if (source === 'live' && m.from !== this.me && !ann) fresh.push(m);
          e.lastSeq = m.seq;
          if (!ann) e.last = summary(m);
          if (m.from !== this.me && !ann && m.seq > (e.read || 0) && !this.isViewing(m.conv)) e.unread = (e.unread || 0) + 1;
          if (m.from === this.me) {
            e.read = Math.max(e.read || 0, m.seq); // what I wrote, I have read
            e.unread = 0;
          }
        }
        if (m.group && !this.groups.has(m.group)) this.learnGroup(m.group);
        if (!m.group && m.from !== this.me) toAck.set(m.from, Math.max(toAck.get(m.from) || 0, m.seq));
      }
      touched.add(m.conv);
      if (this.view && this.view.conv === m.conv) this.showInView(m, source);
    }
    this.applyWritten(written, source);
    if (source !== 'history' && rows.length) {
      this.recent.save();
      this.emit('conversations');
    }
    if (this.view && touched.has(this.view.conv) && source !== 'history') {
      this.emit('view', { conv: this.view.conv, kind: 'append' });
      if (this.visible) this.markRead(this.view.conv);
    }
    for (const m of fresh) this.emit('incoming', { conv: m.conv, msg: m });
    for (const [peer, seq] of toAck) {
      if (!this.isViewing(dmConv(peer))) this.sendReceipt(peer, 'delivered', seq);
    }
    if (gap) this.syncSoon();
  }

  /**
   * Fills a hole in a conversation from the server's feed. The short delay
   * lets a resumed session's redeliveries (which come in any order) land
   * first; the sync then brings whatever is still missing.
   */
  syncSoon() {
    if (this.gapTimer) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = null;
      this.sync().catch(() => {});
    }, 300);
  }

  async learnGroup(gid) {
    this.groups.set(gid, { id: gid, name: gid, members: [] });
    try {
      const g = await this.api.group(gid);
      this.groups.set(gid, g);
      const e = this.ensureEntry(groupConv(gid));
      e.name = g.name || gid;
      this.recent.save();
      this.emit('conversations');
    } catch {
      // Not a member any more, or offline: the id stands in for the name.
    }
  }

  sendReceipt(peer, type, seq) {
    if (!this.conn || !this.conn.online) return;
    this.conn.publish(receiptTopic(this.me, peer), JSON.stringify({ type, seq }), 1).catch(() => {});
  }

  /** Marks everything in `conv` read: locally, on the server, and to the peer. */
  markRead(conv) {
    const e = this.recent.get(conv);
    if (!e || !e.lastSeq) return;
    if (e.unread || (e.read || 0) < e.lastSeq) {
      e.unread = 0;
      e.read = e.lastSeq;
      this.recent.flush(); // at once: the tab may close before a deferred save
      this.emit('conversations');
    }
    this.sendRead(conv);
  }

  /** Tells the server (and the DM peer) our read marker of `conv`, if not yet told. */
  sendRead(conv) {
    const e = this.recent.get(conv);
    if (!e || (e.readSent || 0) >= (e.read || 0) || this.receiptTimers.has(conv)) return;
    // Coalesce bursts (a sync page) into one receipt per conversation.
    this.receiptTimers.set(conv, setTimeout(() => {
      this.receiptTimers.delete(conv);
      if (!this.conn || !this.conn.online) return; // told on the next markRead
      const { kind, name } = splitConv(conv);
      const seq = e.read;
      e.readSent = seq;
      this.recent.save();
      if (kind === 'dm') {
        this.sendReceipt(name, 'read', seq);
      } else {
        // Group read markers go to ourselves: the server moves our marker and
        // our other devices clear the unread count.
        this.conn.publish(receiptTopic(this.me, this.me), JSON.stringify({ type: 'read', group: name, seq }), 1).catch(() => {});
      }
    }, 0));
  }

  // ---- the open conversation -----------------------------------------------

  /** Opens `conv`: cached messages at once, then the network fills gaps. */
  async open(conv) {
    if (this.view && this.view.conv === conv) return;
    this.view = newView(conv);
    this.ensureEntry(conv);
    this.recent.save();
    const view = this.view;
    view.loading = true; // the cache first: no page from the network meanwhile
    const [cached, runs] = await Promise.all([this.store.page(conv, Infinity, pageSize), this.store.runs(conv)]);
    view.loading = false;
    if (this.view !== view) return;
    if (cached.length) takeCached(view, cached, runs.completeDownFrom(cached[0].seq + 1));
    this.emit('view', { conv, kind: 'reset' });
    this.emit('conversations');
    if (this.visible) this.markRead(conv);
    if (!view.atStart && shownCount(view) < pageSize) await this.loadOlder();
  }

  close() {
    this.view = null;
    this.emit('conversations');
  }

  /**
   * A stamped record for the open view. Away from the end (after a jump) only
   * what continues the window joins it; the rest is read when scrolled to.
   */
  showInView(m, source) {
    const v = this.view;
    if (!v.atEnd && source !== 'history' && !v.msgs.has(m.seq) && m.seq > v.hi + 1) return;
    v.msgs.set(m.seq, m);
    if (source !== 'history') v.hi = Math.max(v.hi, m.seq);
  }

  /** Rows the store rewrote (annotations folded in) replace their copies in view and list. */
  applyWritten(written, source) {
    for (const row of written) {
      if (this.view && this.view.conv === row.conv && (this.view.msgs.has(row.seq) || source === 'history')) this.view.msgs.set(row.seq, row);
      const e = this.recent.get(row.conv);
      if (e && e.last && e.last.seq === row.seq && source !== 'history') e.last = summary(row);
    }
  }

  /** The open conversation's messages, oldest first, then our unsent ones. */
  viewMessages() {
    if (!this.view) return [];
    const conv = this.view.conv;
    const mine = [...this.outbox.values()].filter((i) => i.conv === conv).sort((a, b) => a.ts - b.ts);
    const changes = mine.filter((i) => i.ref && i.state !== 'failed').map((i) => ({ type: i.type, ref: i.ref, body: i.body, from: this.me }));
    const stamped = visible([...this.view.msgs.values()], changes);
    const seen = new Set(stamped.map((m) => m.cid).filter(Boolean));
    const pending = mine
      .filter((i) => !i.ref && !seen.has(i.cid))
      .map((i) => ({ from: this.me, body: i.body, type: i.type || 'text', meta: i.meta, reply_to: i.replyTo, ts: i.ts, cid: i.cid, pending: i.state || 'pending', error: i.error }));
    return stamped.concat(pending);
  }

  /** Delivery state of our own stamped message in the open DM: sent | delivered | read. */
  receiptOf(msg) {
    const e = this.view && this.recent.get(this.view.conv);
    if (!e || msg.group) return 'sent';
    if ((e.peerRead || 0) >= msg.seq) return 'read';
    if ((e.peerDelivered || 0) >= msg.seq) return 'delivered';
    return 'sent';
  }

  /**
   * Loads the page before the oldest message shown: from IndexedDB where its
   * seq runs say it is complete, from GET /history for the rest.
   * @returns {Promise<number>} how many messages were added
   */
  async loadOlder() {
    const view = this.view;
    if (!view || view.atStart || view.loading) return 0;
    view.loading = true;
    view.error = '';
    const before = shownCount(view);
    try {
      if (view.lo !== Infinity) {
        const runs = await this.store.runs(view.conv);
        const low = runs.completeDownFrom(view.lo);
        if (low < view.lo) takeCached(view, await this.store.page(view.conv, view.lo, pageSize), low);
      }
      if (!view.atStart && shownCount(view) - before < pageSize) await this.fetchHistory(view, view.lo, pageSize);
    } catch (err) {
      view.error = err instanceof ApiError && err.code === 'network'
        ? 'Offline: older messages will load when you reconnect.'
        : `Older messages did not load. ${humanError(err, { user: err.code === 'not_found' && view.conv.startsWith('dm:') ? splitConv(view.conv).name : '' })}`;
    } finally {
      view.loading = false;
    }
    const added = shownCount(view) - before;
    if (this.view === view) this.emit('view', { conv: view.conv, kind: 'prepend', added });
    return added;
  }

  /**
   * One history page of `view`'s conversation with seq < before (Infinity:
   * the newest), stored with what it proves complete; the view's window
   * grows to cover it.
   */
  async fetchHistory(view, before, limit) {
    const e = this.ensureEntry(view.conv);
    // Everything up to the last seq known now was committed before the
    // answer, so the copies have those annotations folded in already.
    const known = Math.max(e.lastSeq || 0, before === Infinity ? 0 : before - 1);
    const page = await this.api.history(view.conv, before, limit);
    const msgs = page.messages || [];
    const span = historyCover(msgs, before, !!page.more);
    await this.addMessages(msgs, {
      source: 'history',
      base: new Map([[view.conv, known]]),
      cover: span ? new Map([[view.conv, [span]]]) : undefined,
    });
    if (span) {
      view.lo = Math.min(view.lo, span[0]);
      view.hi = Math.max(view.hi, span[1]);
    } else if (!msgs.length && !page.more) {
      view.lo = 1;
    }
    if (view.lo <= 1) view.atStart = true;
    return msgs;
  }

  // ---- sending ------------------------------------------------------------------

  /**
   * Sends a message to `conv` (text, or `type` with `meta`, e.g. a file record). It is queued in IndexedDB with a cid first,
   * so it survives going offline or a reload, and is published when connected;
   * the server de-duplicates by cid if it goes out twice. `replyTo`: the id
   * of the message it answers (sent as `reply_to`).
   * @param {string} conv
   * @param {string} body
   * @param {{type?: string, meta?: object, replyTo?: string}} [o]
   */
  async send(conv, body, { type = 'text', meta, replyTo } = {}) {
    const cid = newCid();
    const msg = { cid, type, body };
    if (meta) msg.meta = meta;
    if (replyTo) msg.reply_to = replyTo;
    const payload = JSON.stringify(msg);
    const item = { cid, conv, topic: sendTopic(this.me, conv), payload, body, type, meta, replyTo, ts: Date.now(), state: 'pending' };
    this.outbox.set(cid, item);
    const e = this.ensureEntry(conv);
    e.touched = Date.now();
    // Shown in the list at once; the stamped copy (with a seq) replaces it.
    e.last = { from: this.me, body: body.slice(0, 200), type, ts: item.ts, seq: 0 };
    this.recent.save();
    this.emit('view', { conv, kind: 'append' });
    this.emit('conversations');
    this.stopTyping();
    await this.store.addOutbox(item);
    if (this.conn && this.conn.online) await this.publishItem(item);
  }

  async publishItem(item) {
    try {
      await this.conn.publish(item.topic, item.payload, 1);
      // Acknowledged: the stamped copy (carbon) follows and replaces it.
      if (this.outbox.has(item.cid) && item.state !== 'failed') item.state = 'sent';
      if (this.view && this.view.conv === item.conv) this.emit('view', { conv: item.conv, kind: 'update' });
    } catch (err) {
      if (err && typeof err.code === 'number' && err.code >= 0x80) {
        // The error notice that follows says it in more detail (and replaces this).
        if (item.state !== 'failed') this.failItem(item, humanError(err.code, { action: item.ref ? item.type : 'send' }));
      }
      // Otherwise we went offline mid-flight: it stays queued for the next connect.
    }
  }

  /** A refused message: kept in view as failed, with the reason, never re-sent. */
  failItem(item, text) {
    if (item.ref) {
      // A change to a message is not kept as a failed bubble: it just did not happen.
      this.discard(item.cid);
      this.notice(text, 'error');
      return;
    }
    item.state = 'failed';
    item.error = text;
    this.store.removeOutbox(item.cid).catch(() => {});
    if (this.view && this.view.conv === item.conv) this.emit('view', { conv: item.conv, kind: 'update' });
  }

  async flushOutbox() {
    for (const item of [...this.outbox.values()].sort((a, b) => a.ts - b.ts)) {
      if (item.state === 'failed') continue;
      if (!this.conn.online) return;
      await this.publishItem(item);
    }
  }

  /** Drops a failed message from the view. */
  discard(cid) {
    const item = this.outbox.get(cid);
    this.outbox.delete(cid);
    this.store.removeOutbox(cid).catch(() => {});
    if (item && this.view && this.view.conv === item.conv) this.emit('view', { conv: item.conv, kind: 'update' });
  }

  /** Called on composer input: tells the DM peer, or the group, we are typing (throttled). */
  typingActivity(conv) {
    if (!this.conn || !this.conn.online) return;
    const e = this.recent.get(conv);
    if (e && e.left) return;
    const now = Date.now();
    if (now - this.typingSent > typingEvery || this.typingTo !== conv) {
      this.typingSent = now;
      this.typingTo = conv;
      this.conn.publish(typingTopic(this.me, conv), JSON.stringify({ state: 'typing' }), 0).catch(() => {});
    }
    clearTimeout(this.typingIdleTimer);
    this.typingIdleTimer = setTimeout(() => this.stopTyping(), 5000);
  }

  stopTyping() {
    clearTimeout(this.typingIdleTimer);
    if (!this.typingTo || !this.typingSent) return;
    const to = this.typingTo;
    this.typingSent = 0;
    if (this.conn && this.conn.online) {
      this.conn.publish(typingTopic(this.me, to), JSON.stringify({ state: 'idle' }), 0).catch(() => {});
    }
  }

  // ---- replies, edits, retractions, reactions, search -----------------------

  /**
   * Publishes an edit, retraction or reaction of message `ref` in `conv`
   * (docs/protocol.md "Edits, retractions, reactions, replies"). Like a
   * message it waits in the outbox while offline; the view shows it at once,
   * marked pending, until the stamped copy comes back.
   * @param {string} conv
   * @param {'edit'|'retract'|'reaction'} type
   * @param {string} ref
   * @param {string} [body] the new text (edit), one emoji or "" (reaction)
   */
  async annotate(conv, type, ref, body) {
    const cid = newCid();
    const msg = type === 'retract' ? { cid, type, ref } : { cid, type, ref, body: body || '' };
    const item = { cid, conv, topic: sendTopic(this.me, conv), payload: JSON.stringify(msg), type, ref, body: msg.body, ts: Date.now(), state: 'pending' };
    this.outbox.set(cid, item);
    this.emit('view', { conv, kind: 'update' });
    await this.store.addOutbox(item);
    if (this.conn && this.conn.online) await this.publishItem(item);
  }

  /** Replaces the text of our message `ref` (it shows "edited"). */
  edit(conv, ref, body) {
    return this.annotate(conv, 'edit', ref, body);
  }

  /** Deletes message `ref` for everyone. */
  retract(conv, ref) {
    return this.annotate(conv, 'retract', ref);
  }

  /** Sets our one reaction to `ref` ("" removes it). */
  react(conv, ref, emoji) {
    return this.annotate(conv, 'reaction', ref, emoji);
  }

  /**
   * The message with id `id` for a reply quote: from the open view, else the
   * cache (looked up once; the view updates when it is found).
   */
  quoteOf(id) {
    if (this.view) {
      // Rows in view are stored with their annotations folded in already.
      for (const m of this.view.msgs.values()) if (m.id === id) return m;
    }
    if (!this.quotes) this.quotes = new Map();
    if (!this.quotes.has(id)) {
      this.quotes.set(id, undefined);
      this.store.byId(id).then((m) => {
        if (!m || isAnnotation(m)) return;
        this.quotes.set(id, m);
        if (this.view && this.view.conv === m.conv) this.emit('view', { conv: m.conv, kind: 'update' });
      }, () => {});
    }
    return this.quotes.get(id);
  }

  /**
   * A search of all conversations, or of `conv` only.
   * @param {string} q
   * @param {string} [conv]
   */
  search(q, conv = '') {
    return new SearchQuery(this.api, this.me, q, conv);
  }

  /**
   * Opens `conv` at message `id` (seq if known): the messages around it, from
   * the cache where it is complete, else from GET /history; `view.focus`
   * tells the pane what to bring into view.
   * @param {string} conv
   * @param {string} id
   * @param {number} [seq]
   */
  async jumpTo(conv, id, seq) {
    if (this.view && this.view.conv === conv) {
      for (const m of this.view.msgs.values()) {
        if (m.id === id) {
          this.view.focus = id;
          this.emit('view', { conv, kind: 'update' });
          return true;
        }
      }
    }
    if (!seq) {
      const row = await this.store.byId(id);
      if (row && row.conv === conv) seq = row.seq;
    }
    if (!seq) return this.findOlder(conv, id);
    const view = newView(conv, false);
    view.focus = id;
    view.loading = true;
    this.view = view;
    const e = this.ensureEntry(conv);
    this.emit('view', { conv, kind: 'reset' });
    this.emit('conversations');
    const half = Math.floor(pageSize / 2);
    try {
      const run = (await this.store.runs(conv)).runOf(seq);
      if (run) {
        const lo = Math.max(run[0], seq - half);
        const hi = Math.min(run[1], seq + half);
        for (const m of await this.store.range(conv, lo, hi)) view.msgs.set(m.seq, m);
        view.lo = lo;
        view.hi = hi;
      } else {
        await this.fetchHistory(view, seq + half + 1, pageSize);
      }
    } catch (err) {
      view.error = `The message did not load. ${humanError(err)}`;
    } finally {
      view.loading = false;
    }
    if (view.lo <= 1) view.atStart = true;
    if (view.hi >= (e.lastSeq || 0)) view.atEnd = true;
    if (this.view === view) this.emit('view', { conv, kind: 'reset' });
    if (view.atEnd && this.visible && this.view === view) this.markRead(conv);
    return true;
  }

  /** A quoted message the cache does not have: pages back (a few pages) until it shows. */
  async findOlder(conv, id, pages = 10) {
    if (!this.view || this.view.conv !== conv) await this.open(conv);
    for (let i = 0; i < pages && this.view && this.view.conv === conv; i++) {
      if ([...this.view.msgs.values()].some((m) => m.id === id)) {
        this.view.focus = id;
        this.emit('view', { conv, kind: 'update' });
        return true;
      }
      if (this.view.atStart || !(await this.loadOlder())) break;
    }
    this.notice('The original message is not available any more.');
    return false;
  }

  /**
   * After a jump: the page after the newest message shown, until the view
   * reaches the end of the conversation again.
   * @returns {Promise<number>} how many messages were added
   */
  async loadNewer() {
    const view = this.view;
    if (!view || view.atEnd || view.loading) return 0;
    view.loading = true;
    const before = shownCount(view);
    try {
      const e = this.ensureEntry(view.conv);
      const top = (await this.store.runs(view.conv)).completeUpFrom(view.hi);
      if (top > view.hi) {
        const hi = Math.min(top, view.hi + pageSize);
        for (const m of await this.store.range(view.conv, view.hi + 1, hi)) view.msgs.set(m.seq, m);
        view.hi = hi;
      } else {
        const hi = view.hi + pageSize;
        await this.fetchHistory(view, hi + 1, pageSize);
        view.hi = Math.max(view.hi, hi);
      }
      if (view.hi >= (e.lastSeq || 0)) view.atEnd = true;
    } catch (err) {
      view.error = `Newer messages did not load. ${humanError(err)}`;
    } finally {
      view.loading = false;
    }
    const added = shownCount(view) - before;
    if (this.view === view) {
      this.emit('view', { conv: view.conv, kind: 'newer', added });
      if (view.atEnd && this.visible) this.markRead(view.conv);
    }
    return added;
  }

  /** Leaves a jump: the conversation from its newest messages again. */
  openLatest() {
    const conv = this.view && this.view.conv;
    if (!conv) return Promise.resolve();
    this.view = null;
    return this.open(conv);
  }

  // ---- groups -----------------------------------------------------------------

  async createGroup(name, members) {
    const g = await this.api.createGroup(name, members);
    this.groups.set(g.id, g);
    const e = this.ensureEntry(groupConv(g.id));
    e.name = g.name || g.id;
    e.left = false;
    e.touched = Date.now();
    this.recent.save();
    this.emit('conversations');
    return g;
  }

  async addMember(gid, user) {
    const g = await this.api.addMember(gid, user);
    this.groups.set(gid, g);
    this.emit('view', { conv: groupConv(gid), kind: 'update' });
    return g;
  }

  /** Renames `gid` (we must own it). */
  async renameGroup(gid, name) {
    const g = await this.api.renameGroup(gid, name);
    this.handleGroupEvent({ event: 'changed', group: g });
    return g;
  }

  /** Deletes `gid` (we must own it); it leaves the sidebar. */
  async deleteGroup(gid) {
    await this.api.deleteGroup(gid);
    this.groups.delete(gid);
    this.recent.delete(groupConv(gid));
    this.emit('conversations');
  }

  /** Hands `gid` to member `user` (we must own it); we stay a member. */
  async transferOwner(gid, user) {
    const g = await this.api.transferOwner(gid, user);
    this.groups.set(gid, g);
    this.emit('view', { conv: groupConv(gid), kind: 'update' });
    return g;
  }

  async removeMember(gid, user) {
    const g = await this.api.removeMember(gid, user);
    if (user === this.me) {
      this.groups.delete(gid);
      this.recent.delete(groupConv(gid));
      this.emit('conversations');
    } else {
      this.groups.set(gid, g);
      this.emit('view', { conv: groupConv(gid), kind: 'update' });
    }
    return g;
  }

  /**
   * Whether `user` exists on the server (GET /users/{id}); rejects with the
   * ApiError otherwise (404 not_found for nobody by that name).
   */
  lookupUser(user) {
    return this.api.user(user);
  }

  /** Mutes (or unmutes) `conv`: no desktop notifications, not in the title count. */
  setMuted(conv, muted) {
    const e = this.ensureEntry(conv);
    e.muted = !!muted;
    this.recent.save();
    this.emit('conversations');
  }

  /** Starts (or reopens) a DM with `peer` in the recent list. */
  startDM(peer) {
    const conv = dmConv(peer);
    const e = this.ensureEntry(conv);
    e.touched = Date.now();
    this.recent.save();
    this.emit('conversations');
    if (this.conn && this.conn.online && !this.presence.has(peer)) this.refreshPresence().catch(() => {});
    return conv;
  }
}

/** The part of a message the conversation list shows. */
function summary(m) {
  const body = m.retracted ? snippet(m) : typeof m.body === 'string' ? m.body.slice(0, 200) : '';
  return { from: m.from, body, type: m.retracted ? 'text' : m.type || 'text', ts: m.ts, seq: m.seq };
}

/**
 * The open conversation. msgs: seq -> stamped record (annotations too: they
 * keep the seqs consecutive); [lo, hi]: the seqs it holds completely;
 * atEnd: hi is the newest seq known (false after a jump to an older message);
 * focus: the id of a message to bring into view.
 */
function newView(conv, atEnd = true) {
  return { conv, msgs: new Map(), atStart: false, atEnd, lo: Infinity, hi: 0, loading: false, error: '', focus: '' };
}

/**
 * What a stretch of the sync feed proves complete, per conversation: from its
 * first to its last record there, joined to what the same walk brought before
 * (`walked`, updated).
 * @returns {Map<string, Array<[number, number]>>}
 */
function syncCover(me, msgs, walked) {
  /** @type {Map<string, Array<[number, number]>>} */
  const out = new Map();
  for (const m of msgs) {
    if (!m || typeof m.seq !== 'number') continue;
    const conv = convOf(me, m);
    const prev = walked.get(conv);
    const r = out.get(conv);
    if (r) {
      r[0][0] = Math.min(r[0][0], m.seq);
      r[0][1] = Math.max(r[0][1], m.seq);
    } else {
      out.set(conv, [[prev ? Math.min(prev + 1, m.seq) : m.seq, m.seq]]);
    }
    walked.set(conv, Math.max(prev || 0, m.seq));
  }
  return out;
}

/** How many records of the view show (annotations do not). */
function shownCount(view) {
  let n = 0;
  for (const m of view.msgs.values()) if (!isAnnotation(m)) n++;
  return n;
}

/**
 * Adds a cached page (newest first, from before `view.lo`) to `view`, down to
 * `low`, where the cache stops being complete.
 */
function takeCached(view, rows, low) {
  const kept = rows.filter((m) => m.seq >= low);
  for (const m of kept) {
    view.msgs.set(m.seq, m);
    view.hi = Math.max(view.hi, m.seq);
  }
  // A short page, or one cut at `low`, holds all of [low, ...]; a full one only down to its oldest row.
  const all = kept.length < rows.length || rows.length < pageSize;
  const lo = all ? low : kept[kept.length - 1].seq;
  if (kept.length || all) view.lo = Math.min(view.lo, lo);
  if (view.lo <= 1) view.atStart = true;
}
