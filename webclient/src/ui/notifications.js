// @ts-check
// The tab title's unread count and desktop notifications (Notification API)
// for messages that arrive while the tab is hidden. The rules are in
// ../notify.js; sounds are off (notifications are silent).

import { notificationFor, titleWith, unreadTotal } from '../notify.js';
import { h, icon } from './dom.js';

export class Notifications {
  /**
   * @param {import('../client.js').ChatClient} client
   * @param {{onOpen: (conv: string) => void}} actions
   */
  constructor(client, { onOpen }) {
    this.client = client;
    this.onOpen = onOpen;
    this.base = document.title.replace(/^\(\S+\) /, '') || 'mqim';
    this.supported = typeof Notification === 'function';
    // Asking needs a click (browsers refuse a prompt out of the blue).
    this.prompt = h('button', {
      class: 'notify-prompt', type: 'button', id: 'notify-enable', hidden: true,
      onclick: () => this.ask(),
    }, icon('bell'), h('span', { text: 'Get notified of new messages' }));
    this.renderPrompt();
    client.addEventListener('conversations', () => this.updateTitle());
    client.addEventListener('incoming', (e) => {
      const { conv, msg } = /** @type {CustomEvent<import('../client.js').IncomingDetail>} */ (e).detail;
      this.incoming(conv, msg);
    });
    this.updateTitle();
  }

  renderPrompt() {
    this.prompt.hidden = !this.supported || Notification.permission !== 'default';
  }

  async ask() {
    try {
      await Notification.requestPermission();
    } catch {
      // Refused or unsupported: the prompt goes away either way.
    }
    this.renderPrompt();
  }

  updateTitle() {
    document.title = titleWith(this.base, unreadTotal(this.client.recent.entries.values()));
  }

  incoming(conv, msg) {
    if (!this.supported || Notification.permission !== 'granted') return;
    const e = this.client.recent.get(conv);
    const n = notificationFor(msg, e, { me: this.client.me, hidden: document.visibilityState === 'hidden', name: (id) => this.client.people.name(id) });
    if (!n) return;
    try {
      const note = new Notification(n.title, { body: n.body, tag: n.tag, silent: n.silent, icon: 'icon.svg' });
      note.onclick = () => {
        window.focus();
        this.onOpen(conv);
        note.close();
      };
    } catch (err) {
      // Some browsers allow notifications only from a service worker.
      console.warn('mqim: notification', err);
    }
  }
}
