// The history search: the query language of docs/query.md over every stored event
// (/api/events), newest first, paged with "load more"; saved searches from /api/searches.

import { escapeXml as esc } from "./timeline.js";
import { parseTime } from "./model.js";
import { errorColumn, fmtDateTime, fmtCount } from "./history.js";

export const PAGE = 100;
const QUERY_KEY = "mpmd-query";
const $ = (sel, root = document) => root.querySelector(sel);

export class Search {
  /**
   * api: makeApi()'s get. kindOf({ev}): the line's color class. projectOf(ev): its project.
   * agentLabel(agentId): a subagent's name. onPick(ev): show the event's detail.
   * onQuery(query): the query just run (the page keeps it in the address).
   */
  constructor({ api, kindOf, projectOf, agentLabel, onPick, onQuery }) {
    Object.assign(this, { api, kindOf, projectOf, agentLabel, onPick });
    this.onQuery = onQuery || (() => {});
    this.query = null; // the query the results are for; null: nothing run yet
    this.events = [];
    this.bySeq = new Map();
    this.next = null;
    this.error = "";
    this.indexing = false;
    this.loading = false;
    this.gen = 0;
    this.selectedSeq = null;
    this.saved = null;
    this.input = $("#hsearch");
    this.results = $("#hsearch-results");
    try { this.input.value = localStorage.getItem(QUERY_KEY) || ""; } catch { /* ignore */ }

    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); this.run(this.input.value); }
    });
    this.input.addEventListener("input", () => {
      // The error belongs to the query as it was run: editing it hides the marker.
      $("#hsearch-error .err-where").hidden = true;
    });
    $("#hsearch-run").addEventListener("click", () => this.run(this.input.value));
    $("#hsearch-more").addEventListener("click", () => this.more());
    $("#saved-searches").addEventListener("change", (e) => {
      const name = e.target.value;
      e.target.value = "";
      if (name) this.run(`@${name}`);
    });
    this.results.addEventListener("click", (e) => {
      const line = e.target.closest(".line");
      if (line) this.pick(Number(line.dataset.seq));
    });
    this.results.addEventListener("keydown", (e) => {
      const line = e.target.closest(".line");
      if (!line) return;
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.pick(Number(line.dataset.seq)); }
    });
  }

  /** Shown for the first time (or again): saved searches, and a first search if none ran. */
  shown() {
    this.loadSaved();
    if (this.query === null) this.run(this.input.value);
  }

  pick(seq) {
    const ev = this.bySeq.get(seq);
    if (!ev) return;
    this.select(seq);
    this.onPick(ev);
  }

  select(seq) {
    this.selectedSeq = seq;
    for (const el of this.results.querySelectorAll(".line.selected")) el.classList.remove("selected");
    if (seq === null) return;
    const el = this.results.querySelector(`.line[data-seq="${seq}"]`);
    if (el) el.classList.add("selected");
  }

  async loadSaved() {
    try {
      this.saved = await this.api("/api/searches");
    } catch {
      return; // the search itself says what is wrong
    }
    const searches = this.saved.searches && typeof this.saved.searches === "object" ? this.saved.searches : {};
    const presets = new Set(Array.isArray(this.saved.presets) ? this.saved.presets : []);
    const own = Object.keys(searches).filter((n) => !presets.has(n)).sort();
    const option = (name) => `<option value="${esc(name)}" title="${esc(searches[name] || "")}">@${esc(name)} — ${esc(searches[name] || "")}</option>`;
    let html = `<option value="">Saved searches…</option>`;
    if (own.length) html += `<optgroup label="Yours">${own.map(option).join("")}</optgroup>`;
    if (presets.size) html += `<optgroup label="Presets">${[...presets].sort().map(option).join("")}</optgroup>`;
    $("#saved-searches").innerHTML = html;
  }

  /** Runs `text` from its first page. */
  run(text) {
    const q = String(text ?? "").trim();
    this.input.value = q;
    try { localStorage.setItem(QUERY_KEY, q); } catch { /* ignore */ }
    this.onQuery(q);
    this.query = q;
    this.events = [];
    this.bySeq = new Map();
    this.next = null;
    this.selectedSeq = null;
    this.results.innerHTML = "";
    return this._fetch({ q, limit: PAGE }, true);
  }

  more() {
    if (!this.next || this.loading) return;
    return this._fetch({ q: this.query, limit: PAGE, before: this.next.before }, false);
  }

  async _fetch(params, first) {
    const gen = ++this.gen;
    this.loading = true;
    this.error = "";
    this.render();
    let data;
    try {
      data = await this.api("/api/events", params);
    } catch (err) {
      if (gen !== this.gen) return;
      this.loading = false;
      this.error = err.message || String(err);
      this.render();
      if (first) this._markColumn();
      return;
    }
    if (gen !== this.gen) return;
    this.loading = false;
    this.indexing = !!data.indexing;
    const events = Array.isArray(data.events) ? data.events : [];
    const fresh = events.filter((ev) => ev && typeof ev.seq === "number" && !this.bySeq.has(ev.seq));
    for (const ev of fresh) this.bySeq.set(ev.seq, ev);
    this.events.push(...fresh);
    this.next = data.next && typeof data.next.before === "number" ? data.next : null;
    const now = Date.now();
    this.results.insertAdjacentHTML("beforeend", fresh.map((ev) => this.lineHtml(ev, now)).join(""));
    this.render();
  }

  /** Puts the text cursor where the server says the bad token is. */
  _markColumn() {
    const col = errorColumn(this.error);
    if (col === null || col < 1) return;
    const pos = Math.min(col - 1, this.input.value.length);
    try { this.input.setSelectionRange(pos, pos); } catch { /* not a text input */ }
  }

  lineHtml(ev, now) {
    const kind = this.kindOf({ ev });
    const t = parseTime(ev.timestamp || ev.received_at);
    const risk = ev.risk === "high" || ev.risk === "medium"
      ? `<span class="risk risk-${ev.risk}" title="${esc(ev.risk_reason || `${ev.risk} risk`)}">${ev.risk}</span>` : "";
    const agent = ev.agent_id ? `<span class="agent-tag" title="${esc(ev.agent_id)}">↳ ${esc(this.agentLabel(ev.agent_id))}</span>` : "";
    const sel = ev.seq === this.selectedSeq ? " selected" : "";
    return `<div class="line k-${kind}${sel}" data-testid="history-line" data-seq="${ev.seq}" data-event-type="${esc(ev.event_type || "")}" data-session-id="${esc(ev.session_id || "")}" tabindex="0">`
      + `<time datetime="${esc(ev.timestamp || "")}" title="${esc(ev.timestamp || "")}">${esc(fmtDateTime(t, now))}</time>`
      + `<span class="chip k-${kind}">${esc(ev.event_type || "?")}</span>`
      + `<span class="proj" title="${esc(ev.session_id || "")}">${esc(this.projectOf(ev))}</span>`
      + `<span class="summary">${agent}${esc(ev.summary || ev.event_type || "")}</span>${risk}</div>`;
  }

  render() {
    const errBox = $("#hsearch-error");
    errBox.hidden = !this.error;
    if (this.error) {
      $(".err-text", errBox).textContent = this.error;
      const col = errorColumn(this.error);
      const where = $(".err-where", errBox);
      where.hidden = col === null;
      if (col !== null) {
        const q = this.query || "";
        const at = Math.max(0, Math.min(col - 1, q.length));
        // The bad token runs from its column to the next space (at least one character).
        const m = /^\S*/.exec(q.slice(at));
        const end = at + Math.max(1, m ? m[0].length : 0);
        where.innerHTML = `<span class="q">${esc(q.slice(0, at))}</span><mark>${esc(q.slice(at, end) || " ")}</mark><span class="q">${esc(q.slice(end))}</span>`;
      }
    }
    $("#hsearch-indexing").hidden = !this.indexing;
    const n = this.events.length;
    const status = $("#hsearch-status");
    const empty = $("#hsearch-empty");
    if (this.loading) status.textContent = n ? `${fmtCount(n)} events shown · loading more…` : "Searching…";
    else if (this.error) status.textContent = "";
    else if (this.query === null) status.textContent = "";
    else status.textContent = `${fmtCount(n)}${this.next ? "+" : ""} event${n === 1 && !this.next ? "" : "s"}, newest first${this.query ? "" : " (the empty query matches every event)"}`;
    empty.hidden = this.loading || !!this.error || this.query === null || n > 0;
    empty.textContent = this.indexing ? "Nothing yet: the search index is still being built from the journal."
      : "No stored event matches this query.";
    const more = $("#hsearch-more");
    more.hidden = !this.next;
    more.disabled = this.loading;
  }
}
