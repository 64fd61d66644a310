// @ts-check
// MQTT over WebSocket to the gateway's /mqtt endpoint, with MQTT.js.
//
// The session is persistent (clean start off, a session expiry interval), so
// QoS 1 messages that arrive while the page is closed wait in the broker; the
// client id is "{user}:{deviceId}" with deviceId kept per browser, so a reload
// resumes the same session. Reconnects use our own exponential backoff rather
// than MQTT.js's fixed reconnectPeriod.

import mqtt from 'mqtt';
import { backoff } from './backoff.js';
import { HttpFallback } from './fallback.js';
import { Liveness } from './liveness.js';
import { inboxFilter, presenceFilter } from './topics.js';

const deviceKey = 'mqim.device';

/** The id of this browser as a device; created once and kept in localStorage. */
export function deviceId() {
  let id = localStorage.getItem(deviceKey);
  if (!id) {
    const rnd = crypto.getRandomValues(new Uint8Array(6));
    id = 'web-' + Array.from(rnd, (b) => b.toString(16).padStart(2, '0')).join('');
    localStorage.setItem(deviceKey, id);
  }
  return id;
}

/**
 * The device id this tab connects as. The first tab of a browser gets the
 * browser's device id (and its persistent session); further tabs, which would
 * otherwise take the session over from each other in a loop, get a variant of
 * it with a short-lived session. A Web Lock held for the tab's life decides.
 * @returns {Promise<{device: string, primary: boolean}>}
 */
export async function claimDevice(user) {
  const base = deviceId();
  if (!navigator.locks) return { device: base, primary: true };
  const primary = await new Promise((resolve) => {
    navigator.locks.request(`mqim.device.${user}`, { ifAvailable: true }, (lock) => {
      resolve(!!lock);
      return lock ? new Promise(() => {}) : undefined; // held until the tab goes away
    });
  });
  if (primary) return { device: base, primary };
  const rnd = crypto.getRandomValues(new Uint8Array(3));
  return { device: `${base}-${Array.from(rnd, (b) => b.toString(16).padStart(2, '0')).join('')}`, primary };
}

