// @ts-check
// Modal dialogs: new chat, new group, group members.

import { humanError } from '../errors.js';
import { validUser } from '../topics.js';
import { h, icon } from './dom.js';
import { personAvatar } from './people.js';
import { presenceOf } from './sidebar.js';

/** Shows a <dialog> built from `content`; removed once closed. */
export function modal(id, title, content) {
  const dlg = h('dialog', { class: 'dialog', id },
    h('header', { class: 'dialog-head' },
      h('h2', { text: title }),
      h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Close', onclick: () => dlg.close() }, icon('close'))),
    content);
  document.body.append(dlg);
  dlg.addEventListener('close', () => dlg.remove());
  dlg.addEventListener('click', (ev) => {
    if (ev.target === dlg) dlg.close(); // click on the backdrop
  });
  dlg.showModal();
  return dlg;
}

function parseUsers(text) {
  return [...new Set(text.split(/[\s,;]+/).map((s) => s.trim().toLowerCase()).filter(Boolean))];
}

/** Asks for a user name and opens a DM with them. */
export function newChatDialog(client, onOpen) {
  const input = h('input', { id: 'new-chat-user', placeholder: 'User name', autocomplete: 'off', autocapitalize: 'none', required: true });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const form = h('form', { class: 'dialog-body', id: 'new-chat-form' },
    h('label', { for: 'new-chat-user', text: 'Who do you want to talk to?' }), input, error,
    h('div', { class: 'dialog-actions' }, h('button', { class: 'btn primary', type: 'submit', text: 'Start chat' })));
  const dlg = modal('new-chat-dialog', 'New chat', form);
  const submit = /** @type {HTMLButtonElement} */ (form.querySelector('button[type="submit"]'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const u = input.value.trim().toLowerCase();
    if (!validUser(u)) {
      error.textContent = 'A user name is 1-32 lowercase letters, digits, dots, dashes or underscores.';
      return;
    }
    if (u === client.me) {
      error.textContent = 'That is you. Pick someone else to talk to.';
      return;
    }
    // Known already (in the list): no need to ask. Otherwise the server says
    // whether there is such a user, before anything appears in the sidebar.
    if (!client.recent.get(`dm:${u}`)) {
      submit.disabled = true;
      error.textContent = '';
      try {
        await client.lookupUser(u);
      } catch (err) {
        submit.disabled = false;
        error.textContent = humanError(err, { user: err.code === 'not_found' ? u : '' });
        input.focus();
        return;
      }
    }
    dlg.close();
    onOpen(client.startDM(u));
  });
  input.focus();
}

/** Creates a group from a name and a member list. */
export function newGroupDialog(client, onOpen) {
  const name = h('input', { id: 'new-group-name', placeholder: 'e.g. Weekend trip', required: true, maxlength: 64 });
  const members = h('input', { id: 'new-group-members', placeholder: 'bob, carol', autocomplete: 'off', autocapitalize: 'none' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const submit = h('button', { class: 'btn primary', type: 'submit', id: 'new-group-submit', text: 'Create group' });
  const form = h('form', { class: 'dialog-body', id: 'new-group-form' },
    h('label', { for: 'new-group-name', text: 'Group name' }), name,
    h('label', { for: 'new-group-members', text: 'Members (user names, separated by commas)' }), members,
    error, h('div', { class: 'dialog-actions' }, submit));
  const dlg = modal('new-group-dialog', 'New group', form);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const list = parseUsers(members.value).filter((u) => u !== client.me);
    const bad = list.find((u) => !validUser(u));
    if (!name.value.trim()) {
      error.textContent = 'Give the group a name.';
      return;
    }
    if (bad) {
      error.textContent = `“${bad}” is not a valid user name.`;
      return;
    }
    submit.disabled = true;
    try {
      const g = await client.createGroup(name.value.trim(), list);
      dlg.close();
      onOpen(`g:${g.id}`);
    } catch (err) {
      submit.disabled = false;
      error.textContent = humanError(err);
    }
  });
  name.focus();
}

/** Lists a group's members, with add and remove. */
export async function groupInfoDialog(client, gid, onLeft) {
  const list = h('ul', { class: 'member-list', id: 'member-list' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const input = h('input', { id: 'add-member-user', placeholder: 'User name', autocomplete: 'off', autocapitalize: 'none' });
  const addForm = h('form', { class: 'add-member', id: 'add-member-form' }, input,
    h('button', { class: 'btn primary', type: 'submit', id: 'add-member', text: 'Add' }));
  const body = h('div', { class: 'dialog-body' }, list, h('label', { for: 'add-member-user', text: 'Add a member' }), addForm, error);
  const g0 = client.groups.get(gid);
  const dlg = modal('group-info-dialog', g0 && g0.name ? g0.name : gid, body);

  const ownerNote = h('p', { class: 'hint', id: 'owner-note', hidden: true,
    text: 'You own this group, so you cannot leave it. Make another member the owner first; then you can leave.' });
  body.insertBefore(ownerNote, list.nextSibling);

  // Owner only: rename, and delete with a second, explicit confirmation.
  const nameInput = h('input', { id: 'rename-group-name', autocomplete: 'off', maxlength: '100' });
  const renameForm = h('form', { class: 'add-member', id: 'rename-group-form' }, nameInput,
    h('button', { class: 'btn subtle', type: 'submit', id: 'rename-group', text: 'Rename' }));
  const confirmDelete = h('button', { class: 'btn danger small', type: 'button', id: 'delete-group-confirm', hidden: true,
    text: 'Delete for everyone' });
  const deleteButton = h('button', { class: 'btn subtle small', type: 'button', id: 'delete-group', text: 'Delete group…',
    onclick: () => { confirmDelete.hidden = false; confirmDelete.focus(); } });
  const ownerTools = h('div', { class: 'owner-tools', id: 'owner-tools', hidden: true },
    h('label', { for: 'rename-group-name', text: 'Group name' }), renameForm, deleteButton, confirmDelete);
  body.appendChild(ownerTools);
  renameForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = nameInput.value.trim();
    if (!name) {
      error.textContent = 'Give the group a name.';
      return;
    }
    try {
      const g = await client.renameGroup(gid, name);
      render(g);
      error.textContent = '';
    } catch (err) {
      error.textContent = humanError(err, { group: true });
    }
  });
  confirmDelete.addEventListener('click', async () => {
    try {
      await client.deleteGroup(gid);
      dlg.close();
      onLeft();
    } catch (err) {
      error.textContent = humanError(err, { group: true });
    }
  });

  function render(g) {
    const owner = g.owner;
    const iOwn = client.me === owner;
    // The owner cannot leave (the server refuses): it is offered the handover instead.
    ownerNote.hidden = !iOwn;
    ownerTools.hidden = !iOwn;
    if (iOwn && document.activeElement !== nameInput) nameInput.value = g.name || gid;
    list.replaceChildren(...(g.members || []).map((u) => {
      const canRemove = u === client.me ? !iOwn : iOwn;
      return h('li', { class: 'member', dataset: { user: u } },
        personAvatar(client, u, { presence: presenceOf(client, u), size: 'sm' }),
        h('span', { class: 'member-name' }, client.people.name(u), ' ', h('span', { class: 'user-id', text: `@${u}` }), u === owner ? h('span', { class: 'tag', text: 'owner' }) : null),
        iOwn && u !== client.me ? h('button', {
          class: 'btn subtle small', type: 'button', dataset: { owner: u }, text: 'Make owner',
          'aria-label': `Make ${u} the owner`,
          onclick: async () => {
            try {
              render(await client.transferOwner(gid, u));
              error.textContent = '';
            } catch (err) {
              error.textContent = humanError(err, { group: true });
            }
          },
        }) : null,
        canRemove ? h('button', {
          class: 'btn subtle small', type: 'button', dataset: { remove: u },
          text: u === client.me ? 'Leave' : 'Remove',
          'aria-label': u === client.me ? 'Leave the group' : `Remove ${u}`,
          onclick: async () => {
            try {
              const ng = await client.removeMember(gid, u);
              if (u === client.me) {
                dlg.close();
                onLeft();
              } else render(ng);
            } catch (err) {
              error.textContent = humanError(err, { group: true });
            }
          },
        }) : null);
    }));
  }
  if (g0) render(g0);
  try {
    const g = await client.api.group(gid);
    client.groups.set(gid, g);
    render(g);
  } catch (err) {
    error.textContent = humanError(err, { group: true });
  }
  addForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const u = input.value.trim().toLowerCase();
    if (!validUser(u)) {
      error.textContent = 'A user name is 1-32 lowercase letters, digits, dots, dashes or underscores.';
      return;
    }
    try {
      render(await client.addMember(gid, u));
      input.value = '';
      error.textContent = '';
    } catch (err) {
      error.textContent = humanError(err, { user: u });
    }
  });
}
