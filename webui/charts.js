// Inline SVG charts of the analytics view, drawn as markup strings (pure: node can check them).
//
//   fillBuckets()   the server's over_time (or cost_over_time) points, empty buckets put back
//   timeChart()     events over time as bars, failures overlaid in red
//   costChart()     mpmd's price of the responses over time (tokens when none has a price)
//   barChart()      horizontal bars, one row per item, stacked segments
//   toolChart()     the Tools view's calls per tool (succeeded · failed · running)

import { escapeXml as esc } from "./timeline.js";
import { fmtDay } from "./history.js";
import { formatDuration, formatRate, formatTokens, formatUsdPrecise } from "./model.js";

const MINUTE = 60e3, HOUR = 3600e3, DAY = 86400e3;
const TIME_STEPS = [MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR,
  3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY];

/**
 * Every bucket of `width` ms from the one holding `since` to the one holding `until - 1`,
 * with the server's figures (`keys` of its points) where it has some (it leaves empty
 * buckets out); a figure it lacks or gives as null is 0.
 */
export function fillBuckets(points, since, until, width, keys = ["events", "failures"]) {
  const list = Array.isArray(points) ? points : [];
  if (!(width > 0) || !Number.isFinite(since) || !Number.isFinite(until) || until <= since) {
    return [...list].sort((a, b) => a.t - b.t);
  }
  const first = Math.floor(since / width) * width;
  const last = Math.floor((until - 1) / width) * width;
  if ((last - first) / width > 5000) return [...list].sort((a, b) => a.t - b.t);
  const by = new Map(list.map((p) => [p.t, p]));
  const out = [];
  for (let t = first; t <= last; t += width) {
    const p = by.get(t);
    const b = { t };
    for (const k of keys) b[k] = p ? Number(p[k]) || 0 : 0;
    out.push(b);
  }
  return out;
}

/**
 * A round axis top at or above `v`, and the step of its grid lines (at most 4 of them). Steps
 * are whole from 1 up (a count's axis never reads 0.5), fractions only for a top below 1 (an
 * amount in dollars).
 */
export function niceScale(v) {
  if (!(v > 0)) return { max: 1, step: 1 };
  // Steps of v, rounded up past the float error of a fraction (0.08 / 0.02 is 4.000000000000001).
  const steps = (s) => Math.ceil(v / s - 1e-9);
  let step = 1;
  for (let p = v >= 1 ? 1 : 1 / 10 ** -Math.floor(Math.log10(v)); ; p *= 10) {
    const found = [1, 2, 5].map((m) => m * p).find((s) => steps(s) <= 4);
    if (found) { step = found; break; }
  }
  return { max: steps(step) * step, step };
}

function two(n) { return String(n).padStart(2, "0"); }

function timeLabel(t, step) {
  const d = new Date(t);
  if (step >= DAY || (d.getHours() === 0 && d.getMinutes() === 0)) return fmtDay(t);
  return `${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** Axis times between start and end, `step` apart, on round local times. */
function timeTicks(start, end, plotW) {
  const minGap = 84; // px between labels
  const span = Math.max(1, end - start);
  const step = TIME_STEPS.find((s) => (s / span) * plotW >= minGap) || TIME_STEPS[TIME_STEPS.length - 1];
  const ticks = [];
  if (step >= DAY) {
    const d = new Date(start);
    d.setHours(0, 0, 0, 0);
    const days = Math.round(step / DAY);
    for (let t = d.getTime(); t <= end; ) {
      if (t >= start) ticks.push(t);
      d.setDate(d.getDate() + days);
      t = d.getTime();
    }
  } else {
    const offset = new Date(start).getTimezoneOffset() * MINUTE;
    for (let t = Math.ceil((start - offset) / step) * step + offset; t <= end; t += step) ticks.push(t);
  }
  return { step, ticks };
}

/**
 * The frame of a chart over time: grid lines at the axis' steps (labelled by `label(v)`), the
 * time axis under them, and the scales. Null when the chart has no room.
 */
function timeFrame({ buckets, bucketMs, width, height, peak, label }) {
  const padL = 46, padR = 12, padT = 10, padB = 26;
  const n = buckets.length;
  if (!n || width < padL + padR + 40) return null;
  const plotW = width - padL - padR, plotH = height - padT - padB;
  const start = buckets[0].t, end = buckets[n - 1].t + bucketMs;
  const { max, step } = niceScale(peak);
  const y = (v) => padT + plotH - (v / max) * plotH;
  const x = (t) => padL + ((t - start) / (end - start)) * plotW;
  const bw = plotW / n;
  const parts = [];
  // Counted in steps, not added up: 0.02 added four times is not 0.08.
  for (let i = 0, lines = Math.round(max / step); i <= lines; i++) {
    const v = i * step;
    parts.push(`<line class="ch-grid" x1="${padL}" x2="${width - padR}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/>`);
    parts.push(`<text class="ch-axis" x="${padL - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${esc(label(v, step))}</text>`);
  }
  const { step: tstep, ticks } = timeTicks(start, end, plotW);
  for (const t of ticks) {
    const px = x(t);
    parts.push(`<line class="ch-tick" x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" y1="${padT + plotH}" y2="${padT + plotH + 4}"/>`);
    if (px < width - 30) {
      parts.push(`<text class="ch-axis" x="${px.toFixed(1)}" y="${height - 8}" text-anchor="middle">${esc(timeLabel(t, tstep))}</text>`);
    }
  }
  const base = `<line class="ch-base" x1="${padL}" x2="${width - padR}" y1="${padT + plotH}" y2="${padT + plotH}"/>`;
  return { parts, base, x, y, bottom: padT + plotH, bw, gap: bw > 5 ? 1 : 0 };
}

