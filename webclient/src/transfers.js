// @ts-check
// Peer-to-peer file transfer: ROAP signalling over the MQTT connection
// (im/u/{peer}/signal/{me}), one RTCPeerConnection with one ordered
// "filexfer" data channel and one TransferEngine per session, and sinks on
// the Origin Private File System so a large file goes to disk as it
// arrives. No DOM here: the UI (ui/transfer.js) renders `items` on "change".
//
// Sessions. sendFiles() offers a new session per batch of files and shuts
// it down (SHUTDOWN) once every file in it has ended. An OFFER from a peer
// opens a session we answer; its files are offered to the user (accept /
// decline). An OFFER for a session we know renegotiates it on a new peer
// connection: the engine resumes, asking only for missing chunks (that is
// how Go peers reconnect). The first ANSWER wins; timeouts as in Go's roap
// (30 s for an ANSWER, 10 s for OK).
//
// Resume. When an open session's connection drops (data channel closed,
// or the connection failed) with files unfinished, the caller offers again
// in the same session on a new connection, up to RECONNECT_TRIES times in a
// row with a growing pause, and the transfer continues from the chunks
// already received. The callee waits RESUME_GRACE for that OFFER and then
// ends the session quietly (an ERROR could end a session another of the
// user's devices won). The states and these decisions are
// transfer/session-state.js (SessionMachine), unit-tested without WebRTC.
//
// Records. The sender posts a chat message of type "file" in the DM with the
// receiver once the receiver has verified the file's SHA-256.

import { dmConv } from './topics.js';
import { DataChannelTransport, MemorySink, TransferEngine } from './transfer/engine.js';
import { decodeRoap, encodeRoap, RoapErrorType, RoapType } from './transfer/roap.js';
import { SessionMachine } from './transfer/session-state.js';

const OFFER_TIMEOUT = 30000;
const ANSWER_TIMEOUT = 10000;
const GATHER_WAIT = 100;
/**
 * From OFFER (caller) or a new session's OFFER received (callee) to an open
 * data channel. Without a network path (no candidate pair works, e.g. only
 * loopback, or both behind NATs with no TURN server) ICE may never report
 * "failed": this ends the wait with a reason on both sides.
 */
const CONNECT_TIMEOUT = 20000;
/** What a person (or their operator) can do when no connection forms. */
export const NO_PATH = 'no direct network path; the operator can configure a TURN server';
const LABEL = 'filexfer';
const INCOMING_DIR = 'mqim-incoming';
const signalRe = /^im\/u\/([^/]+)\/signal\/([^/]+)$/;

/** Whether a transfer item has reached a final state. */
export const itemEnded = (it) => ['done', 'declined', 'cancelled', 'failed'].includes(it.state);

/**
 * A catch handler for a promise whose failure changes nothing here: it is
 * logged at debug level with why, instead of vanishing.
 * @param {string} why
 */
const ignore = (why) => (err) => console.debug(`transfers: ${why}:`, err);

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const randomID = () => hex(crypto.getRandomValues(new Uint8Array(16)));

/** Why a session failed, in words a user understands. */
const errorText = {
  [RoapErrorType.OFFLINE]: 'is offline',
  [RoapErrorType.REFUSED]: 'refused the connection',
  [RoapErrorType.TIMEOUT]: 'did not answer',
  [RoapErrorType.BAD_SDP]: 'could not negotiate a connection',
  [RoapErrorType.FAILED]: `could not be connected: ${NO_PATH}`,
};

/**
 * One transfer as the UI shows it.
 * @typedef {{key: string, fileID: string, peer: string, dir: 'sending'|'receiving',
 *   name: string, size: number, mime: string, sha256: string, bytes: number,
 *   speed: number, state: string, error: string, started: number, file: Blob|null}} Item
 * state: preparing | connecting | offered | waiting | active | verifying | done | declined | cancelled | failed
 */

export class Transfers extends EventTarget {
  /** @param {import('./client.js').ChatClient} client */
  constructor(client) {
    super();
    this.client = client;
    this.me = client.me;
    this.conn = null;
    this.iceServers = [];
    /**
     * Peer connection settings: how long to wait for a connection, and the
     * ICE transport policy ("all"; "relay" uses TURN only, and, with no TURN
     * server, finds no path: how the browser tests make one fail).
     */
    this.settings = { connectTimeout: CONNECT_TIMEOUT, iceTransportPolicy: 'all' };
    /** `${peer}/${sessionID}` -> Session */
    this.sessions = new Map();
    /** key -> Item, in the order they appeared */
    this.items = new Map();
    this.onMessage = (e) => {
      const m = e.detail.topic.match(signalRe);
      if (m && m[1] === this.me) this.handleSignal(m[2], e.detail.text);
    };
  }

