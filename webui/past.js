// Past sessions: the sidebar's "Past" list (sessions of a time range, from the search index),
// and history mode, one past session loaded into the Activity, Timeline and Tools views, with
// what its responses cost by model, subagent and prompt.

import { Store, formatDuration, projectOf, formatCount } from "./model.js";
import { escapeXml as esc } from "./timeline.js";
import {
  SESSION_RANGES, rangeById, sessionFromSummary, fmtDateTime, pastState, historyProgress,
} from "./history.js";
import { usageHtml } from "./sessions.js";
import { usageDetailHtml, usageSplitsHtml } from "./detail.js";

const SCOPE_RANGE_KEY = "mpmd-session-range";
const PAST_LIMIT = 200; // sessions listed at once
const HISTORY_PAGE = 1000; // events per request when loading a past session
const HISTORY_MAX = 20000; // events of a past session held at once (Store's cap)
const $ = (sel, root = document) => root.querySelector(sel);

/**
 * A past session's usage for the panel under the History bar: {total, body}, its cost and
 * tokens in a line, then tokens by kind and a table per model (as the detail panel shows a
 * live session's), per subagent and per prompt; null when none of its responses was read.
 * session: sessionFromSummary() of it with its usage; usage: /api/history/session's;
 * agentLabel(agentId): a subagent's type.
 */
export function pastUsageHtml(session, usage, agentLabel) {
  const base = usageDetailHtml(session);
  if (!base) return null;
  const list = (k) => (usage && Array.isArray(usage[k]) ? usage[k].filter((u) => u && typeof u === "object") : []);
  return { total: base.total, body: base.body + usageSplitsHtml(list("agents"), list("prompts"), agentLabel) };
}