/**
 * Events over time: one bar per bucket, its failures overlaid from the bottom. Each bar is a
 * <g data-testid="time-bar" data-t data-events data-failures> with a <title>.
 * Returns {svg, height}; `describe(t, t2)` names a bucket in its tooltip.
 */
export function timeChart({ buckets, bucketMs, width, height = 190, describe }) {
  const peak = Math.max(0, ...buckets.map((b) => b.events));
  const f = timeFrame({ buckets, bucketMs, width, height, peak, label: (v) => v.toLocaleString("en-US") });
  if (!f) return { svg: "", height: 0 };
  const { parts, x, y, bottom, bw, gap } = f;
  for (const b of buckets) {
    if (!b.events && !b.failures) continue;
    const x0 = x(b.t) + gap / 2, w = Math.max(1, bw - gap);
    const title = `${describe ? describe(b.t, b.t + bucketMs) : new Date(b.t).toISOString()}: `
      + `${b.events.toLocaleString("en-US")} event${b.events === 1 ? "" : "s"}`
      + (b.failures ? `, ${b.failures.toLocaleString("en-US")} failure${b.failures === 1 ? "" : "s"}` : "");
    let g = `<g class="tbar" data-testid="time-bar" data-t="${b.t}" data-events="${b.events}" data-failures="${b.failures}"><title>${esc(title)}</title>`;
    g += `<rect class="ch-events" x="${x0.toFixed(2)}" y="${y(b.events).toFixed(1)}" width="${w.toFixed(2)}" height="${Math.max(1, bottom - y(b.events)).toFixed(1)}"/>`;
    if (b.failures) {
      g += `<rect class="ch-failures" x="${x0.toFixed(2)}" y="${y(b.failures).toFixed(1)}" width="${w.toFixed(2)}" height="${Math.max(1.5, bottom - y(b.failures)).toFixed(1)}"/>`;
    }
    parts.push(g + "</g>");
  }
  parts.push(f.base);
  return { svg: parts.join(""), height };
}

/** An axis amount in dollars, to the step's precision: "$0.02", "$0.50", "$3". */
function usdLabel(v, step) {
  const places = step >= 1 ? 0 : Math.max(2, Math.ceil(-Math.log10(step) - 1e-9));
  return `$${v.toFixed(places)}`;
}

/**
 * What the responses cost over time: one bar per bucket of cost_over_time (filled with
 * fillBuckets' keys "responses", "tokens", "cost_usd"), its height mpmd's price of them, or
 * their tokens when `metric` is "tokens" (nothing in the range has a price). Each bar is a
 * <g data-testid="cost-bar" data-t data-cost data-tokens data-responses> with a <title>.
 * Returns {svg, height}.
 */
