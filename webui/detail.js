// The detail panel: one event whole (its metadata and JSON), from the feed, the timeline or a
// search result; ↑/↓ step through the lines, "Open session" opens its session as history.

import { projectFor } from "./model.js";
import { escapeXml as esc } from "./timeline.js";

const $ = (sel, root = document) => root.querySelector(sel);

export class Detail {
  /**
   * shown: what the event views show ({store, history}). kindOf(rec): the chip's color.
   * feed: the Feed (its selected line). search(): the Search, null before there is one.
   * showsEvents(), showsSearch(): which tab is up. toasts: for the copy's outcome.
   * onOpenSession(sessionId): "Open session".
   */
  constructor({ shown, kindOf, feed, search, showsEvents, showsSearch, toasts, onOpenSession }) {
    Object.assign(this, { shown, kindOf, feed, search, showsEvents, showsSearch, toasts });
    this.el = $("#event-detail");
    this.selectedSeq = null; // of the feed's event shown (null: none, or a search result)
    this.event = null;
    $("#detail-close").addEventListener("click", () => this.close());
    $("#detail-copy").addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText($("#detail-json").textContent);
        this.toasts.show({ kind: "info", title: "Event copied as JSON" });
      } catch {
        this.toasts.show({ kind: "info", title: "Copy failed", text: "The browser did not allow the clipboard." });
      }
    });
    $("#detail-session").addEventListener("click", () => {
      const ev = this.event;
      if (ev && ev.session_id) onOpenSession(ev.session_id);
    });
  }

  get hidden() { return this.el.hidden; }

  /** The event of `seq` of the events shown, its feed line selected. */
  open(seq) {
    const store = this.shown.store;
    const rec = store.bySeq.get(seq);
    if (!rec) return;
    this.selectedSeq = seq;
    this.feed.select(seq);
    this.show(rec.ev, store);
  }

  /** The panel for one stored event; `from`: the Store that knows its session's name. */
  show(ev, from) {
    this.event = ev;
    const kind = this.kindOf({ ev });
    const chip = $("#detail-chip");
    chip.className = `chip k-${kind}`;
    chip.textContent = ev.event_type || "?";
    $("#detail-title").textContent = ev.summary || "";
    const meta = [
      ["seq", ev.seq], ["time", ev.timestamp], ["project", projectFor(ev, from)],
      ["session", ev.session_id],
    ];
    if (ev.agent_id) meta.push(["agent", from.agentLabel(ev.agent_id)]);
    if (ev.tool_use_id) meta.push(["tool call", ev.tool_use_id]);
    if (ev.risk && ev.risk !== "low") meta.push(["risk", `${ev.risk}${ev.risk_reason ? ` — ${ev.risk_reason}` : ""}`]);
    $("#detail-meta").innerHTML = meta.map(([k, v]) => `<dt>${esc(k)}</dt><dd class="mono">${esc(v ?? "")}</dd>`).join("");
    $("#detail-json").textContent = JSON.stringify(ev, null, 2);
    // A search result, or a live event: its whole session can open as history.
    const h = this.shown.history;
    $("#detail-session").hidden = !ev.session_id || (h && h.id === ev.session_id && this.showsEvents());
    this.el.hidden = false;
  }

  /** Shows the next (+1) or previous (-1) line (of the feed, or of the search results). */
  step(dir) {
    const search = this.search();
    if (this.showsSearch()) {
      const lines = [...document.querySelectorAll("#hsearch-results .line")];
      const i = lines.findIndex((el) => Number(el.dataset.seq) === search.selectedSeq);
      const next = lines[i < 0 ? 0 : i + dir];
      if (!next) return;
      search.pick(Number(next.dataset.seq));
      next.scrollIntoView({ block: "nearest" });
      return;
    }
    const lines = [...document.querySelectorAll("#feed .line")];
    const i = lines.findIndex((el) => Number(el.dataset.seq) === this.selectedSeq);
    const next = lines[i < 0 ? lines.length - 1 : i + dir];
    if (!next) return;
    this.open(Number(next.dataset.seq));
    next.scrollIntoView({ block: "nearest" });
  }

  close() {
    this.el.hidden = true;
    this.selectedSeq = null;
    this.event = null;
    this.feed.select(null);
    const search = this.search();
    if (search) search.select(null);
  }
}
