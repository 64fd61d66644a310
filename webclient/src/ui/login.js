// @ts-check
// Sign in / sign up screen.

import { humanError } from '../errors.js';
import { ApiError } from '../api.js';
import { validUser } from '../topics.js';
import { h } from './dom.js';

/**
 * Renders the sign-in screen into `root`.
 * @param {HTMLElement} root
 * @param {{api: import('../api.js').Api, onSignedIn: (s: {user, token, expires}) => void, message?: string}} opts
 */
export function renderLogin(root, { api, onSignedIn, message = '' }) {
  let mode = 'signin';
  const user = h('input', {
    id: 'login-user', name: 'username', autocomplete: 'username', autocapitalize: 'none',
    spellcheck: 'false', required: true, placeholder: 'e.g. alice', maxlength: 32,
  });
  const password = h('input', {
    id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password',
    required: true, minlength: 8, placeholder: 'At least 8 characters',
  });
  const error = h('p', { class: 'form-error', id: 'login-error', role: 'alert', text: message });
  const submit = h('button', { class: 'btn primary wide', type: 'submit', id: 'login-submit', text: 'Sign in' });
  const title = h('h1', { text: 'Welcome back' });
  const lead = h('p', { class: 'lead', text: 'Sign in to pick up your conversations.' });
  const switchText = h('span', { text: 'New here?' });
  const switchBtn = h('button', { class: 'link', type: 'button', id: 'login-switch', text: 'Create an account' });

  function setMode(m) {
    mode = m;
    const up = m === 'signup';
    title.textContent = up ? 'Create your account' : 'Welcome back';
    lead.textContent = up ? 'Pick a user name; people will find you by it.' : 'Sign in to pick up your conversations.';
    submit.textContent = up ? 'Create account' : 'Sign in';
    switchText.textContent = up ? 'Already have an account?' : 'New here?';
    switchBtn.textContent = up ? 'Sign in' : 'Create an account';
    password.autocomplete = up ? 'new-password' : 'current-password';
    error.textContent = '';
  }
  switchBtn.addEventListener('click', () => setMode(mode === 'signin' ? 'signup' : 'signin'));

  const form = h('form', { class: 'login-form', id: 'login-form', novalidate: true },
    h('label', { for: 'login-user', text: 'User name' }), user,
    h('label', { for: 'login-password', text: 'Password' }), password,
    error, submit,
    h('p', { class: 'switch' }, switchText, ' ', switchBtn));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const u = user.value.trim().toLowerCase();
    const p = password.value;
    if (!validUser(u)) {
      error.textContent = 'User names are 1-32 characters: a-z, 0-9, and . _ - after the first.';
      return;
    }
    if (p.length < 8) {
      error.textContent = 'Passwords have at least 8 characters.';
      return;
    }
    submit.disabled = true;
    error.textContent = '';
    try {
      if (mode === 'signup') await api.register(u, p);
      const { token, expires } = await api.login(u, p);
      onSignedIn({ user: u, token, expires });
    } catch (err) {
      submit.disabled = false;
      if (!(err instanceof ApiError)) throw err;
      if (err.status === 409) error.textContent = 'That user name is taken.';
      else if (err.status === 401) error.textContent = 'Wrong user name or password.';
      else if (err.code === 'network') error.textContent = 'Cannot reach the server. Check your connection.';
      else error.textContent = humanError(err);
    }
  });

  root.replaceChildren(h('div', { class: 'login' },
    h('div', { class: 'login-card' },
      h('div', { class: 'brand' }, h('img', { src: 'icon.svg', alt: '', class: 'brand-logo' }), h('span', { text: 'mqim' })),
      title, lead, form),
    h('p', { class: 'login-foot', text: 'Messages travel over MQTT and are kept on this device for offline reading.' })));
  user.focus();
}
