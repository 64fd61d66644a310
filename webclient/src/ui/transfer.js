// @ts-check
// File transfer UI: the transfers panel (progress, speed, time left, accept /
// decline / cancel / save), the composer's attach button and drop zone, and
// the bubble of a "file" chat message. The model is ../transfers.js.

import { splitConv } from '../topics.js';
import { itemEnded } from '../transfers.js';
import { h, icon } from './dom.js';

/** 5.2 MB, 830 KB... (decimal units, like the CLI). */
export function formatBytes(n) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

function formatLeft(secs) {
  if (!Number.isFinite(secs) || secs < 0) return '';
  secs = Math.ceil(secs);
  if (secs < 60) return `${secs}s left`;
  const m = Math.floor(secs / 60);
  if (m < 60) return `${m}:${String(secs % 60).padStart(2, '0')} left`;
  return `${Math.floor(m / 60)}h ${m % 60}m left`;
}


/** The floating list of transfers, newest last. */
export class TransferPanel {
  /** @param {import('../transfers.js').Transfers} transfers */
  constructor(transfers) {
    this.t = transfers;
    this.list = h('div', { class: 'xfer-list' });
    this.count = h('span', { class: 'xfer-count' });
    this.el = h('aside', { class: 'xfer-panel', id: 'transfers', 'aria-label': 'File transfers', hidden: true },
      h('header', { class: 'xfer-head' }, h('h3', { text: 'Transfers' }), this.count,
        h('button', { class: 'link xfer-clear', type: 'button', text: 'Clear finished', onclick: () => this.clear() })),
      this.list);
    this.rows = new Map();
    this.frame = 0;
    transfers.addEventListener('change', (e) => this.schedule(/** @type {CustomEvent} */ (e).detail.item));
  }

  clear() {
    for (const it of [...this.t.items.values()]) if (itemEnded(it)) this.t.dismiss(it);
  }

  schedule(item) {
    this.dirty = this.dirty || new Set();
    this.dirty.add(item.key);
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const keys = this.dirty;
      this.dirty = null;
      for (const k of keys) this.renderItem(k);
      this.el.hidden = this.t.items.size === 0;
      const active = [...this.t.items.values()].filter((it) => !itemEnded(it)).length;
      this.count.textContent = active ? `${active} active` : '';
    });
  }

  renderItem(key) {
    const it = this.t.items.get(key);
    let row = this.rows.get(key);
    if (!it) {
      if (row) row.remove();
      this.rows.delete(key);
      return;
    }
    if (!row) {
      row = h('div', { class: 'xfer' });
      this.rows.set(key, row);
      this.list.append(row);
    }
    const sending = it.dir === 'sending';
    const pct = it.size ? Math.min(100, Math.floor((100 * it.bytes) / it.size)) : (it.state === 'done' ? 100 : 0);
    row.className = `xfer ${it.dir} ${it.state}`;
    Object.assign(row.dataset, { key: it.key, state: it.state, dir: it.dir, peer: it.peer, name: it.name, pct: String(pct) });
    if (it.openMs !== undefined) row.dataset.openMs = it.openMs.toFixed(1);
    if (it.lastByteMs !== undefined) row.dataset.lastByteMs = it.lastByteMs.toFixed(1);
    if (it.state === 'done' && !row.dataset.doneMs) row.dataset.doneMs = (performance.now() - it.started).toFixed(1);
    const bar = h('progress', { class: 'xfer-bar', max: 100, value: pct, 'aria-label': `${it.name} progress` });
    const actions = [];
    const btn = (cls, text, fn, kind = 'subtle') => h('button', { class: `btn small ${kind} ${cls}`, type: 'button', text, onclick: fn });
    if (it.state === 'offered') {
      actions.push(btn('xfer-accept', 'Accept', () => this.t.accept(it), 'primary'), btn('xfer-decline', 'Decline', () => this.t.decline(it)));
    } else if (!itemEnded(it)) {
      actions.push(btn('xfer-cancel', 'Cancel', () => this.t.cancel(it)));
    } else {
      if (it.state === 'done' && !sending) actions.push(btn('xfer-save', 'Save', () => this.t.save(it), 'primary'));
      actions.push(h('button', { class: 'icon-btn xfer-dismiss', type: 'button', title: 'Remove from list', 'aria-label': 'Remove from list', onclick: () => this.t.dismiss(it) }, icon('close')));
    }
    row.replaceChildren(
      h('div', { class: 'xfer-icon' }, icon(sending ? 'arrowUp' : 'arrowDown')),
      h('div', { class: 'xfer-main' },
        h('div', { class: 'xfer-title' }, h('span', { class: 'xfer-name', text: it.name, title: it.name }), h('span', { class: 'xfer-size', text: it.fileID || sending ? formatBytes(it.size) : '' })),
        h('div', { class: 'xfer-sub', text: statusLine(it, pct) }),
        itemEnded(it) && it.state !== 'done' ? null : bar),
      h('div', { class: 'xfer-actions' }, actions));
  }
}

