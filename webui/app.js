// Wiring and DOM: reads the token, connects, feeds the model, renders the panes.
// Pure logic lives in model.js (state), connection.js (socket) and timeline.js (layout).

import {
  Store, health, HEALTH_LABEL, sessionDuration, formatDuration, formatRate, toolStats,
  feedBlocks, compileFilter, isEmptyFilter, errorText, exportFileName, pendingText,
  startedWaiting, parseTime, projectOf,
} from "./model.js";
import { Connection } from "./connection.js";
import { Timeline, escapeXml } from "./timeline.js";
import { makeApi } from "./api.js";
import { Search } from "./search.js";
import { Analytics } from "./analytics.js";
import {
  SESSION_RANGES, rangeById, sessionFromSummary, fmtDateTime, fmtCount,
} from "./history.js";

const TOKEN_KEY = "mpmd-token";
const NOTIFY_KEY = "mpmd-notify";
const TAB_KEY = "mpmd-tab";
const SCOPE_RANGE_KEY = "mpmd-session-range";
const TABS = ["feed", "timeline", "tools", "search", "analytics"];
const EVENT_TABS = new Set(["feed", "timeline", "tools"]); // the views of `store`
const HISTORY_PAGE = 1000; // events per request when loading a past session
const HISTORY_MAX = 20000; // events of a past session held at once (Store's cap)
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
    // The token leaves the address bar; the rest of the fragment (a search: #q=…) stays.
    const rest = (location.hash || "").slice(1).split("&").filter((p) => p && !p.startsWith("token=")).join("&");
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
    return token;
  }
  try { return localStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
}

/** The search query in the address (#q=…), or null. */
function fragmentQuery() {
  const m = /(?:^#|&)q=([^&]*)/.exec(location.hash || "");
  if (!m) return null;
  try { return decodeURIComponent(m[1].replace(/\+/g, " ")); } catch { return null; }
}

/** Keeps the search query in the address while the Search tab shows (a reload keeps it). */
function setFragmentQuery(q) {
  const hash = q === null ? "" : `#q=${encodeURIComponent(q)}`;
  if ((location.hash || "") !== hash) history.replaceState(null, "", location.pathname + location.search + hash);
}

function showNoToken(title, text) {
  const box = $("#no-token");
  if (title) $("#no-token-title").innerHTML = title;
  if (text) $("#no-token-text").innerHTML = text;
  box.hidden = false;
}

// ---------------------------------------------------------------- state

// `live` holds what the WebSocket brings; `store` is what the Activity, Timeline and Tools
// views show: `live`, or a past session loaded from the index (history mode).
const live = new Store();
let store = live;
const ui = {
  liveFilters: { session: "", type: "", tool: "", text: "" },
  // History mode: {id, store, filters, summary, next, loading, error}; null when live.
  hist: null,
  get filters() { return this.hist ? this.hist.filters : this.liveFilters; },
  scope: "live", // the session list: "live" or "past"
  past: { range: "7d", sessions: null, loading: false, error: "", indexing: false, gen: 0 },
  viewGen: 0, // bumped when `store` changes: the feed rebuilds
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
  // Permission requests held for an answer from here (policy action "remote"), by seq.
  approvals: new Map(),
};

function filterKey() {
  const f = ui.filters;
  return `${ui.viewGen}\u0000${f.session}\u0000${f.type}\u0000${f.tool}\u0000${f.text}`;
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
        Object.assign(live.namespaces, msg.namespaces);
      }
      if (typeof msg.last_seq === "number" && msg.last_seq < live.maxSeq) {
        // Another journal behind this port (a new state folder): start over.
        live.reset();
        conn.send(subscription());
        invalidate("feed", "sessions", "options", "timeline", "tools", "header");
      }
      break;
    case "sessions": {
      // The first table after a subscribe (or a lag) is the whole table: sessions the
      // daemon no longer keeps go; later ones only carry the sessions a batch changed.
      const changes = live.applySessions(msg.sessions, { replace: ui.snapshotNext });
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
      const added = live.applyEvents(msg.events || [], msg.bytes || 0);
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
    case "approvals": {
      const before = new Set(ui.approvals.keys());
      ui.approvals = new Map((msg.approvals || []).map((a) => [a.seq, a]));
      if (ui.notify) {
        for (const a of ui.approvals.values()) {
          if (!before.has(a.seq)) {
            desktopNotify(`Approve or deny · ${live.projectOf(a.session_id)}`,
              [a.tool_name, a.detail].filter(Boolean).join(" "), a.session_id, `approval-${a.seq}`);
          }
        }
      }
      invalidate("sessions");
      break;
    }
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
    const projects = [...new Set(rest.map((r) => live.projectOf(r.ev.session_id)))];
    toast({ kind: "error", title: `${rest.length} more failure${rest.length === 1 ? "" : "s"}`,
            text: `in ${projects.slice(0, 5).join(", ")}${projects.length > 5 ? ", …" : ""}` });
  }
}

