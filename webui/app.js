// Wiring and DOM: reads the token, connects, feeds the model, renders the panes.
// Pure logic lives in model.js (state), connection.js (socket) and timeline.js (layout).

import {
  Store, health, HEALTH_LABEL, sessionDuration, formatDuration, formatRate, toolStats,
  feedBlocks, compileFilter, isEmptyFilter, errorText, exportFileName, pendingText,
  startedWaiting, parseTime, projectOf,
} from "./model.js";
import { Connection } from "./connection.js";
import { Timeline, escapeXml } from "./timeline.js";

const TOKEN_KEY = "mpmd-token";
const NOTIFY_KEY = "mpmd-notify";
const TAB_KEY = "mpmd-tab";
const BACKLOG = 5000;
const FEED_ROWS = 500;
const TOAST_MS = 8000;
const MAX_TOASTS = 5;
const TICK_MS = 1000;

const $ = (sel, root = document) => root.querySelector(sel);
const esc = escapeXml;

// ---------------------------------------------------------------- token

function takeToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash || "");
  if (m) {
    const token = decodeURIComponent(m[1]);
    try { localStorage.setItem(TOKEN_KEY, token); } catch { /* private mode */ }
    history.replaceState(null, "", location.pathname + location.search);
    return token;
  }
  try { return localStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
}

function showNoToken(title, text) {
  const box = $("#no-token");
  if (title) $("#no-token-title").innerHTML = title;
  if (text) $("#no-token-text").innerHTML = text;
  box.hidden = false;
}

// ---------------------------------------------------------------- state

const store = new Store();
const ui = {
  filters: { session: "", type: "", tool: "", text: "" },
  tab: "feed",
  live: false, // backlog done: new events are live (toasts, notifications)
  lagged: false,
  selectedSeq: null,
  notify: false,
  dirty: new Set(),
  frame: 0,
  feed: { key: null, reset: -1, lastSeq: 0, rows: 0, inView: 0 },
  lastHeavy: { timeline: 0, tools: 0 },
  feedStick: true, // the feed follows new events while scrolled to the bottom
  overTimeline: false,
  snapshotNext: false, // the next sessions message is the daemon's whole table
  optionsKey: { session: "", type: "", tool: "" },
};

function filterKey() {
  const f = ui.filters;
  return `${f.session}\u0000${f.type}\u0000${f.tool}\u0000${f.text}`;
}

function invalidate(...parts) {
  for (const p of parts) ui.dirty.add(p);
  if (!ui.frame) ui.frame = requestAnimationFrame(flush);
}

function flush() {
  ui.frame = 0;
  const d = ui.dirty;
  ui.dirty = new Set();
  const now = Date.now();
  if (d.has("sessions")) renderSessions(now);
  if (d.has("options")) renderOptions();
  if (d.has("feed")) renderFeed();
  if (d.has("header")) renderHeader();
  if (ui.tab === "timeline" && d.has("timeline")) throttled("timeline", renderTimeline);
  if (ui.tab === "tools" && d.has("tools")) throttled("tools", renderTools);
}

// Redraws of the heavy panes happen at most every 200 ms while events stream.
const later = {};
function throttled(name, fn) {
  const now = performance.now();
  const wait = 200 - (now - ui.lastHeavy[name]);
  if (wait <= 0) {
    ui.lastHeavy[name] = now;
    fn();
  } else if (!later[name]) {
    later[name] = setTimeout(() => { later[name] = 0; invalidate(name); }, wait);
  }
}

// ---------------------------------------------------------------- messages

function onMessage(msg) {
  switch (msg.type) {
    case "hello":
      if (conn && conn.state !== "live") {
        $("#connection .label").textContent = conn.state === "reconnecting" ? "catching up" : "loading";
      }
      if (msg.namespaces && typeof msg.namespaces === "object") {
        Object.assign(store.namespaces, msg.namespaces);
      }
      if (typeof msg.last_seq === "number" && msg.last_seq < store.maxSeq) {
        // Another journal behind this port (a new state folder): start over.
        store.reset();
        conn.send(subscription());
        invalidate("feed", "sessions", "options", "timeline", "tools", "header");
      }
      break;
    case "sessions": {
      // The first table after a subscribe (or a lag) is the whole table: sessions the
      // daemon no longer keeps go; later ones only carry the sessions a batch changed.
      const changes = store.applySessions(msg.sessions, { replace: ui.snapshotNext });
      ui.snapshotNext = false;
      if (ui.live && ui.notify) {
        for (const { session, before } of changes) {
          if (startedWaiting(before, session)) notifyPermission(session);
        }
      }
      invalidate("sessions", "options", "header", "timeline");
      break;
    }
    case "events": {
      const added = store.applyEvents(msg.events || [], msg.bytes || 0);
      if (!added.length) break;
      if (ui.live) onLiveEvents(added);
      invalidate("feed", "options", "timeline", "tools", "header", "sessions");
      break;
    }
    case "live":
      ui.live = true;
      ui.lagged = false;
      invalidate("header", "feed");
      break;
    case "gap":
      // The daemon no longer has these events (neither in memory nor in the journal).
      toast({ kind: "server", title: "Some events are no longer available",
              text: `Events after seq ${msg.after} up to ${Number(msg.next_seq) - 1} were skipped.` });
      break;
    case "lagged":
      ui.live = false;
      ui.lagged = true;
      ui.snapshotNext = true;
      invalidate("header");
      break;
    case "error":
      toast({ kind: "server", title: "The daemon refused a message", text: msg.message || "" });
      break;
    default:
      break;
  }
}