/** The sidebar's two lists: "Live" (the Sessions view) and "Past" (this one). */
export class PastList {
  /**
   * api(): the page's API, null without a token. live: the live Store. openId(): the past
   * session shown, or null. onOpen(sessionId): a row was chosen. onLive(): the live list is
   * shown again.
   */
  constructor({ api, live, openId, onOpen, onLive }) {
    Object.assign(this, { api, live, openId, onLive });
    this.scope = "live";
    this.range = "7d";
    this.sessions = null; // null: not loaded (or failed)
    this.loading = false;
    this.error = "";
    this.indexing = false;
    this.gen = 0; // of the last load: an older answer is dropped
    this.box = $("#past-list");
    this.box.addEventListener("click", (e) => {
      const row = e.target.closest(".srow");
      if (row) onOpen(row.dataset.sessionId);
    });
    this.box.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" && e.key !== " ") return;
      const row = e.target.closest(".srow");
      if (row) { e.preventDefault(); onOpen(row.dataset.sessionId); }
    });
    $("#scope-live").addEventListener("click", () => this.setScope("live"));
    $("#scope-past").addEventListener("click", () => this.setScope("past"));
    const range = $("#past-range");
    range.innerHTML = SESSION_RANGES.map((r) => `<option value="${r.id}">${esc(r.label)}</option>`).join("");
    try {
      const saved = localStorage.getItem(SCOPE_RANGE_KEY);
      if (rangeById(saved, SESSION_RANGES)) this.range = saved;
    } catch { /* ignore */ }
    range.value = this.range;
    range.addEventListener("change", (e) => {
      this.range = e.target.value;
      try { localStorage.setItem(SCOPE_RANGE_KEY, this.range); } catch { /* ignore */ }
      this.load();
    });
    $("#past-refresh").addEventListener("click", () => this.load());
  }

  setScope(scope) {
    this.scope = scope;
    $("#scope-live").setAttribute("aria-pressed", String(scope === "live"));
    $("#scope-past").setAttribute("aria-pressed", String(scope === "past"));
    $("#session-list").hidden = scope !== "live";
    this.box.hidden = scope !== "past";
    $("#past-range").hidden = scope !== "past";
    $("#past-refresh").hidden = scope !== "past";
    if (scope === "past") this.load();
    else this.onLive();
  }

  async load() {
    const gen = ++this.gen;
    this.loading = true;
    this.error = "";
    this.render();
    try {
      const data = await this.api()("/api/history/sessions", { since: this.range, limit: PAST_LIMIT });
      if (gen !== this.gen) return;
      this.sessions = Array.isArray(data.sessions) ? data.sessions : [];
      this.indexing = !!data.indexing;
    } catch (err) {
      if (gen !== this.gen) return;
      this.sessions = null;
      this.error = err.message || String(err);
    }
    this.loading = false;
    this.render();
  }

  _row(s, now) {
    const first = Number(s.first_ts), last = Number(s.last_ts);
    const { ended, badge, health } = pastState(s, this.live.sessions.get(s.session_id));
    const project = projectOf(s.cwd) || String(s.session_id).slice(0, 8);
    const selected = this.openId() === s.session_id;
    const prompt = typeof s.first_prompt === "string" ? s.first_prompt : "";
    const usage = usageHtml(s); // the summary has the live table's usage fields
    return `<div class="srow past h-${health}${selected ? " selected" : ""}" data-testid="past-session-row" data-session-id="${esc(s.session_id)}" data-ended="${ended}" role="option" aria-selected="${selected}" tabindex="0" title="${esc(`${s.cwd || ""}\n${s.session_id}`)}">
      <div class="l1"><span class="hdot" aria-hidden="true"></span><span class="project">${esc(project)}</span><span class="hbadge" title="${esc(ended ? `ended: ${s.end_reason}` : "no SessionEnd stored")}">${badge}</span><span class="grow"></span><span class="start" title="first event ${esc(new Date(first).toISOString())}">${esc(fmtDateTime(first, now).replace(/:\d\d$/, ""))}</span><span class="duration" title="first to last event">${formatDuration(last - first)}</span></div>
      <div class="l2"><span class="model">${esc(s.model || "—")}</span><span class="grow"></span><span class="stat"><span class="event-count">${Number(s.events) || 0}</span> ev</span><span class="stat"><span class="tool-count">${Number(s.tool_calls) || 0}</span> tools</span>${s.failures ? `<span class="stat bad"><span class="failure-count">${Number(s.failures)}</span> failed</span>` : ""}</div>
      ${prompt || usage ? `<div class="foot">${prompt ? `<div class="l3 muted" title="${esc(prompt)}">${esc(prompt)}</div>` : ""}${usage}</div>` : ""}</div>`;
  }

  render() {
    const now = Date.now();
    let html = "";
    if (this.indexing) html += `<div class="notice small" data-testid="past-indexing">The search index is still catching up with the journal: sessions may be missing.</div>`;
    if (this.error) html += `<div class="query-error small" role="alert" data-testid="past-error">${esc(this.error)}</div>`;
    else if (this.loading && !this.sessions) html += `<div class="empty small">Loading…</div>`;
    else if (this.sessions && !this.sessions.length) {
      html += `<div class="empty small" data-testid="past-empty">No sessions in this range (${esc(rangeById(this.range, SESSION_RANGES).label.toLowerCase())}).</div>`;
    }
    if (this.sessions) html += this.sessions.map((s) => this._row(s, now)).join("");
    if (this.sessions && this.sessions.length >= PAST_LIMIT) html += `<div class="empty small">The 200 most recently active; choose a shorter range for others.</div>`;
    this.box.innerHTML = html;
    this.box.setAttribute("aria-busy", String(this.loading));
    if (this.scope === "past") $("#session-total").textContent = this.sessions ? String(this.sessions.length) : "";
  }
}

/**
 * History mode: one past session's whole timeline, read from the index oldest first (paged
 * with next.after), shown in the Activity, Timeline and Tools views instead of the live events.
 * The live events keep arriving meanwhile; "Back to live" shows them again.
 */
export class PastSession {
  /**
   * api(): the page's API. live: the live Store (its namespaces name the kinds). showsEvents():
   * an event tab is up (the banner shows there). invalidate(...views): redraw those.
   * onLoaded(): loading stopped (the Past list marks the session). onBack(): "Back to live".
   */
  constructor({ api, live, showsEvents, invalidate, onLoaded, onBack }) {
    Object.assign(this, { api, live, showsEvents, invalidate, onLoaded });
    // The session shown: {id, store, filters, summary, usage, next, loading, error}; null when
    // live.
    this.open = null;
    $("#back-to-live").addEventListener("click", onBack);
    $("#history-session-more").addEventListener("click", () => {
      if (this.open && !this.open.loading) this.load(this.open);
    });
  }

