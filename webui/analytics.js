// The analytics view: /api/stats over a chosen range, as inline SVG charts and tables, and what
// the range's API responses cost (its cards, cost over time, by model and project, the
// costliest prompts and sessions).

import { escapeXml as esc } from "./timeline.js";
import {
  formatDuration, formatRate, projectOf, formatCount, formatTokens, formatUsd, formatUsdPrecise,
  sessionUsage,
} from "./model.js";
import {
  RANGES, rangeById, fmtDateTime, fmtDay, fmtCount, quoteValue, tokensOf, usageFigures,
} from "./history.js";
import { fillBuckets, timeChart, barChart, costChart } from "./charts.js";
import { usageCellsHtml } from "./detail.js";

const RANGE_KEY = "mpmd-range";
const MAX_TOOL_ROWS = 15;
const $ = (sel, root = document) => root.querySelector(sel);

const plural = (n, word) => `${formatCount(n)} ${word}${n === 1 ? "" : "s"}`;

/**
 * The part of a range's cost that is Claude Code's own figure: {usd, sessions}, known when
 * every session of the range is among the costliest listed (each says where its cost came
 * from); null otherwise.
 */
export function reportedShare(cost, sessions) {
  const list = Array.isArray(sessions) ? sessions : [];
  if (list.length < (Number(cost.sessions) || 0)) return null;
  const own = list.filter((s) => s.cost_source === "claude-code");
  return { usd: own.reduce((a, s) => a + (Number(s.cost_usd) || 0), 0), sessions: own.length };
}

/** The cost section's cards (/api/stats' `cost`; `sessions`: its costliest_sessions). */
export function costCardsHtml(cost, sessions) {
  const usd = Number(cost.cost_usd) || 0;
  const n = Number(cost.sessions) || 0;
  const responses = Number(cost.responses) || 0;
  const unpriced = Number(cost.unpriced_responses) || 0;
  const mpmd = typeof cost.mpmd_usd === "number" ? cost.mpmd_usd : null;
  const share = reportedShare(cost, sessions);
  let note = "Claude Code's own figure where it reported";
  if (share) {
    note = share.sessions
      ? `${formatUsd(share.usd)} of it Claude Code's own figure (${share.sessions} of ${plural(n, "session")})`
      : "all of it mpmd's price";
  }
  const u = sessionUsage(cost);
  const cards = [
    ["cost", "Cost", formatUsd(usd), note,
     `${formatUsdPrecise(usd)} over ${plural(n, "session")}: a session's own cost as Claude Code reported it when all its responses are in this range, else mpmd's price of those that are`],
    ["mpmd-price", "mpmd's price", mpmd === null ? "—" : formatUsd(mpmd),
     unpriced ? `+ ${plural(unpriced, "unpriced response")}` : "every response priced",
     `${mpmd === null ? "No response has a price" : formatUsdPrecise(mpmd)}: mpmd's price of the responses in this range, from its price table (what cost over time, by model and by prompt add up to)`
       + (unpriced ? `; ${plural(unpriced, "response")} of a model it has no price for are not in it` : "")],
    ["tokens", "Tokens", formatTokens(tokensOf(cost)), "input, output and cache", u ? u.tokensTitle : ""],
    ["responses", "Responses", formatCount(responses), `in ${plural(n, "session")}`,
     "API responses read from the sessions' transcripts"],
  ];
  return cards.map(([id, label, value, sub, title]) => `<div class="stat-card" data-testid="stat-${id}" title="${esc(title)}"><div class="stat-label">${esc(label)}</div><div class="stat-value">${esc(value)}</div><div class="stat-note">${esc(sub)}</div></div>`).join("");
}

/** cost_by_model as table rows: mpmd's price of each model's responses. */
export function costModelRowsHtml(models) {
  return models.map((m) => `<tr data-testid="cost-model-row" data-model="${esc(m.model || "")}"><td class="mono model">${esc(m.model || "")}</td>${usageCellsHtml(m)}</tr>`).join("");
}

/** cost_by_project as table rows; each project's Search runs a search of it over `range`. */
export function costProjectRowsHtml(projects, range) {
  return projects.map((p) => {
    const cost = Number(p.cost_usd) || 0;
    const title = `${formatUsdPrecise(cost)}: its sessions' cost (Claude Code's own figure for one it reported whose responses are all in this range, else mpmd's price)`
      + (typeof p.mpmd_usd === "number" ? `; mpmd's price of its responses: ${formatUsdPrecise(p.mpmd_usd)}` : "");
    const f = usageFigures(p);
    return `<tr data-testid="cost-project-row" data-cwd="${esc(p.cwd || "")}">
      <td class="project" title="${esc(p.cwd || "")}">${esc(p.project || projectOf(p.cwd) || p.cwd || "")}</td>
      <td class="num sessions">${formatCount(p.sessions)}</td>
      <td class="num tokens" title="${esc(f.tokensTitle)}">${formatCount(f.tokens)}</td>
      <td class="num cost" title="${esc(title)}">${esc(formatUsdPrecise(cost))}</td>
      <td class="act"><button type="button" class="btn ghost small-btn" data-search="${esc(`cwd:${quoteValue(p.cwd || "")} since:${range}`)}" title="Search this project's events">Search</button></td></tr>`;
  }).join("");
}

/** A session's name in a table: its project (when known) and the first 8 of its id. */
function sessionCell(id, project) {
  return `<td class="session">${project ? `${esc(project)} ` : ""}<span class="mono muted">${esc(String(id || "").slice(0, 8))}</span></td>`;
}

/**
 * costliest_prompts as rows that open their session: the prompt's text (or that it is not
 * indexed), its session (named by `projects`, session id -> project, where known), figures.
 */