const TOASTS_PER_BATCH = 3;

function onLiveEvents(recs) {
  const failures = recs.filter((r) => r.ev.event_type === "PostToolUseFailure"
    || r.ev.event_type === "StopFailure");
  // A burst of failures makes a few toasts and one that counts the rest.
  failures.slice(0, TOASTS_PER_BATCH).forEach(onFailure);
  const rest = failures.slice(TOASTS_PER_BATCH);
  if (rest.length) {
    const projects = [...new Set(rest.map((r) => store.projectOf(r.ev.session_id)))];
    toast({ kind: "error", title: `${rest.length} more failure${rest.length === 1 ? "" : "s"}`,
            text: `in ${projects.slice(0, 5).join(", ")}${projects.length > 5 ? ", …" : ""}` });
  }
}

function onFailure(rec) {
  const ev = rec.ev;
  const project = store.projectOf(ev.session_id);
  const what = ev.event_type === "StopFailure" ? "Turn failed" : `${ev.tool_name || "Tool"} failed`;
  toast({ kind: "error", title: `${what} · ${project}`, text: errorText(ev), detail: ev.summary,
          seq: rec.seq });
  if (ev.event_type === "PostToolUseFailure" && ui.notify) {
    desktopNotify(`${what} · ${project}`, errorText(ev), ev.session_id, `fail-${rec.seq}`);
  }
}

function subscription() {
  ui.snapshotNext = true;
  return { type: "subscribe", after: store.maxSeq || null, backlog: BACKLOG };
}

// ---------------------------------------------------------------- connection

const CONN_LABEL = {
  connecting: "connecting",
  live: "live",
  reconnecting: "reconnecting",
  offline: "offline",
};
let conn = null;
let tokenChecked = 0;

function onState(state, info) {
  const el = $("#connection");
  el.dataset.state = state;
  if (state !== "live") ui.live = false;
  $(".label", el).textContent = CONN_LABEL[state] || state;
  const retry = info && info.retryIn ? ` Next try in ${Math.ceil(info.retryIn / 1000)} s.` : "";
  el.title = state === "live" ? "Connected to the daemon; events arrive live"
    : state === "offline" ? `The daemon does not answer (is it running? \`mpmd status\`).${retry} Click to retry now.`
      : `Not connected; retrying by itself.${retry} Click to retry now.`;
  if (state !== "live" && info && info.attempt >= 2) checkToken();
  invalidate("header");
}

async function checkToken() {
  const now = Date.now();
  if (now - tokenChecked < 15000) return;
  tokenChecked = now;
  try {
    const res = await fetch("/api/status", { headers: { Authorization: `Bearer ${token}` } });
    if (res.status === 401 || res.status === 403) {
      conn.stop("offline");
      try { localStorage.removeItem(TOKEN_KEY); } catch { /* ignore */ }
      showNoToken("The daemon refused this page's token",
        "Open the viewer again with <code>mpmd open</code>: it carries the current token.");
    }
  } catch { /* daemon down: keep retrying */ }
}

// ---------------------------------------------------------------- sessions pane

function fmtClock(t, withMs = false) {
  if (!Number.isFinite(t)) return "";
  const d = new Date(t);
  const two = (n) => String(n).padStart(2, "0");
  const s = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  return withMs ? `${s}.${String(d.getMilliseconds()).padStart(3, "0")}` : s;
}

