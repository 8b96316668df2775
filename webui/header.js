// The top bar: the connection's state, the lag notice, and the counts of the live sessions.

import { healthCounts, isEmptyFilter } from "./model.js";

const $ = (sel, root = document) => root.querySelector(sel);

const CONN_LABEL = {
  connecting: "connecting",
  live: "live",
  reconnecting: "reconnecting",
  offline: "offline",
};

export class Header {
  /**
   * live: the live Store. filters(): the filters of the events in view. inView(): how many
   * events pass them.
   */
  constructor({ live, filters, inView }) {
    Object.assign(this, { live, filters, inView });
    this.lagged = false; // the daemon dropped this page behind: it is catching up
    this.conn = $("#connection");
  }

  /** No token: the page cannot connect at all. */
  noToken() {
    this.conn.dataset.state = "offline";
    this.label("no token");
  }

  /** The connection's state (Connection's onState), with when it tries again. */
  connection(state, info) {
    const el = this.conn;
    el.dataset.state = state;
    this.label(CONN_LABEL[state] || state);
    const retry = info && info.retryIn ? ` Next try in ${Math.ceil(info.retryIn / 1000)} s.` : "";
    el.title = state === "live" ? "Connected to the daemon; events arrive live"
      : state === "offline" ? `The daemon does not answer (is it running? \`mpmd status\`).${retry} Click to retry now.`
        : `Not connected; retrying by itself.${retry} Click to retry now.`;
  }

  /** The connection button's text, when it says more than the state ("loading", "no token"). */
  label(text) {
    $(".label", this.conn).textContent = text;
  }

  render() {
    $("#lag-notice").hidden = !this.lagged;
    const live = this.live;
    const sessions = [...live.sessions.values()];
    const counts = healthCounts(sessions, Date.now());
    const parts = [
      `<span><b>${sessions.length}</b> sessions</span>`,
      `<span class="c-active"><b>${counts.active}</b> active</span>`,
    ];
    if (counts["needs-you"]) parts.push(`<span class="c-wait"><b>${counts["needs-you"]}</b> need you</span>`);
    parts.push(`<span><b>${live.size.toLocaleString()}</b> events</span>`);
    if (live.maxSeq) parts.push(`<span class="muted mono">seq ${live.maxSeq}</span>`);
    $("#counts").innerHTML = parts.join("");
    const n = this.inView();
    $("#in-view").textContent = isEmptyFilter(this.filters()) ? "" : `${n.toLocaleString()} in view`;
  }
}
