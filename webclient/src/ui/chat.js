// @ts-check
// The conversation pane: header, message list with paging, composer.

import { snippet } from '../annotations.js';
import { KeyedList } from '../keyedlist.js';
import { checkBody } from '../limits.js';
import { presenceLine } from '../presence.js';
import { splitConv } from '../topics.js';
import { clock, colorClass, dayKey, dayLabel, h, icon, linkify } from './dom.js';
import { nameOf, personAvatar } from './people.js';
import { presenceOf } from './sidebar.js';
import { ComposeMode, decorateRow, editedMark, replyQuote, retractedBody } from './msgactions.js';
import { fileCard } from './transfer.js';

/** How close to the top (px) scrolling must come to load the previous page. */
const loadMargin = 200;

/** @typedef {import('../annotations.js').Msg} Msg */

/**
 * What the pane asks of the page around it.
 * @typedef {object} PaneActions
 * @property {() => void} onBack  back to the conversation list
 * @property {(gid: string) => void} onGroupInfo  show group `gid`'s members
 * @property {(conv: string, parts: {form: HTMLFormElement, input: HTMLTextAreaElement}) => void} [onShow]
 *   the pane of `conv` is built: add to its composer (files, people)
 */

export class ChatPane {
  /**
   * @param {import('../client.js').ChatClient} client
   * @param {PaneActions} actions
   */
  constructor(client, actions) {
    this.client = client;
    this.actions = actions;
    this.conv = '';
    this.el = h('main', { class: 'chat', id: 'chat' });
    this.renderEmpty();
  }

  renderEmpty() {
    this.conv = '';
    this.el.replaceChildren(h('div', { class: 'chat-empty' },
      h('div', { class: 'chat-empty-art' }, icon('chat')),
      h('h2', { text: 'Your messages' }),
      h('p', { text: 'Pick a conversation on the left, or start a new one.' })));
  }