  /** Starts listening for signals on conn (the client's MQTT connection). */
  attach(conn) {
    this.conn = conn;
    conn.addEventListener('message', this.onMessage);
    this.client.api.request('GET', '/connect').then((r) => {
      if (r && Array.isArray(r.ice_servers)) this.iceServers = r.ice_servers;
    }, ignore('no ICE servers from /connect, host candidates only'));
    clearIncoming().catch(ignore('old incoming files not cleared (no OPFS?)'));
  }

  /**
   * Breaks every session's peer connection as a network failure would;
   * the sessions resume. For tests, and for trying resume from the console.
   */
  dropConnections() {
    for (const s of this.sessions.values()) s.connectionLost(s.pc, true);
  }

  /** The engine's chunk counters of a transfer (see TransferEngine.stats). */
  stats(item) {
    const s = this.sessionOf(item);
    return s && item.fileID ? s.engine.stats(item.fileID) : null;
  }

  stop() {
    if (this.conn) this.conn.removeEventListener('message', this.onMessage);
    for (const s of [...this.sessions.values()]) s.end('', false, true);
  }

  changed(item) {
    this.dispatchEvent(new CustomEvent('change', { detail: { item } }));
  }

  publish(peer, msg) {
    const text = encodeRoap({ ...msg, from: this.me, to: peer });
    if (!this.conn || !this.conn.online) throw new Error('offline');
    // QoS 0, as signals are: a lost one is answered by the session's timeouts.
    this.conn.publish(`im/u/${peer}/signal/${this.me}`, text, 0).catch(ignore('signal not sent'));
  }

  // ---- sending ----------------------------------------------------------------

  /** Offers files (File objects) to peer in a new session. */
  async sendFiles(peer, files) {
    const items = [...files].map((f) => this.addItem({
      key: `out-${randomID()}`, fileID: '', peer, dir: 'sending', name: f.name, size: f.size,
      mime: f.type || 'application/octet-stream', state: 'connecting',
    }));
    let s;
    try {
      s = new Session(this, peer, randomID(), true);
      s.items = items;
      for (const it of items) it.session = s;
      await s.offer();
      for (const it of items) it.openMs = s.openMs;
    } catch (err) {
      const why = err instanceof SessionError ? `${peer} ${errorText[err.type] || `failed (${err.type})`}` : err.message;
      for (const it of items) this.fail(it, why);
      if (s) s.end(RoapErrorType.FAILED, false, true);
      return;
    }
    for (let i = 0; i < files.length; i++) {
      const it = items[i];
      if (it.state !== 'connecting') continue; // cancelled meanwhile
      it.state = 'preparing';
      this.changed(it);
      try {
        const info = await s.engine.sendFile(new BlockSource(files[i]), { name: files[i].name, mime: it.mime });
        it.fileID = info.fileID;
        it.sha256 = hex(info.sha256);
        it.state = 'waiting';
        s.byFile.set(info.fileID, it);
      } catch (err) {
        this.fail(it, err.message);
      }
      this.changed(it);
    }
    s.maybeFinish();
  }

  // ---- receiving --------------------------------------------------------------

  /** Accepts an offered file: it is written to OPFS (or memory) as it arrives. */
  async accept(item) {
    const s = this.sessionOf(item);
    if (!s || item.state !== 'offered') return;
    item.state = 'active';
    item.started = performance.now();
    this.changed(item);
    try {
      item.sink = await newSink(item.name);
      s.engine.accept(item.fileID, item.sink);
    } catch (err) {
      this.fail(item, `cannot store the file: ${err.message}`);
      try { s.engine.cancel(item.fileID); } catch { /* already ended */ }
    }
  }

  decline(item) {
    const s = this.sessionOf(item);
    if (s && item.state === 'offered') s.engine.decline(item.fileID);
  }