function fmtStart(t, now) {
  if (!Number.isFinite(t)) return "";
  const d = new Date(t), n = new Date(now);
  const two = (x) => String(x).padStart(2, "0");
  const hm = `${two(d.getHours())}:${two(d.getMinutes())}`;
  if (d.toDateString() === n.toDateString()) return hm;
  return `${d.toLocaleDateString(undefined, { month: "short", day: "numeric" })} ${hm}`;
}

// Rows are kept per session and updated in place: a row is rebuilt only when its session
// changed, and the clock only rewrites durations, so hovering and clicking stay steady.
const rowEls = new Map();
let allRow = null;

function rowInner(s, h, now) {
  const pend = pendingText(s.pending);
  const start = parseTime(s.started_at);
  const project = s.project || projectOf(s.cwd) || String(s.session_id).slice(0, 8);
  const last = s.last_summary || "";
  return `<div class="l1"><span class="hdot" aria-hidden="true"></span><span class="project">${esc(project)}</span><span class="hbadge">${HEALTH_LABEL[h]}</span><span class="grow"></span><span class="start" title="started ${esc(s.started_at || "")}">${esc(fmtStart(start, now))}</span><span class="duration" title="duration">${formatDuration(sessionDuration(s, now))}</span></div>
      <div class="l2"><span class="model">${esc(s.model || "—")}</span><span class="grow"></span><span class="stat"><span class="event-count">${Number(s.event_count) || 0}</span> ev</span><span class="stat"><span class="tool-count">${Number(s.tool_count) || 0}</span> tools</span>${s.failure_count ? `<span class="stat bad"><span class="failure-count">${Number(s.failure_count)}</span> failed</span>` : ""}</div>
      ${pend ? `<div class="pbadge" data-testid="permission-badge" title="${esc(pend)}">needs permission: <span class="mono">${esc(pend)}</span></div>` : ""}
      ${last ? `<div class="l3 muted mono" title="${esc(last)}">${esc(last)}</div>` : ""}`;
}

function renderSessions(now) {
  const box = $("#session-list");
  const list = store.sessionList();
  const sel = ui.filters.session;
  if (!allRow) {
    allRow = document.createElement("div");
    allRow.className = "srow all";
    allRow.setAttribute("data-testid", "session-all");
    allRow.setAttribute("role", "option");
    allRow.tabIndex = 0;
    allRow.innerHTML = `<div class="l1"><span class="project">All sessions</span></div>
      <div class="l2 muted"><span class="n-sessions"></span><span class="grow"></span><span class="n-loaded"></span></div>`;
    box.prepend(allRow);
  }
  allRow.classList.toggle("selected", !sel);
  allRow.setAttribute("aria-selected", String(!sel));
  $(".n-sessions", allRow).textContent = `${list.length} session${list.length === 1 ? "" : "s"}`;
  $(".n-loaded", allRow).textContent = `${store.size.toLocaleString()} events loaded`;

  const keep = new Set();
  let prev = allRow;
  for (const s of list) {
    keep.add(s.session_id);
    let el = rowEls.get(s.session_id);
    if (!el) {
      el = document.createElement("div");
      el.setAttribute("data-testid", "session-row");
      el.dataset.sessionId = s.session_id;
      el.setAttribute("role", "option");
      el.tabIndex = 0;
      rowEls.set(s.session_id, el);
    }
    const h = health(s, now);
    if (el._session !== s || el._health !== h) {
      el._session = s;
      el._health = h;
      el.dataset.health = h;
      el.innerHTML = rowInner(s, h, now);
      el.title = `${s.cwd || ""}\n${s.session_id}`;
    } else {
      const d = el.querySelector(".duration");
      const text = formatDuration(sessionDuration(s, now));
      if (d && d.textContent !== text) d.textContent = text;
    }
    const selected = sel === s.session_id;
    el.className = `srow h-${h}${selected ? " selected" : ""}`;
    el.setAttribute("aria-selected", String(selected));
    if (prev.nextElementSibling !== el) prev.after(el);
    prev = el;
  }
  for (const [id, el] of rowEls) {
    if (!keep.has(id)) { el.remove(); rowEls.delete(id); }
  }
  let empty = $("#session-list .empty");
  if (!list.length && !empty) {
    box.insertAdjacentHTML("beforeend", `<div class="empty small">No sessions yet. Install the hooks with <code>mpmd install-hooks</code>, then use Claude Code as usual.</div>`);
  } else if (list.length && empty) {
    empty.remove();
  }
  $("#session-total").textContent = list.length ? String(list.length) : "";
  const waiting = list.filter((x) => health(x, now) === "needs-permission").length;
  document.title = waiting ? `(${waiting}) mpmd — permission needed` : "mpmd";
}

