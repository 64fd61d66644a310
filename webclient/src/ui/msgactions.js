// @ts-check
// What a bubble offers besides its text: the quote of the message it answers,
// "edited" and "message deleted", reactions under it, and its actions (reply,
// react, edit, delete for everyone); and the composer's reply / edit mode.

import { canEdit, canRetract, myReaction, reactionList, snippet } from '../annotations.js';
import { splitConv } from '../topics.js';
import { h, icon } from './dom.js';

/** The reactions offered in one tap (any single emoji is accepted by the server). */
export const quickReactions = Object.freeze(['👍', '❤️', '😂', '😮', '😢', '🎉']);

/**
 * @typedef {object} MsgContext
 * @property {import('../client.js').ChatClient} client
 * @property {string} conv
 * @property {ComposeMode} compose
 * @property {(id: string) => void} jump  bring message `id` into view
 * @property {string} picker  the id of the message whose emoji picker is open (kept across re-renders)
 * @property {string} selected  the message tapped last (touch screens show its actions only)
 */

/**
 * The quote a reply shows at the top of its bubble; a click brings the
 * original into view.
 * @param {object} m
 * @param {MsgContext} ctx
 */
export function replyQuote(m, ctx) {
  if (!m.reply_to) return null;
  const q = ctx.client.quoteOf(m.reply_to);
  return h('button', {
    class: `quote${q && q.retracted ? ' retracted' : ''}`, type: 'button',
    title: 'Show the original message', dataset: { ref: m.reply_to },
    onclick: (ev) => {
      ev.stopPropagation();
      ctx.jump(m.reply_to);
    },
  },
  h('span', { class: 'quote-from', text: q ? q.from : 'Reply' }),
  h('span', { class: 'quote-text', text: snippet(q) }));
}

/** The body of a retracted message. */
export function retractedBody() {
  return h('div', { class: 'body retracted', text: 'message deleted' });
}

/** The "edited" mark in a bubble's meta line. */
export function editedMark(m) {
  return h('span', { class: 'edited', title: `Edited ${new Date(m.edited).toLocaleString()}`, text: 'edited' });
}

/**
 * Adds the reactions and the action bar of stamped message `m` to its row.
 * @param {HTMLElement} row
 * @param {object} m
 * @param {MsgContext} ctx
 */
export function decorateRow(row, m, ctx) {
  if (!m.id || m.retracted) return;
  const c = ctx.client;
  const reactions = reactionList(m, c.me);
  if (reactions.length) {
    row.append(h('div', { class: 'reactions' }, reactions.map((r) => h('button', {
      class: `reaction${r.mine ? ' mine' : ''}`, type: 'button', dataset: { emoji: r.emoji },
      'aria-pressed': String(r.mine), title: r.users.join(', '),
      'aria-label': `${r.emoji} ${r.users.length}: ${r.users.join(', ')}`,
      onclick: () => c.react(ctx.conv, m.id, r.mine ? '' : r.emoji),
    }, h('span', { class: 'emoji', text: r.emoji }), h('span', { class: 'count', text: String(r.users.length) })))));
  }
  if (m.pending) return; // a change of ours is on its way: no new one on top until it lands
  if (ctx.selected === m.id) row.classList.add('selected');
  const bubble = row.querySelector('.bubble');
  if (bubble) {
    bubble.addEventListener('click', (ev) => {
      if (/** @type {Element} */ (ev.target).closest('a, button')) return;
      ctx.selected = ctx.selected === m.id ? '' : m.id;
      for (const el of row.parentElement ? row.parentElement.querySelectorAll('.msg.selected') : []) if (el !== row) el.classList.remove('selected');
      row.classList.toggle('selected', ctx.selected === m.id);
    });
  }
  const { kind, name } = splitConv(ctx.conv);
  const g = kind === 'group' ? c.groups.get(name) : null;
  const left = (c.recent.get(ctx.conv) || {}).left;
  if (left) return;
  const act = (cls, label, ic, onclick) => h('button', { class: `act ${cls}`, type: 'button', title: label, 'aria-label': label, onclick }, ic);
  const picker = h('div', { class: 'react-picker', role: 'group', 'aria-label': 'React', hidden: ctx.picker !== m.id },
    quickReactions.map((e) => h('button', {
      type: 'button', class: 'pick', dataset: { emoji: e }, 'aria-label': `React ${e}`, text: e,
      onclick: () => {
        picker.hidden = true;
        ctx.picker = '';
        c.react(ctx.conv, m.id, myReaction(m, c.me) === e ? '' : e);
      },
    })));
  const bar = h('div', { class: 'msg-actions' },
    act('act-reply', 'Reply', icon('reply'), () => ctx.compose.reply(m)),
    act('act-react', 'React', h('span', { class: 'act-emoji', text: '☺' }), () => {
      picker.hidden = !picker.hidden;
      ctx.picker = picker.hidden ? '' : m.id;
      if (!picker.hidden) /** @type {HTMLElement} */ (picker.firstElementChild).focus();
    }),
    canEdit(m, c.me) ? act('act-edit', 'Edit', icon('edit'), () => ctx.compose.edit(m)) : null,
    canRetract(m, c.me, g ? g.owner : '') ? act('act-delete', 'Delete for everyone', icon('trash'), () => confirmRetract(c, ctx.conv, m)) : null);
  row.append(bar, picker);
}

