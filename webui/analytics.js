// The analytics view: /api/stats over a chosen range, as inline SVG charts and tables.

import { escapeXml as esc } from "./timeline.js";
import { formatDuration, formatRate, projectOf } from "./model.js";
import { RANGES, rangeById, fmtDateTime, fmtDay, fmtCount, quoteValue } from "./history.js";
import { fillBuckets, timeChart, barChart } from "./charts.js";

const RANGE_KEY = "mpmd-range";
const MAX_TOOL_ROWS = 15;
const $ = (sel, root = document) => root.querySelector(sel);

export class Analytics {
  /** api: makeApi()'s get; onSearch(query): run a history search (a tool row's "search"). */
  constructor({ api, onSearch }) {
    this.api = api;
    this.onSearch = onSearch || (() => {});
    this.range = "24h";
    try {
      const saved = localStorage.getItem(RANGE_KEY);
      if (rangeById(saved)) this.range = saved;
    } catch { /* private mode */ }
    this.data = null;
    this.error = "";
    this.loading = false;
    this.gen = 0;
    this.root = $("#pane-analytics");
    this.root.querySelector(".range-seg").innerHTML = RANGES.map((r) => `<button type="button" class="seg-btn" data-range="${r.id}" data-testid="range-${r.id}" aria-pressed="false" title="${esc(r.label)}">${esc(r.id)}</button>`).join("");
    this.root.addEventListener("click", (e) => {
      const btn = e.target.closest("button[data-range]");
      if (btn) { this.setRange(btn.dataset.range); return; }
      const search = e.target.closest("[data-search]");
      if (search) this.onSearch(search.dataset.search);
    });
    $("#analytics-refresh").addEventListener("click", () => this.load());
    this._pressRange();
  }

  setRange(id) {
    if (!rangeById(id)) return;
    this.range = id;
    try { localStorage.setItem(RANGE_KEY, id); } catch { /* ignore */ }
    this._pressRange();
    this.load();
  }

  _pressRange() {
    for (const b of this.root.querySelectorAll("[data-range]")) {
      b.setAttribute("aria-pressed", String(b.dataset.range === this.range));
    }
  }

  async load() {
    const gen = ++this.gen;
    this.loading = true;
    this.root.querySelector(".analytics").setAttribute("aria-busy", "true");
    $("#analytics-state").textContent = "Loading…";
    try {
      const data = await this.api("/api/stats", { since: this.range });
      if (gen !== this.gen) return;
      this.data = data;
      this.error = "";
    } catch (err) {
      if (gen !== this.gen) return;
      this.data = null;
      this.error = err.message || String(err);
    }
    this.loading = false;
    this.root.querySelector(".analytics").setAttribute("aria-busy", "false");
    this.root.dataset.loadedRange = this.range; // what the shown numbers are for
    this.render();
  }