function selectSession(id) {
  if (ui.filters.session === id) return;
  ui.filters.session = id;
  $("#filter-session").value = id;
  filtersChanged();
}

// ---------------------------------------------------------------- filter selects

function setOptions(select, key, values, allLabel) {
  const sig = values.map((v) => v.value + "\u0001" + v.label).join("\u0000");
  if (ui.optionsKey[key] === sig) return;
  ui.optionsKey[key] = sig;
  const current = select.value;
  let html = `<option value="">${esc(allLabel)}</option>`;
  for (const v of values) html += `<option value="${esc(v.value)}">${esc(v.label)}</option>`;
  select.innerHTML = html;
  select.value = current;
  if (select.value !== current) {
    // The selected value is gone from the loaded events: keep it selectable.
    select.insertAdjacentHTML("beforeend", `<option value="${esc(current)}">${esc(current)}</option>`);
    select.value = current;
  }
}

function renderOptions() {
  const ids = new Set([...store.sessions.keys(), ...store.sessionIds]);
  const sessions = [...ids].map((id) => ({ value: id, label: `${store.projectOf(id)} · ${String(id).slice(0, 8)}` }))
    .sort((a, b) => a.label.localeCompare(b.label));
  setOptions($("#filter-session"), "session", sessions, "All sessions");
  const types = [...store.eventTypes].sort().map((t) => ({ value: t, label: t }));
  setOptions($("#filter-type"), "type", types, "All event types");
  const tools = [...store.toolNames].sort().map((t) => ({ value: t, label: t }));
  setOptions($("#filter-tool"), "tool", tools, "All tools");
}

function filtersChanged() {
  renderSessions(Date.now());
  invalidate("feed", "timeline", "tools", "header");
}

// ---------------------------------------------------------------- feed

function kindOf(rec) {
  const t = rec.ev.event_type;
  if (t === "PostToolUseFailure" || t === "StopFailure") return "failed";
  if (t === "PermissionDenied") return "denied";
  if (t === "PermissionRequest" || (t === "Notification" && rec.ev.payload
      && rec.ev.payload.notification_type === "permission_prompt")) return "permission";
  return store.namespaceOf(t);
}

function lineHtml(rec, showProject) {
  const ev = rec.ev;
  const kind = kindOf(rec);
  const risk = ev.risk === "high" || ev.risk === "medium"
    ? `<span class="risk risk-${ev.risk}" title="${esc(ev.risk_reason || `${ev.risk} risk`)}">${ev.risk}</span>` : "";
  const agent = ev.agent_id ? ` data-agent-id="${esc(ev.agent_id)}"` : "";
  const proj = showProject ? `<span class="proj" title="${esc(ev.session_id || "")}">${esc(store.projectOf(ev.session_id))}</span>` : "";
  const sel = rec.seq === ui.selectedSeq ? " selected" : "";
  return `<div class="line k-${kind}${sel}" data-testid="feed-line" data-seq="${rec.seq}" data-event-type="${esc(ev.event_type || "")}"${agent} tabindex="-1">`
    + `<time datetime="${esc(ev.timestamp || "")}">${fmtClock(rec.t, true)}</time>`
    + `<span class="chip k-${kind}">${esc(ev.event_type || "?")}</span>${proj}`
    + `<span class="summary">${esc(ev.summary || ev.event_type || "")}</span>${risk}</div>`;
}

function groupOpen(block, showProject) {
  const where = showProject ? ` <span class="muted">in ${esc(store.projectOf(block.sessionId))}</span>` : "";
  return `<div class="agent-group" data-testid="agent-group" data-agent-id="${esc(block.agentId)}" data-session-id="${esc(block.sessionId || "")}">`
    + `<div class="agent-head"><span class="arrow">↳</span> <b>${esc(store.agentTypes.get(block.agentId) || "subagent")}</b> <span class="mono muted">${esc(block.agentId)}</span>${where}</div>`;
}

function blocksHtml(blocks, showProject) {
  let html = "";
  for (const b of blocks) {
    if (b.agentId) html += groupOpen(b, showProject);
    for (const rec of b.recs) html += lineHtml(rec, showProject);
    if (b.agentId) html += "</div>";
  }
  return html;
}

function atBottom(el) {
  return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
}

