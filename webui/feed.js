// The Activity view: one line per event that passes the filters, the last FEED_ROWS of them,
// subagents' events grouped under their session. New events are appended, not redrawn.

import { feedBlocks, compileFilter, recsAfter, emptyFeedText, fmtClock } from "./model.js";
import { escapeXml as esc } from "./timeline.js";

const FEED_ROWS = 500;
const $ = (sel, root = document) => root.querySelector(sel);

function atBottom(el) {
  return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
}

export class Feed {
  /**
   * shown: what the event views show ({store, filters, gen, history}). kindOf(rec): a line's
   * color class. selectedSeq(): the event in the detail panel. caughtUp(): the backlog is done.
   * onPick(seq): a line was clicked.
   */
  constructor({ shown, kindOf, selectedSeq, caughtUp, onPick }) {
    Object.assign(this, { shown, kindOf, selectedSeq, caughtUp });
    this.el = $("#feed");
    // What the lines on screen are: the view they were built for (key, reset), the last seq
    // looked at, lines shown, and events in view (shown or not).
    this.key = null;
    this.reset = -1;
    this.lastSeq = 0;
    this.rows = 0;
    this.inView = 0;
    this.stick = true; // follow new events while scrolled to the bottom
    this.el.addEventListener("scroll", (e) => {
      if (!e.target.hidden && e.target.clientHeight) this.stick = atBottom(e.target);
    }, { passive: true });
    this.el.addEventListener("click", (e) => {
      const line = e.target.closest(".line");
      if (line) onPick(Number(line.dataset.seq));
    });
  }

  /** Back at the bottom when shown again, if it was there. */
  follow() {
    if (this.stick) this.el.scrollTop = this.el.scrollHeight;
  }

  _key() {
    const f = this.shown.filters;
    return `${this.shown.gen}\u0000${f.session}\u0000${f.type}\u0000${f.tool}\u0000${f.text}`;
  }

  _line(rec, showProject) {
    const ev = rec.ev;
    const kind = this.kindOf(rec);
    const risk = ev.risk === "high" || ev.risk === "medium"
      ? `<span class="risk risk-${ev.risk}" title="${esc(ev.risk_reason || `${ev.risk} risk`)}">${ev.risk}</span>` : "";
    const agent = ev.agent_id ? ` data-agent-id="${esc(ev.agent_id)}"` : "";
    const proj = showProject ? `<span class="proj" title="${esc(ev.session_id || "")}">${esc(this.shown.store.projectOf(ev.session_id))}</span>` : "";
    const sel = rec.seq === this.selectedSeq() ? " selected" : "";
    return `<div class="line k-${kind}${sel}" data-testid="feed-line" data-seq="${rec.seq}" data-event-type="${esc(ev.event_type || "")}"${agent} tabindex="-1">`
      + `<time datetime="${esc(ev.timestamp || "")}">${fmtClock(rec.t, true)}</time>`
      + `<span class="chip k-${kind}">${esc(ev.event_type || "?")}</span>${proj}`
      + `<span class="summary">${esc(ev.summary || ev.event_type || "")}</span>${risk}</div>`;
  }

  _groupOpen(block, showProject) {
    const store = this.shown.store;
    const where = showProject ? ` <span class="muted">in ${esc(store.projectOf(block.sessionId))}</span>` : "";
    return `<div class="agent-group" data-testid="agent-group" data-agent-id="${esc(block.agentId)}" data-session-id="${esc(block.sessionId || "")}">`
      + `<div class="agent-head"><span class="arrow">↳</span> <b>${esc(store.agentTypes.get(block.agentId) || "subagent")}</b> <span class="mono muted">${esc(block.agentId)}</span>${where}</div>`;
  }

  _blocks(blocks, showProject) {
    let html = "";
    for (const b of blocks) {
      if (b.agentId) html += this._groupOpen(b, showProject);
      for (const rec of b.recs) html += this._line(rec, showProject);
      if (b.agentId) html += "</div>";
    }
    return html;
  }

  render() {
    const feed = this.el;
    const { store, filters } = this.shown;
    const key = this._key();
    const showProject = !filters.session;
    const stick = this.stick;
    if (this.key !== key || this.reset !== store.resetVersion) {
      // Full rebuild: the last FEED_ROWS events of the filtered view.
      const view = store.filtered(filters);
      const shown = view.slice(-FEED_ROWS);
      feed.classList.toggle("all", showProject);
      feed.innerHTML = this._blocks(feedBlocks(shown), showProject);
      this.key = key;
      this.reset = store.resetVersion;
      this.rows = shown.length;
      this.inView = view.length;
      this.lastSeq = store.recs.length ? store.recs[store.recs.length - 1].seq : 0;
      feed.scrollTop = feed.scrollHeight;
      this.stick = true;
    } else {
      // Append what arrived since, then drop rows from the top beyond FEED_ROWS.
      const f = compileFilter(filters);
      const recs = store.recs;
      const fresh = recsAfter(recs, this.lastSeq).filter(f);
      if (recs.length) this.lastSeq = recs[recs.length - 1].seq;
      if (fresh.length) {
        const tail = fresh.slice(-FEED_ROWS);
        const blocks = feedBlocks(tail);
        const lastEl = feed.lastElementChild;
        // Continue the last subagent group when the first new block is the same agent.
        if (blocks.length && blocks[0].agentId && lastEl && lastEl.classList.contains("agent-group")
            && lastEl.dataset.agentId === blocks[0].agentId
            && (lastEl.dataset.sessionId || "") === (blocks[0].sessionId || "")) {
          lastEl.insertAdjacentHTML("beforeend", blocks[0].recs.map((r) => this._line(r, showProject)).join(""));
          blocks.shift();
        }
        feed.insertAdjacentHTML("beforeend", this._blocks(blocks, showProject));
        this.rows += tail.length;
        this.inView += fresh.length;
        this._trim();
        if (stick) feed.scrollTop = feed.scrollHeight;
      }
    }
    const empty = $("#feed-empty");
    if (!this.inView) {
      empty.hidden = false;
      empty.textContent = emptyFeedText({ loaded: store.size, caughtUp: this.caughtUp(), history: this.shown.history });
    } else {
      empty.hidden = true;
    }
    const foot = $("#feed-foot");
    foot.hidden = this.inView <= this.rows;
    if (!foot.hidden) {
      foot.textContent = `Showing the last ${this.rows.toLocaleString()} of ${this.inView.toLocaleString()} events in view — narrow the filters or export for the rest.`;
    }
  }

  _trim() {
    const feed = this.el;
    let extra = this.rows - FEED_ROWS;
    while (extra > 0 && feed.firstElementChild) {
      const first = feed.firstElementChild;
      if (first.classList.contains("agent-group")) {
        const line = first.querySelector(".line");
        if (line) { line.remove(); extra--; this.rows--; }
        if (!first.querySelector(".line")) first.remove();
      } else {
        first.remove();
        extra--;
        this.rows--;
      }
    }
  }

  /** The line of `seq` is the one selected (null: none). */
  select(seq) {
    for (const el of this.el.querySelectorAll(".line.selected")) el.classList.remove("selected");
    if (seq === null) return;
    const line = this.el.querySelector(`.line[data-seq="${seq}"]`);
    if (line) line.classList.add("selected");
  }
}