  /** Cancels a transfer in either direction. */
  cancel(item) {
    const s = this.sessionOf(item);
    if (item.state === 'connecting') {
      item.state = 'cancelled';
      this.changed(item);
      if (s && s.items.every((it) => it.state === 'cancelled')) s.end('', false, true);
      return;
    }
    if (!s || !item.fileID) return;
    try { s.engine.cancel(item.fileID); } catch { /* already ended */ }
  }

  /** Removes an ended transfer from the list (and its file from OPFS). */
  dismiss(item) {
    this.items.delete(item.key);
    if (item.sink && item.sink.remove) item.sink.remove().catch(ignore('partial file not removed; clearIncoming sweeps it'));
    this.changed(item);
  }

  /** Hands a received file to the browser's downloads. */
  save(item) {
    if (!item.file) return;
    const url = URL.createObjectURL(item.file);
    const a = document.createElement('a');
    a.href = url;
    a.download = item.name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  // ---- bookkeeping ------------------------------------------------------------

  addItem(fields) {
    const item = { sha256: '', bytes: 0, speed: 0, error: '', started: performance.now(), file: null, session: null, ...fields };
    this.items.set(item.key, item);
    this.changed(item);
    return item;
  }

  sessionOf(item) { return item.session; }

  fail(item, why) {
    if (itemEnded(item)) return;
    item.state = 'failed';
    item.error = why;
    this.changed(item);
  }

  onOffer(s, info) {
    const it = this.addItem({
      key: `in-${info.fileID}`, fileID: info.fileID, peer: s.peer, dir: 'receiving', name: info.name,
      size: info.size, mime: info.mime, sha256: hex(info.sha256), state: 'offered',
    });
    it.session = s;
    s.items.push(it);
    s.byFile.set(info.fileID, it);
    this.dispatchEvent(new CustomEvent('offer', { detail: { item: it } }));
  }

  onProgress(s, p) {
    const it = s.byFile.get(p.file.fileID);
    if (!it) return;
    it.bytes = p.bytes;
    it.speed = p.bytesPerSec;
    if (it.state === 'waiting' || it.state === 'preparing') it.state = 'active';
    if (it.dir === 'receiving' && p.bytes >= it.size) {
      it.state = 'verifying';
      it.lastByteMs = performance.now() - it.started; // for the benchmark
    }
    this.changed(it);
  }

  async onDone(s, r) {
    const it = s.byFile.get(r.file.fileID);
    if (!it) return;
    if (r.error) {
      const code = r.error.code;
      if (code === 'declined' || code === 'cancelled') {
        it.state = code;
        it.error = r.remote ? (code === 'declined' ? `${s.peer} declined` : `${s.peer} cancelled`) : '';
        this.changed(it);
      } else {
        this.fail(it, code === 'hash_mismatch' ? 'SHA-256 mismatch' : code === 'closed' ? 'connection closed' : r.error.message);
      }
      if (it.sink && it.sink.remove) it.sink.remove().catch(ignore('partial file not removed; clearIncoming sweeps it'));
      s.maybeFinish();
      return;
    }
    it.bytes = it.size;
    // The engine learns the SHA-256 while the file moves (digest frame).
    it.sha256 = hex(r.file.sha256);
    if (it.dir === 'receiving') {
      try {
        it.file = await it.sink.file(it.name, it.mime);
      } catch (err) {
        this.fail(it, `cannot read the file back: ${err.message}`);
        return;
      }
    }
    it.state = 'done';
    this.changed(it);
    if (it.dir === 'sending') {
      const meta = { name: it.name, size: it.size, sha256: it.sha256, mime: it.mime };
      // The transfer itself succeeded; only the chat's record of it is missing.
      this.client.send(dmConv(s.peer), it.name, /** @type {any} */ ({ type: 'file', meta })).catch((err) => console.warn('transfers: file record not posted:', err));
    }
    s.maybeFinish();
  }

  // ---- ROAP -------------------------------------------------------------------

  handleSignal(from, text) {
    let m;
    try {
      m = decodeRoap(text);
    } catch (err) {
      console.warn('transfers: signal from', from, 'refused:', err.message);
      return;
    }
    if (m.from !== from || m.to !== this.me) return; // the server stamps from/to: trust the topic
    const s = this.sessions.get(`${from}/${m.sessionID}`);
    switch (m.type) {
      case RoapType.OFFER:
        if (s) s.renegotiate(m.sdp).catch((err) => s.end(RoapErrorType.BAD_SDP, false, true, err));
        else Session.answer(this, from, m.sessionID, m.sdp);
        break;
      case RoapType.ANSWER:
        if (s) s.onAnswer(m.sdp);
        break;
      case RoapType.OK:
        if (s) s.onOK();
        break;
      case RoapType.CANDIDATE:
        if (s) s.addCandidate(m.candidate);
        break;
      case RoapType.SHUTDOWN:
        if (s) s.endAfterDrain();
        break;
      case RoapType.ERROR:
        if (s) s.end(m.errorType, true, false);
        break;
      default:
    }
  }
}

/**
 * Waits for the first burst of host candidates (gathering complete, 5 ms
 * after the first candidate, or GATHER_WAIT ms at most), so the ANSWER
 * carries them in its SDP: the peer's ICE agent then knows them from
 * the start instead of waiting a check round for trickled ones (200 ms in
 * pion). Chromium reports "complete" only after slower kinds, hence the
 * first-burst rule; later candidates (STUN, TURN) still trickle.
 */
function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    /** @type {ReturnType<typeof setTimeout> | 0} */
    let burst = 0;
    const done = () => {
      clearTimeout(timer);
      clearTimeout(burst);
      pc.removeEventListener('icegatheringstatechange', onState);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve();
    };
    const onState = () => { if (pc.iceGatheringState === 'complete') done(); };
    const onCandidate = (ev) => { if (ev.candidate && !burst) burst = setTimeout(done, 5); };
    const timer = setTimeout(done, GATHER_WAIT);
    pc.addEventListener('icegatheringstatechange', onState);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

/** An SDP without its candidate lines. */
function withoutCandidates(sdp) {
  return sdp.split(/(?<=\n)/).filter((l) => !l.startsWith('a=candidate:') && !l.startsWith('a=end-of-candidates')).join('');
}

class SessionError extends Error {
  constructor(type) {
    super(`session failed: ${type}`);
    this.type = type;
  }
}

/** One ROAP session: a peer connection (replaced on renegotiation) and an engine. */
class Session {
  constructor(mgr, peer, id, offerer) {
    this.mgr = mgr;
    this.peer = peer;
    this.id = id;
    this.offerer = offerer;
    this.machine = new SessionMachine({ me: mgr.me, peer, offerer });
    this.items = [];
    this.byFile = new Map();
    this.ended = false;
    /** @type {ReturnType<typeof setTimeout> | 0} */ 
    this.timer = 0;
    /** @type {ReturnType<typeof setTimeout> | 0} */ 
    this.connectTimer = 0;
    this.engine = new TransferEngine({
      onOffer: (info) => mgr.onOffer(this, info),
      onProgress: (p) => mgr.onProgress(this, p),
      onDone: (r) => mgr.onDone(this, r),
    });
    this.opened = new Promise((resolve, reject) => { this.resolveOpen = resolve; this.rejectOpen = reject; });
    // Only offer() awaits this; a session that ends without opening must
    // not leave an unhandled rejection behind when nobody does.
    this.opened.catch(ignore('session ended before it opened'));
    this.lost = null; // the connection connectionLost handled last
    this.closing = false; // the peer sent SHUTDOWN
    mgr.sessions.set(`${peer}/${id}`, this);
    this.newConnection();
  }

