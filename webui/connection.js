// The WebSocket to the daemon: connect, subscribe, reconnect by itself with exponential
// backoff and jitter, resume after the last seq held (the caller says which).
//
// States: "connecting" (first attempt), "live" (backlog done, live events flowing),
// "reconnecting" (lost, trying again), "offline" (several attempts failed in a row, or the
// token was refused; still retrying unless stopped).

export const BACKOFF = { base: 500, factor: 2, max: 10000, jitter: 0.25 };
export const OFFLINE_AFTER = 4; // failed attempts in a row before the state says offline

/** Delay before attempt `n` (0-based) of a run of failures, in ms. */
export function backoffDelay(n, opts = BACKOFF, rand = Math.random) {
  // Jitter only shortens the wait, so the cap holds: [raw * (1 - jitter), raw].
  const raw = Math.min(opts.max, opts.base * Math.pow(opts.factor, n));
  return Math.max(0, Math.round(raw * (1 - opts.jitter * rand())));
}

export class Connection {
  /**
   * url: the ws:// URL, token included.
   * subscription(): the subscribe message to send on every open (reads the resume position).
   * onMessage(msg): every parsed server message (plus `bytes`, its size in characters).
   * onState(state, info): state changes; info = {attempt, retryIn}.
   */
  constructor({ url, subscription, onMessage, onState, WebSocketImpl, backoff = BACKOFF }) {
    this.url = url;
    this.subscription = subscription;
    this.onMessage = onMessage;
    this.onState = onState || (() => {});
    this.WS = WebSocketImpl || globalThis.WebSocket;
    this.backoff = backoff;
    this.ws = null;
    this.failures = 0;
    this.everLive = false;
    this.timer = null;
    this.stopped = false;
    this.state = null;
    this.retryAt = 0;
  }

  start() {
    this.stopped = false;
    this._setState(this.everLive ? "reconnecting" : "connecting");
    this._open();
  }

  stop(state = "offline") {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try { ws.close(); } catch { /* already closed */ }
    }
    this._setState(state);
  }

  /** Try again now instead of waiting for the backoff timer (e.g. the tab became visible). */
  retryNow() {
    if (this.stopped || this.ws || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this._open();
  }

  send(msg) {
    if (this.ws && this.ws.readyState === 1) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  _setState(state, info = {}) {
    if (state === this.state && !info.force) return;
    this.state = state;
    this.onState(state, info);
  }

  _open() {
    let ws;
    try {
      ws = new this.WS(this.url);
    } catch (err) {
      this._closed();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.send(this.subscription());
    };
    ws.onmessage = (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      if (!msg || typeof msg !== "object") return;
      msg.bytes = e.data.length; // not the server's: how big the message was, for memory bounds
      if (msg.type === "live") {
        this.failures = 0;
        this.everLive = true;
        this._setState("live");
      }
      this.onMessage(msg);
    };
    ws.onerror = () => { /* onclose follows */ };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!opened) this.failures++;
      else if (this.state !== "live") this.failures++;
      this._closed();
    };
  }

  _closed() {
    if (this.stopped) return;
    const delay = backoffDelay(this.failures, this.backoff);
    this.retryAt = Date.now() + delay;
    const state = this.failures >= OFFLINE_AFTER ? "offline"
      : this.everLive ? "reconnecting" : "connecting";
    this._setState(state, { attempt: this.failures, retryIn: delay, force: true });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stopped) return;
      if (this.state === "offline") this.onState("offline", { attempt: this.failures, retrying: true });
      this._open();
    }, delay);
  }
}