function renderFeed() {
  const feed = $("#feed");
  const key = filterKey();
  const showProject = !ui.filters.session;
  const st = ui.feed;
  const stick = ui.feedStick;
  if (st.key !== key || st.reset !== store.resetVersion) {
    // Full rebuild: the last FEED_ROWS events of the filtered view.
    const view = store.filtered(ui.filters);
    const shown = view.slice(-FEED_ROWS);
    feed.classList.toggle("all", showProject);
    feed.innerHTML = blocksHtml(feedBlocks(shown), showProject);
    st.key = key;
    st.reset = store.resetVersion;
    st.rows = shown.length;
    st.inView = view.length;
    st.lastSeq = store.recs.length ? store.recs[store.recs.length - 1].seq : 0;
    feed.scrollTop = feed.scrollHeight;
    ui.feedStick = true;
  } else {
    // Append what arrived since, then drop rows from the top beyond FEED_ROWS.
    const f = compileFilter(ui.filters);
    const fresh = [];
    const recs = store.recs;
    let i = recs.length;
    while (i > 0 && recs[i - 1].seq > st.lastSeq) i--;
    for (; i < recs.length; i++) if (f(recs[i])) fresh.push(recs[i]);
    if (recs.length) st.lastSeq = recs[recs.length - 1].seq;
    if (fresh.length) {
      const tail = fresh.slice(-FEED_ROWS);
      const blocks = feedBlocks(tail);
      const lastEl = feed.lastElementChild;
      // Continue the last subagent group when the first new block is the same agent.
      if (blocks.length && blocks[0].agentId && lastEl && lastEl.classList.contains("agent-group")
          && lastEl.dataset.agentId === blocks[0].agentId
          && (lastEl.dataset.sessionId || "") === (blocks[0].sessionId || "")) {
        lastEl.insertAdjacentHTML("beforeend", blocks[0].recs.map((r) => lineHtml(r, showProject)).join(""));
        blocks.shift();
      }
      feed.insertAdjacentHTML("beforeend", blocksHtml(blocks, showProject));
      st.rows += tail.length;
      st.inView += fresh.length;
      trimFeed(feed);
      if (stick) feed.scrollTop = feed.scrollHeight;
    }
  }
  const empty = $("#feed-empty");
  if (!st.inView) {
    empty.hidden = false;
    empty.textContent = store.size ? "No events match the filters." : (ui.live ? "Waiting for events…" : "Loading…");
  } else {
    empty.hidden = true;
  }
  const foot = $("#feed-foot");
  foot.hidden = st.inView <= st.rows;
  if (!foot.hidden) {
    foot.textContent = `Showing the last ${st.rows.toLocaleString()} of ${st.inView.toLocaleString()} events in view — narrow the filters or export for the rest.`;
  }
}

function trimFeed(feed) {
  let extra = ui.feed.rows - FEED_ROWS;
  while (extra > 0 && feed.firstElementChild) {
    const first = feed.firstElementChild;
    if (first.classList.contains("agent-group")) {
      const line = first.querySelector(".line");
      if (line) { line.remove(); extra--; ui.feed.rows--; }
      if (!first.querySelector(".line")) first.remove();
    } else {
      first.remove();
      extra--;
      ui.feed.rows--;
    }
  }
}

// ---------------------------------------------------------------- header

function renderHeader() {
  $("#lag-notice").hidden = !ui.lagged;
  const now = Date.now();
  const sessions = [...store.sessions.values()];
  const counts = { active: 0, "needs-permission": 0 };
  for (const s of sessions) {
    const h = health(s, now);
    if (h in counts) counts[h]++;
  }
  const parts = [
    `<span><b>${sessions.length}</b> sessions</span>`,
    `<span class="c-active"><b>${counts.active}</b> active</span>`,
  ];
  if (counts["needs-permission"]) parts.push(`<span class="c-wait"><b>${counts["needs-permission"]}</b> waiting</span>`);
  parts.push(`<span><b>${store.size.toLocaleString()}</b> events</span>`);
  if (store.maxSeq) parts.push(`<span class="muted mono">seq ${store.maxSeq}</span>`);
  $("#counts").innerHTML = parts.join("");
  const n = ui.feed.inView;
  $("#in-view").textContent = isEmptyFilter(ui.filters) ? "" : `${n.toLocaleString()} in view`;
}

// ---------------------------------------------------------------- timeline

let timeline = null;

function renderTimeline() {
  const now = Date.now();
  const recs = store.filtered(ui.filters);
  const spans = store.spanList(ui.filters, now);
  timeline.draw({
    recs, spans, now, kindOf,
    labelOf: (sid) => store.projectOf(sid),
    agentLabelOf: (aid) => store.agentTypes.get(aid) || aid,
  });
  const L = timeline.layout;
  $("#tl-range").textContent = L && !L.empty
    ? `${fmtClock(L.view.start)} – ${fmtClock(L.view.end)} · ${formatDuration(L.view.end - L.view.start)}${L.zoomed ? " (zoomed)" : ""} · ${spans.length} tool call${spans.length === 1 ? "" : "s"}`
    : "";
}