  /** Answers a peer's OFFER for a new session. */
  /** The ROAP state (SessionState). */
  get state() { return this.machine.state; }

  static answer(mgr, peer, id, sdp) {
    const s = new Session(mgr, peer, id, false);
    s.renegotiate(sdp).catch((err) => s.end(RoapErrorType.BAD_SDP, false, true, err));
  }

  newConnection() {
    if (this.pc) {
      if (this.transport) this.engine.detach(this.transport);
      this.pc.close();
    }
    const pc = new RTCPeerConnection({ iceServers: this.mgr.iceServers, iceTransportPolicy: this.mgr.settings.iceTransportPolicy });
    this.pc = pc;
    this.transport = null;
    this.remoteSet = false;
    this.remoteCands = [];
    this.localCands = [];
    this.signalReady = false;
    pc.addEventListener('icecandidate', (ev) => {
      if (pc !== this.pc || !ev.candidate || !ev.candidate.candidate) return;
      if (this.signalReady) this.send({ type: RoapType.CANDIDATE, candidate: ev.candidate });
      else this.localCands.push(ev.candidate);
    });
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed') this.connectionLost(pc);
    });
    pc.addEventListener('datachannel', (ev) => {
      if (pc === this.pc && ev.channel.label === LABEL) this.setupChannel(ev.channel);
    });
    return pc;
  }

  setupChannel(dc) {
    const pc = this.pc;
    const t = new DataChannelTransport(dc);
    this.transport = t;
    dc.addEventListener('open', () => {
      this.machine.channelOpened();
      clearTimeout(this.connectTimer);
      this.resolveOpen();
    }, { once: true });
    dc.addEventListener('close', () => this.connectionLost(pc));
    t.bind(this.engine);
  }

  /**
   * The connection pc broke (simulate: close it first). Before the session
   * opened, or with nothing left to move, the session ends; the caller
   * tells the peer, the callee does not: it may be one of several devices
   * of the user that answered, whose answer lost to another device's, and
   * its ERROR would end the session that won. Otherwise the caller offers
   * again (see Resume at the top) and the callee waits for that: the
   * machine decides (SessionMachine.lost).
   */
  connectionLost(pc, simulate = false) {
    if (pc !== this.pc || this.ended || this.closing || this.lost === pc) return;
    this.lost = pc;
    if (simulate) pc.close();
    const next = this.machine.lost(this.items.every(itemEnded));
    switch (next.do) {
      case 'end':
        this.end(next.errorType, false, next.tell);
        return;
      case 'wait':
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.end(RoapErrorType.FAILED, false, false), next.ms);
        return;
      case 'reoffer':
        setTimeout(() => {
          if (this.ended || this.pc !== pc) return;
          this.newConnection();
          this.offer().catch(ignore('resume OFFER failed; the session ended and reported it'));
        }, next.delay);
    }
  }

  send(msg) {
    this.mgr.publish(this.peer, { ...msg, sessionID: this.id });
  }

  flushLocal() {
    this.signalReady = true;
    for (const c of this.localCands.splice(0)) this.send({ type: RoapType.CANDIDATE, candidate: c });
  }

  async flushRemote() {
    this.remoteSet = true;
    // A candidate the connection refuses (another family, a stale one after
    // renegotiation) is no reason to stop: ICE works with the others.
    for (const c of this.remoteCands.splice(0)) await this.pc.addIceCandidate(c).catch((err) => console.debug('transfers: candidate refused', err));
  }

  /**
   * Waits at most settings.connectTimeout for the data channel of a new
   * session to open; then it ends on this side with NO_PATH (the caller
   * also tells the peer; a callee ends quietly, see connectionLost).
   */
  armConnect() {
    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      if (this.ended || this.transport && this.transport.dc && this.transport.dc.readyState === 'open') return;
      this.end(RoapErrorType.FAILED, false, this.offerer);
    }, this.mgr.settings.connectTimeout);
  }

  arm(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.end(RoapErrorType.TIMEOUT, false, true), ms);
  }

  /**
   * Caller: creates the data channel, sends OFFER, waits for the channel to
   * open. The OFFER goes out at once and without candidates; ours follow
   * once the ANSWER is applied (onAnswer), as Go peers do (p2p/peer.go,
   * sendOffer). Otherwise the answerer starts checking us before we know its
   * candidates and we file it as peer-reflexive (a pion answerer then
   * nominates only at its next 200 ms check round); this way we check first
   * and the answerer learns us from our check. Not waiting for our own
   * candidates also sends the OFFER ~7 ms sooner.
   */
  async offer() {
    const t0 = performance.now();
    const pc = this.pc;
    this.setupChannel(pc.createDataChannel(LABEL, { ordered: true }));
    await pc.setLocalDescription(await pc.createOffer());
    this.machine.offerSent();
    this.send({ type: RoapType.OFFER, sdp: withoutCandidates(pc.localDescription.sdp) });
    this.arm(OFFER_TIMEOUT);
    if (!this.connectTimer) this.armConnect(); // a new session (a resume has its own tries)
    await this.opened;
    this.openMs = performance.now() - t0; // offer-to-open, for the benchmark
  }

  /** Callee: answers an OFFER (new session, or a renegotiation on a new connection). */
  async renegotiate(sdp) {
    if (this.ended) return;
    const how = this.machine.onOffer();
    if (how === 'ignore') return; // glare: our own OFFER wins
    if (how === 'answer') this.armConnect();
    const pc = how === 'answer' ? this.pc : this.newConnection();
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await this.flushRemote();
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    if (pc !== this.pc || this.ended) return;
    this.machine.answerSent();
    this.send({ type: RoapType.ANSWER, sdp: pc.localDescription.sdp });
    this.flushLocal();
    this.arm(ANSWER_TIMEOUT);
  }

  async onAnswer(sdp) {
    if (!this.machine.onAnswer()) return; // a second device's answer: the first one won
    clearTimeout(this.timer);
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
    } catch (err) {
      this.end(RoapErrorType.BAD_SDP, false, true, err);
      return;
    }
    await this.flushRemote();
    this.flushLocal(); // held back since the OFFER (see offer)
    this.machine.answerApplied();
    this.send({ type: RoapType.OK });
  }

  onOK() {
    if (!this.machine.onOK()) return;
    clearTimeout(this.timer);
  }

  addCandidate(c) {
    if (!c || !c.candidate) return; // end-of-candidates
    if (this.remoteSet) this.pc.addIceCandidate(c).catch((err) => console.debug('transfers: candidate refused', err)); // see flushRemote
    else this.remoteCands.push(c);
  }

  /** Shuts the session down (SHUTDOWN) once every file in it has ended. */
  maybeFinish() {
    if (!this.offerer || this.ended) return;
    if (this.items.length && this.items.every(itemEnded)) this.end('', false, true);
  }

  /**
   * The peer shut down. Signals may overtake the data channel, so frames
   * the peer sent last (a Complete) may still be on the way: end when the
   * channel closes behind them, or after a second.
   */
  endAfterDrain() {
    this.closing = true; // the channel's close that follows is no failure
    const dc = this.transport && this.transport.dc;
    const fin = () => this.end('', true, false);
    if (!dc || dc.readyState !== 'open') {
      fin();
      return;
    }
    dc.addEventListener('close', () => setTimeout(fin, 0), { once: true });
    setTimeout(fin, 1000);
  }

  /**
   * Ends the session: errorType '' is a clean SHUTDOWN. remote: the peer (or
   * the server) ended it; tell: send SHUTDOWN/ERROR to the peer.
   */
  end(errorType, remote, tell, cause) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    if (cause) console.warn('transfers: session', this.id, cause);
    if (tell) {
      try {
        this.send(errorType ? { type: RoapType.ERROR, errorType } : { type: RoapType.SHUTDOWN });
      } catch { /* offline: the peer times out */ }
    }
    clearTimeout(this.connectTimer);
    this.mgr.sessions.delete(`${this.peer}/${this.id}`);
    this.rejectOpen(new SessionError(errorType || 'SHUTDOWN'));
    const why = errorType ? `${this.peer} ${errorText[errorType] || `failed (${errorType})`}` : 'connection closed';
    for (const it of this.items) if (it.state === 'connecting') this.mgr.fail(it, why);
    if (this.machine.showsUnknownFailure(errorType, this.items.length)) {
      // The receiving side never learnt which file it was: say that a
      // transfer was tried, and why it could not connect.
      const it = this.mgr.addItem({
        key: `in-${this.id}`, fileID: '', peer: this.peer, dir: 'receiving', name: `File from ${this.peer}`,
        size: 0, mime: '', state: 'connecting',
      });
      this.mgr.fail(it, `could not connect to ${this.peer}: ${NO_PATH}`);
    }
    this.engine.close(); // unfinished files end with "closed"
    this.pc.close();
  }
}