  /**
   * Builds the pane for `conv` (messages come with the client's "view" events).
   * @param {string} conv
   */
  show(conv) {
    this.conv = conv;
    const { kind, name } = splitConv(conv);
    this.kind = kind;
    this.name = name;
    this.title = h('h2', { class: 'chat-title', id: 'chat-title' });
    this.sub = h('p', { class: 'chat-sub', id: 'chat-sub' });
    this.avatarSlot = h('span', { class: 'chat-avatar' });
    this.marker = h('div', { class: 'history-marker', id: 'history-marker', dataset: { state: 'idle' } });
    this.marker.addEventListener('click', () => {
      const v = this.client.view;
      if (v && v.error) {
        v.error = ''; // tap to retry
        this.client.loadOlder();
        this.renderMarker();
      }
    });
    this.list = h('div', { class: 'msg-list', id: 'msg-list', role: 'log', 'aria-live': 'polite' });
    this.rows = new KeyedList(this.list);
    // After a jump to an older message: back to the newest ones.
    this.latestBtn = h('button', {
      class: 'jump-latest', type: 'button', id: 'jump-latest', hidden: true, title: 'Newest messages', 'aria-label': 'Go to the newest messages',
      onclick: () => this.client.openLatest(),
    }, icon('down'));
    this.scroller = h('div', { class: 'messages', id: 'messages' }, this.marker, this.list, this.latestBtn);
    this.scroller.addEventListener('scroll', () => {
      this.maybeLoadOlder();
      this.maybeLoadNewer();
    }, { passive: true });
    this.typingLine = h('div', { class: 'typing-line', id: 'typing', hidden: true },
      h('span', { class: 'typing-dots' }, h('i'), h('i'), h('i')), h('span', { class: 'typing-text' }));
    this.banner = h('div', { class: 'banner', id: 'offline-banner', hidden: true });
    this.input = h('textarea', {
      id: 'composer', class: 'composer-input', rows: 1, placeholder: 'Write a message…',
      'aria-label': 'Message', enterkeyhint: 'send', 'aria-describedby': 'composer-count',
    });
    // The server counts bytes, not characters: say so before sending.
    this.count = h('div', { class: 'composer-count', id: 'composer-count', 'aria-live': 'polite', hidden: true });
    this.sendBtn = h('button', { class: 'send-btn', id: 'send', type: 'submit', title: 'Send', 'aria-label': 'Send' }, icon('send'));
    this.compose = new ComposeMode(this.client, conv, this.input);
    const form = h('form', { class: 'composer', id: 'composer-form' }, this.compose.el, this.count, this.input, this.sendBtn);
    this.form = form;
    /** @type {import('./msgactions.js').MsgContext} */
    this.msgCtx = { client: this.client, conv, compose: this.compose, jump: (id) => this.client.jumpTo(conv, id), picker: '', selected: '' };
    this.leftNote = h('div', { class: 'left-note', id: 'left-note', hidden: true, text: 'You are no longer a member of this group.' });
    this.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    this.input.addEventListener('input', () => {
      if (this.input.value.trim()) this.client.typingActivity(conv);
      this.renderCount();
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const body = this.input.value.trim();
      if (!body || this.renderCount().over) return;
      this.input.value = '';
      this.renderCount();
      this.compose.submit(body);
      this.input.focus();
    });
    this.muteBtn = h('button', {
      class: 'icon-btn', type: 'button', id: 'mute', 'aria-pressed': 'false',
      onclick: () => {
        const e = this.client.recent.get(conv);
        this.client.setMuted(conv, !(e && e.muted));
        this.renderHead();
      },
    });
    const info = kind === 'group'
      ? h('button', { class: 'icon-btn', type: 'button', id: 'group-info', title: 'Group members', 'aria-label': 'Group members', onclick: () => this.actions.onGroupInfo(name) }, icon('info'))
      : null;
    this.el.replaceChildren(
      h('header', { class: 'chat-head' },
        h('button', { class: 'icon-btn back', type: 'button', id: 'back', title: 'Back', 'aria-label': 'Back to conversations', onclick: this.actions.onBack }, icon('back')),
        this.avatarSlot,
        h('div', { class: 'chat-head-text' }, this.title, this.sub),
        this.muteBtn, info),
      this.banner, this.scroller, this.typingLine, form, this.leftNote);
    if (this.actions.onShow) this.actions.onShow(conv, { form, input: this.input });
    this.renderHead();
    this.setState({ state: this.client.state });
    this.renderMessages('reset');
  }

  /** Shows the byte counter near and over the limit; the send button only when it can go. */
  renderCount() {
    const body = this.input.value.trim();
    const chk = checkBody(body, this.client.bodyLimit);
    this.count.hidden = !chk.near;
    this.count.textContent = chk.text;
    this.count.classList.toggle('over', chk.over);
    this.input.setAttribute('aria-invalid', String(chk.over));
    this.sendBtn.disabled = chk.over;
    this.sendBtn.classList.toggle('ready', !!body && !chk.over);
    return chk;
  }

  renderHead() {
    if (!this.conv) return;
    const c = this.client;
    const e = c.recent.get(this.conv) || {};
    const isGroup = this.kind === 'group';
    const display = nameOf(c, { kind: this.kind, peer: this.name, name: e.name || this.name, conv: this.conv });
    this.title.textContent = display;
    const p = isGroup ? undefined : presenceOf(c, this.name);
    this.avatarSlot.replaceChildren(personAvatar(c, isGroup ? display : this.name, { presence: p, group: isGroup }));
    const typer = c.typingIn(this.conv);
    if (typer) {
      this.sub.textContent = isGroup ? `${c.people.name(typer)} is typing…` : 'typing…';
      this.sub.dataset.status = 'typing';
    } else if (isGroup) {
      const g = c.groups.get(this.name);
      const n = g && g.members ? g.members.length : 0;
      this.sub.textContent = n ? `${n} members · ${g.members.map((u) => c.people.name(u)).join(', ')}` : 'Group';
      this.sub.dataset.status = 'group';
    } else {
      this.sub.textContent = presenceLine(c.presence.get(this.name), Date.now());
      this.sub.dataset.status = p;
    }
    const muted = !!e.muted;
    this.muteBtn.setAttribute('aria-pressed', String(muted));
    this.muteBtn.title = muted ? 'Unmute: notify me of new messages here' : 'Mute: no notifications from this conversation';
    this.muteBtn.setAttribute('aria-label', muted ? 'Unmute conversation' : 'Mute conversation');
    this.muteBtn.replaceChildren(icon(muted ? 'bellOff' : 'bell'));
    this.typingLine.hidden = !typer;
    this.form.hidden = !!e.left;
    this.leftNote.hidden = !e.left;
    this.typingLine.querySelector('.typing-text').textContent = typer ? `${c.people.name(typer)} is typing` : '';
  }