  /** Holds session `id` (nothing loaded yet); load() reads it. */
  begin(id) {
    const store = new Store({ maxEvents: HISTORY_MAX });
    store.namespaces = this.live.namespaces;
    this.open = { id, store, summary: null, usage: null, next: null, loading: true, error: "",
                  filters: { session: id, type: "", tool: "", text: "" } };
    return this.open;
  }

  /** Back to live; false when no past session was shown. */
  end() {
    if (!this.open) return false;
    this.open = null;
    return true;
  }

  /** Reads pages of `h` until HISTORY_MAX events more are held, or the session's end. */
  async load(h) {
    h.loading = true;
    h.error = "";
    this.renderBanner();
    this.invalidate("feed");
    let read = 0;
    try {
      for (;;) {
        const data = await this.api()("/api/history/session", { id: h.id, after: h.next ? h.next.after : null, limit: HISTORY_PAGE });
        if (this.open !== h) return; // left, or another session opened
        if (data.session && !h.summary) {
          h.summary = data.session;
          h.usage = data.usage || null;
          h.id = data.session.session_id || h.id;
          h.filters.session = h.id;
          h.store.applySessions([sessionFromSummary(data.session, h.usage)]);
        }
        const events = Array.isArray(data.events) ? data.events : [];
        read += events.length;
        h.store.applyEvents(events);
        h.next = data.next && typeof data.next.after === "number" ? data.next : null;
        this.invalidate("feed", "options", "timeline", "tools", "header");
        this.renderBanner();
        // Held at once: at most HISTORY_MAX events; "Load more" reads on (the oldest go).
        if (!h.next || read >= HISTORY_MAX) break;
      }
    } catch (err) {
      if (this.open !== h) return;
      h.error = err.message || String(err);
    }
    h.loading = false;
    this.renderBanner();
    this.invalidate("feed", "timeline", "tools");
    this.onLoaded();
  }

  renderBanner() {
    const h = this.open;
    const banner = $("#history-banner");
    banner.hidden = !h || !this.showsEvents();
    this.renderUsage();
    if (!h) return;
    const s = h.summary;
    const now = Date.now();
    let title;
    if (s) {
      const project = projectOf(s.cwd) || String(s.session_id).slice(0, 8);
      const first = Number(s.first_ts), last = Number(s.last_ts);
      const end = s.end_reason !== null && s.end_reason !== undefined ? `ended (${s.end_reason})` : "no end stored";
      title = `<b>${esc(project)}</b> <span class="mono muted">${esc(String(s.session_id).slice(0, 8))}</span> · ${esc(fmtDateTime(first, now))} – ${esc(fmtDateTime(last, now))} · ${formatDuration(last - first)} · ${esc(s.model || "—")} · ${esc(end)}`;
    } else {
      title = `<span class="mono">${esc(String(h.id).slice(0, 8))}</span>`;
    }
    $("#history-title").innerHTML = title;
    const el = $("#history-progress");
    el.textContent = historyProgress({ loaded: h.store.size, total: s ? Number(s.events) || 0 : null,
                                       loading: h.loading, next: h.next, error: h.error });
    el.classList.toggle("bad", !!h.error);
    $("#history-session-more").hidden = h.loading || !h.next;
  }

  /** The past session's usage under the bar, while the bar shows (its open state kept). */
  renderUsage() {
    const h = this.open;
    const panel = $("#history-usage");
    const session = h && h.summary ? h.store.sessions.get(h.id) : null;
    const html = session && !$("#history-banner").hidden
      ? pastUsageHtml(session, h.usage, (aid) => h.store.agentTypes.get(aid) || "subagent") : null;
    panel.hidden = !html;
    if (!html) return;
    $("#history-usage-total").innerHTML = html.total;
    $("#history-usage-body").innerHTML = html.body;
  }
}