// With the clock, the timeline changes only where "now" is drawn or spans are still open.
function timelineMoves() {
  const L = timeline && timeline.layout;
  if (!L || L.empty) return false;
  if (L.nowX !== null) return true;
  for (const span of store.spans.values()) if (!span.end) return true;
  return false;
}

// ---------------------------------------------------------------- tools

function renderTools() {
  const rows = toolStats(store, ui.filters);
  $("#tools-empty").hidden = rows.length > 0;
  $("#tool-rows").innerHTML = rows.map((r) => `<tr data-testid="tool-row" data-tool="${esc(r.tool)}"${r.tool === ui.filters.tool ? ' class="selected"' : ""}>
      <td class="tool mono">${esc(r.tool)}</td><td class="num count">${r.count}</td><td class="num ok">${r.ok}</td>
      <td class="num failed${r.failed ? " bad" : ""}">${r.failed}</td><td class="num open">${r.open}</td>
      <td class="num success-rate">${formatRate(r.successRate)}</td><td class="num median">${formatDuration(r.median)}</td></tr>`).join("");
  const chart = $("#tool-chart");
  const width = Math.max(320, chart.parentElement.clientWidth - 2);
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
  chart.setAttribute("width", width);
  chart.setAttribute("height", height);
  chart.setAttribute("viewBox", `0 0 ${width} ${Math.max(1, height)}`);
  chart.innerHTML = svg;
}

// ---------------------------------------------------------------- detail drawer

function openDetail(seq) {
  const rec = store.bySeq.get(seq);
  if (!rec) return;
  ui.selectedSeq = seq;
  for (const el of document.querySelectorAll("#feed .line.selected")) el.classList.remove("selected");
  const line = document.querySelector(`#feed .line[data-seq="${seq}"]`);
  if (line) line.classList.add("selected");
  const ev = rec.ev;
  const kind = kindOf(rec);
  const chip = $("#detail-chip");
  chip.className = `chip k-${kind}`;
  chip.textContent = ev.event_type || "?";
  $("#detail-title").textContent = ev.summary || "";
  const meta = [
    ["seq", ev.seq], ["time", ev.timestamp], ["project", store.projectOf(ev.session_id)],
    ["session", ev.session_id],
  ];
  if (ev.agent_id) meta.push(["agent", store.agentLabel(ev.agent_id)]);
  if (ev.tool_use_id) meta.push(["tool call", ev.tool_use_id]);
  if (ev.risk && ev.risk !== "low") meta.push(["risk", `${ev.risk}${ev.risk_reason ? ` — ${ev.risk_reason}` : ""}`]);
  $("#detail-meta").innerHTML = meta.map(([k, v]) => `<dt>${esc(k)}</dt><dd class="mono">${esc(v ?? "")}</dd>`).join("");
  $("#detail-json").textContent = JSON.stringify(ev, null, 2);
  $("#event-detail").hidden = false;
}

/** Shows the next (+1) or previous (-1) feed line in the detail panel. */
function stepDetail(dir) {
  const lines = [...document.querySelectorAll("#feed .line")];
  const i = lines.findIndex((el) => Number(el.dataset.seq) === ui.selectedSeq);
  const next = lines[i < 0 ? lines.length - 1 : i + dir];
  if (!next) return;
  openDetail(Number(next.dataset.seq));
  next.scrollIntoView({ block: "nearest" });
}

function closeDetail() {
  $("#event-detail").hidden = true;
  ui.selectedSeq = null;
  for (const el of document.querySelectorAll("#feed .line.selected")) el.classList.remove("selected");
}

// ---------------------------------------------------------------- toasts

function toast({ kind = "info", title = "", text = "", detail = "", seq = null }) {
  const box = $("#toasts");
  const el = document.createElement("div");
  el.className = `toast k-${kind}`;
  el.setAttribute("data-testid", "toast");
  el.dataset.kind = kind;
  el.setAttribute("role", kind === "error" ? "alert" : "status");
  el.title = "Click to dismiss";
  el.innerHTML = `<div class="toast-title">${esc(title)}</div>`
    + (text ? `<div class="toast-text mono">${esc(text)}</div>` : "")
    + (detail ? `<div class="toast-detail muted mono">${esc(detail)}</div>` : "");
  if (seq !== null) el.dataset.seq = seq;
  const dismiss = () => {
    clearTimeout(timer);
    el.classList.add("leaving");
    setTimeout(() => el.remove(), 160);
  };
  const timer = setTimeout(dismiss, TOAST_MS);
  el.addEventListener("click", dismiss);
  box.appendChild(el);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
}

