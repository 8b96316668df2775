// The page's wiring: reads the token, connects, feeds the model, and says which tab and which
// events (live, or a past session) the views show. Each view renders itself from its own
// module (feed.js, sessions.js, tools.js, timeline.js, detail.js, past.js...); pure logic lives
// in model.js, history.js, address.js and the layout halves of timeline.js and charts.js.

import { Store, eventKind, failureToasts, startedWaiting, projectFor, exportFileName } from "./model.js";
import { Connection } from "./connection.js";
import { TimelinePane } from "./timeline.js";
import { makeApi } from "./api.js";
import { Search } from "./search.js";
import { Analytics } from "./analytics.js";
import { tokenOfFragment, queryOfFragment, fragmentOfQuery, sessionOfFragment } from "./address.js";
import { Feed } from "./feed.js";
import { Sessions } from "./sessions.js";
import { Approvals } from "./approvals.js";
import { Tools } from "./tools.js";
import { Toasts, Notifications } from "./toasts.js";
import { Header } from "./header.js";
import { Detail } from "./detail.js";
import { FilterBar } from "./filters.js";
import { PastList, PastSession } from "./past.js";

const TOKEN_KEY = "mpmd-token";
const TAB_KEY = "mpmd-tab";
const TABS = ["feed", "timeline", "tools", "search", "analytics"];
const EVENT_TABS = new Set(["feed", "timeline", "tools"]); // the views of `shown.store`
const EVENT_VIEWS = ["feed", "options", "timeline", "tools", "header", "sessions"];
const BACKLOG = 5000;
const TICK_MS = 1000;
const HEAVY_MS = 200; // the Timeline and Tools redraw at most this often while events stream

const $ = (sel, root = document) => root.querySelector(sel);

// ---------------------------------------------------------------- token, address