/** Asks before deleting for everyone (it cannot be undone). */
function confirmRetract(client, conv, m) {
  const mine = m.from === client.me;
  const dlg = h('dialog', { class: 'dialog', id: 'retract-dialog', 'aria-labelledby': 'retract-title' },
    h('header', { class: 'dialog-head' }, h('h2', { id: 'retract-title', text: 'Delete for everyone?' })),
    h('div', { class: 'dialog-body' },
      h('p', { text: mine ? 'The message is removed from this conversation on every device, yours and theirs.' : `This removes ${m.from}'s message for every member of the group.` }),
      h('blockquote', { class: 'retract-preview', text: snippet(m) }),
      h('div', { class: 'dialog-actions' },
        h('button', { class: 'btn', type: 'button', id: 'retract-cancel', text: 'Cancel', onclick: () => dlg.close() }),
        h('button', {
          class: 'btn danger', type: 'button', id: 'retract-confirm', text: 'Delete',
          onclick: () => {
            dlg.close();
            client.retract(conv, m.id);
          },
        }))));
  document.body.append(dlg);
  dlg.addEventListener('close', () => dlg.remove());
  dlg.showModal();
}

/**
 * The composer's mode: a plain message, a reply to a message (its quote
 * above the input), or the edit of one of ours (its text in the input).
 * Escape goes back to a plain message.
 */
export class ComposeMode {
  /**
   * @param {import('../client.js').ChatClient} client
   * @param {string} conv
   * @param {HTMLTextAreaElement} input
   */
  constructor(client, conv, input) {
    this.client = client;
    this.conv = conv;
    this.input = input;
    /** @type {'reply'|'edit'|''} */
    this.mode = '';
    /** @type {object|null} */
    this.target = null;
    this.draft = '';
    this.text = h('span', { class: 'compose-mode-text' });
    this.el = h('div', { class: 'compose-mode', id: 'compose-mode', hidden: true },
      icon('reply', 'compose-mode-icon'), this.text,
      h('button', { class: 'icon-btn', type: 'button', id: 'compose-cancel', title: 'Cancel', 'aria-label': 'Cancel', onclick: () => this.cancel() }, icon('close')));
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.mode) {
        ev.preventDefault();
        this.cancel();
      } else if (ev.key === 'ArrowUp' && !this.input.value && !this.mode) {
        // As in Slack: up in an empty composer edits the last message of ours.
        const last = client.viewMessages().filter((m) => canEdit(m, client.me) && !m.pending).pop();
        if (last) {
          ev.preventDefault();
          this.edit(last);
        }
      }
    });
  }

  /** @param {object} m */
  reply(m) {
    if (this.mode === 'edit') this.input.value = this.draft;
    this.set('reply', m, `Replying to ${m.from}: ${snippet(m, 80)}`);
  }

  /** @param {object} m */
  edit(m) {
    if (this.mode !== 'edit') this.draft = this.input.value;
    this.set('edit', m, `Editing: ${snippet(m, 80)}`);
    this.input.value = m.body || '';
    this.input.dispatchEvent(new Event('input'));
  }

  set(mode, m, text) {
    this.mode = mode;
    this.target = m;
    this.text.textContent = text;
    this.el.dataset.mode = mode;
    this.el.hidden = false;
    this.input.placeholder = mode === 'edit' ? 'Edit your message…' : 'Write a reply…';
    this.input.focus();
  }

  cancel() {
    if (this.mode === 'edit') {
      this.input.value = this.draft;
      this.input.dispatchEvent(new Event('input'));
    }
    this.mode = '';
    this.target = null;
    this.el.hidden = true;
    this.input.placeholder = 'Write a message…';
  }

  /**
   * Sends `body` as the composer's mode says.
   * @param {string} body
   */
  submit(body) {
    const { mode, target } = this;
    if (mode === 'edit') {
      this.draft = '';
      this.cancel();
      if (body !== target.body) this.client.edit(this.conv, target.id, body);
      return;
    }
    this.cancel();
    this.client.send(this.conv, body, mode === 'reply' ? { replyTo: target.id } : {});
  }
}