function onFailure(rec) {
  const ev = rec.ev;
  const project = live.projectOf(ev.session_id);
  const what = ev.event_type === "StopFailure" ? "Turn failed" : `${ev.tool_name || "Tool"} failed`;
  toast({ kind: "error", title: `${what} · ${project}`, text: errorText(ev), detail: ev.summary,
          seq: rec.seq });
  if (ev.event_type === "PostToolUseFailure" && ui.notify) {
    desktopNotify(`${what} · ${project}`, errorText(ev), ev.session_id, `fail-${rec.seq}`);
  }
}

function subscription() {
  ui.snapshotNext = true;
  return { type: "subscribe", after: live.maxSeq || null, backlog: BACKLOG };
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
      ${pend ? `<div class="pbadge" data-testid="permission-badge" data-kind="${esc((s.pending[0] || {}).kind || "permission")}" title="${esc(pend)}">needs you: <span class="mono">${esc(pend)}</span></div>` : ""}
      ${last ? `<div class="l3 muted mono" title="${esc(last)}">${esc(last)}</div>` : ""}`;
}

function renderSessions(now) {
  const box = $("#session-list");
  const list = live.sessionList();
  const sel = ui.hist ? null : ui.liveFilters.session;
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
  $(".n-loaded", allRow).textContent = `${live.size.toLocaleString()} events loaded`;

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
    const waiting = [...ui.approvals.values()].filter((a) => a.session_id === s.session_id);
    const approvalsKey = waiting.map((a) => a.seq).join(",");
    if (el._session !== s || el._health !== h || el._approvals !== approvalsKey) {
      el._session = s;
      el._health = h;
      el._approvals = approvalsKey;
      el.dataset.health = h;
      el.innerHTML = rowInner(s, h, now) + waiting.map(approvalHtml).join("");
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
  if (ui.scope === "live") $("#session-total").textContent = list.length ? String(list.length) : "";
  const waiting = list.filter((x) => health(x, now) === "needs-you").length;
  document.title = waiting ? `(${waiting}) mpmd — needs you` : "mpmd";
}

/** A request held for an answer from the viewer: what it is, and the three answers. */
function approvalHtml(a) {
  const what = [a.tool_name, a.detail].filter(Boolean).join(" ") || "a tool";
  const until = Number(a.expires_at_ms);
  const left = Number.isFinite(until) ? Math.max(0, Math.round((until - Date.now()) / 1000)) : null;
  return `<div class="approval" data-testid="approval" data-seq="${Number(a.seq)}" role="group" aria-label="Permission request">
      <div class="what mono" title="${esc(what)}${a.rule ? `\nrule: ${esc(a.rule)}` : ""}">${esc(what)}</div>
      <div class="answers">
        <button type="button" class="btn ok" data-answer="allow" data-testid="approve">Approve</button>
        <button type="button" class="btn bad" data-answer="deny" data-testid="deny">Deny</button>
        <button type="button" class="btn ghost" data-answer="allow" data-always="1" data-testid="always-allow" title="Approve, and add a policy rule that allows this from now on">Always allow</button>
        ${left !== null ? `<span class="muted small" title="then Claude Code asks in the terminal">${left} s</span>` : ""}
      </div></div>`;
}

function answerApproval(button) {
  const box = button.closest(".approval");
  const seq = Number(box && box.dataset.seq);
  if (!Number.isFinite(seq) || !conn) return;
  for (const b of box.querySelectorAll("button")) b.disabled = true; // the first answer wins
  conn.send({ type: "answer", seq, behavior: button.dataset.answer, always: !!button.dataset.always });
}

function selectSession(id) {
  if (ui.hist) leaveHistory();
  if (!EVENT_TABS.has(ui.tab)) setTab("feed");
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
  return live.namespaceOf(t);
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
    if (ui.hist) {
      empty.textContent = store.size ? "No events match the filters."
        : ui.hist.error ? ui.hist.error
          : ui.hist.loading ? "Loading the session…" : "The index holds no events of this session.";
    } else {
      empty.textContent = store.size ? "No events match the filters." : (ui.live ? "Waiting for events…" : "Loading…");
    }
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
  const sessions = [...live.sessions.values()];
  const counts = { active: 0, "needs-you": 0 };
  for (const s of sessions) {
    const h = health(s, now);
    if (h in counts) counts[h]++;
  }
  const parts = [
    `<span><b>${sessions.length}</b> sessions</span>`,
    `<span class="c-active"><b>${counts.active}</b> active</span>`,
  ];
  if (counts["needs-you"]) parts.push(`<span class="c-wait"><b>${counts["needs-you"]}</b> need you</span>`);
  parts.push(`<span><b>${live.size.toLocaleString()}</b> events</span>`);
  if (live.maxSeq) parts.push(`<span class="muted mono">seq ${live.maxSeq}</span>`);
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
  if (!L || L.empty || ui.hist) return false;
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
  showDetail(rec.ev, store);
}

/** The detail panel for one stored event; `from`: the Store that knows its session's name. */
function showDetail(ev, from) {
  ui.detailEvent = ev;
  const kind = kindOf({ ev });
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
  $("#detail-session").hidden = !ev.session_id || (ui.hist && ui.hist.id === ev.session_id && EVENT_TABS.has(ui.tab));
  $("#event-detail").hidden = false;
}

/** The project an event belongs to: the sessions table's name, else its folder's. */
function projectFor(ev, from = live) {
  if (from.sessions.has(ev.session_id) || !ev.cwd) return from.projectOf(ev.session_id);
  return projectOf(ev.cwd);
}

/** Shows the next (+1) or previous (-1) feed line in the detail panel. */
function stepDetail(dir) {
  if (ui.tab === "search") {
    const lines = [...document.querySelectorAll("#hsearch-results .line")];
    const i = lines.findIndex((el) => Number(el.dataset.seq) === search.selectedSeq);
    const next = lines[i < 0 ? 0 : i + dir];
    if (!next) return;
    search.pick(Number(next.dataset.seq));
    next.scrollIntoView({ block: "nearest" });
    return;
  }
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
  ui.detailEvent = null;
  for (const el of document.querySelectorAll("#feed .line.selected")) el.classList.remove("selected");
  if (search) search.select(null);
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
  const project = session.project || live.projectOf(session.session_id);
  const what = (session.pending[0] || {}).kind === "input" ? "Input needed" : "Permission needed";
  desktopNotify(`${what} · ${project}`, pendingText(session.pending), session.session_id,
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
  if (!EVENT_TABS.has(ui.tab)) return;
  store.clear();
  closeDetail();
  invalidate("feed", "options", "timeline", "tools", "header", "sessions");
}

// ---------------------------------------------------------------- past sessions, history mode

let api = null;
let search = null;
let analytics = null;

function setScope(scope) {
  ui.scope = scope;
  $("#scope-live").setAttribute("aria-pressed", String(scope === "live"));
  $("#scope-past").setAttribute("aria-pressed", String(scope === "past"));
  $("#session-list").hidden = scope !== "live";
  $("#past-list").hidden = scope !== "past";
  $("#past-range").hidden = scope !== "past";
  $("#past-refresh").hidden = scope !== "past";
  if (scope === "past") loadPastSessions();
  else renderSessions(Date.now());
}

async function loadPastSessions() {
  const p = ui.past;
  const gen = ++p.gen;
  p.loading = true;
  p.error = "";
  renderPast();
  try {
    const data = await api("/api/history/sessions", { since: p.range, limit: 200 });
    if (gen !== p.gen) return;
    p.sessions = Array.isArray(data.sessions) ? data.sessions : [];
    p.indexing = !!data.indexing;
  } catch (err) {
    if (gen !== p.gen) return;
    p.sessions = null;
    p.error = err.message || String(err);
  }
  p.loading = false;
  renderPast();
}

function pastRowHtml(s, now) {
  const first = Number(s.first_ts), last = Number(s.last_ts);
  const ended = s.end_reason !== null && s.end_reason !== undefined;
  const liveOne = live.sessions.get(s.session_id);
  const badge = ended ? "ended" : liveOne && !liveOne.ended_at ? "live" : "no end";
  const h = ended ? "ended" : badge === "live" ? "active" : "stale";
  const project = projectOf(s.cwd) || String(s.session_id).slice(0, 8);
  const selected = ui.hist && ui.hist.id === s.session_id;
  const prompt = typeof s.first_prompt === "string" ? s.first_prompt : "";
  return `<div class="srow past h-${h}${selected ? " selected" : ""}" data-testid="past-session-row" data-session-id="${esc(s.session_id)}" data-ended="${ended}" role="option" aria-selected="${selected}" tabindex="0" title="${esc(`${s.cwd || ""}\n${s.session_id}`)}">
      <div class="l1"><span class="hdot" aria-hidden="true"></span><span class="project">${esc(project)}</span><span class="hbadge" title="${esc(ended ? `ended: ${s.end_reason}` : "no SessionEnd stored")}">${badge}</span><span class="grow"></span><span class="start" title="first event ${esc(new Date(first).toISOString())}">${esc(fmtDateTime(first, now).replace(/:\d\d$/, ""))}</span><span class="duration" title="first to last event">${formatDuration(last - first)}</span></div>
      <div class="l2"><span class="model">${esc(s.model || "—")}</span><span class="grow"></span><span class="stat"><span class="event-count">${Number(s.events) || 0}</span> ev</span><span class="stat"><span class="tool-count">${Number(s.tool_calls) || 0}</span> tools</span>${s.failures ? `<span class="stat bad"><span class="failure-count">${Number(s.failures)}</span> failed</span>` : ""}</div>
      ${prompt ? `<div class="l3 muted" title="${esc(prompt)}">${esc(prompt)}</div>` : ""}</div>`;
}

function renderPast() {
  const p = ui.past;
  const box = $("#past-list");
  const now = Date.now();
  let html = "";
  if (p.indexing) html += `<div class="notice small" data-testid="past-indexing">The search index is still catching up with the journal: sessions may be missing.</div>`;
  if (p.error) html += `<div class="query-error small" role="alert" data-testid="past-error">${esc(p.error)}</div>`;
  else if (p.loading && !p.sessions) html += `<div class="empty small">Loading…</div>`;
  else if (p.sessions && !p.sessions.length) {
    html += `<div class="empty small" data-testid="past-empty">No sessions in this range (${esc(rangeById(p.range, SESSION_RANGES).label.toLowerCase())}).</div>`;
  }
  if (p.sessions) html += p.sessions.map((s) => pastRowHtml(s, now)).join("");
  if (p.sessions && p.sessions.length >= 200) html += `<div class="empty small">The 200 most recently active; choose a shorter range for others.</div>`;
  box.innerHTML = html;
  box.setAttribute("aria-busy", String(p.loading));
  if (ui.scope === "past") $("#session-total").textContent = p.sessions ? String(p.sessions.length) : "";
}

/**
 * History mode: one past session's whole timeline, read from the index oldest first (paged
 * with next.after), shown in the Activity, Timeline and Tools views instead of the live events.
 * The live events keep arriving meanwhile; "Back to live" shows them again.
 */
function openPastSession(id) {
  const hs = new Store({ maxEvents: HISTORY_MAX });
  hs.namespaces = live.namespaces;
  ui.hist = { id, store: hs, summary: null, next: null, loading: true, error: "",
              filters: { session: id, type: "", tool: "", text: "" } };
  store = hs;
  viewChanged();
  if (!EVENT_TABS.has(ui.tab)) setTab("feed");
  closeDetail();
  loadHistoryPages(ui.hist);
}

async function loadHistoryPages(h) {
  h.loading = true;
  h.error = "";
  renderBanner();
  invalidate("feed");
  let read = 0;
  try {
    for (;;) {
      const data = await api("/api/history/session", { id: h.id, after: h.next ? h.next.after : null, limit: HISTORY_PAGE });
      if (ui.hist !== h) return; // left, or another session opened
      if (data.session && !h.summary) {
        h.summary = data.session;
        h.id = data.session.session_id || h.id;
        h.filters.session = h.id;
        h.store.applySessions([sessionFromSummary(data.session)]);
      }
      const events = Array.isArray(data.events) ? data.events : [];
      read += events.length;
      h.store.applyEvents(events);
      h.next = data.next && typeof data.next.after === "number" ? data.next : null;
      invalidate("feed", "options", "timeline", "tools", "header");
      renderBanner();
      // Held at once: at most HISTORY_MAX events; "Load more" reads on (the oldest go).
      if (!h.next || read >= HISTORY_MAX) break;
    }
  } catch (err) {
    if (ui.hist !== h) return;
    h.error = err.message || String(err);
  }
  h.loading = false;
  renderBanner();
  invalidate("feed", "timeline", "tools");
  if (ui.scope === "past") renderPast();
}

function leaveHistory() {
  if (!ui.hist) return;
  ui.hist = null;
  store = live;
  viewChanged();
  closeDetail();
  if (ui.scope !== "live") setScope("live");
}

/** `store` changed: every view of it rebuilds, and the filter selects show its values. */
function viewChanged() {
  ui.viewGen++;
  ui.optionsKey = { session: "", type: "", tool: "" };
  ui.feedStick = true;
  const f = ui.filters;
  renderOptions();
  $("#filter-session").value = f.session;
  $("#filter-type").value = f.type;
  $("#filter-tool").value = f.tool;
  $("#search").value = f.text;
  if (timeline) timeline.view = null;
  $(".main").dataset.mode = ui.hist ? "history" : "live";
  renderBanner();
  renderSessions(Date.now());
  if (ui.scope === "past") renderPast();
  invalidate("feed", "options", "timeline", "tools", "header", "sessions");
}

function renderBanner() {
  const h = ui.hist;
  const banner = $("#history-banner");
  banner.hidden = !h || !EVENT_TABS.has(ui.tab);
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
  const total = s ? Number(s.events) || 0 : null;
  const loaded = h.store.size;
  let progress;
  if (h.error) progress = h.error;
  else if (h.loading) progress = total !== null ? `loading ${fmtCount(loaded)} of ${fmtCount(total)} events…` : "loading…";
  else if (h.next) progress = `${fmtCount(loaded)} of ${fmtCount(total)} events loaded`;
  else progress = `${fmtCount(loaded)} event${loaded === 1 ? "" : "s"}`;
  const el = $("#history-progress");
  el.textContent = progress;
  el.classList.toggle("bad", !!h.error);
  const more = $("#history-session-more");
  more.hidden = h.loading || !h.next;
}

// ---------------------------------------------------------------- tabs, overlays, keys

function setTab(tab) {
  if (!TABS.includes(tab)) return;
  const before = ui.tab;
  ui.tab = tab;
  for (const b of document.querySelectorAll(".tabs [data-tab]")) {
    b.setAttribute("aria-selected", String(b.dataset.tab === tab));
    b.tabIndex = b.dataset.tab === tab ? 0 : -1;
  }
  for (const t of TABS) $(`#pane-${t}`).hidden = tab !== t;
  const events = EVENT_TABS.has(tab);
  $(".filters").hidden = !events;
  $(".actions").hidden = !events;
  if (before !== tab && (EVENT_TABS.has(before) !== events)) closeDetail();
  renderBanner();
  try { localStorage.setItem(TAB_KEY, tab); } catch { /* ignore */ }
  if (search) setFragmentQuery(tab === "search" && search.query ? search.query : null);
  if (tab === "search" && search) search.shown();
  else if (tab === "analytics" && before !== "analytics" && analytics) analytics.load();
  if (!events) return;
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
    if (k === "k") {
      e.preventDefault();
      const box = ui.tab === "search" ? $("#hsearch") : $("#search");
      if (ui.tab !== "search" && !EVENT_TABS.has(ui.tab)) setTab("feed");
      box.focus();
      box.select();
      return;
    }
    if (k === "e") { e.preventDefault(); exportView(); return; }
    if (k === "r") { e.preventDefault(); clearView(); return; }
  }
  if (e.key === "Escape") {
    if (!$("#help").hidden) { toggleHelp(false); e.preventDefault(); return; }
    if (!$("#event-detail").hidden) { closeDetail(); e.preventDefault(); return; }
    if (e.target === $("#search") || e.target === $("#hsearch")) { e.target.blur(); return; }
    return;
  }
  if (mod || e.altKey || typing(e)) return;
  if (e.key === "?") { e.preventDefault(); toggleHelp(); return; }
  if (!$("#event-detail").hidden && ["ArrowDown", "ArrowUp", "j", "k"].includes(e.key)) {
    e.preventDefault();
    stepDetail(e.key === "ArrowDown" || e.key === "j" ? 1 : -1);
    return;
  }
  if (e.key >= "1" && e.key <= "5") setTab(TABS[Number(e.key) - 1]);
  else if ((e.key === "l" || e.key === "L") && ui.hist) leaveHistory();
  else if (ui.tab === "timeline" && (e.key === "+" || e.key === "=")) timeline.zoom(1 / 1.6);
  else if (ui.tab === "timeline" && e.key === "-") timeline.zoom(1.6);
  else if (ui.tab === "timeline" && e.key === "0") timeline.reset();
}