function takeToken() {
  const found = tokenOfFragment(location.hash);
  if (found) {
    try { localStorage.setItem(TOKEN_KEY, found.token); } catch { /* private mode */ }
    // The token leaves the address bar; the rest of the fragment (a search: #q=…) stays.
    history.replaceState(null, "", location.pathname + location.search + (found.rest ? `#${found.rest}` : ""));
    return found.token;
  }
  try { return localStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
}

/** Keeps the search query in the address while the Search tab shows (a reload keeps it). */
function setFragmentQuery(q) {
  const hash = fragmentOfQuery(q);
  if ((location.hash || "") !== hash) history.replaceState(null, "", location.pathname + location.search + hash);
}

function showNoToken(title, text) {
  if (title) $("#no-token-title").innerHTML = title;
  if (text) $("#no-token-text").innerHTML = text;
  $("#no-token").hidden = false;
}

// ---------------------------------------------------------------- what is shown

// The wiring's own state; each view keeps its own.
const page = {
  tab: "feed",
  caughtUp: false, // backlog done: new events are live (toasts, notifications)
  snapshotNext: false, // the next sessions message is the daemon's whole table
  token: "",
  tokenChecked: 0,
  conn: null,
  api: null,
  search: null,
  analytics: null,
  focus: null, // the session a link asked for (#session=…), until its events are in
};

// `live` holds what the WebSocket brings; the Activity, Timeline and Tools views show
// `shown.store`: `live`, or a past session loaded from the index (history mode).
const live = new Store();
const liveFilters = { session: "", type: "", tool: "", text: "" };
const shown = {
  gen: 0, // bumped when `store` changes: the views rebuild
  get history() { return pastSession.open; },
  get store() { return pastSession.open ? pastSession.open.store : live; },
  get filters() { return pastSession.open ? pastSession.open.filters : liveFilters; },
};
const kindOf = (rec) => eventKind(rec.ev, live.namespaces);

// ---------------------------------------------------------------- redraws

const redraw = { dirty: new Set(), frame: 0, lastHeavy: { timeline: 0, tools: 0 }, later: {} };

function invalidate(...parts) {
  for (const p of parts) redraw.dirty.add(p);
  if (!redraw.frame) redraw.frame = requestAnimationFrame(flush);
}

function flush() {
  redraw.frame = 0;
  const d = redraw.dirty;
  redraw.dirty = new Set();
  const now = Date.now();
  if (d.has("sessions")) sessions.render(now);
  if (d.has("options")) filterBar.renderOptions();
  if (d.has("feed")) feed.render();
  if (d.has("header")) header.render();
  if (page.tab === "timeline" && d.has("timeline")) throttled("timeline", () => timelinePane.render());
  if (page.tab === "tools" && d.has("tools")) throttled("tools", () => tools.render());
}

function throttled(name, fn) {
  const now = performance.now();
  const wait = HEAVY_MS - (now - redraw.lastHeavy[name]);
  if (wait <= 0) {
    redraw.lastHeavy[name] = now;
    fn();
  } else if (!redraw.later[name]) {
    redraw.later[name] = setTimeout(() => { redraw.later[name] = 0; invalidate(name); }, wait);
  }
}

// ---------------------------------------------------------------- views

const toasts = new Toasts($("#toasts"));
const notifications = new Notifications({ button: $("#notify-toggle"), toasts, onPick: selectSession });
const approvals = new Approvals({ connection: () => page.conn });
const header = new Header({ live, filters: () => shown.filters, inView: () => feed.inView });
const feed = new Feed({
  shown, kindOf, selectedSeq: () => detail.selectedSeq, caughtUp: () => page.caughtUp,
  onPick: (seq) => detail.open(seq),
});
const detail = new Detail({
  shown, kindOf, feed, search: () => page.search, toasts,
  showsEvents: () => EVENT_TABS.has(page.tab), showsSearch: () => page.tab === "search",
  onOpenSession: openPastSession,
});
const sessions = new Sessions({
  live, approvals,
  selected: () => (pastSession.open ? null : liveFilters.session),
  showsTotal: () => pastList.scope === "live",
  onSelect: selectSession,
});
const filterBar = new FilterBar({ shown, onChange: filtersChanged });
const tools = new Tools({ shown });
const timelinePane = new TimelinePane({
  shown, kindOf,
  onPick: (seq) => detail.open(seq),
  onViewChange: () => { redraw.lastHeavy.timeline = 0; invalidate("timeline"); },
});
const pastList = new PastList({
  api: () => page.api, live,
  openId: () => (pastSession.open ? pastSession.open.id : null),
  onOpen: openPastSession,
  onLive: () => sessions.render(Date.now()),
});
const pastSession = new PastSession({
  api: () => page.api, live, invalidate,
  showsEvents: () => EVENT_TABS.has(page.tab),
  onLoaded: () => { if (pastList.scope === "past") pastList.render(); },
  onBack: leaveHistory,
});

function selectSession(id) {
  if (pastSession.open) leaveHistory();
  if (!EVENT_TABS.has(page.tab)) setTab("feed");
  if (shown.filters.session === id) return;
  filterBar.setSession(id);
  filtersChanged();
}

/** Once the backlog is in: the session a link asked for gets its option in the Session select
 * (the select offers the sessions of the events loaded), unless the person moved on. */
function refocus() {
  const id = page.focus;
  page.focus = null;
  if (pastSession.open || liveFilters.session !== id) return;
  filterBar.renderOptions();
  filterBar.setSession(id);
}

function filtersChanged() {
  sessions.render(Date.now());
  invalidate("feed", "timeline", "tools", "header");
}

function openPastSession(id) {
  const h = pastSession.begin(id);
  viewChanged();
  if (!EVENT_TABS.has(page.tab)) setTab("feed");
  detail.close();
  pastSession.load(h);
}

function leaveHistory() {
  if (!pastSession.end()) return;
  viewChanged();
  detail.close();
  if (pastList.scope !== "live") pastList.setScope("live");
}

/** `shown.store` changed: every view of it rebuilds, and the filter selects show its values. */
function viewChanged() {
  shown.gen++;
  feed.stick = true;
  filterBar.reset();
  timelinePane.forgetView();
  $(".main").dataset.mode = pastSession.open ? "history" : "live";
  pastSession.renderBanner();
  sessions.render(Date.now());
  if (pastList.scope === "past") pastList.render();
  invalidate(...EVENT_VIEWS);
}

function exportView() {
  const events = shown.store.filtered(shown.filters).map((r) => r.ev);
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
  if (!EVENT_TABS.has(page.tab)) return;
  shown.store.clear();
  detail.close();
  invalidate(...EVENT_VIEWS);
}

// ---------------------------------------------------------------- messages

function onMessage(msg) {
  switch (msg.type) {
    case "hello":
      if (page.conn && page.conn.state !== "live") {
        header.label(page.conn.state === "reconnecting" ? "catching up" : "loading");
      }
      if (msg.namespaces && typeof msg.namespaces === "object") {
        Object.assign(live.namespaces, msg.namespaces);
      }
      if (typeof msg.last_seq === "number" && msg.last_seq < live.maxSeq) {
        // Another journal behind this port (a new state folder): start over.
        live.reset();
        page.conn.send(subscription());
        invalidate(...EVENT_VIEWS);
      }
      break;
    case "sessions": {
      // The first table after a subscribe (or a lag) is the whole table: sessions the
      // daemon no longer keeps go; later ones only carry the sessions a batch changed.
      const changes = live.applySessions(msg.sessions, { replace: page.snapshotNext });
      page.snapshotNext = false;
      if (page.caughtUp && notifications.on) {
        for (const { session, before } of changes) {
          if (startedWaiting(before, session)) {
            notifications.permission(session, session.project || live.projectOf(session.session_id));
          }
        }
      }
      invalidate("sessions", "options", "header", "timeline");
      detail.refreshUsage(live);
      break;
    }
    case "events": {
      const added = live.applyEvents(msg.events || [], msg.bytes || 0);
      if (!added.length) break;
      if (page.caughtUp) onLiveEvents(added);
      invalidate(...EVENT_VIEWS);
      break;
    }
    case "live":
      page.caughtUp = true;
      if (page.focus) refocus();
      header.lagged = false;
      invalidate("header", "feed");
      break;
    case "gap":
      // The daemon no longer has these events (neither in memory nor in the journal).
      toasts.show({ kind: "server", title: "Some events are no longer available",
                    text: `Events after seq ${msg.after} up to ${Number(msg.next_seq) - 1} were skipped.` });
      break;
    case "lagged":
      page.caughtUp = false;
      header.lagged = true;
      page.snapshotNext = true;
      invalidate("header");
      break;
    case "approvals": {
      const fresh = approvals.apply(msg.approvals);
      if (notifications.on) {
        for (const a of fresh) notifications.approval(a, live.projectOf(a.session_id));
      }
      invalidate("sessions");
      break;
    }
    case "error":
      toasts.show({ kind: "server", title: "The daemon refused a message", text: msg.message || "" });
      break;
    default:
      break;
  }
}

function onLiveEvents(recs) {
  for (const t of failureToasts(recs, (id) => live.projectOf(id))) {
    toasts.show(t);
    notifications.failure(t);
  }
}

function subscription() {
  page.snapshotNext = true;
  return { type: "subscribe", after: live.maxSeq || null, backlog: BACKLOG };
}

// ---------------------------------------------------------------- connection

function onState(state, info) {
  header.connection(state, info);
  if (state !== "live") page.caughtUp = false;
  if (state !== "live" && info && info.attempt >= 2) checkToken();
  invalidate("header");
}

async function checkToken() {
  const now = Date.now();
  if (now - page.tokenChecked < 15000) return;
  page.tokenChecked = now;
  try {
    const res = await fetch("/api/status", { headers: { Authorization: `Bearer ${page.token}` } });
    if (res.status === 401 || res.status === 403) {
      page.conn.stop("offline");
      try { localStorage.removeItem(TOKEN_KEY); } catch { /* ignore */ }
      showNoToken("The daemon refused this page's token",
        "Open the viewer again with <code>mpmd open</code>: it carries the current token.");
    }
  } catch { /* daemon down: keep retrying */ }
}

// ---------------------------------------------------------------- tabs, overlays, keys

function setTab(tab) {
  if (!TABS.includes(tab)) return;
  const before = page.tab;
  page.tab = tab;
  for (const b of document.querySelectorAll(".tabs [data-tab]")) {
    b.setAttribute("aria-selected", String(b.dataset.tab === tab));
    b.tabIndex = b.dataset.tab === tab ? 0 : -1;
  }
  for (const t of TABS) $(`#pane-${t}`).hidden = tab !== t;
  const events = EVENT_TABS.has(tab);
  $(".filters").hidden = !events;
  $(".actions").hidden = !events;
  if (before !== tab && (EVENT_TABS.has(before) !== events)) detail.close();
  pastSession.renderBanner();
  try { localStorage.setItem(TAB_KEY, tab); } catch { /* ignore */ }
  const { search, analytics } = page;
  if (search) setFragmentQuery(tab === "search" && search.query ? search.query : null);
  if (tab === "search" && search) search.shown();
  else if (tab === "analytics" && before !== "analytics" && analytics) analytics.load();
  if (!events) return;
  redraw.lastHeavy[tab] = 0;
  if (tab === "feed") feed.follow();
  invalidate(tab);
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
      const box = page.tab === "search" ? $("#hsearch") : $("#search");
      if (page.tab !== "search" && !EVENT_TABS.has(page.tab)) setTab("feed");
      box.focus();
      box.select();
      return;
    }
    if (k === "e") { e.preventDefault(); exportView(); return; }
    if (k === "r") { e.preventDefault(); clearView(); return; }
  }
  if (e.key === "Escape") {
    if (!$("#help").hidden) { toggleHelp(false); e.preventDefault(); return; }
    if (!detail.hidden) { detail.close(); e.preventDefault(); return; }
    if (e.target === $("#search") || e.target === $("#hsearch")) { e.target.blur(); return; }
    return;
  }
  if (mod || e.altKey || typing(e)) return;
  if (e.key === "?") { e.preventDefault(); toggleHelp(); return; }
  if (!detail.hidden && ["ArrowDown", "ArrowUp", "j", "k"].includes(e.key)) {
    e.preventDefault();
    detail.step(e.key === "ArrowDown" || e.key === "j" ? 1 : -1);
    return;
  }
  if (e.key >= "1" && e.key <= "5") setTab(TABS[Number(e.key) - 1]);
  else if ((e.key === "l" || e.key === "L") && pastSession.open) leaveHistory();
  else if (page.tab === "timeline" && (e.key === "+" || e.key === "=")) timelinePane.zoomIn();
  else if (page.tab === "timeline" && e.key === "-") timelinePane.zoomOut();
  else if (page.tab === "timeline" && e.key === "0") timelinePane.fit();
}

