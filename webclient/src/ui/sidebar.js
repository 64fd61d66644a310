// @ts-check
// The sidebar: who I am, connection state, and the conversation list.

import { h, icon, shortWhen } from './dom.js';
import { nameOf, personAvatar, withRequests } from './people.js';

const stateText = { connecting: 'Connecting…', online: 'Online', offline: 'Offline' };
const transportText = { websocket: 'WebSocket', sse: 'HTTP stream', poll: 'HTTP polling' };

export class Sidebar {
  /**
   * @param {import('../client.js').ChatClient} client
   * @param {{onOpen: (conv) => void, onNewChat: () => void, onNewGroup: () => void, onSignOut: () => void}} actions
   */
  constructor(client, actions) {
    this.client = client;
    this.actions = actions;
    this.filter = '';
    this.connState = h('button', {
      class: 'conn', id: 'conn-state', type: 'button', dataset: { state: 'connecting' },
      title: 'Connection to the server', onclick: () => client.conn && client.conn.retryNow(),
    }, h('span', { class: 'conn-dot' }), h('span', { class: 'conn-text', text: 'Connecting…' }));
    this.list = h('ul', { class: 'conv-list', id: 'conv-list', role: 'list' });
    this.search = h('input', {
      class: 'search-input', id: 'conv-search', type: 'search', placeholder: 'Search conversations',
      'aria-label': 'Search conversations', autocomplete: 'off',
      oninput: () => {
        this.filter = this.search.value.trim().toLowerCase();
        this.render();
      },
    });
    this.el = h('aside', { class: 'sidebar' },
      h('header', { class: 'side-head' },
        this.meAvatar = h('span', { class: 'me-avatar' }),
        h('div', { class: 'me' }, h('strong', { class: 'me-name', id: 'me-name', text: client.me }), this.connState),
        h('div', { class: 'head-actions' },
          h('button', { class: 'icon-btn', type: 'button', id: 'new-chat', title: 'New chat', 'aria-label': 'New chat', onclick: actions.onNewChat }, icon('edit')),
          h('button', { class: 'icon-btn', type: 'button', id: 'new-group', title: 'New group', 'aria-label': 'New group', onclick: actions.onNewGroup }, icon('group')),
          h('button', { class: 'icon-btn', type: 'button', id: 'sign-out', title: 'Sign out', 'aria-label': 'Sign out', onclick: actions.onSignOut }, icon('logout')))),
      h('div', { class: 'search' }, icon('search', 'search-icon'), this.search),
      this.list);
  }

  /** @param {import('../client.js').StateDetail} detail */
  setState({ state, retryIn, transport = '', reason = '' }) {
    this.connState.dataset.state = state;
    this.connState.dataset.transport = transport;
    this.connState.title = reason ? `Connection to the server: ${reason}` : 'Connection to the server';
    let text = stateText[state] || state;
    if (state === 'offline' && reason === 'no network') text = 'Offline · no network';
    else if (state === 'offline' && retryIn) text = `Offline · retrying in ${Math.ceil(retryIn / 1000)}s`;
    // The transport shows, so "it works but slowly" has an explanation.
    if (state === 'online' && transport) text += ` · ${transportText[transport] || transport}`;
    this.connState.querySelector('.conn-text').textContent = text;
  }

  render() {
    const c = this.client;
    this.meAvatar.replaceChildren(personAvatar(c, c.me, { size: 'sm' }));
    this.el.querySelector('#me-name').textContent = c.people.name(c.me);
    const open = c.view ? c.view.conv : '';
    let entries = c.recent.list();
    if (this.filter) entries = entries.filter((e) => (e.name || '').toLowerCase().includes(this.filter) || e.conv.includes(this.filter));
    if (!entries.length && !c.people.pending().length) {
      this.list.replaceChildren(h('li', { class: 'empty-list' },
        h('p', { text: this.filter ? 'No conversation matches.' : 'No conversations yet.' }),
        this.filter ? null : h('button', { class: 'btn primary', type: 'button', text: 'Start a chat', onclick: this.actions.onNewChat })));
      return;
    }
    const items = entries.map((e) => {
      const isGroup = e.kind === 'group';
      const p = isGroup ? undefined : presenceOf(c, e.peer);
      const typer = c.typingIn(e.conv);
      let preview;
      if (typer) preview = h('span', { class: 'typing-preview', text: isGroup ? `${c.people.name(typer)} is typing…` : 'typing…' });
      else if (e.last) {
        const who = e.last.from === c.me ? 'You: ' : isGroup ? `${c.people.name(e.last.from)}: ` : '';
        preview = h('span', { text: who + (e.last.type === 'text' ? e.last.body : e.last.type === 'file' ? `File: ${e.last.body}` : `[${e.last.type}]`) });
      } else preview = h('span', { class: 'muted', text: isGroup ? 'New group' : 'Say hello 👋' });
      const unread = e.unread > 0 && e.conv !== open;
      return h('li', {
        class: `conv${e.conv === open ? ' active' : ''}${unread ? ' unread' : ''}${e.muted ? ' silenced' : ''}`,
        dataset: { conv: e.conv },
      }, h('button', { type: 'button', class: 'conv-btn', onclick: () => this.actions.onOpen(e.conv) },
        isGroup ? personAvatar(c, e.name || e.conv, { group: true }) : personAvatar(c, e.peer, { presence: p }),
        h('span', { class: 'conv-main' },
          h('span', { class: 'conv-top' },
            h('span', { class: 'conv-name', text: nameOf(c, e) }),
            e.muted ? icon('bellOff', 'muted-icon') : null,
            !isGroup && c.presence.get(e.peer)?.device ? h('span', { class: 'device-badge', text: 'device', title: 'A device account (sensor, bot), not a person' }) : null,
            h('span', { class: 'conv-time', text: e.last ? shortWhen(e.last.ts) : '' })),
          h('span', { class: 'conv-bottom' },
            h('span', { class: 'conv-preview' }, preview),
            unread ? h('span', { class: 'badge', text: e.unread > 99 ? '99+' : String(e.unread), 'aria-label': `${e.unread} unread` }) : null))));
    });
    this.list.replaceChildren(...withRequests(c, entries, items));
  }
}

/** "online" | "away" | "offline" for a user (offline when unknown). */
export function presenceOf(client, user) {
  const doc = client.presence.get(user);
  const s = doc && doc.status;
  return s === 'online' || s === 'away' ? s : 'offline';
}
