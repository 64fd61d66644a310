// @ts-check
// People, not ids (docs/protocol.md "Profiles", "Contacts", "Message
// requests", "Blocking"): display names and avatars by user id, the contact
// and block lists, and the message requests. DOM-free: the UI (ui/people.js)
// renders it and listens to its "change" event.
//
// Names and avatars are fetched on first use (GET /users/{id}) and kept
// current by profile events (im/u/{me}/profile); until a profile arrives a
// user's name is its id. Avatars are behind the bearer token, so they are
// fetched as blobs and shown through object URLs (an <img src> would carry
// no token).

/**
 * @typedef {{id: string, display_name?: string, avatar?: string, kind?: string}} Profile
 * @typedef {{id: string, to: string, from: string, kind: 'dm'|'group', group?: string,
 *   group_name?: string, held: boolean, count: number, preview?: string, first: number, last: number}} Request
 * @typedef {{request: (method: string, path: string, body?: any) => Promise<any>,
 *   blob?: (path: string) => Promise<Blob>}} PeopleApi
 */

/** Profiles fetched at once; more wait for a free slot. */
const maxFetches = 4;

export class People extends EventTarget {
  /**
   * @param {PeopleApi} api
   * @param {string} me
   * @param {{objectURL?: (b: Blob) => string}} [o]
   */
  constructor(api, me, { objectURL = (b) => URL.createObjectURL(b) } = {}) {
    super();
    this.api = api;
    this.me = me;
    this.objectURL = objectURL;
    /** @type {Map<string, Profile>} */
    this.profiles = new Map();
    /** @type {Map<string, Promise<void>>} */
    this.fetching = new Map();
    /** avatar path (versioned) -> object URL, or '' while loading */
    this.avatars = new Map();
    /** @type {Set<string>} */
    this.contacts = new Set();
    /** @type {Set<string>} */
    this.blocks = new Set();
    /** @type {Map<string, Request>} */
    this.requests = new Map();
    this.dmPolicy = 'anyone';
  }

  changed(what) {
    this.dispatchEvent(new CustomEvent('change', { detail: { what } }));
  }

  // ---- names and avatars ---------------------------------------------------

  /** The display name of `id` (its id until its profile is known). */
  name(id) {
    const p = this.profile(id);
    return (p && p.display_name) || id;
  }

  /** The known profile of `id`, fetching it the first time it is asked for. */
  profile(id) {
    const p = this.profiles.get(id);
    if (!p && id && !this.fetching.has(id)) this.fetch(id);
    return p;
  }

  /** Loads `id`'s profile; a failure (offline, no such user) leaves the id as its name. */
  fetch(id) {
    const run = (async () => {
      while (this.fetching.size >= maxFetches) await Promise.race(this.fetching.values());
      try {
        this.setProfile(await this.api.request('GET', `/users/${encodeURIComponent(id)}`));
      } catch {
        // Unknown or unreachable: the id stands in; asked again after a reconnect (refresh).
      }
    })();
    this.fetching.set(id, run);
    run.finally(() => this.fetching.delete(id));
    return run;
  }

  /** Takes a profile view (from GET /users/{id}, a PUT answer, or a profile event). */
  setProfile(p) {
    if (!p || typeof p.id !== 'string') return;
    const old = this.profiles.get(p.id);
    this.profiles.set(p.id, p);
    if (!old || old.display_name !== p.display_name || old.avatar !== p.avatar) this.changed('profile');
  }

  /**
   * An object URL of `id`'s avatar, or '' (none, or still loading: a "change"
   * follows once it is there).
   */
  avatarURL(id) {
    const p = this.profile(id);
    const path = p && p.avatar;
    if (!path || !this.api.blob) return '';
    const have = this.avatars.get(path);
    if (have !== undefined) return have;
    this.avatars.set(path, '');
    // The path starts with /api/v1; the API client adds that base itself.
    this.api.blob(path.replace(/^\/api\/v1/, '')).then((b) => {
      this.avatars.set(path, this.objectURL(b));
      this.changed('avatar');
    }, () => {
      // No avatar after all (removed meanwhile): initials stay.
    });
    return '';
  }

