// Pure helpers of the history side of the page (search, past sessions, analytics): no DOM,
// no network, so node can check them.

import { projectOf, sessionUsage, formatUsdPrecise, formatCount } from "./model.js";

/** The ranges the analytics view and the past-session list offer; `id` is what the API takes. */
export const RANGES = [
  { id: "1h", label: "Last hour", ms: 3600e3 },
  { id: "24h", label: "Last 24 hours", ms: 86400e3 },
  { id: "7d", label: "Last 7 days", ms: 7 * 86400e3 },
  { id: "30d", label: "Last 30 days", ms: 30 * 86400e3 },
];
export const SESSION_RANGES = [...RANGES, { id: "365d", label: "Last year", ms: 365 * 86400e3 }];

export function rangeById(id, list = RANGES) {
  return list.find((r) => r.id === id) || null;
}

/** An ISO time (UTC, milliseconds) of ms since the epoch, or null. */
export function isoOf(ms) {
  return typeof ms === "number" && Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

// What the index sums of a session's responses, named as the live sessions table names them.
const USAGE_FIELDS = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
  "unpriced_responses", "cost_usd", "cost_source"];

/**
 * A past session's summary (/api/history/session[s]) as the live sessions table's object, so
 * the feed, timeline and tools views treat it like any session. `ended_at` is its last event
 * either way: a call still open in a past session ends there, not at the page's "now".
 * `usage` (/api/history/session's): its split by model becomes the table's `models`, so the
 * detail panel shows a past session's usage as it does a live one's.
 */
export function sessionFromSummary(s, usage = null) {
  const models = usage && Array.isArray(usage.models) ? usage.models : [];
  return {
    session_id: s.session_id,
    cwd: s.cwd || null,
    project: projectOf(s.cwd) || String(s.session_id || "").slice(0, 8),
    model: s.model || null,
    started_at: isoOf(s.first_ts),
    last_event_at: isoOf(s.last_ts),
    ended_at: isoOf(s.last_ts),
    end_reason: s.end_reason ?? null,
    event_count: Number(s.events) || 0,
    tool_count: Number(s.tool_calls) || 0,
    failure_count: Number(s.failures) || 0,
    pending: [],
    agents: [],
    history: true,
    ...Object.fromEntries(USAGE_FIELDS.map((k) => [k, s[k] ?? null])),
    models: Object.fromEntries(models.filter((m) => m && m.model).map((m) => [m.model, m])),
  };
}

/** The column a query error names ("... at column 11", "... (column 1)"), or null. */
export function errorColumn(message) {
  const m = /\bcolumn (\d+)\b/.exec(String(message || ""));
  return m ? Number(m[1]) : null;
}

const two = (n) => String(n).padStart(2, "0");

/** "10:04:05" today, "Nov 21 10:04:05" another day, with ".123" when asked. */
export function fmtDateTime(t, now, withMs = false) {
  if (!Number.isFinite(t)) return "";
  const d = new Date(t);
  let s = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  if (withMs) s += `.${String(d.getMilliseconds()).padStart(3, "0")}`;
  if (d.toDateString() === new Date(now).toDateString()) return s;
  return `${fmtDay(t, now)} ${s}`;
}

/** "Nov 21", with the year when it is not this year's. */
export function fmtDay(t, now = Date.now()) {
  const d = new Date(t);
  const opts = { month: "short", day: "numeric" };
  if (d.getFullYear() !== new Date(now).getFullYear()) opts.year = "numeric";
  return d.toLocaleDateString("en-US", opts);
}

/** A query value quoted when it has to be (docs/query.md: spaces, parentheses, quotes). */
export function quoteValue(value) {
  const v = String(value);
  return /^[^\s()"]+$/.test(v) ? v : `"${v.replace(/"/g, '""')}"`;
}

/** Thousands separated the same way whatever the browser's language. */
export function fmtCount(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—";
}

/**
 * A past session's row state: ended (a SessionEnd is stored), `badge` ("ended", "live": the
 * daemon follows it and it has not ended, "no end") and the health class the row shows.
 * liveSession: the live sessions table's object of the same id, or undefined.
 */
export function pastState(summary, liveSession) {
  const ended = summary.end_reason !== null && summary.end_reason !== undefined;
  const badge = ended ? "ended" : liveSession && !liveSession.ended_at ? "live" : "no end";
  const health = ended ? "ended" : badge === "live" ? "active" : "stale";
  return { ended, badge, health };
}

/**
 * How far loading a past session got, for the history banner. loaded: events held; total: the
 * session's event count (null before its summary came); next: more to read; error: why it stopped.
 */
export function historyProgress({ loaded, total, loading, next, error }) {
  if (error) return error;
  if (loading) return total !== null ? `loading ${fmtCount(loaded)} of ${fmtCount(total)} events…` : "loading…";
  if (next) return `${fmtCount(loaded)} of ${fmtCount(total)} events loaded`;
  return `${fmtCount(loaded)} event${loaded === 1 ? "" : "s"}`;
}

/** The four token counts of a usage row (a session's, a model's, a prompt's...) added up. */
export function tokensOf(u) {
  const n = (x) => (typeof x === "number" && Number.isFinite(x) && x > 0 ? x : 0);
  return n(u.input_tokens) + n(u.output_tokens) + n(u.cache_read_tokens) + n(u.cache_write_tokens);
}

/**
 * A row of a usage split (by model, subagent or prompt: /api/history/session's usage,
 * /api/stats' cost_by_model and costliest_prompts) as its table cells say it: {responses,
 * tokens, tokensTitle, cost, costTitle, unpriced}. Its cost is always mpmd's price (Claude
 * Code reports per session, not per response): to the hundredth of a cent, "no price" when
 * none of its responses has one; `unpriced` ("+ 2 unpriced") when some have none.
 */
export function usageFigures(u) {
  const responses = Number(u.responses) || 0;
  const unpriced = Number(u.unpriced_responses) || 0;
  const tokens = tokensOf(u);
  const usage = sessionUsage(u);
  const priced = typeof u.cost_usd === "number" && Number.isFinite(u.cost_usd);
  const costTitle = priced
    ? `${formatUsdPrecise(u.cost_usd)}: mpmd's price of ${formatCount(responses - unpriced)} response${responses - unpriced === 1 ? "" : "s"}, from its price table`
    : "no response here is of a model mpmd has a price for";
  return {
    responses, tokens, tokensTitle: usage ? usage.tokensTitle : "",
    cost: priced ? formatUsdPrecise(u.cost_usd) : "no price", costTitle,
    unpriced: priced && unpriced ? `+ ${formatCount(unpriced)} unpriced` : "",
  };
}