export function costliestPromptRowsHtml(prompts, projects = new Map()) {
  return prompts.map((p) => {
    const text = typeof p.prompt === "string" && p.prompt ? p.prompt : "";
    return `<tr class="open-row" data-testid="costliest-prompt" data-open-session="${esc(p.session_id || "")}" data-prompt-id="${esc(p.prompt_id || "")}" tabindex="0" title="Open this session">
      <td class="prompt${text ? "" : " muted"}" title="${esc(text || p.prompt_id || "")}">${esc(text || "(its text is not indexed)")}</td>
      ${sessionCell(p.session_id, projects.get(p.session_id))}${usageCellsHtml(p)}</tr>`;
  }).join("");
}

/**
 * costliest_sessions as rows that open the session: its cost as its row in the sessions list
 * says it (≈ when it is mpmd's price), the source in data-source.
 */
export function costliestSessionRowsHtml(sessions) {
  return sessions.map((s) => {
    const u = sessionUsage(s);
    const own = s.cost_source === "claude-code";
    const cost = Number(s.cost_usd) || 0;
    const title = own
      ? `${formatUsdPrecise(cost)}: Claude Code's own figure (with mpmd's price of any response since its last report)`
      : `${formatUsdPrecise(cost)}: mpmd's price of its responses in this range (Claude Code's own figure counts for a session it reported whose responses are all in the range)`;
    const prompt = typeof s.first_prompt === "string" ? s.first_prompt : "";
    return `<tr class="open-row" data-testid="costliest-session" data-open-session="${esc(s.session_id || "")}" tabindex="0" title="Open this session">
      <td class="project" title="${esc(s.cwd || "")}">${esc(s.project || projectOf(s.cwd) || "")}</td>
      <td class="prompt muted" title="${esc(prompt)}">${esc(prompt)}</td>
      <td class="mono muted session">${esc(String(s.session_id || "").slice(0, 8))}</td>
      <td class="num responses">${formatCount(s.responses)}</td>
      <td class="num tokens" title="${esc(u ? u.tokensTitle : "")}">${formatCount(tokensOf(s))}</td>
      <td class="num cost${own ? "" : " estimated"}" data-source="${own ? "claude-code" : "mpmd"}" title="${esc(title)}">${esc(u ? u.cost : "")}</td></tr>`;
  }).join("");
}

export class Analytics {
  /**
   * api: makeApi()'s get; onSearch(query): run a history search (a tool row's "search");
   * onOpenSession(sessionId): open a session as history (a costliest prompt or session).
   */
  constructor({ api, onSearch, onOpenSession }) {
    this.api = api;
    this.onSearch = onSearch || (() => {});
    this.onOpenSession = onOpenSession || (() => {});
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
      if (search) { this.onSearch(search.dataset.search); return; }
      const row = e.target.closest("[data-open-session]");
      if (row && row.dataset.openSession) this.onOpenSession(row.dataset.openSession);
    });
    this.root.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" && e.key !== " ") return;
      const row = e.target.closest("[data-open-session]");
      if (row && row.dataset.openSession) { e.preventDefault(); this.onOpenSession(row.dataset.openSession); }
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

    this.renderCost(d, { since, until, bucketMs, describe, width });
  }

  /** The cost section: its figures, or why there are none. */
  renderCost(d, { since, until, bucketMs, describe, width }) {
    const cost = d.cost && typeof d.cost === "object" ? d.cost : {};
    const responses = Number(cost.responses) || 0;
    const empty = $("#cost-empty");
    empty.hidden = responses > 0;
    empty.textContent = d.indexing
      ? "No API responses in this range yet: the search index is still being built from the journal."
      : "No API responses were read in this range: mpmd reads tokens and cost from the transcripts of the sessions it follows.";
    $("#cost-body").hidden = responses === 0;
    if (!responses) return;
    const list = (k) => (Array.isArray(d[k]) ? d[k] : []);
    const sessions = list("costliest_sessions");
    $("#cost-cards").innerHTML = costCardsHtml(cost, sessions);

    const priced = typeof cost.mpmd_usd === "number" && cost.mpmd_usd > 0;
    const buckets = fillBuckets(d.cost_over_time, since, until, bucketMs, ["responses", "tokens", "cost_usd"]);
    const svg = $("#chart-cost");
    draw(svg, costChart({ buckets, bucketMs, width: width(svg), describe, metric: priced ? "cost" : "tokens" }));
    $("#cost-time-title").textContent = priced ? "Cost over time" : "Tokens over time";
    $("#cost-time-note").textContent = priced
      ? "mpmd's price of the responses in each bucket"
      : "no response in this range has a price: their tokens";
    svg.setAttribute("aria-label", priced
      ? `Cost over time: ${formatUsdPrecise(cost.mpmd_usd)} (mpmd's price) in buckets of ${formatDuration(bucketMs)}`
      : `Tokens over time, in buckets of ${formatDuration(bucketMs)}`);

    $("#cost-model-rows").innerHTML = costModelRowsHtml(list("cost_by_model"));
    const projects = list("cost_by_project");
    $("#cost-project-rows").innerHTML = costProjectRowsHtml(projects, this.range);
    $("#cost-projects-empty").hidden = projects.length > 0;
    const prompts = list("costliest_prompts");
    const names = new Map(sessions.map((s) => [s.session_id, s.project || projectOf(s.cwd)]));
    $("#costliest-prompt-rows").innerHTML = costliestPromptRowsHtml(prompts, names);
    $("#costliest-prompts-empty").hidden = prompts.length > 0;
    $("#costliest-session-rows").innerHTML = costliestSessionRowsHtml(sessions);
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
