// @ts-check
// HTTP API client (/api/v1, docs/protocol.md "HTTP API").
//
// The bearer token lives in memory (and sessionStorage, kept by main.js), never
// in a cookie, so a cross-site request cannot ride on the user's session.

/** An error answered by the server, with its stable code. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0 when the request never got an answer)
   * @param {string} code   the server's error code, or "network"
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export class Api {
  /** @param {string} base URL prefix, e.g. "/api/v1" */
  constructor(base = '/api/v1') {
    this.base = base;
    this.token = '';
    /** Called when an authenticated request answers 401 (token expired or revoked). */
    this.onUnauthorized = () => {};
  }

  async request(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let res;
    try {
      res = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (err) {
      throw new ApiError(0, 'network', `network error: ${err.message}`);
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const e = data && data.error ? data.error : {};
      if (res.status === 401 && this.token) this.onUnauthorized();
      throw new ApiError(res.status, e.code || 'http', e.message || `${method} ${path}: HTTP ${res.status}`);
    }
    return data;
  }

  register(user, password) {
    return this.request('POST', '/register', { user, password });
  }

  /** @returns {Promise<{token: string, expires: number}>} */
  login(user, password) {
    return this.request('POST', '/login', { user, password });
  }

  /** Revokes this token on the server (and drops MQTT sessions that used it). */
  logout() {
    return this.request('POST', '/logout');
  }

  me() {
    return this.request('GET', '/me');
  }

  /**
   * One page of a conversation's history, newest first.
   * @param {string} conv "dm:{peer}" or "g:{gid}"
   * @param {number} [before] exclusive seq; omitted for the newest page
   * @returns {Promise<{messages: object[], more: boolean}>}
   */
  history(conv, before, limit = 50) {
    const [kind, name] = [conv.slice(0, conv.indexOf(':')), conv.slice(conv.indexOf(':') + 1)];
    const q = new URLSearchParams({ limit: String(limit) });
    if (before !== undefined && before !== Infinity) q.set('before', String(before));
    const seg = kind === 'g' ? 'g' : 'dm';
    return this.request('GET', `/history/${seg}/${encodeURIComponent(name)}?${q}`);
  }

  /** @returns {Promise<{messages: object[], cursor: string, more: boolean}>} oldest first */
  sync(since, limit = 500) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (since) q.set('since', since);
    return this.request('GET', `/sync?${q}`);
  }

  /**
   * Messages matching `q` (GET /search), newest first; all readable
   * conversations, or `conv` ("dm/PEER", "g/GID") only; `before` a message id.
   * @param {string} q
   * @param {{conv?: string, before?: string, limit?: number}} [o]
   * @returns {Promise<{messages: object[], more: boolean}>}
   */
  search(q, { conv, before, limit } = {}) {
    const p = new URLSearchParams({ q });
    if (conv) p.set('conv', conv);
    if (before) p.set('before', before);
    if (limit) p.set('limit', String(limit));
    return this.request('GET', `/search?${p}`);
  }

  conversations() {
    return this.request('GET', '/conversations');
  }

  groups() {
    return this.request('GET', '/groups');
  }

  group(gid) {
    return this.request('GET', `/groups/${encodeURIComponent(gid)}`);
  }

  createGroup(name, members, id) {
    const body = { name, members };
    if (id) body.id = id;
    return this.request('POST', '/groups', body);
  }

  addMember(gid, user) {
    return this.request('POST', `/groups/${encodeURIComponent(gid)}/members`, { user });
  }

  removeMember(gid, user) {
    return this.request('DELETE', `/groups/${encodeURIComponent(gid)}/members/${encodeURIComponent(user)}`);
  }

  /** Which node to use, ICE servers and limits: `{node, ws, ..., ice_servers, limits: {body_bytes}}`. */
  connectInfo() {
    return this.request('GET', '/connect');
  }

  /** `{user, kind}` of an existing user; 404 `not_found` if there is none. */
  user(id) {
    return this.request('GET', `/users/${encodeURIComponent(id)}`);
  }

  /** Renames the group (owner only). */
  renameGroup(gid, name) {
    return this.request('PATCH', `/groups/${encodeURIComponent(gid)}`, { name });
  }

  /** Deletes the group (owner only). */
  deleteGroup(gid) {
    return this.request('DELETE', `/groups/${encodeURIComponent(gid)}`);
  }

  /** Hands the group to member `user` (owner only). */
  transferOwner(gid, user) {
    return this.request('POST', `/groups/${encodeURIComponent(gid)}/owner`, { user });
  }

  /**
   * GET of a binary resource (an avatar) with the token, as a Blob.
   * @param {string} path below the base, e.g. "/users/bob/avatar?v=..."
   */
  async blob(path) {
    const res = await fetch(this.base + path, { headers: { Authorization: `Bearer ${this.token}` }, credentials: 'omit' });
    if (!res.ok) throw new ApiError(res.status, 'http', `GET ${path}: HTTP ${res.status}`);
    return res.blob();
  }

  /**
   * PUT /me/avatar with the image itself as the body.
   * @param {Blob} image
   */
  async putAvatar(image) {
    let res;
    try {
      res = await fetch(`${this.base}/me/avatar`, {
        method: 'PUT', body: image, credentials: 'omit',
        headers: { Authorization: `Bearer ${this.token}`, 'Content-Type': image.type || 'application/octet-stream' },
      });
    } catch (err) {
      throw new ApiError(0, 'network', `network error: ${err.message}`);
    }
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const e = data && data.error ? data.error : {};
      throw new ApiError(res.status, e.code || 'http', e.message || `PUT /me/avatar: HTTP ${res.status}`);
    }
    return data;
  }

  /** @param {string[]} users */
  presence(users) {
    return this.request('GET', `/presence?${new URLSearchParams({ users: users.join(',') })}`);
  }
}
