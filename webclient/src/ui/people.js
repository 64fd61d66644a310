// @ts-check
// People in the UI: names and avatars for ids, the profile editor, the
// contact list, the message requests section of the conversation list, and
// the conversation menu (profile, contact, block). The state is
// client.people (../people.js); this file only renders it.

import { humanError } from '../errors.js';
import { dmConv, splitConv, validUser } from '../topics.js';
import { modal } from './dialogs.js';
import { avatar, h, icon } from './dom.js';

/** @typedef {import('../client.js').ChatClient} ChatClient */

/** The name a conversation entry shows: a DM peer's display name, a group's name. */
export function nameOf(client, e) {
  return e.kind === 'dm' ? client.people.name(e.peer) : e.name || e.conv;
}

/**
 * An avatar for user `id` (its picture when it has one), or a group's.
 * @param {ChatClient} client
 * @param {{presence?: string, group?: boolean, size?: string}} [o]
 */
export function personAvatar(client, id, o = {}) {
  if (o.group) return avatar(id, o);
  return avatar(client.people.name(id), { ...o, src: client.people.avatarURL(id) });
}

/** Runs an API action, showing its error in `out` (and resolving false). */
async function attempt(out, f) {
  out.textContent = '';
  try {
    await f();
    return true;
  } catch (err) {
    out.textContent = humanError(err, {});
    return false;
  }
}

/** The caller's profile editor: display name, avatar, who may write. */
export function profileDialog(client) {
  const p = client.people;
  const mine = p.profile(client.me) || { id: client.me };
  const name = h('input', { id: 'profile-name', maxlength: 64, value: mine.display_name && mine.display_name !== client.me ? mine.display_name : '', placeholder: client.me });
  const file = h('input', { id: 'profile-avatar', type: 'file', accept: 'image/png,image/jpeg,image/webp' });
  const policy = h('select', { id: 'profile-dm-policy' },
    h('option', { value: 'anyone', text: 'Anyone (strangers show under Message requests)' }),
    h('option', { value: 'contacts', text: 'My contacts only (strangers wait as requests)' }));
  /** @type {HTMLSelectElement} */ (policy).value = p.dmPolicy;
  const error = h('p', { class: 'form-error', role: 'alert', id: 'profile-error' });
  const pic = h('span', { class: 'profile-pic' }, personAvatar(client, client.me));
  const form = h('form', { class: 'dialog-body', id: 'profile-form' },
    h('div', { class: 'profile-id' }, pic, h('span', { class: 'user-id', id: 'profile-id', text: `@${client.me}` })),
    h('label', { for: 'profile-name', text: 'Display name' }), name,
    h('label', { for: 'profile-avatar', text: 'Picture (PNG, JPEG or WebP, up to 1 MiB)' }), file,
    h('label', { for: 'profile-dm-policy', text: 'Who may message me' }), policy,
    error,
    h('div', { class: 'dialog-actions' }, h('button', { class: 'btn primary', type: 'submit', id: 'profile-save', text: 'Save' })));
  const dlg = modal('profile-dialog', 'Your profile', form);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const api = client.api;
    const n = /** @type {HTMLInputElement} */ (name).value.trim();
    const f = /** @type {HTMLInputElement} */ (file).files?.[0];
    const pol = /** @type {HTMLSelectElement} */ (policy).value;
    const ok = await attempt(error, async () => {
      if (n !== (mine.display_name === client.me ? '' : mine.display_name || '')) p.setProfile(await api.request('PUT', '/me/profile', { display_name: n }));
      if (f) p.setProfile(await api.putAvatar(f));
      if (pol !== p.dmPolicy) await p.setDMPolicy(pol);
    });
    if (ok) dlg.close();
  });
}