  render() {
    const d = this.data;
    const state = $("#analytics-state");
    const errEl = $("#analytics-error");
    const empty = $("#analytics-empty");
    const body = $("#analytics-body");
    const notice = $("#analytics-indexing");
    errEl.hidden = !this.error;
    errEl.textContent = this.error;
    notice.hidden = !(d && d.indexing);
    if (!d) {
      state.textContent = "";
      empty.hidden = true;
      body.hidden = true;
      return;
    }
    const now = Date.now();
    const since = Number(d.since), until = Number(d.until);
    state.textContent = Number.isFinite(since) && Number.isFinite(until)
      ? `${fmtDateTime(since, now)} – ${fmtDateTime(Math.min(until, now), now)}` : "";
    const total = Number(d.events) || 0;
    empty.hidden = total > 0;
    if (!empty.hidden) {
      empty.textContent = d.indexing
        ? "No events in this range yet: the search index is still being built from the journal."
        : `No events in this range (${rangeById(this.range).label.toLowerCase()}).`;
    }
    body.hidden = total === 0;
    if (!total) return;

    const tools = Array.isArray(d.tools) ? d.tools : [];
    const calls = tools.reduce((a, t) => a + (Number(t.calls) || 0), 0);
    const failures = tools.reduce((a, t) => a + (Number(t.failures) || 0), 0);
    const buckets = fillBuckets(d.over_time, since, until, Number(d.bucket_ms));
    const allFailures = buckets.reduce((a, b) => a + b.failures, 0);
    const cards = [
      ["events", "Events", fmtCount(total), "", "Events stored in this range"],
      ["sessions", "Sessions", fmtCount(Number(d.sessions) || 0), "", "Sessions with events in this range"],
      ["tool-calls", "Tool calls", fmtCount(calls), "", "Finished tool calls (PostToolUse and PostToolUseFailure)"],
      ["failures", "Failures", fmtCount(allFailures), allFailures ? "bad" : "", "Failed tool calls and failed turns (PostToolUseFailure, StopFailure)"],
      ["success", "Tool success", calls ? formatRate((calls - failures) / calls) : "—", "", "Tool calls that succeeded"],
    ];
    $("#analytics-cards").innerHTML = cards.map(([id, label, value, cls, title]) => `<div class="stat-card${cls ? ` ${cls}` : ""}" data-testid="stat-${id}" title="${esc(title)}"><div class="stat-label">${esc(label)}</div><div class="stat-value">${esc(value)}</div></div>`).join("");

    const width = (el) => Math.max(300, el.parentElement.clientWidth - 2);
    const bucketMs = Number(d.bucket_ms);
    const describe = (t, t2) => bucketMs >= 86400e3
      ? fmtDay(t, now)
      : `${fmtDateTime(t, now)} – ${fmtDateTime(t2, now).split(" ").pop()}`;
    const timeSvg = $("#chart-time");
    draw(timeSvg, timeChart({ buckets, bucketMs, width: width(timeSvg), describe }));
    timeSvg.setAttribute("aria-label", `Events over time: ${fmtCount(total)} events, ${fmtCount(allFailures)} failures, in buckets of ${formatDuration(bucketMs)}`);

    const shown = tools.slice(0, MAX_TOOL_ROWS);
    const more = tools.length > shown.length ? ` (the ${shown.length} most used of ${tools.length})` : "";
    const usage = $("#chart-tools");
    draw(usage, barChart({
      width: width(usage),
      rows: shown.map((t) => ({
        key: t.tool, label: t.tool,
        segments: [
          { cls: "ok", value: t.calls - t.failures, title: `${t.tool}: ${t.calls - t.failures} succeeded` },
          { cls: "failed", value: t.failures, title: `${t.tool}: ${t.failures} failed` },
        ],
        text: `${fmtCount(t.calls)} call${t.calls === 1 ? "" : "s"}`,
      })),
    }));
    usage.setAttribute("aria-label", `Calls per tool${more}`);
    $("#tools-more").textContent = more;
    $("#chart-tools-empty").hidden = tools.length > 0;

    const rate = $("#chart-success");
    draw(rate, barChart({
      width: width(rate), max: 100, track: true,
      rows: shown.map((t) => ({
        key: t.tool, label: t.tool,
        segments: [{ cls: rateClass(t.success_rate), value: Number(t.success_rate) * 100,
                     title: `${t.tool}: ${formatRate(t.success_rate)} of ${t.calls} succeeded` }],
        text: `${formatRate(t.success_rate)} of ${fmtCount(t.calls)}`,
      })),
    }));
    $("#chart-success-empty").hidden = tools.length > 0;

    const failing = tools.filter((t) => t.failures > 0).sort((a, b) => b.failures - a.failures
      || a.tool.localeCompare(b.tool)).slice(0, MAX_TOOL_ROWS);
    const failSvg = $("#chart-failures");
    draw(failSvg, barChart({
      width: width(failSvg),
      rows: failing.map((t) => ({
        key: t.tool, label: t.tool,
        segments: [{ cls: "failed", value: t.failures, title: `${t.tool}: ${t.failures} failed` }],
        text: `${fmtCount(t.failures)} of ${fmtCount(t.calls)}`,
      })),
    }));
    $("#chart-failures-empty").hidden = failing.length > 0;

    const range = `since:${this.range}`;
    $("#analytics-tool-rows").innerHTML = tools.map((t) => `<tr data-testid="analytics-tool-row" data-tool="${esc(t.tool)}">
      <td class="mono">${esc(t.tool)}</td><td class="num calls">${fmtCount(t.calls)}</td>
      <td class="num failures${t.failures ? " bad" : ""}">${fmtCount(t.failures)}</td>
      <td class="num success-rate">${formatRate(t.success_rate)}</td>
      <td class="num median">${formatDuration(t.median_ms === null || t.median_ms === undefined ? NaN : Number(t.median_ms))}</td>
      <td class="act"><button type="button" class="btn ghost small-btn" data-search="${esc(`tool:${quoteValue(t.tool)} ${range}`)}" title="Search these calls">Search</button></td></tr>`).join("");
    $("#analytics-tools-empty").hidden = tools.length > 0;

    const patterns = Array.isArray(d.error_patterns) ? d.error_patterns : [];
    $("#error-pattern-rows").innerHTML = patterns.map((p) => `<tr data-testid="error-pattern-row">
      <td class="mono source">${esc(p.source || "")}</td><td class="mono pattern">${esc(p.pattern || "(no error text)")}</td><td class="num count">${fmtCount(p.count)}</td></tr>`).join("");
    $("#error-patterns-empty").hidden = patterns.length > 0;

    const projects = Array.isArray(d.projects) ? d.projects : [];
    $("#project-rows").innerHTML = projects.map((p) => `<tr data-testid="project-row" data-cwd="${esc(p.cwd || "")}">
      <td class="project">${esc(projectOf(p.cwd) || p.cwd || "")}</td><td class="mono muted cwd">${esc(p.cwd || "")}</td>
      <td class="num sessions">${fmtCount(p.sessions)}</td><td class="num events">${fmtCount(p.events)}</td>
      <td class="act"><button type="button" class="btn ghost small-btn" data-search="${esc(`cwd:${quoteValue(p.cwd || "")} ${range}`)}" title="Search this project's events">Search</button></td></tr>`).join("");
    $("#projects-empty").hidden = projects.length > 0;
  }
}

function rateClass(rate) {
  const r = Number(rate);
  if (!Number.isFinite(r) || r >= 0.95) return "ok";
  return r >= 0.8 ? "mid" : "failed";
}

function draw(svg, { svg: markup, height }) {
  const width = Math.max(300, svg.parentElement.clientWidth - 2);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${Math.max(1, height)}`);
  svg.innerHTML = markup;
}
