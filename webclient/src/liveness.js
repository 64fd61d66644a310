// @ts-check
// Noticing a dead connection quickly. No DOM, no MQTT: the connection wires
// it to MQTT.js (ping = PINGREQ, alive = any packet received) and to the
// browser's events.
//
// MQTT's keepalive alone notices a silent network only after 1.5x the
// keepalive (90 s at our 60 s); a probe asks for a PINGRESP and gives up
// after a few seconds. It runs when there is reason to doubt the
// connection (the tab became visible again, the browser says the network
// changed, a publish is slow to be acknowledged) and every `every` ms while
// the tab is visible.

/** How long a probe waits for an answer before the connection counts as dead. */
export const probeTimeout = 4000;
/** How often a visible tab probes an idle connection. */
export const probeEvery = 20_000;

export class Liveness {
  /**
   * @param {{ping: () => void, dead: (why: string) => void, timeout?: number, every?: number,
   *          setTimer?: (fn: () => void, ms: number) => any, clearTimer?: (id: any) => void}} opts
   */
  constructor({
    ping, dead, timeout = probeTimeout, every = probeEvery,
    // Wrapped: a bare setTimeout called as a method throws "Illegal invocation".
    setTimer = (fn, ms) => setTimeout(fn, ms), clearTimer = (id) => clearTimeout(id),
  }) {
    this.ping = ping;
    this.dead = dead;
    this.timeout = timeout;
    this.every = every;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.waiting = 0; // timer of the probe in flight, 0 if none
    this.tick = 0; // timer of the next periodic probe
    this.running = false;
  }

  /** The connection is up: probe periodically from now on (while `visible`). */
  start(visible = true) {
    this.running = true;
    this.schedule(visible);
  }

  /** The connection is down or closed: no probes. */
  stop() {
    this.running = false;
    this.clearTimer(this.waiting);
    this.clearTimer(this.tick);
    this.waiting = 0;
    this.tick = 0;
  }

  /** Whether the periodic probe runs (only for a visible tab: a hidden one is throttled anyway). */
  schedule(visible) {
    this.clearTimer(this.tick);
    this.tick = 0;
    if (!this.running || !visible) return;
    this.tick = this.setTimer(() => {
      this.tick = 0;
      this.probe('idle');
      this.schedule(true);
    }, this.every);
  }

  /** Asks the other end to answer; `dead(why)` follows unless something arrives in time. */
  probe(why = 'probe') {
    if (!this.running || this.waiting) return;
    this.waiting = this.setTimer(() => {
      this.waiting = 0;
      if (!this.running) return;
      this.stop();
      this.dead(why);
    }, this.timeout);
    try {
      this.ping();
    } catch {
      // The socket is already gone: the timer above reports it.
    }
  }

  /** Something arrived from the server: the connection is alive. */
  alive() {
    this.clearTimer(this.waiting);
    this.waiting = 0;
  }
}
