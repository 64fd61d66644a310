// @ts-check
// HTTP fallback transport, for networks where the WebSocket to /mqtt does
// not get through (corporate proxies): the inbox arrives over Server-Sent
// Events (GET /api/v1/stream), or by long-polling (GET /api/v1/poll) where
// EventSource is missing, and publishes go out as POST /api/v1/publish.
//
// The server delivers what an MQTT subscription to im/u/{me}/# and
// im/presence/+ would, with the same topics and payloads, so the chat model
// cannot tell the transports apart. Chat messages carry the sync cursor
// after them; a reopened stream resumes from the last one, so nothing is
// lost between streams (and the chat model drops repeats by id and seq).

import { backoff } from './backoff.js';

/** MQTT 5 reason codes for the server's error codes, as a PUBACK would carry. */
const reasonOf = {
  forbidden: 0x87, invalid: 0x99, too_large: 0x95, rate_limited: 0x97, quota_exceeded: 0x97, not_found: 0x90,
};

/**
 * Events (an EventTarget), like Connection's:
 *  - "state":   detail {state: "connecting"|"online"|"offline"}
 *  - "message": detail {topic, text}
 *  - "authfailed"
 */
export class HttpFallback extends EventTarget {
  /**
   * @param {{user: string, token: string, device: string, base?: string}} opts
   */
  constructor({ user, token, device, base = '' }) {
    super();
    this.user = user;
    this.token = token;
    this.device = device;
    this.base = base;
    /** "sse" or "poll" */
    this.kind = typeof EventSource === 'function' ? 'sse' : 'poll';
    this.state = 'offline';
    this.cursor = '';
    this.running = false;
    this.es = null;
    this.attempt = 0;
    /** @type {ReturnType<typeof setTimeout> | 0} */ 
    this.timer = 0;
    this.abort = null;
  }

  get online() {
    return this.state === 'online';
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.setState('connecting');
    if (this.kind === 'sse') this.openStream();
    else this.pollLoop();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    if (this.es) this.es.close();
    this.es = null;
    if (this.abort) this.abort.abort();
    this.setState('offline');
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state } }));
  }

  headers() {
    return { Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/json' };
  }

  deliver(ev) {
    if (ev.id) this.cursor = ev.id;
    const text = typeof ev.payload === 'string' ? ev.payload : JSON.stringify(ev.payload);
    this.dispatchEvent(new CustomEvent('message', { detail: { topic: ev.topic, text } }));
  }

  /** 1s, 2s, 4s ... capped at 10s, with jitter (backoff.js). */
  retry(fn) {
    this.attempt++;
    clearTimeout(this.timer);
    this.timer = setTimeout(fn, backoff(this.attempt, { base: 1000, max: 10_000 }));
  }

  async openStream() {
    if (!this.running) return;
    let ticket;
    try {
      // EventSource cannot send Authorization: a single-use ticket opens it.
      const r = await fetch(`${this.base}/api/v1/stream/ticket`, { method: 'POST', headers: this.headers() });
      if (r.status === 401) {
        this.stop();
        this.dispatchEvent(new CustomEvent('authfailed'));
        return;
      }
      if (!r.ok) throw new Error(`ticket: ${r.status}`);
      ({ ticket } = await r.json());
    } catch {
      this.setState('offline');
      this.retry(() => this.openStream());
      return;
    }
    if (!this.running) return;
    const q = new URLSearchParams({ ticket, device: this.device });
    if (this.cursor) q.set('since', this.cursor);
    const es = new EventSource(`${this.base}/api/v1/stream?${q}`);
    this.es = es;
    es.addEventListener('ready', (e) => {
      if (!this.cursor) this.cursor = e.lastEventId;
      this.attempt = 0;
      this.setState('online');
    });
    es.onmessage = (e) => {
      try {
        this.deliver({ ...JSON.parse(e.data), id: e.lastEventId });
      } catch (err) {
        console.warn('mqim: bad stream event', err);
      }
    };
    es.onerror = () => {
      // The ticket is spent, so EventSource's own reconnect cannot work:
      // open a new stream (new ticket) from the last cursor instead.
      es.close();
      if (this.es !== es || !this.running) return;
      this.es = null;
      this.setState('offline');
      this.retry(() => this.openStream());
    };
  }

  async pollLoop() {
    let session = '';
    while (this.running) {
      const q = new URLSearchParams({ since: this.cursor });
      if (session) {
        q.set('session', session);
        q.set('timeout', '25');
      } else {
        q.set('device', this.device);
      }
      this.abort = new AbortController();
      try {
        const r = await fetch(`${this.base}/api/v1/poll?${q}`, { headers: this.headers(), signal: this.abort.signal });
        if (r.status === 401) {
          this.stop();
          this.dispatchEvent(new CustomEvent('authfailed'));
          return;
        }
        if (r.status === 404 && session) {
          session = ''; // expired: open a new session from the same cursor
          continue;
        }
        if (!r.ok) throw new Error(`poll: ${r.status}`);
        const page = await r.json();
        if (!this.running) return;
        for (const ev of page.events || []) this.deliver(ev);
        this.cursor = page.cursor;
        if (!session) {
          session = page.session;
          this.attempt = 0;
          this.setState('online');
        }
      } catch {
        if (!this.running) return;
        session = '';
        this.setState('offline');
        await new Promise((resolve) => this.retry(resolve));
      }
    }
  }

  /**
   * Publishes through POST /api/v1/publish. Resolves when the server
   * accepted it; rejects with {code: reason} when it refused it (as a PUBACK
   * reason would), or with a plain Error when the request did not get through.
   */
  async publish(topic, payload) {
    const r = await fetch(`${this.base}/api/v1/publish`, {
      method: 'POST', headers: this.headers(), body: JSON.stringify({ topic, payload: String(payload) }),
    });
    if (r.ok) return r.json();
    let code = '';
    let message = `publish: ${r.status}`;
    try {
      const body = await r.json();
      code = body.error.code;
      message = body.error.message;
    } catch {
      // not our JSON: a proxy's answer
    }
    const reason = reasonOf[code];
    throw Object.assign(new Error(message), reason ? { code: reason } : {});
  }
}
