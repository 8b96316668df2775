// The session timeline: events as ticks on a time axis, tool calls as spans from PreToolUse
// to PostToolUse / PostToolUseFailure, one group of lanes per session and per subagent.
//
// layoutTimeline() and timelineMarkup() are pure (node can check them); Timeline is the DOM
// side: renders into an <svg>, zoom with the wheel and the buttons, drag to pan. TimelinePane
// is the Timeline tab around it: what it draws, its range line, buttons and keys.

import { fmtClock, formatDuration } from "./model.js";

const LABEL_W = 132;
const AXIS_H = 24;
const TICK_ROW = 18;
const SPAN_ROW = 13;
const GROUP_GAP = 8;
const MIN_WINDOW_MS = 20;
// Which kind of event a crowded tick column shows.
const KIND_RANK = { failed: 5, denied: 4, permission: 3, agent: 2, tool: 1 };

const STEPS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500,
  1e3, 2e3, 5e3, 10e3, 15e3, 30e3,
  60e3, 120e3, 300e3, 600e3, 900e3, 1800e3,
  3600e3, 7200e3, 10800e3, 21600e3, 43200e3, 86400e3,
];

export function escapeXml(s) {
  return String(s).replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function two(n) { return String(n).padStart(2, "0"); }

export function clockLabel(t, step) {
  const d = new Date(t);
  const hm = `${two(d.getHours())}:${two(d.getMinutes())}`;
  if (step >= 60e3) return hm;
  if (step >= 1e3) return `${hm}:${two(d.getSeconds())}`;
  return `${hm}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/** The full time range of what is shown, padded a little; null when there is nothing. */
export function extentOf(recs, spans) {
  let lo = Infinity, hi = -Infinity;
  for (const r of recs) {
    if (!Number.isFinite(r.t)) continue;
    if (r.t < lo) lo = r.t;
    if (r.t > hi) hi = r.t;
  }
  for (const s of spans) {
    if (s.start < lo) lo = s.start;
    if (s.end > hi) hi = s.end;
  }
  if (!Number.isFinite(lo)) return null;
  const pad = Math.max((hi - lo) * 0.02, 50);
  return { start: lo - pad, end: hi + pad };
}

/** The window after zooming by `factor` (<1 zooms in) around time `anchor`; null = fit all. */
export function zoomView(view, extent, factor, anchor) {
  if (!extent) return null;
  const cur = view || extent;
  const width = cur.end - cur.start;
  let next = Math.max(MIN_WINDOW_MS, width * factor);
  if (next >= extent.end - extent.start) return null;
  const a = anchor === undefined || !Number.isFinite(anchor) ? (cur.start + cur.end) / 2 : anchor;
  const ratio = width > 0 ? (a - cur.start) / width : 0.5;
  let start = a - ratio * next;
  return clampView({ start, end: start + next }, extent);
}

export function panView(view, extent, dt) {
  if (!view || !extent) return view;
  return clampView({ start: view.start + dt, end: view.end + dt }, extent);
}

function clampView(v, extent) {
  const w = v.end - v.start;
  let start = Math.max(extent.start, Math.min(v.start, extent.end - w));
  return { start, end: start + w };
}

function niceStep(windowMs, widthPx) {
  const target = windowMs / Math.max(1, widthPx / 110);
  for (const s of STEPS) if (s >= target) return s;
  return STEPS[STEPS.length - 1];
}

/** Packs spans into rows so none overlap on screen (gapMs apart); returns row per span. */
function pack(spans, gapMs) {
  const ends = [];
  return spans.map((s) => {
    let row = ends.findIndex((e) => e + gapMs <= s.start);
    if (row < 0) { row = ends.length; ends.push(s.end); } else ends[row] = s.end;
    return row;
  });
}

/**
 * Where everything goes. recs: filtered Recs; spans: from Store.spanList; labelOf(sessionId),
 * agentLabelOf(agentId): group names; kindOf(rec): tick color class.
 */
export function layoutTimeline({ recs, spans, view, now, width, labelOf, agentLabelOf, kindOf }) {
  const extent = extentOf(recs, spans);
  if (!extent || width <= LABEL_W + 40) return { empty: true, extent, height: 80, width };
  const win = view || extent;
  const plotW = width - LABEL_W - 12;
  const scale = plotW / Math.max(1, win.end - win.start);
  const x = (t) => LABEL_W + (t - win.start) * scale;
  const gapMs = 3 / scale;

  // Groups: per session (first seen order), main agent first then each subagent.
  const groups = new Map();
  const groupOf = (sid, aid) => {
    const key = `${sid}\u0000${aid || ""}`;
    let g = groups.get(key);
    if (!g) {
      g = { key, sessionId: sid, agentId: aid || null, ticks: new Map(), spans: [], first: Infinity };
      groups.set(key, g);
    }
    return g;
  };
  for (const r of recs) {
    const g = groupOf(r.ev.session_id, r.ev.agent_id);
    if (r.t < g.first) g.first = r.t;
    if (r.t < win.start || r.t > win.end) continue;
    // Dense stretches: one tick per 3-pixel column, the most telling kind shown, counted.
    const px = Math.round(x(r.t));
    const col = Math.floor(px / 3);
    const kind = kindOf(r);
    const prev = g.ticks.get(col);
    if (!prev) g.ticks.set(col, { px, kind, rec: r, n: 1 });
    else {
      prev.n++;
      if ((KIND_RANK[kind] || 0) >= (KIND_RANK[prev.kind] || 0)) {
        prev.kind = kind;
        prev.rec = r;
        prev.px = px;
      }
    }
  }
  for (const s of spans) {
    const g = groupOf(s.session_id, s.agent_id);
    if (s.start < g.first) g.first = s.start;
    if (s.end < win.start || s.start > win.end) continue;
    g.spans.push(s);
  }
  // Spans narrower than 3 px: one per 4-pixel column and outcome, counted, so a busy hour
  // stays a few hundred shapes.
  for (const g of groups.values()) {
    const kept = [];
    const narrow = new Map();
    for (const s of g.spans) {
      if ((s.end - s.start) * scale >= 3) { kept.push(s); continue; }
      const key = `${Math.floor(x(s.start) / 4)}:${s.open ? "open" : s.status}`;
      const prev = narrow.get(key);
      if (!prev) { narrow.set(key, s); kept.push(s); } else prev.more = (prev.more || 0) + 1;
    }
    g.spans = kept;
  }
  const sessionFirst = new Map();
  for (const g of groups.values()) {
    const f = sessionFirst.get(g.sessionId);
    if (f === undefined || g.first < f) sessionFirst.set(g.sessionId, g.first);
  }
  const ordered = [...groups.values()].sort((a, b) =>
    (sessionFirst.get(a.sessionId) - sessionFirst.get(b.sessionId))
    || String(a.sessionId).localeCompare(String(b.sessionId))
    || (a.agentId ? 1 : 0) - (b.agentId ? 1 : 0)
    || a.first - b.first);

  let y = AXIS_H + 6;
  const out = [];
  let lastSession = null;
  for (const g of ordered) {
    if (lastSession !== null && g.sessionId !== lastSession) y += GROUP_GAP;
    const rows = pack(g.spans, gapMs);
    const nRows = rows.length ? Math.max(...rows) + 1 : 0;
    const top = y;
    const height = TICK_ROW + nRows * SPAN_ROW + 4;
    out.push({
      sessionId: g.sessionId, agentId: g.agentId, top, height,
      label: g.agentId ? `↳ ${agentLabelOf(g.agentId)}` : labelOf(g.sessionId),
      newSession: g.sessionId !== lastSession,
      ticks: [...g.ticks.values()].map((t) => ({ ...t, y: top + 2 })),
      spans: g.spans.map((s, i) => {
        const x0 = Math.max(LABEL_W, x(s.start));
        const x1 = Math.min(width - 4, x(s.end));
        return { s, x: x0, w: Math.max(2, x1 - x0), y: top + TICK_ROW + rows[i] * SPAN_ROW };
      }),
    });
    lastSession = g.sessionId;
    y += height;
  }

  const step = niceStep(win.end - win.start, plotW);
  const axis = [];
  for (let t = Math.ceil(win.start / step) * step; t <= win.end; t += step) {
    const px = x(t);
    axis.push({ x: px, label: px < width - 70 ? clockLabel(t, step) : "" });
  }
  const nowX = now >= win.start && now <= win.end ? x(now) : null;
  return { empty: false, extent, view: win, zoomed: !!view, width, height: y + 8, groups: out,
           axis, nowX, scale, labelW: LABEL_W };
}

function fmtMs(ms) {
  if (!Number.isFinite(ms)) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10e3 ? 2 : 1)} s`;
}

function clock(t) {
  const d = new Date(t);
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/** The SVG's inner markup for a layout. */
export function timelineMarkup(L) {
  if (L.empty) {
    return `<text class="tl-empty" x="16" y="40">No events in view yet.</text>`;
  }
  const parts = [];
  L.items = []; // what each tick and span stands for, by data-i: the tooltip reads it
  parts.push(`<rect class="tl-bg" x="0" y="0" width="${L.width}" height="${L.height}"/>`);
  for (const a of L.axis) {
    parts.push(`<line class="tl-grid" x1="${a.x.toFixed(1)}" x2="${a.x.toFixed(1)}" y1="${AXIS_H - 4}" y2="${L.height}"/>`);
    if (a.label) parts.push(`<text class="tl-axis" x="${(a.x + 3).toFixed(1)}" y="${AXIS_H - 9}">${escapeXml(a.label)}</text>`);
  }
  parts.push(`<line class="tl-axisline" x1="${L.labelW}" x2="${L.width}" y1="${AXIS_H - 4}" y2="${AXIS_H - 4}"/>`);
  for (const g of L.groups) {
    if (g.newSession) {
      parts.push(`<line class="tl-sep" x1="0" x2="${L.width}" y1="${g.top - 3}" y2="${g.top - 3}"/>`);
    }
    const label = g.label.length > 20 ? g.label.slice(0, 19) + "…" : g.label;
    parts.push(`<text class="tl-label${g.agentId ? " agent" : ""}" x="8" y="${g.top + 12}">${escapeXml(label)}<title>${escapeXml(g.label)}</title></text>`);
    parts.push(`<line class="tl-lane" x1="${L.labelW}" x2="${L.width - 4}" y1="${g.top + 8}" y2="${g.top + 8}"/>`);
    for (const t of g.ticks) {
      L.items.push(t);
      parts.push(`<line class="tick k-${t.kind}" data-seq="${t.rec.seq}" data-i="${L.items.length - 1}" x1="${t.px}" x2="${t.px}" y1="${t.y}" y2="${t.y + 12}"/>`);
    }
    for (const sp of g.spans) {
      const s = sp.s;
      const cls = `span ${s.open ? "open" : s.status}`;
      const seq = (s.span.end || s.span.pre).seq;
      L.items.push(sp);
      parts.push(`<rect data-testid="span" class="${cls}" data-tool-use-id="${escapeXml(s.tool_use_id)}" data-seq="${seq}" data-i="${L.items.length - 1}" x="${sp.x.toFixed(1)}" y="${sp.y}" width="${sp.w.toFixed(1)}" height="${SPAN_ROW - 3}" rx="2"/>`);
    }
  }
  if (L.nowX !== null) {
    parts.push(`<line class="tl-now" x1="${L.nowX.toFixed(1)}" x2="${L.nowX.toFixed(1)}" y1="${AXIS_H - 4}" y2="${L.height}"/>`);
  }
  return parts.join("");
}

/** The tooltip text of a tick or a span of the last markup. */
export function describeItem(item) {
  if (!item) return "";
  if (item.rec) {
    const ev = item.rec.ev;
    const more = item.n > 1 ? `\n+${item.n - 1} more event${item.n === 2 ? "" : "s"} here` : "";
    return `${clock(item.rec.t)}  ${ev.event_type}\n${ev.summary || ""}${more}`;
  }
  const s = item.s;
  const dur = s.open ? "running" : fmtMs(s.duration);
  const more = s.more ? `\n+${s.more} more short call${s.more === 1 ? "" : "s"} here` : "";
  return `${clock(s.start)}  ${s.tool_name} · ${dur}${s.status === "failed" ? " · failed" : ""}\n${s.summary}${more}`;
}

/** DOM side: one <svg> in `container`, zoom/pan state, redraw on demand. */
export class Timeline {
  constructor(container, { onPick, onViewChange } = {}) {
    this.container = container;
    this.svg = container.querySelector("svg");
    this.view = null; // null: fit everything
    this.layout = null;
    this.onPick = onPick || (() => {});
    this.onViewChange = onViewChange || (() => {});
    this.svg.addEventListener("wheel", (e) => this._wheel(e), { passive: false });
    this.svg.addEventListener("click", (e) => {
      if (this._dragged) return;
      const el = e.target.closest("[data-seq]");
      if (el) this.onPick(Number(el.getAttribute("data-seq")));
    });
    this.svg.addEventListener("pointerdown", (e) => this._down(e));
    this.tip = container.querySelector(".tl-tip");
    this.svg.addEventListener("pointermove", (e) => this._hover(e));
    this.svg.addEventListener("pointerleave", () => { if (this.tip) this.tip.hidden = true; });
  }

  _hover(e) {
    if (!this.tip) return;
    const el = e.target.closest && e.target.closest("[data-i]");
    const item = el && this.layout && this.layout.items ? this.layout.items[Number(el.getAttribute("data-i"))] : null;
    if (!item || this._dragged) { this.tip.hidden = true; return; }
    this.tip.textContent = describeItem(item);
    this.tip.hidden = false;
    const box = this.container.getBoundingClientRect();
    const x = e.clientX - box.left + this.container.scrollLeft;
    const y = e.clientY - box.top + this.container.scrollTop;
    const w = this.tip.offsetWidth;
    const left = x + 14 + w > this.container.clientWidth + this.container.scrollLeft ? x - w - 10 : x + 14;
    this.tip.style.left = `${Math.max(4, left)}px`;
    this.tip.style.top = `${y + 16}px`;
  }

  draw({ recs, spans, now, labelOf, agentLabelOf, kindOf }) {
    const width = Math.max(320, this.container.clientWidth || 800);
    this.layout = layoutTimeline({ recs, spans, view: this.view, now, width, labelOf, agentLabelOf, kindOf });
    if (this.view && !this.layout.zoomed) this.view = null;
    this.svg.setAttribute("width", width);
    this.svg.setAttribute("height", this.layout.height);
    this.svg.setAttribute("viewBox", `0 0 ${width} ${this.layout.height}`);
    this.svg.innerHTML = timelineMarkup(this.layout);
    if (this.tip) this.tip.hidden = true;
  }

  timeAt(clientX) {
    const L = this.layout;
    if (!L || L.empty) return NaN;
    const rect = this.svg.getBoundingClientRect();
    return L.view.start + (clientX - rect.left - L.labelW) / L.scale;
  }

  zoom(factor, anchor) {
    if (!this.layout || !this.layout.extent) return;
    this.view = zoomView(this.view, this.layout.extent, factor, anchor);
    this.onViewChange();
  }

  reset() {
    this.view = null;
    this.onViewChange();
  }

  _wheel(e) {
    if (!this.layout || this.layout.empty) return;
    if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
      if (!this.view) return;
      e.preventDefault();
      const d = e.shiftKey ? e.deltaY : e.deltaX;
      this.view = panView(this.view, this.layout.extent, d / this.layout.scale);
      this.onViewChange();
      return;
    }
    e.preventDefault();
    const factor = Math.pow(1.0015, e.deltaY);
    this.zoom(factor, this.timeAt(e.clientX));
  }

  _down(e) {
    if (!this.view || e.button !== 0) return;
    const startX = e.clientX;
    const startView = this.view;
    this._dragged = false;
    const move = (ev) => {
      const dx = ev.clientX - startX;
      if (Math.abs(dx) > 3) this._dragged = true;
      if (!this._dragged || !this.layout) return;
      this.view = panView(startView, this.layout.extent, -dx / this.layout.scale);
      this.onViewChange();
    };
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      setTimeout(() => { this._dragged = false; }, 0);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  }
}

/** The Timeline tab: draws the events in view into a Timeline, with its range line and buttons. */
export class TimelinePane {
  /**
   * shown: what the event views show ({store, filters, history}). kindOf(rec): a tick's color
   * class. onPick(seq): a tick or span was clicked. onViewChange(): zoomed or panned.
   */
  constructor({ shown, kindOf, onPick, onViewChange }) {
    this.shown = shown;
    this.kindOf = kindOf;
    const container = document.querySelector("#timeline");
    this.timeline = new Timeline(container, { onPick, onViewChange });
    this.hovered = false; // the pointer is over it: the clock does not redraw it under the pointer
    container.addEventListener("pointerenter", () => { this.hovered = true; });
    container.addEventListener("pointerleave", () => { this.hovered = false; });
    const button = (id) => document.querySelector(`[data-testid="${id}"]`);
    button("zoom-in").addEventListener("click", () => this.zoomIn());
    button("zoom-out").addEventListener("click", () => this.zoomOut());
    button("zoom-reset").addEventListener("click", () => this.fit());
  }

  zoomIn() { this.timeline.zoom(1 / 1.6); }
  zoomOut() { this.timeline.zoom(1.6); }
  fit() { this.timeline.reset(); }

  /** Another set of events is shown: fit them all, without telling anyone. */
  forgetView() { this.timeline.view = null; }

  render() {
    const now = Date.now();
    const { store, filters } = this.shown;
    const recs = store.filtered(filters);
    const spans = store.spanList(filters, now);
    this.timeline.draw({
      recs, spans, now, kindOf: this.kindOf,
      labelOf: (sid) => store.projectOf(sid),
      agentLabelOf: (aid) => store.agentTypes.get(aid) || aid,
    });
    const L = this.timeline.layout;
    document.querySelector("#tl-range").textContent = L && !L.empty
      ? `${fmtClock(L.view.start)} – ${fmtClock(L.view.end)} · ${formatDuration(L.view.end - L.view.start)}${L.zoomed ? " (zoomed)" : ""} · ${spans.length} tool call${spans.length === 1 ? "" : "s"}`
      : "";
  }

  /** With the clock, the drawing changes only where "now" is drawn or spans are still open. */
  moves() {
    const L = this.timeline.layout;
    if (!L || L.empty || this.shown.history) return false;
    if (L.nowX !== null) return true;
    for (const span of this.shown.store.spans.values()) if (!span.end) return true;
    return false;
  }
}