// ---------------------------------------------------------------- start

let token = "";

function wire() {
  $("#past-list").addEventListener("click", (e) => {
    const row = e.target.closest(".srow");
    if (row) openPastSession(row.dataset.sessionId);
  });
  $("#past-list").addEventListener("keydown", (e) => {
    if (e.key !== "Enter" && e.key !== " ") return;
    const row = e.target.closest(".srow");
    if (row) { e.preventDefault(); openPastSession(row.dataset.sessionId); }
  });
  $("#scope-live").addEventListener("click", () => setScope("live"));
  $("#scope-past").addEventListener("click", () => setScope("past"));
  $("#past-range").innerHTML = SESSION_RANGES.map((r) => `<option value="${r.id}">${esc(r.label)}</option>`).join("");
  try {
    const saved = localStorage.getItem(SCOPE_RANGE_KEY);
    if (rangeById(saved, SESSION_RANGES)) ui.past.range = saved;
  } catch { /* ignore */ }
  $("#past-range").value = ui.past.range;
  $("#past-range").addEventListener("change", (e) => {
    ui.past.range = e.target.value;
    try { localStorage.setItem(SCOPE_RANGE_KEY, ui.past.range); } catch { /* ignore */ }
    loadPastSessions();
  });
  $("#past-refresh").addEventListener("click", loadPastSessions);
  $("#back-to-live").addEventListener("click", leaveHistory);
  $("#history-session-more").addEventListener("click", () => { if (ui.hist && !ui.hist.loading) loadHistoryPages(ui.hist); });
  $("#detail-session").addEventListener("click", () => {
    const ev = ui.detailEvent;
    if (ev && ev.session_id) openPastSession(ev.session_id);
  });
  $(".tabs").addEventListener("keydown", (e) => {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    const i = TABS.indexOf(ui.tab);
    const next = TABS[(i + (e.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length];
    e.preventDefault();
    setTab(next);
    $(`.tabs [data-tab="${next}"]`).focus();
  });
  $("#session-list").addEventListener("click", (e) => {
    const answer = e.target.closest("button[data-answer]");
    if (answer) { answerApproval(answer); return; }
    const row = e.target.closest(".srow");
    if (!row) return;
    selectSession(row.dataset.sessionId || "");
  });
  $("#session-list").addEventListener("keydown", (e) => {
    if (e.key !== "Enter" && e.key !== " ") return;
    if (e.target.closest("button[data-answer]")) return; // the button's own click
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
    new ResizeObserver(() => {
      invalidate("timeline", "tools");
      if (ui.tab === "analytics" && analytics) analytics.render();
    }).observe($(".main"));
  }
}

function start() {
  wire();
  try {
    if (localStorage.getItem(NOTIFY_KEY) === "1" && "Notification" in window
        && Notification.permission === "granted") setNotify(true);
  } catch { /* ignore */ }

  window.mpmdViewer = Object.freeze({
    lastSeq: () => live.maxSeq,
    eventCount: () => live.size,
    historyCount: () => (ui.hist ? ui.hist.store.size : 0),
  });

  token = takeToken();
  invalidate("sessions", "feed", "header", "options");
  if (!token) {
    showNoToken();
    $("#connection").dataset.state = "offline";
    $("#connection .label").textContent = "no token";
    return;
  }
  api = makeApi(token);
  search = new Search({
    api, kindOf,
    projectOf: (ev) => projectFor(ev, live),
    agentLabel: (aid) => live.agentTypes.get(aid) || "subagent",
    onPick: (ev) => showDetail(ev, live),
    onQuery: (q) => { if (ui.tab === "search") setFragmentQuery(q); },
  });
  analytics = new Analytics({
    api,
    onSearch: (q) => { search.run(q); setTab("search"); },
  });
  // A search in the address (#q=…) opens the Search tab on it; else the last tab shown.
  const q = fragmentQuery();
  if (q !== null) {
    search.run(q);
    setTab("search");
  } else {
    let saved = null;
    try { saved = localStorage.getItem(TAB_KEY); } catch { /* ignore */ }
    setTab(TABS.includes(saved) ? saved : "feed");
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