  // ---- lists -----------------------------------------------------------------

  /** Reloads contacts, blocks, requests and settings (on every connect). */
  async refresh() {
    const [c, b, r, s] = await Promise.all([
      this.api.request('GET', '/contacts'), this.api.request('GET', '/blocks'),
      this.api.request('GET', '/requests'), this.api.request('GET', '/me/settings')]);
    this.contacts = new Set((c.contacts || []).map((e) => e.user));
    this.blocks = new Set((b.blocks || []).map((e) => e.user));
    this.requests = new Map((r.requests || []).map((q) => [q.id, q]));
    this.dmPolicy = s.dm_policy || 'anyone';
    // Profiles may have changed while away (profile events are not queued).
    const stale = [...this.profiles.keys()];
    this.profiles.clear();
    for (const id of stale) this.fetch(id);
    this.changed('lists');
  }

  isContact(id) {
    return this.contacts.has(id);
  }

  isBlocked(id) {
    return this.blocks.has(id);
  }

  async addContact(id) {
    await this.api.request('POST', '/contacts', { user: id });
    this.contacts.add(id);
    this.requests.delete(`dm:${id}`); // adding accepts its DM request (server too)
    this.changed('contacts');
  }

  async removeContact(id) {
    await this.api.request('DELETE', `/contacts/${encodeURIComponent(id)}`);
    this.contacts.delete(id);
    this.changed('contacts');
  }

  async block(id) {
    await this.api.request('POST', '/blocks', { user: id });
    this.blocks.add(id);
    for (const [rid, q] of this.requests) if (q.from === id) this.requests.delete(rid);
    this.changed('blocks');
  }

  async unblock(id) {
    await this.api.request('DELETE', `/blocks/${encodeURIComponent(id)}`);
    this.blocks.delete(id);
    this.changed('blocks');
  }

  /** Sets who may write to me one to one: "anyone" or "contacts". */
  async setDMPolicy(policy) {
    const s = await this.api.request('PUT', '/me/settings', { dm_policy: policy });
    this.dmPolicy = s.dm_policy;
    this.changed('settings');
  }

  /**
   * Whether a message shows: a blocked sender's group messages are hidden
   * (the server still delivers them, as every major chat does).
   */
  visible(m) {
    return !(m && m.group && m.from !== this.me && this.blocks.has(m.from));
  }

  // ---- message requests ------------------------------------------------------

  /** Pending requests, most recent first. */
  pending() {
    return [...this.requests.values()].sort((a, b) => b.last - a.last);
  }

  /** The pending request a conversation is ("dm:x" or "g:gid" is the request id too). */
  requestOf(conv) {
    return this.requests.get(conv);
  }

  /** A request event (im/u/{me}/requests). */
  handleRequestEvent(ev) {
    const q = ev && ev.request;
    if (!q || typeof q.id !== 'string') return;
    if (ev.event === 'new' || ev.event === 'updated') this.requests.set(q.id, q);
    else if (ev.event === 'accepted' || ev.event === 'refused') this.requests.delete(q.id);
    else return;
    this.changed('requests');
  }

  /** @returns {Promise<{request: Request, group?: object}>} */
  async accept(id) {
    const res = await this.api.request('POST', `/requests/${encodeURIComponent(id)}/accept`);
    const q = this.requests.get(id) || res.request;
    this.requests.delete(id);
    if (q) this.contacts.add(q.from);
    this.changed('requests');
    return res;
  }

  async refuse(id) {
    const res = await this.api.request('POST', `/requests/${encodeURIComponent(id)}/refuse`);
    this.requests.delete(id);
    this.changed('requests');
    return res;
  }
}