// ---- sources and sinks ------------------------------------------------------------

/**
 * A File read in 1 MiB blocks, with the next block read ahead. Each
 * Blob read is a round trip to the browser process; reading every 16 KiB
 * chunk on its own caps a transfer at a few MB/s.
 */
class BlockSource {
  constructor(file, block = 1 << 20) {
    this.file = file;
    this.size = file.size;
    this.block = block;
    this.cache = new Map(); // block index -> Promise<ArrayBuffer>, oldest first
  }

  /** Blob-like: the engine awaits arrayBuffer() of what slice returns. */
  slice(start, end) {
    return { arrayBuffer: () => this.read(start, end) };
  }

  async read(start, end) {
    const b = Math.floor(start / this.block);
    const base = b * this.block;
    if (end > base + this.block) return this.file.slice(start, end).arrayBuffer();
    const buf = await this.load(b);
    // Read-ahead only: a failure shows when the engine reads that block itself.
    if ((b + 1) * this.block < this.size) this.load(b + 1).catch(ignore('read-ahead failed'));
    return buf.slice(start - base, end - base);
  }

  load(b) {
    let p = this.cache.get(b);
    if (!p) {
      p = this.file.slice(b * this.block, Math.min(this.size, (b + 1) * this.block)).arrayBuffer();
      this.cache.set(b, p);
      // Re-requested chunks may reach back a little; 4 blocks is plenty.
      while (this.cache.size > 4) this.cache.delete(this.cache.keys().next().value);
    }
    return p;
  }
}