/** Someone's profile: picture, name, id, and what I can do about them. */
export function personDialog(client, id, onOpen) {
  const p = client.people;
  const body = h('div', { class: 'dialog-body', id: 'person-body' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const render = () => {
    const contact = p.isContact(id);
    const blocked = p.isBlocked(id);
    body.replaceChildren(
      h('div', { class: 'profile-id' }, personAvatar(client, id),
        h('span', {}, h('strong', { class: 'person-name', text: p.name(id) }), h('span', { class: 'user-id', id: 'person-id', text: ` @${id}` }))),
      error,
      h('div', { class: 'dialog-actions' },
        h('button', { class: 'btn', type: 'button', text: 'Message', onclick: () => { dlg.close(); onOpen(client.startDM(id)); } }),
        h('button', { class: 'btn', type: 'button', id: 'person-contact', text: contact ? 'Remove from contacts' : 'Add to contacts', onclick: () => attempt(error, () => (contact ? p.removeContact(id) : p.addContact(id))).then(render) }),
        h('button', { class: 'btn danger', type: 'button', id: 'person-block', text: blocked ? 'Unblock' : 'Block', onclick: () => attempt(error, () => (blocked ? p.unblock(id) : p.block(id))).then(render) })));
  };
  const dlg = modal('person-dialog', 'Profile', body);
  render();
}

/** The contact list: open a chat, remove, add by id. */
export function contactsDialog(client, onOpen) {
  const p = client.people;
  const list = h('ul', { class: 'people-list', id: 'contacts-list' });
  const input = h('input', { id: 'contact-add-user', placeholder: 'User name', autocomplete: 'off', autocapitalize: 'none' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const render = () => {
    const ids = [...p.contacts].sort();
    list.replaceChildren(...(ids.length ? ids.map((id) => h('li', { class: 'person', dataset: { user: id } },
      h('button', { class: 'person-btn', type: 'button', onclick: () => { dlg.close(); onOpen(client.startDM(id)); } },
        personAvatar(client, id, { size: 'sm' }), h('span', { class: 'person-name', text: p.name(id) }), h('span', { class: 'user-id', text: `@${id}` })),
      h('button', { class: 'link', type: 'button', text: 'Remove', onclick: () => attempt(error, () => p.removeContact(id)).then(render) })))
      : [h('li', { class: 'muted', text: 'No contacts yet. Whoever you write to becomes one.' })]));
  };
  const form = h('form', { class: 'dialog-body' }, list, h('label', { for: 'contact-add-user', text: 'Add a contact' }), input, error,
    h('div', { class: 'dialog-actions' }, h('button', { class: 'btn primary', type: 'submit', text: 'Add' })));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const u = /** @type {HTMLInputElement} */ (input).value.trim().toLowerCase();
    if (!validUser(u)) {
      error.textContent = 'A user name is 1-32 lowercase letters, digits, dots, dashes or underscores.';
      return;
    }
    if (await attempt(error, () => p.addContact(u))) /** @type {HTMLInputElement} */ (input).value = '';
    render();
  });
  const dlg = modal('contacts-dialog', 'Contacts', form);
  render();
  p.addEventListener('change', render);
  dlg.addEventListener('close', () => p.removeEventListener('change', render));
}

/** The buttons above the conversation list: my profile, my contacts. */
export function peopleBar(client, onOpen) {
  return h('div', { class: 'people-bar' },
    h('button', { class: 'btn small', type: 'button', id: 'profile-btn', text: 'Profile', onclick: () => profileDialog(client) }),
    h('button', { class: 'btn small', type: 'button', id: 'contacts-btn', text: 'Contacts', onclick: () => contactsDialog(client, onOpen) }));
}

/**
 * Held DM requests have no conversation entry yet (nothing reached this
 * device's feed): give them one, with the request's preview as last line,
 * so they show in the requests section and open like any conversation.
 */
export function requestEntries(client) {
  let added = false;
  for (const q of client.people.pending()) {
    if (q.kind !== 'dm' || client.recent.get(q.id)) continue;
    const e = client.ensureEntry(dmConv(q.from));
    e.touched = q.last;
    if (q.preview) e.last = { from: q.from, body: q.preview, type: 'text', ts: q.last, seq: 0 };
    added = true;
  }
  if (added) {
    client.recent.save();
    client.emit('conversations');
  }
}

/** Forgets a refused held request's conversation here (its messages never reached this feed). */
function dropEntry(client, conv) {
  client.recent.delete(conv);
  client.emit('conversations');
}

/**
 * Puts the conversation list's pending requests apart, under a "Message
 * requests" heading, with held group invitations (no conversation yet) as
 * items that answer in place. `items[i]` is the rendered `entries[i]`.
 */
export function withRequests(client, entries, items) {
  const p = client.people;
  const req = [];
  const rest = [];
  entries.forEach((e, i) => (p.requestOf(e.conv) ? req : rest).push(items[i]));
  for (const q of p.pending()) {
    if (q.kind === 'group' && !client.recent.get(q.id)) req.push(invitationItem(client, q));
  }
  if (!req.length) return items;
  for (const li of req) li.classList.add('request');
  return [
    h('li', { class: 'list-head', id: 'requests-head', text: `Message requests · ${req.length}` }), ...req,
    rest.length ? h('li', { class: 'list-head', text: 'Chats' }) : null, ...rest].filter(Boolean);
}

function invitationItem(client, q) {
  const p = client.people;
  const error = h('span', { class: 'form-error', role: 'alert' });
  return h('li', { class: 'conv request-item', dataset: { request: q.id } },
    avatar(q.group_name || q.group, { group: true }),
    h('span', { class: 'conv-main' },
      h('span', { class: 'conv-name', text: q.group_name || q.group }),
      h('span', { class: 'conv-preview', text: `${p.name(q.from)} (@${q.from}) invites you` }),
      h('span', { class: 'request-actions' },
        h('button', { class: 'btn small primary', type: 'button', text: 'Join', onclick: () => attempt(error, () => p.accept(q.id).then(() => client.refreshGroups())) }),
        h('button', { class: 'btn small', type: 'button', text: 'Refuse', onclick: () => attempt(error, () => p.refuse(q.id)) }),
        error)));
}

/**
 * The conversation pane's people parts for `conv`: a menu button (profile,
 * contact, block) in a DM's header, and the request banner (accept,
 * refuse, block) while the conversation is a pending request. They follow
 * client.people until another conversation is shown.
 */
export function attachPeople(chat, conv, client, onOpen) {
  const { kind, name } = splitConv(conv);
  const p = client.people;
  const head = chat.el.querySelector('.chat-head');
  if (kind === 'dm' && head) {
    head.append(h('button', { class: 'icon-btn', type: 'button', id: 'conv-menu', title: 'Profile, contact, block', 'aria-label': 'Profile, contact and block', onclick: () => personDialog(client, name, onOpen) }, icon('info')));
  }
  const banner = h('div', { class: 'request-banner', id: 'request-banner', role: 'region', 'aria-label': 'Message request', hidden: true });
  const blockedNote = h('div', { class: 'left-note', id: 'blocked-note', hidden: true });
  chat.form.before(banner);
  chat.form.after(blockedNote);
  const error = h('p', { class: 'form-error', role: 'alert' });
  const render = () => {
    if (chat.conv !== conv) {
      p.removeEventListener('change', render);
      return;
    }
    const q = p.requestOf(conv);
    banner.hidden = !q;
    if (q) {
      const who = `${p.name(q.from)} (@${q.from})`;
      banner.replaceChildren(
        h('p', { text: q.kind === 'group' ? `${who} added you to this group.` : `${who} is not in your contacts.${q.held ? ' Their messages wait here until you accept.' : ''}` }),
        h('div', { class: 'request-actions' },
          h('button', { class: 'btn primary', type: 'button', id: 'request-accept', text: 'Accept', onclick: () => attempt(error, () => p.accept(q.id).then(() => kind === 'group' && client.refreshGroups())) }),
          h('button', { class: 'btn', type: 'button', id: 'request-refuse', text: kind === 'group' ? 'Leave' : 'Refuse', onclick: () => attempt(error, () => p.refuse(q.id).then(() => q.held && dropEntry(client, conv))) }),
          h('button', { class: 'btn danger', type: 'button', id: 'request-block', text: 'Block', onclick: () => attempt(error, () => p.block(q.from)) })),
        error);
    }
    const blocked = kind === 'dm' && p.isBlocked(name);
    blockedNote.hidden = !blocked;
    blockedNote.replaceChildren(blocked ? h('span', {}, `You blocked ${p.name(name)}. `,
      h('button', { class: 'link', type: 'button', id: 'unblock-inline', text: 'Unblock', onclick: () => attempt(error, () => p.unblock(name)) })) : '');
  };
  p.addEventListener('change', render);
  render();
}
