// @ts-check
// The message search box: all conversations or the open one; results, newest
// first, open the conversation at the message.

import { humanError } from '../errors.js';
import { excerpt, highlight } from '../search.js';
import { h, icon, shortWhen } from './dom.js';

export class SearchPanel {
  /**
   * @param {import('../client.js').ChatClient} client
   * @param {{onOpen: (conv: string, msg: object) => void, host: HTMLElement}} o
   *   host gets the class "searching" while results show (the conversation list steps aside)
   */
  constructor(client, { onOpen, host }) {
    this.client = client;
    this.onOpen = onOpen;
    this.host = host;
    /** @type {import('../search.js').SearchQuery|null} */
    this.query = null;
    this.input = h('input', {
      class: 'search-input', id: 'msg-search', type: 'search', placeholder: 'Search messages',
      'aria-label': 'Search messages', autocomplete: 'off', enterkeyhint: 'search', maxlength: 200,
    });
    this.allOpt = h('option', { value: 'all', text: 'All conversations' });
    this.convOpt = h('option', { value: 'conv', text: 'This conversation', disabled: true });
    this.scope = h('select', { class: 'search-scope', id: 'search-scope', 'aria-label': 'Where to search' }, this.allOpt, this.convOpt);
    this.status = h('p', { class: 'search-status', id: 'search-status', role: 'status' });
    this.list = h('ul', { class: 'search-results', id: 'search-results', role: 'list', 'aria-label': 'Search results' });
    this.moreBtn = h('button', { class: 'btn search-more', type: 'button', id: 'search-more', text: 'More results', hidden: true, onclick: () => this.next() });
    const form = h('form', { class: 'msg-search', role: 'search' },
      h('div', { class: 'search' }, icon('search', 'search-icon'), this.input), this.scope);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.run();
    });
    this.input.addEventListener('focus', () => this.updateScope());
    this.input.addEventListener('input', () => {
      if (!this.input.value.trim()) this.clear();
    });
    this.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        this.input.value = '';
        this.clear();
      }
    });
    this.scope.addEventListener('change', () => {
      if (this.query) this.run();
    });
    this.el = form;
    this.results = h('section', { class: 'search-panel', id: 'search-panel', hidden: true, 'aria-label': 'Message search' },
      this.status, this.list, this.moreBtn);
  }

  /** The open conversation as the second scope, named. */
  updateScope() {
    const v = this.client.view;
    const e = v && this.client.recent.get(v.conv);
    this.convOpt.disabled = !v;
    this.convOpt.textContent = v ? `In ${(e && e.name) || v.conv}` : 'This conversation';
    if (!v && this.scope.value === 'conv') this.scope.value = 'all';
  }

  /** Starts the search in the box. */
  async run() {
    this.updateScope();
    const q = this.input.value.trim();
    if (!q) return this.clear();
    const conv = this.scope.value === 'conv' && this.client.view ? this.client.view.conv : '';
    this.query = this.client.search(q, conv);
    this.list.replaceChildren();
    this.results.hidden = false;
    this.host.classList.add('searching');
    await this.next();
  }

  async next() {
    const query = this.query;
    if (!query) return;
    this.status.textContent = 'Searching…';
    this.moreBtn.hidden = true;
    let added;
    try {
      added = await query.next();
    } catch (err) {
      if (this.query === query) this.status.textContent = humanError(err);
      return;
    }
    if (this.query !== query) return; // a newer search started meanwhile
    this.list.append(...added.map((m) => this.item(m, query.q)));
    const n = query.results.length;
    this.status.textContent = n ? `${n}${query.more ? '+' : ''} message${n === 1 ? '' : 's'} found` : `No messages match “${query.q}”.`;
    this.moreBtn.hidden = !query.more;
  }

  item(m, q) {
    const e = this.client.recent.get(m.conv);
    const where = (e && e.name) || m.conv.slice(m.conv.indexOf(':') + 1);
    const text = h('span', { class: 'hit-text' }, highlight(excerpt(m.body, q), q).map((p) => (p.hit ? h('mark', { text: p.text }) : p.text)));
    return h('li', { class: 'search-hit', dataset: { id: m.id, conv: m.conv } },
      h('button', { type: 'button', class: 'hit-btn', onclick: () => this.onOpen(m.conv, m) },
        h('span', { class: 'hit-top' },
          h('span', { class: 'hit-where', text: m.group ? `${where} · ${m.from}` : m.from === this.client.me ? `You → ${where}` : where }),
          h('span', { class: 'hit-time', text: shortWhen(m.ts) })),
        text));
  }

  clear() {
    this.query = null;
    this.list.replaceChildren();
    this.status.textContent = '';
    this.moreBtn.hidden = true;
    this.results.hidden = true;
    this.host.classList.remove('searching');
  }
}