// ---------------------------------------------------------------- notifications

function setNotify(on) {
  ui.notify = on;
  const btn = $("#notify-toggle");
  btn.setAttribute("aria-pressed", String(on));
  $(".label", btn).textContent = on ? "Notifications on" : "Notifications off";
  try { localStorage.setItem(NOTIFY_KEY, on ? "1" : "0"); } catch { /* ignore */ }
}

async function toggleNotify() {
  if (ui.notify) { setNotify(false); return; }
  if (!("Notification" in window)) {
    toast({ kind: "info", title: "This browser has no desktop notifications" });
    return;
  }
  let perm = Notification.permission;
  if (perm === "default") {
    try { perm = await Notification.requestPermission(); } catch { perm = "denied"; }
  }
  if (perm !== "granted") {
    toast({ kind: "info", title: "Notifications are blocked", text: "Allow notifications for this page in the browser's site settings." });
    setNotify(false);
    return;
  }
  setNotify(true);
}

function desktopNotify(title, body, sessionId, tag) {
  if (!ui.notify || !("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const n = new Notification(title, { body, tag, icon: "favicon.svg" });
    n.onclick = () => { window.focus(); if (sessionId) selectSession(sessionId); n.close(); };
  } catch { /* some platforms only allow notifications from a service worker */ }
}

function notifyPermission(session) {
  const project = session.project || store.projectOf(session.session_id);
  desktopNotify(`Permission needed · ${project}`, pendingText(session.pending), session.session_id,
    `perm-${session.session_id}`);
}

// ---------------------------------------------------------------- export, clear

function exportView() {
  const events = store.filtered(ui.filters).map((r) => r.ev);
  const blob = new Blob([JSON.stringify(events, null, 2)], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = exportFileName(Date.now());
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function clearView() {
  store.clear();
  closeDetail();
  invalidate("feed", "options", "timeline", "tools", "header", "sessions");
}

// ---------------------------------------------------------------- tabs, overlays, keys

function setTab(tab) {
  if (!["feed", "timeline", "tools"].includes(tab)) return;
  ui.tab = tab;
  for (const b of document.querySelectorAll(".tabs [data-tab]")) {
    b.setAttribute("aria-selected", String(b.dataset.tab === tab));
  }
  $("#pane-feed").hidden = tab !== "feed";
  $("#pane-timeline").hidden = tab !== "timeline";
  $("#pane-tools").hidden = tab !== "tools";
  try { localStorage.setItem(TAB_KEY, tab); } catch { /* ignore */ }
  ui.lastHeavy[tab] = 0;
  if (tab === "feed" && ui.feedStick) $("#feed").scrollTop = $("#feed").scrollHeight;
  invalidate(tab === "feed" ? "feed" : tab);
}

function toggleHelp(force) {
  const help = $("#help");
  help.hidden = force === undefined ? !help.hidden : !force;
}

function typing(e) {
  const t = e.target;
  return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
}

function onKey(e) {
  const mod = e.ctrlKey || e.metaKey;
  const k = e.key.toLowerCase();
  if (mod && !e.shiftKey && !e.altKey) {
    if (k === "k") { e.preventDefault(); $("#search").focus(); $("#search").select(); return; }
    if (k === "e") { e.preventDefault(); exportView(); return; }
    if (k === "r") { e.preventDefault(); clearView(); return; }
  }
  if (e.key === "Escape") {
    if (!$("#help").hidden) { toggleHelp(false); e.preventDefault(); return; }
    if (!$("#event-detail").hidden) { closeDetail(); e.preventDefault(); return; }
    if (e.target === $("#search")) { $("#search").blur(); return; }
    return;
  }
  if (mod || e.altKey || typing(e)) return;
  if (e.key === "?") { e.preventDefault(); toggleHelp(); return; }
  if (!$("#event-detail").hidden && ["ArrowDown", "ArrowUp", "j", "k"].includes(e.key)) {
    e.preventDefault();
    stepDetail(e.key === "ArrowDown" || e.key === "j" ? 1 : -1);
    return;
  }
  if (e.key === "1") setTab("feed");
  else if (e.key === "2") setTab("timeline");
  else if (e.key === "3") setTab("tools");
  else if (ui.tab === "timeline" && (e.key === "+" || e.key === "=")) timeline.zoom(1 / 1.6);
  else if (ui.tab === "timeline" && e.key === "-") timeline.zoom(1.6);
  else if (ui.tab === "timeline" && e.key === "0") timeline.reset();
}

// ---------------------------------------------------------------- start

let token = "";

function wire() {
  $("#session-list").addEventListener("click", (e) => {
    const row = e.target.closest(".srow");
    if (!row) return;
    selectSession(row.dataset.sessionId || "");
  });
  $("#session-list").addEventListener("keydown", (e) => {
    if (e.key !== "Enter" && e.key !== " ") return;
    const row = e.target.closest(".srow");
    if (row) { e.preventDefault(); selectSession(row.dataset.sessionId || ""); }
  });
  $("#filter-session").addEventListener("change", (e) => { ui.filters.session = e.target.value; filtersChanged(); });
  $("#filter-type").addEventListener("change", (e) => { ui.filters.type = e.target.value; filtersChanged(); });
  $("#filter-tool").addEventListener("change", (e) => { ui.filters.tool = e.target.value; filtersChanged(); });
  let searchTimer = 0;
  $("#search").addEventListener("input", (e) => {
    clearTimeout(searchTimer);
    const value = e.target.value;
    searchTimer = setTimeout(() => { ui.filters.text = value.trim(); filtersChanged(); }, 120);
  });
  $("#feed").addEventListener("scroll", (e) => {
    if (!e.target.hidden && e.target.clientHeight) ui.feedStick = atBottom(e.target);
  }, { passive: true });
  $("#feed").addEventListener("click", (e) => {
    const line = e.target.closest(".line");
    if (line) openDetail(Number(line.dataset.seq));
  });
  $("#detail-close").addEventListener("click", closeDetail);
  $("#detail-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("#detail-json").textContent);
      toast({ kind: "info", title: "Event copied as JSON" });
    } catch {
      toast({ kind: "info", title: "Copy failed", text: "The browser did not allow the clipboard." });
    }
  });
  $("#export").addEventListener("click", exportView);
  $("#clear").addEventListener("click", clearView);
  $("#notify-toggle").addEventListener("click", toggleNotify);
  $("#help-button").addEventListener("click", () => toggleHelp());
  $("#help").addEventListener("click", (e) => {
    if (e.target === $("#help") || e.target.closest("[data-close]")) toggleHelp(false);
  });
  for (const b of document.querySelectorAll(".tabs [data-tab]")) {
    b.addEventListener("click", () => setTab(b.dataset.tab));
  }
  $("#connection").addEventListener("click", () => conn && conn.retryNow());
  document.addEventListener("keydown", onKey);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && conn) conn.retryNow();
  });

  timeline = new Timeline($("#timeline"), {
    onPick: (seq) => openDetail(seq),
    onViewChange: () => { ui.lastHeavy.timeline = 0; invalidate("timeline"); },
  });
  $("#timeline").addEventListener("pointerenter", () => { ui.overTimeline = true; });
  $("#timeline").addEventListener("pointerleave", () => { ui.overTimeline = false; });
  $('[data-testid="zoom-in"]').addEventListener("click", () => timeline.zoom(1 / 1.6));
  $('[data-testid="zoom-out"]').addEventListener("click", () => timeline.zoom(1.6));
  $('[data-testid="zoom-reset"]').addEventListener("click", () => timeline.reset());
  if (typeof ResizeObserver === "function") {
    new ResizeObserver(() => invalidate("timeline", "tools")).observe($(".main"));
  }
}

function start() {
  wire();
  try {
    const saved = localStorage.getItem(TAB_KEY);
    if (saved) setTab(saved);
    if (localStorage.getItem(NOTIFY_KEY) === "1" && "Notification" in window
        && Notification.permission === "granted") setNotify(true);
  } catch { /* ignore */ }

  window.mpmdViewer = Object.freeze({
    lastSeq: () => store.maxSeq,
    eventCount: () => store.size,
  });

  token = takeToken();
  invalidate("sessions", "feed", "header", "options");
  if (!token) {
    showNoToken();
    $("#connection").dataset.state = "offline";
    $("#connection .label").textContent = "no token";
    return;
  }
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  conn = new Connection({
    url: `${proto}//${location.host}/ws?token=${encodeURIComponent(token)}`,
    subscription, onMessage, onState,
  });
  conn.start();

  // Health, durations and the timeline's "now" move with the clock.
  setInterval(() => {
    renderSessions(Date.now());
    renderHeader();
    if (ui.tab === "timeline" && !ui.overTimeline && timelineMoves()) invalidate("timeline");
  }, TICK_MS);
}

start();