function statusLine(it, pct) {
  const who = it.dir === 'sending' ? `to ${it.peer}` : `from ${it.peer}`;
  switch (it.state) {
    case 'connecting': return `${who} · connecting…`;
    case 'preparing': return `${who} · preparing…`;
    case 'offered': return `${who} · wants to send you this file`;
    case 'waiting': return `${who} · waiting for ${it.peer} to accept`;
    case 'verifying': return `${who} · checking SHA-256…`;
    case 'done': return `${who} · ${it.dir === 'sending' ? 'delivered' : 'received'}, SHA-256 verified`;
    case 'declined': return `${who} · ${it.error || 'declined'}`;
    case 'cancelled': return `${who} · ${it.error || 'cancelled'}`;
    case 'failed': return `${who} · failed: ${it.error}`;
    default: {
      const speed = it.speed > 0 ? `${formatBytes(Math.round(it.speed))}/s` : '';
      const left = it.speed > 0 ? formatLeft((it.size - it.bytes) / it.speed) : '';
      return [who, `${pct}%`, speed, left].filter(Boolean).join(' · ');
    }
  }
}

/**
 * Adds the attach button and the drop zone to a conversation's pane. In a
 * group the user picks which member gets the files (transfers are 1:1).
 */
export function attachComposer(pane, conv, { form, input }, transfers, client) {
  const { kind, name } = splitConv(conv);
  const picker = h('input', { type: 'file', multiple: true, hidden: true, id: 'file-picker' });
  const offer = async (files) => {
    if (!files || !files.length) return;
    let peer = name;
    if (kind === 'group') {
      const g = client.groups.get(name);
      const members = (g && g.members ? g.members : []).filter((u) => u !== client.me);
      peer = await pickMember(members);
      if (!peer) return;
    }
    if (peer === client.me) return;
    transfers.sendFiles(peer, [...files]);
  };
  picker.addEventListener('change', () => {
    const files = [...picker.files];
    picker.value = '';
    offer(files);
  });
  const btn = h('button', {
    class: 'icon-btn attach-btn', id: 'attach', type: 'button', title: 'Send files (peer to peer)', 'aria-label': 'Send files',
    onclick: () => picker.click(),
  }, icon('attach'));
  form.insertBefore(btn, input);
  form.append(picker);

  // The pane's children are rebuilt for each conversation; its listeners are
  // bound once and send to whatever conversation is shown.
  const zone = h('div', { class: 'drop-zone', id: 'drop-zone', hidden: true },
    h('div', { class: 'drop-card' }, icon('arrowUp'), h('p', { text: kind === 'group' ? 'Drop files to send them to a member' : `Drop files to send them to ${name}` })));
  pane.el.append(zone);
  pane.drop = { zone, offer, depth: 0 };
  if (pane.dropBound) return;
  pane.dropBound = true;
  const hasFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes('Files');
  pane.el.addEventListener('dragenter', (ev) => {
    if (!hasFiles(ev) || !pane.conv) return;
    pane.drop.depth++;
    pane.drop.zone.hidden = false;
  });
  pane.el.addEventListener('dragleave', () => {
    if (--pane.drop.depth <= 0) {
      pane.drop.depth = 0;
      pane.drop.zone.hidden = true;
    }
  });
  pane.el.addEventListener('dragover', (ev) => { if (hasFiles(ev)) ev.preventDefault(); });
  pane.el.addEventListener('drop', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    pane.drop.depth = 0;
    pane.drop.zone.hidden = true;
    if (pane.conv) pane.drop.offer(ev.dataTransfer.files);
  });
}

/** Asks which group member gets the files; resolves '' if cancelled. */
function pickMember(members) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: 'dialog', id: 'pick-member' });
    const done = (u) => { dlg.close(); dlg.remove(); resolve(u); };
    dlg.append(
      h('div', { class: 'dialog-head' }, h('h2', { text: 'Send files to…' }),
        h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Close', onclick: () => done('') }, icon('close'))),
      h('div', { class: 'dialog-body' },
        members.length
          ? h('ul', { class: 'member-list' }, members.map((u) => h('li', { class: 'member' },
            h('span', { class: 'member-name', text: u }),
            h('button', { class: 'btn small primary', type: 'button', text: 'Send', dataset: { user: u }, onclick: () => done(u) }))))
          : h('p', { text: 'Nobody else is in this group.' })));
    dlg.addEventListener('cancel', () => done(''));
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** The bubble body of a "file" chat message. */
export function fileCard(m) {
  const meta = m.meta && typeof m.meta === 'object' ? m.meta : {};
  const name = typeof meta.name === 'string' ? meta.name : (m.body || 'file');
  const size = Number.isSafeInteger(meta.size) ? formatBytes(meta.size) : '';
  const sha = typeof meta.sha256 === 'string' ? meta.sha256 : '';
  return h('div', { class: 'body file-card' },
    h('span', { class: 'file-icon' }, icon('file')),
    h('span', { class: 'file-text' },
      h('span', { class: 'file-name', text: name }),
      h('span', { class: 'file-meta', text: [size, 'sent peer to peer', sha ? `SHA-256 ${sha.slice(0, 12)}…` : ''].filter(Boolean).join(' · '), title: sha })));
}
