// @ts-check
// Entry point: session handling (sign in / out), routing, and wiring the chat
// model to the UI.
//
// The session (user, token) is kept in sessionStorage: it survives a reload
// of the tab but not closing it, and it is never a cookie, so no other site
// can make requests with it.

import { Api } from './api.js';
import { ChatClient } from './client.js';
import { MessageStore } from './store.js';
import { ChatPane } from './ui/chat.js';
import { groupInfoDialog, newChatDialog, newGroupDialog } from './ui/dialogs.js';
import { h } from './ui/dom.js';
import { renderLogin } from './ui/login.js';
import { attachPeople, peopleBar, requestEntries } from './ui/people.js';
import { Notifications } from './ui/notifications.js';
import { SearchPanel } from './ui/search.js';
import { Sidebar } from './ui/sidebar.js';
import { attachComposer, TransferPanel } from './ui/transfer.js';
import { Transfers } from './transfers.js';

const sessionKey = 'mqim.session';
const root = document.getElementById('app');
const api = new Api();
/** @type {ChatClient|null} */
let client = null;

function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(sessionKey) || 'null');
    if (s && s.user && s.token && (!s.expires || s.expires > Date.now())) return s;
  } catch {
    // fall through
  }
  sessionStorage.removeItem(sessionKey);
  return null;
}

function showLogin(message = '') {
  document.body.className = 'signed-out';
  renderLogin(root, {
    api,
    message,
    onSignedIn: (s) => {
      sessionStorage.setItem(sessionKey, JSON.stringify(s));
      startApp(s);
    },
  });
}

/** The conversation named in the URL hash ("#/c/dm:bob"), if any. */
function routeConv() {
  const m = location.hash.match(/^#\/c\/((?:dm|g):[a-z0-9][a-z0-9_.-]{0,63})$/);
  return m ? decodeURIComponent(m[1]) : '';
}

/** Set by navigate(conv, {focus: true}): the composer takes the focus once the pane is built. */
let focusComposer = false;

function navigate(conv, { focus = false } = {}) {
  focusComposer = focus;
  const hash = conv ? `#/c/${conv}` : '#/';
  if (location.hash !== hash) location.hash = hash;
  else route();
}

/** @type {Sidebar} */
let sidebar;
/** @type {ChatPane} */
let chat;
/** @type {Transfers|null} */
let transfers = null;

function route() {
  const conv = routeConv();
  document.body.classList.toggle('show-chat', !!conv);
  if (!client || !client.store) return; // start() routes once the store is open
  if (!conv) {
    client.close();
    chat.renderEmpty();
    sidebar.render();
    return;
  }
  if (chat.conv !== conv) chat.show(conv);
  if (focusComposer && chat.input && !chat.form.hidden) chat.input.focus();
  focusComposer = false;
  client.open(conv);
}

function toast(text, level = 'info') {
  const t = h('div', { class: `toast ${level}`, role: 'status', text });
  document.getElementById('toasts').append(t);
  setTimeout(() => t.classList.add('leaving'), 4000);
  setTimeout(() => t.remove(), 4400);
}

async function signOut(reason = '') {
  const c = client;
  client = null;
  sessionStorage.removeItem(sessionKey);
  if (transfers) transfers.stop();
  if (c) c.stop();
  // A sign-out the user asked for revokes the token on the server too (after
  // the connection stopped, so it does not try to reconnect); one forced by a
  // 401 has no valid token left to revoke.
  api.onUnauthorized = () => {};
  if (!reason && api.token) {
    try {
      await api.logout();
    } catch {
      // Offline or already revoked: the token is forgotten here all the same.
    }
  }
  api.token = '';
  if (c) {
    // This browser may be shared: drop the cached messages and the recent list.
    await MessageStore.remove(c.me);
    c.recent.storage.removeItem(c.recent.key);
  }
  history.replaceState(null, '', location.pathname);
  showLogin(reason);
}

function startApp(session) {
  api.token = session.token;
  api.onUnauthorized = () => signOut('Your session has expired. Please sign in again.');
  document.body.className = 'signed-in';
  client = new ChatClient({ user: session.user, token: session.token, api });
  const c = client;
  sidebar = new Sidebar(c, {
    onOpen: (conv) => navigate(conv),
    // Typing a name and Enter, then straight on typing the message.
    onNewChat: () => newChatDialog(c, (conv) => navigate(conv, { focus: true })),
    onNewGroup: () => newGroupDialog(c, (conv) => navigate(conv, { focus: true })),
    onSignOut: () => signOut(),
  });
  chat = new ChatPane(c, {
    onBack: () => navigate(''),
    onGroupInfo: (gid) => groupInfoDialog(c, gid, () => navigate('')),
    onShow: (conv, parts) => {
      attachComposer(chat, conv, parts, transfers, c);
      attachPeople(chat, conv, c, (to) => navigate(to));
    },
  });
  const notes = new Notifications(c, { onOpen: (conv) => navigate(conv) });
  sidebar.el.insertBefore(notes.prompt, sidebar.list);
  sidebar.el.insertBefore(peopleBar(c, (to) => navigate(to)), sidebar.list);
  c.people.addEventListener('change', () => requestEntries(c));
  transfers = new Transfers(c);
  // For tests, and for trying transfer resume from the console.
  /** @type {Window & {mqimDebug?: {transfers: Transfers}}} */ (window).mqimDebug = { transfers };
  transfers.addEventListener('offer', (e) => {
    const { item } = /** @type {CustomEvent<{item: import('./transfers.js').Item}>} */ (e).detail;
    toast(`${item.peer} wants to send you ${item.name}`);
  });
  const panel = new TransferPanel(transfers);
  root.replaceChildren(h('div', { class: 'layout' }, sidebar.el, chat.el), panel.el, h('div', { class: 'toasts', id: 'toasts' }));

  c.addEventListener('state', (e) => {
    const detail = /** @type {CustomEvent<import('./client.js').StateDetail>} */ (e).detail;
    sidebar.setState(detail);
    chat.setState(detail);
    document.body.dataset.conn = detail.state;
    document.body.dataset.transport = detail.transport || '';
  });
  c.addEventListener('conversations', () => {
    sidebar.render();
    chat.renderHead();
  });
  c.addEventListener('view', (e) => {
    const { conv, kind } = /** @type {CustomEvent<import('./client.js').ViewDetail>} */ (e).detail;
    if (conv !== chat.conv) return;
    chat.renderHead();
    chat.renderMessages(kind);
  });
  c.addEventListener('notice', (e) => {
    const { text, level } = /** @type {CustomEvent<import('./client.js').NoticeDetail>} */ (e).detail;
    toast(text, level);
  });
  c.addEventListener('signout', (e) => signOut(/** @type {CustomEvent<import('./client.js').SignoutDetail>} */ (e).detail.reason));

  // Message search: results open the conversation at the message.
  const search = new SearchPanel(c, {
    host: sidebar.el,
    onOpen: (conv, m) => {
      c.jumpTo(conv, m.id, m.seq);
      navigate(conv);
    },
  });
  sidebar.el.insertBefore(search.el, sidebar.list);
  sidebar.el.insertBefore(search.results, sidebar.list);

  sidebar.render();
  c.start().then(() => {
    transfers.attach(c.conn);
    route();
  }, (err) => {
    console.error(err);
    toast(`Cannot open local storage: ${err.message}`, 'error');
  });
}

window.addEventListener('hashchange', route);

const session = loadSession();
if (session) startApp(session);
else showLogin();