// ---- sinks

/** A MemorySink with the OPFS sink's file() and remove() (nothing to remove). */
class MemoryFileSink extends MemorySink {
  /** @param {string} _name @param {string} mime */
  async file(_name, mime) { return new Blob([this.bytes()], { type: mime }); }

  async remove() {}
}

/** A sink on the Origin Private File System when available, else in memory. */
async function newSink(name) {
  if (navigator.storage && navigator.storage.getDirectory && window.isSecureContext) {
    try {
      return await OPFSSink.create(name);
    } catch (err) {
      console.warn('transfers: OPFS unavailable, keeping the file in memory:', err.message);
    }
  }
  return new MemoryFileSink();
}

/**
 * Removes files a previous page left in OPFS (received but never saved)
 * once they are a day old; younger ones may belong to another tab.
 */
async function clearIncoming() {
  if (!navigator.storage || !navigator.storage.getDirectory || !window.isSecureContext) return;
  const root = await navigator.storage.getDirectory();
  const dir = await root.getDirectoryHandle(INCOMING_DIR, { create: true });
  for await (const name of dir.keys()) {
    const born = parseInt(name.split('-')[0], 36);
    if (!(born > Date.now() - 24 * 3600 * 1000)) await dir.removeEntry(name).catch(ignore(`stale ${name} not removed (open in another tab?)`));
  }
}