  /** @param {import('../client.js').StateDetail} detail */
  setState({ state, reason = '' }) {
    if (!this.banner) return;
    this.banner.hidden = state === 'online';
    this.banner.dataset.state = state;
    const why = reason ? ` (${reason})` : '';
    this.banner.textContent = state === 'connecting'
      ? `Connecting…${why}`
      : `You are offline${why}. Messages you write now are sent when the connection is back.`;
  }

  /**
   * Brings the message list up to date, keeping the reader's place: at the
   * bottom for new messages if they were there, at the same message when older
   * ones are prepended. Only rows whose look changed are built again.
   * @param {import('../client.js').ViewKind} kind
   */
  renderMessages(kind) {
    const c = this.client;
    const s = this.scroller;
    const top = s.scrollTop;
    const fromBottom = s.scrollHeight - s.scrollTop - s.clientHeight;
    // A blocked sender's group messages are hidden (people.js).
    const msgs = c.viewMessages().filter((m) => c.people.visible(m));
    this.rows.update(this.rowsOf(msgs));
    this.renderMarker();
    const v = c.view;
    this.latestBtn.hidden = !v || v.atEnd;
    const focus = v && v.focus ? this.list.querySelector(`.msg[data-id="${CSS.escape(v.focus)}"]`) : null;
    if (focus) {
      // A jump (search result, reply quote): the message in the middle, marked for a moment.
      v.focus = '';
      focus.scrollIntoView({ block: 'center' });
      focus.classList.add('focused');
      setTimeout(() => focus.classList.remove('focused'), 2500);
    } else if (kind === 'newer') {
      s.scrollTop = top; // added below what is read: nothing moves
    } else if (v && !v.atEnd && kind === 'reset') {
      // A jump still loading: stay where the message will be.
    } else if (kind === 'reset' || (kind === 'append' && fromBottom < 120) || (kind === 'append' && msgs.length && msgs[msgs.length - 1].pending)) {
      s.scrollTop = s.scrollHeight;
    } else {
      s.scrollTop = s.scrollHeight - s.clientHeight - fromBottom;
    }
    // A short conversation does not fill the pane, so no scroll will ever ask
    // for the previous page: ask now.
    if (kind !== 'update') queueMicrotask(() => this.maybeLoadOlder());
  }

  /**
   * The list's rows for `msgs`: a day separator before each day's first
   * message, then the messages, each keyed by id (cid while unsent) with the
   * signature of everything its row shows.
   * @param {Msg[]} msgs
   * @returns {import('../keyedlist.js').Row[]}
   */
  rowsOf(msgs) {
    const rows = [];
    let prevDay = '';
    let prevFrom = '';
    for (const m of msgs) {
      const dk = dayKey(m.ts);
      if (dk !== prevDay) {
        const label = dayLabel(m.ts);
        rows.push({ key: `day:${dk}`, sig: label, build: () => h('div', { class: 'day-sep' }, h('span', { text: label })) });
        prevDay = dk;
        prevFrom = '';
      }
      const look = this.lookOf(m, m.from !== prevFrom);
      prevFrom = m.from;
      rows.push({ key: m.id ? `id:${m.id}` : `cid:${m.cid}`, sig: JSON.stringify(look), build: () => this.messageRow(m, look) });
    }
    return rows;
  }