/** The WebSocket URL of the MQTT endpoint on the host that served the page. */
export function mqttURL(loc = location) {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/mqtt`;
}

/** Seconds the broker keeps our session (subscriptions, queued QoS 1) after a disconnect. */
const sessionExpiry = 7 * 24 * 3600;
/** Session expiry of a second tab's throwaway device id. */
const secondaryExpiry = 300;

/** How often a client on the HTTP fallback tries the WebSocket again. */
const upgradeEvery = 5000;

/** A QoS 1 publish not acknowledged in this long makes us probe the connection. */
const slowAck = 3000;

/** CONNACK reason codes after which retrying with the same credentials is pointless. */
const authFailures = new Set([0x86, 0x87, 0x8c, 4, 5]);

/**
 * Connection events (an EventTarget):
 *  - "state":   detail {state: "connecting"|"online"|"offline", retryIn?: ms,
 *               transport: "websocket"|"sse"|"poll"|"", reason: why it was lost ("" when online)}
 *  - "connect": detail {sessionPresent} after subscriptions are in place
 *  - "message": detail {topic, text}
 *  - "authfailed": the broker refused our credentials; no more retries
 */
export class Connection extends EventTarget {
  /**
   * @param {{user: string, token: string, url?: string, device?: string, primary?: boolean}} opts
   */
  constructor({ user, token, url = mqttURL(), device = deviceId(), primary = true }) {
    super();
    this.user = user;
    this.token = token;
    this.url = url;
    this.device = device;
    this.expiry = primary ? sessionExpiry : secondaryExpiry;
    this.state = 'offline';
    this.client = null;
    this.attempt = 0;
    /** @type {ReturnType<typeof setTimeout> | 0} */ 
    this.retryTimer = 0;
    this.stopped = false;
    this.onOnline = () => {
      if (this.client && this.client.connected) {
        this.liveness.probe('network changed');
      } else {
        if (this.reason === 'no network') this.reason = ''; // the network is back: no longer why
        this.retryNow();
      }
    };
    // The browser knows the network is gone: say so at once, do not wait
    // for a keepalive to time out.
    this.onOffline = () => this.lost('no network');
    this.onVisibility = () => {
      const visible = document.visibilityState === 'visible';
      this.liveness.schedule(visible);
      if (!visible) return;
      if (this.client && this.client.connected) this.liveness.probe('tab visible again');
      else if (!this.stopped && this.transport !== 'websocket') this.retryNow();
    };
    /** Why the connection was last lost ("" while up), for the UI. */
    this.reason = '';
    this.liveness = new Liveness({
      ping: () => this.client && this.client.sendPing(),
      dead: (why) => this.lost(`no answer from the server: ${why}`),
    });
    /** The transport in use: "websocket", "sse", "poll" or "" (none). */
    this.transport = '';
    // When the WebSocket fails, the inbox comes over HTTP (SSE or long-poll)
    // until a WebSocket works again; see fallback.js.
    this.fallback = new HttpFallback({ user, token, device });
    this.fallback.addEventListener('message', (e) => {
      if (this.transport !== 'websocket') this.dispatchEvent(new CustomEvent('message', { detail: /** @type {CustomEvent} */ (e).detail }));
    });
    this.fallback.addEventListener('state', (e) => this.handleFallbackState(/** @type {CustomEvent} */ (e).detail.state));
    this.fallback.addEventListener('authfailed', () => {
      this.stop();
      this.dispatchEvent(new CustomEvent('authfailed', { detail: {} }));
    });
  }

  /** The HTTP fallback came up or went down (ignored while on WebSocket). */
  handleFallbackState(state) {
    if (this.stopped || this.transport === 'websocket') return;
    if (state === 'online') {
      this.transport = this.fallback.kind;
      this.setState('online');
      // Like a (re)connect: the chat model flushes its outbox and syncs.
      this.dispatchEvent(new CustomEvent('connect', { detail: { sessionPresent: false } }));
    } else if (this.transport) {
      this.transport = '';
      this.setState(state === 'connecting' ? 'connecting' : 'offline');
    }
  }

  start() {
    this.stopped = false;
    this.setState('connecting');
    this.client = mqtt.connect(this.url, {
      clientId: `${this.user}:${this.device}`,
      username: this.user,
      password: this.token,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: this.expiry },
      // Native timers: MQTT.js's default worker timers come from a blob: URL,
      // which the page's CSP (script-src 'self') rightly refuses. A 60 s
      // keepalive stays inside the broker's 1.5x grace even when a hidden tab
      // has its timers throttled to once a minute.
      timerVariant: 'native',
      keepalive: 60,
      connectTimeout: 10_000,
      reconnectPeriod: 0, // backoff is ours: see scheduleRetry
      resubscribe: false, // we subscribe on every connect
    });
    const c = this.client;
    c.on('connect', (connack) => this.handleConnect(connack));
    c.on('packetreceive', () => this.liveness.alive());
    c.on('message', (topic, payload) => {
      this.dispatchEvent(new CustomEvent('message', { detail: { topic, text: payload.toString() } }));
    });
    c.on('error', (err) => {
      const { code } = /** @type {{code?: number}} */ (err);
      if (authFailures.has(code)) {
        this.stopped = true;
        this.setState('offline');
        this.dispatchEvent(new CustomEvent('authfailed', { detail: { code } }));
        return;
      }
      // Any other client error (a refused CONNECT, a protocol error, a
      // broken socket) leaves MQTT.js in a state we cannot trust: show it,
      // drop the socket, and reconnect with the usual backoff.
      console.warn('mqim: mqtt error', err);
      this.lost(`connection error: ${err.message || err}`);
    });
    c.on('close', () => this.handleClose());
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  /**
   * The connection is known (or judged) dead: the socket is dropped so the
   * close path shows "offline" and schedules the reconnect.
   * @param {string} why shown to the user
   */
  lost(why) {
    if (this.stopped || !this.client) return;
    this.liveness.stop();
    this.reason = why;
    if (this.transport === 'websocket') this.transport = '';
    const stream = this.client.stream;
    if (stream && !stream.destroyed) {
      // As if the network closed it: MQTT.js fails the in-flight publishes
      // (they stay in our outbox) and emits "close", which schedules the retry.
      stream.destroy();
    } else if (this.retryTimer) {
      this.setState(this.fallback.online ? 'online' : 'offline'); // already waiting to retry: show why
    } else {
      this.handleClose();
    }
  }

  /** Probes the connection now (e.g. a publish is slow to be acknowledged). */
  probe(why) {
    if (this.client && this.client.connected && this.transport === 'websocket') this.liveness.probe(why);
  }

  async handleConnect(connack) {
    this.attempt = 0;
    this.reason = '';
    this.liveness.start(document.visibilityState === 'visible');
    try {
      await this.client.subscribeAsync({
        [inboxFilter(this.user)]: { qos: 1 },
        [presenceFilter]: { qos: 0 },
      });
    } catch (err) {
      console.warn('mqim: subscribe failed', err);
    }
    this.transport = 'websocket';
    this.setState('online');
    this.dispatchEvent(new CustomEvent('connect', { detail: { sessionPresent: !!connack.sessionPresent } }));
    // Moved (back) up: the subscription is in place before the stream goes,
    // so nothing falls between them (repeats are dropped by id and seq).
    this.fallback.stop();
  }

  handleClose() {
    this.liveness.stop();
    if (this.stopped) {
      this.setState('offline');
      return;
    }
    if (this.retryTimer) return; // already scheduled (close can repeat)
    if (this.transport === 'websocket') this.transport = '';
    this.fallback.start();
    if (this.fallback.online) {
      // On HTTP meanwhile: stay online and try the WebSocket again soon.
      this.retryTimer = setTimeout(() => this.retryNow(), upgradeEvery);
      return;
    }
    this.attempt++;
    // 1s, 2s, 4s ... capped at 30s, with up to 30% jitter (backoff.js).
    const delay = backoff(this.attempt, { base: 1000, max: 30_000 });
    this.setState('offline', delay);
    this.retryTimer = setTimeout(() => this.retryNow(), delay);
  }

  /** Reconnects at once (e.g. the browser came back online, or the user asked). */
  retryNow() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    if (this.stopped || !this.client || this.client.connected) return;
    if (!this.fallback.online) this.setState('connecting');
    this.client.reconnect();
  }

  setState(state, retryIn) {
    this.state = state;
    const transport = state === 'online' ? this.transport : '';
    const reason = state === 'online' ? '' : this.reason;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, retryIn, transport, reason } }));
  }

  get online() {
    return this.state === 'online';
  }

  /**
   * Publishes and resolves when the broker acknowledged it (QoS 1), or at once
   * for QoS 0. Rejects if we are not connected or the broker refused it.
   * @param {string} topic
   * @param {string} payload (JSON text: every im/ payload is)
   * @param {0|1|2} [qos]
   */
  publish(topic, payload, qos = 1) {
    if (this.transport !== 'websocket' && this.fallback.online) return this.fallback.publish(topic, payload);
    if (!this.client || !this.client.connected) return Promise.reject(new Error('not connected'));
    return new Promise((resolve, reject) => {
      // An acknowledgement that does not come soon puts the connection in
      // doubt: probe it (a dead one is then dropped and the message stays
      // queued for the reconnect).
      const slow = qos > 0 ? setTimeout(() => this.probe('publish not acknowledged'), slowAck) : 0;
      this.client.publish(topic, payload, { qos }, (err) => {
        clearTimeout(slow);
        if (err) reject(err);
        else resolve();
      });
    });
  }

  /** Ends the connection for good (sign out). */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.liveness.stop();
    this.fallback.stop();
    this.transport = '';
    if (this.client) this.client.end(true);
    this.setState('offline');
  }
}