/**
 * Writes an incoming file to OPFS through a writable stream, coalescing
 * contiguous chunks into 1 MiB writes. The stream commits on close, so
 * the first read (the engine's SHA-256 check, once every chunk is in)
 * closes it and reads the committed file back.
 */
class OPFSSink {
  static async create(name) {
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle(INCOMING_DIR, { create: true });
    const fname = `${Date.now().toString(36)}-${randomID()}-${name.replace(/[^\w.-]/g, '_').slice(0, 80)}`;
    const handle = await dir.getFileHandle(fname, { create: true });
    return new OPFSSink(dir, fname, handle, await handle.createWritable());
  }

  constructor(dir, fname, handle, writable) {
    this.dir = dir;
    this.fname = fname;
    this.handle = handle;
    this.w = writable;
    this.buf = new Uint8Array(1 << 20);
    this.len = 0;
    this.start = 0;
  }

  async write(offset, bytes) {
    if (!this.w) throw new Error('file already closed');
    if (this.len && (offset !== this.start + this.len || this.len + bytes.length > this.buf.length)) await this.flush();
    if (bytes.length > this.buf.length) {
      await this.w.write({ type: 'write', position: offset, data: bytes });
      return;
    }
    if (!this.len) this.start = offset;
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  async flush() {
    if (!this.len) return;
    const n = this.len;
    this.len = 0;
    await this.w.write({ type: 'write', position: this.start, data: this.buf.subarray(0, n) });
  }

  async commit() {
    if (!this.w) return;
    await this.flush();
    const w = this.w;
    this.w = null;
    await w.close();
  }

  async read(offset, length) {
    await this.commit();
    const f = await this.handle.getFile();
    return new Uint8Array(await f.slice(offset, offset + length).arrayBuffer());
  }

  /** The committed file (disk-backed: saving it does not load it into memory). */
  async file() {
    await this.commit();
    return this.handle.getFile();
  }

  async remove() {
    const w = this.w;
    this.w = null;
    if (w) await w.abort().catch(ignore('writer already closed'));
    await this.dir.removeEntry(this.fname).catch(ignore(`${this.fname} not removed; clearIncoming sweeps it`));
  }
}