export function costChart({ buckets, bucketMs, width, height = 160, describe, metric = "cost" }) {
  const value = metric === "tokens" ? (b) => b.tokens : (b) => b.cost_usd;
  const label = metric === "tokens" ? (v) => formatTokens(v) : usdLabel;
  const f = timeFrame({ buckets, bucketMs, width, height, peak: Math.max(0, ...buckets.map(value)), label });
  if (!f) return { svg: "", height: 0 };
  const { parts, x, y, bottom, bw, gap } = f;
  for (const b of buckets) {
    if (!b.responses) continue;
    const v = value(b);
    const title = `${describe ? describe(b.t, b.t + bucketMs) : new Date(b.t).toISOString()}: `
      + `${b.cost_usd ? `${formatUsdPrecise(b.cost_usd)} (mpmd's price)` : "no price"}, `
      + `${b.responses.toLocaleString("en-US")} response${b.responses === 1 ? "" : "s"}, `
      + `${b.tokens.toLocaleString("en-US")} tokens`;
    let g = `<g class="tbar" data-testid="cost-bar" data-t="${b.t}" data-cost="${b.cost_usd}" data-tokens="${b.tokens}" data-responses="${b.responses}"><title>${esc(title)}</title>`;
    if (v > 0) {
      g += `<rect class="ch-cost" x="${(x(b.t) + gap / 2).toFixed(2)}" y="${y(v).toFixed(1)}" width="${Math.max(1, bw - gap).toFixed(2)}" height="${Math.max(1, bottom - y(v)).toFixed(1)}"/>`;
    }
    parts.push(g + "</g>");
  }
  parts.push(f.base);
  return { svg: parts.join(""), height };
}

/**
 * Horizontal bars. rows: [{key, label, segments: [{cls, value, title}], text}]; the bars are
 * scaled to `max` (default: the largest row total). `track`: a full-length background bar.
 * Each row is a <g data-testid="bar-row" data-key>. Returns {svg, height}.
 */
export function barChart({ rows, width, max, track = false, labelW = 176, rowH = 22, textW = 150 }) {
  if (!rows.length) return { svg: "", height: 0 };
  const total = (r) => r.segments.reduce((a, s) => a + (Number(s.value) || 0), 0);
  const top = max || Math.max(1, ...rows.map(total));
  const plot = Math.max(40, width - labelW - textW - 8);
  const parts = [];
  rows.forEach((r, i) => {
    const y = 4 + i * rowH;
    const name = r.label.length > 24 ? r.label.slice(0, 23) + "…" : r.label;
    let g = `<g class="hrow" data-testid="bar-row" data-key="${esc(r.key)}">`;
    g += `<text class="ch-label" x="${labelW - 8}" y="${y + 14}" text-anchor="end">${esc(name)}<title>${esc(r.label)}</title></text>`;
    if (track) g += `<rect class="ch-track" x="${labelW}" y="${y + 4}" width="${plot}" height="${rowH - 9}" rx="2"/>`;
    let x = labelW;
    for (const s of r.segments) {
      const v = Number(s.value) || 0;
      if (v <= 0) continue;
      const w = Math.max(2, (v / top) * plot);
      g += `<rect class="ch-bar ${esc(s.cls)}" x="${x.toFixed(1)}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 9}" rx="2"><title>${esc(s.title || "")}</title></rect>`;
      x += w;
    }
    const tx = track ? labelW + plot + 8 : x + 6;
    g += `<text class="ch-value" x="${tx.toFixed(1)}" y="${y + 14}">${esc(r.text || "")}</text></g>`;
    parts.push(g);
  });
  return { svg: parts.join(""), height: rows.length * rowH + 8 };
}

/**
 * The Tools view's chart: the first 15 rows of toolStats() as stacked bars (succeeded, failed,
 * running), each with its count, success rate and median duration. Returns {svg, height}.
 */
export function toolChart(rows, width) {
  const shown = rows.slice(0, 15);
  const rowH = 22, labelW = 190, right = 120;
  const height = shown.length ? shown.length * rowH + 30 : 0;
  const max = Math.max(1, ...shown.map((r) => r.count));
  const plot = Math.min(640, width - labelW - right);
  let svg = "";
  shown.forEach((r, i) => {
    const y = 8 + i * rowH;
    const w = (n) => (n / max) * plot;
    let x = labelW;
    const name = r.tool.length > 26 ? r.tool.slice(0, 25) + "…" : r.tool;
    svg += `<text class="bar-label" x="${labelW - 8}" y="${y + 14}" text-anchor="end">${esc(name)}<title>${esc(r.tool)}</title></text>`;
    for (const [cls, n] of [["ok", r.ok], ["failed", r.failed], ["open", r.open]]) {
      if (!n) continue;
      svg += `<rect class="bar ${cls}" x="${x.toFixed(1)}" y="${y + 3}" width="${Math.max(2, w(n)).toFixed(1)}" height="${rowH - 8}" rx="2"><title>${esc(`${r.tool}: ${n} ${cls === "ok" ? "succeeded" : cls === "failed" ? "failed" : "running"}`)}</title></rect>`;
      x += w(n);
    }
    svg += `<text class="bar-value" x="${(x + 6).toFixed(1)}" y="${y + 14}">${r.count} · ${formatRate(r.successRate)} · ${formatDuration(r.median)}</text>`;
  });
  if (shown.length) svg += `<text class="bar-note" x="${labelW}" y="${height - 6}">calls per tool (succeeded · failed · running) · success rate · median duration</text>`;
  return { svg, height };
}