  /**
   * What the row of `m` shows: its own fields, and what it takes from
   * elsewhere (receipts, names, the quoted message, who may delete it).
   * @param {Msg} m
   * @param {boolean} first  the first of a run of one sender's messages
   */
  lookOf(m, first) {
    const c = this.client;
    const mine = m.from === c.me;
    const q = m.reply_to ? c.quoteOf(m.reply_to) : undefined;
    const e = c.recent.get(this.conv);
    const g = this.kind === 'group' ? c.groups.get(this.name) : null;
    return {
      m: [m.id, m.cid, m.seq, m.ts, m.from, m.type, m.body, m.meta, m.reply_to, m.edited, m.retracted, m.reactions, m.pending, m.error],
      first,
      mine,
      state: !mine ? '' : m.id ? c.receiptOf(m) : m.pending || 'pending',
      sender: this.kind === 'group' && !mine && first ? c.people.name(m.from) : '',
      quote: q ? [q.from, q.retracted, snippet(q)] : null,
      owner: g ? g.owner : '',
      left: !!(e && e.left),
    };
  }

  /**
   * Builds the row of message `m`.
   * @param {Msg} m
   * @param {ReturnType<ChatPane['lookOf']>} look
   */
  messageRow(m, { first, mine, state, sender }) {
    const c = this.client;
    const meta = h('span', { class: 'meta' }, h('time', { datetime: new Date(m.ts).toISOString(), text: clock(m.ts) }));
    if (mine) {
      const ic = { pending: 'clock', sent: 'check', delivered: 'checks', read: 'checks', failed: 'alert' }[state] || 'check';
      meta.append(h('span', { class: `tick ${state}`, role: 'img', title: state, 'aria-label': state }, icon(ic)));
    }
    const body = m.retracted ? retractedBody() : m.type === 'file' ? fileCard(m)
      : h('div', { class: 'body' }, m.type === 'text' || !m.type ? linkify(m.body || '') : `[${m.type}] ${m.body || ''}`);
    if (m.edited && !m.retracted) meta.prepend(editedMark(m));
    const bubble = h('div', { class: 'bubble' }, replyQuote(m, this.msgCtx), body, meta);
    const row = h('div', {
      class: `msg ${mine ? 'mine' : 'theirs'}${first ? ' first' : ''}${m.pending ? ` pending ${m.pending}` : ''}${m.retracted ? ' retracted' : ''}`,
      dataset: { seq: m.seq === undefined ? '' : String(m.seq), id: m.id || '', cid: m.cid || '', from: m.from, state },
    });
    if (sender) row.append(h('div', { class: `sender ${colorClass(m.from)}`, text: sender }));
    row.append(bubble);
    decorateRow(row, m, this.msgCtx);
    if (m.pending === 'failed') {
      row.append(h('div', { class: 'failed-note', role: 'alert' },
        `${m.error || 'The message was not sent.'} `,
        h('button', { class: 'link', type: 'button', text: 'Dismiss', onclick: () => c.discard(m.cid) })));
    }
    return row;
  }

  renderMarker() {
    const v = this.client.view;
    if (!v) return;
    let state = 'more';
    let text = 'Scroll up for older messages';
    if (v.loading) {
      state = 'loading';
      text = 'Loading older messages…';
    } else if (v.error) {
      state = 'error';
      text = `${v.error} Tap to retry.`;
    } else if (v.atStart) {
      state = 'start';
      const { kind, name } = splitConv(v.conv);
      text = kind === 'dm' ? `This is the beginning of your conversation with ${name}.` : 'This is the beginning of the group.';
    }
    this.marker.dataset.state = state;
    this.marker.textContent = text;
  }

  /** After a jump: near the bottom, the next newer page. */
  maybeLoadNewer() {
    const v = this.client.view;
    if (!v || v.conv !== this.conv || v.atEnd || v.loading || v.error) return;
    const s = this.scroller;
    if (s.scrollHeight - s.scrollTop - s.clientHeight > loadMargin) return;
    this.client.loadNewer();
  }

  maybeLoadOlder() {
    const v = this.client.view;
    if (!v || v.conv !== this.conv || v.atStart || v.loading || v.error) return;
    if (this.scroller.scrollTop > loadMargin) return;
    this.client.loadOlder();
    this.renderMarker();
  }
}