// ---------------------------------------------------------------- start

function wire() {
  $(".tabs").addEventListener("keydown", (e) => {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    const i = TABS.indexOf(page.tab);
    const next = TABS[(i + (e.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length];
    e.preventDefault();
    setTab(next);
    $(`.tabs [data-tab="${next}"]`).focus();
  });
  for (const b of document.querySelectorAll(".tabs [data-tab]")) {
    b.addEventListener("click", () => setTab(b.dataset.tab));
  }
  $("#export").addEventListener("click", exportView);
  $("#clear").addEventListener("click", clearView);
  $("#help-button").addEventListener("click", () => toggleHelp());
  $("#help").addEventListener("click", (e) => {
    if (e.target === $("#help") || e.target.closest("[data-close]")) toggleHelp(false);
  });
  $("#connection").addEventListener("click", () => page.conn && page.conn.retryNow());
  document.addEventListener("keydown", onKey);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && page.conn) page.conn.retryNow();
  });
  if (typeof ResizeObserver === "function") {
    new ResizeObserver(() => {
      invalidate("timeline", "tools");
      if (page.tab === "analytics" && page.analytics) page.analytics.render();
    }).observe($(".main"));
  }
}

function start() {
  wire();
  notifications.restore();

  window.mpmdViewer = Object.freeze({
    lastSeq: () => live.maxSeq,
    eventCount: () => live.size,
    historyCount: () => (pastSession.open ? pastSession.open.store.size : 0),
  });

  page.token = takeToken();
  invalidate("sessions", "feed", "header", "options");
  if (!page.token) {
    showNoToken();
    header.noToken();
    return;
  }
  const api = page.api = makeApi(page.token);
  const search = page.search = new Search({
    api, kindOf,
    projectOf: (ev) => projectFor(ev, live),
    agentLabel: (aid) => live.agentTypes.get(aid) || "subagent",
    onPick: (ev) => detail.show(ev, live),
    onQuery: (q) => { if (page.tab === "search") setFragmentQuery(q); },
  });
  page.analytics = new Analytics({
    api,
    onSearch: (q) => { search.run(q); setTab("search"); },
    onOpenSession: openPastSession,
  });
  // A session in the address (#session=…: a notification's link) shows it in the Activity
  // feed; a search (#q=…) opens the Search tab on it; else the last tab shown.
  const q = queryOfFragment(location.hash);
  const focus = sessionOfFragment(location.hash);
  if (focus !== null) {
    setTab("feed");
    selectSession(focus);
    page.focus = focus;
  } else if (q !== null) {
    search.run(q);
    setTab("search");
  } else {
    let saved = null;
    try { saved = localStorage.getItem(TAB_KEY); } catch { /* ignore */ }
    setTab(TABS.includes(saved) ? saved : "feed");
  }
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  page.conn = new Connection({
    url: `${proto}//${location.host}/ws?token=${encodeURIComponent(page.token)}`,
    subscription, onMessage, onState,
  });
  page.conn.start();
  // A link to another session followed in this very tab changes only the fragment.
  window.addEventListener("hashchange", () => {
    const id = sessionOfFragment(location.hash);
    if (id !== null) selectSession(id);
  });

  // Health, durations and the timeline's "now" move with the clock.
  setInterval(() => {
    sessions.render(Date.now());
    header.render();
    if (page.tab === "timeline" && !timelinePane.hovered && timelinePane.moves()) invalidate("timeline");
  }, TICK_MS);
}

start();
