// Pure state of the viewer: no DOM, no timers, no network. app.js feeds it the server's
// messages and the view modules read views out of it; everything here can be checked under
// node (tests/js/).
//
//   Store            events (bounded, by seq), sessions table, tool spans, agent types
//   health()         a session's health from the page clock
//   compileFilter()  the filters (session, event type or all but usage, tool, text search)
//   toolStats()      count, success rate, median duration per tool
//   feedBlocks()     feed rows grouped into subagent blocks
//   eventKind()      the color class of an event's line, tick and chip
//   failureToasts()  what a batch of live failures shows; the notifications' texts
//   sessionUsage()   a session's cost and tokens as its row says them; usageBreakdown()

export const IDLE_MS = 5 * 60 * 1000;
export const STALE_MS = 15 * 60 * 1000;
export const MAX_EVENTS = 20000;
export const MAX_BYTES = 100 * 1024 * 1024; // of event JSON held, roughly (a few huge Writes)

export const HEALTH_LABEL = {
  active: "active",
  "needs-you": "needs you",
  idle: "idle",
  stale: "stale",
  ended: "ended",
};

const TOOL_END = { PostToolUse: "ok", PostToolUseFailure: "failed" };

/** mpmd's events of what a session cost, read off its transcript (one per API response). */
export const USAGE_EVENTS = new Set(["ModelUsage", "CostReport"]);
/** The event type filter's "All but usage": no event type is spelled so. */
export const NO_USAGE = "-usage";

/** Milliseconds since the epoch of an ISO time with any number of fraction digits, or NaN. */
export function parseTime(iso) {
  if (typeof iso !== "string" || !iso) return NaN;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/.exec(iso);
  if (!m) return Date.parse(iso);
  const frac = m[2] ? "." + (m[2] + "00").slice(0, 3) : "";
  return Date.parse(m[1] + frac + (m[3] || "Z"));
}

/** A session's health: ended, needs-you, stale, idle or active (docs/viewer.md). */
export function health(session, now) {
  if (!session) return "active";
  if (session.ended_at) return "ended";
  if (Array.isArray(session.pending) && session.pending.length) return "needs-you";
  const last = parseTime(session.last_event_at || session.started_at);
  if (!Number.isFinite(last)) return "active";
  const quiet = now - last;
  if (quiet >= STALE_MS) return "stale";
  if (quiet >= IDLE_MS) return "idle";
  return "active";
}

/** How long a session has run: to its end, to its last event once stale, else to now. */
export function sessionDuration(session, now) {
  const start = parseTime(session.started_at);
  if (!Number.isFinite(start)) return NaN;
  let end;
  if (session.ended_at) end = parseTime(session.ended_at);
  else if (health(session, now) === "stale") end = parseTime(session.last_event_at);
  else end = now;
  if (!Number.isFinite(end)) end = now;
  return Math.max(0, end - start);
}

/** "850 ms", "4.2 s", "3m 07s", "2h 05m", "3d 4h". */
export function formatDuration(ms) {
  if (!Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const total = Math.floor(s);
  const d = Math.floor(total / 86400), h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60), sec = total % 60;
  const two = (n) => String(n).padStart(2, "0");
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${two(m)}m`;
  return `${m}m ${two(sec)}s`;
}

export function median(values) {
  if (!values.length) return NaN;
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** The text of a failure: what a toast or a notification says. */
export function errorText(ev) {
  const p = ev && typeof ev.payload === "object" && ev.payload ? ev.payload : {};
  if (ev.event_type === "StopFailure") {
    const parts = [p.error, p.error_details].filter((x) => typeof x === "string" && x);
    if (parts.length) return parts.join(": ");
  }
  if (typeof p.error === "string" && p.error) return p.error;
  return ev.error || ev.summary || ev.event_type;
}

/** The last path component of a folder, the way the server names projects. */
export function projectOf(cwd) {
  if (typeof cwd !== "string" || !cwd) return "";
  const parts = cwd.replace(/[\\/]+$/, "").split(/[\\/]/);
  return parts[parts.length - 1] || cwd;
}

/**
 * One loaded event. `ev` is the stored event exactly as the server sent it (export writes it
 * back unchanged); the rest is derived once.
 */
export class Rec {
  constructor(ev) {
    this.ev = ev;
    this.seq = ev.seq;
    this.t = parseTime(ev.timestamp || ev.received_at);
    if (!Number.isFinite(this.t)) this.t = parseTime(ev.received_at);
    this._hay = null;
    this.bytes = 0;
  }
  /** Lower-case text the search looks in: summary, type, tool and the payload as JSON. */
  get haystack() {
    if (this._hay === null) {
      const ev = this.ev;
      let payload = "";
      try {
        payload = ev.payload === undefined ? (ev.raw || "") : JSON.stringify(ev.payload);
      } catch {
        payload = "";
      }
      this._hay = [ev.summary, ev.event_type, ev.tool_name, payload]
        .filter(Boolean).join("\n").toLowerCase();
    }
    return this._hay;
  }
}

export class Store {
  constructor({ maxEvents = MAX_EVENTS, maxBytes = MAX_BYTES } = {}) {
    this.maxEvents = maxEvents;
    this.maxBytes = maxBytes;
    this.bytes = 0; // JSON size of the events held, from the messages they came in
    this.recs = []; // in seq order
    this.bySeq = new Map(); // seq -> Rec
    this.maxSeq = 0; // highest seq ever received, kept across clear() so a resume skips them
    this.sessions = new Map(); // session_id -> server's session object
    this.spans = new Map(); // tool_use_id -> span
    this.agentTypes = new Map(); // agent_id -> agent_type
    this.eventTypes = new Set();
    this.toolNames = new Set();
    this.sessionIds = new Set(); // of loaded events
    this.cwdOf = new Map(); // session_id -> first cwd seen in its events
    this.namespaces = {}; // event type -> namespace, from the server's `hello` (always first)
    this.version = 0; // bumped on every change a view must redraw for
    this.resetVersion = 0; // bumped when events are removed (views rebuild, not append)
  }

  get size() { return this.recs.length; }

  /**
   * Adds the events not held yet; returns the Recs added, in seq order. `bytes`: the size of
   * the message they came in (shared out evenly, to bound memory by size as well as count).
   */
  applyEvents(events, bytes = 0) {
    const added = [];
    let outOfOrder = false;
    const each = events.length ? bytes / events.length : 0;
    for (const ev of events) {
      if (!ev || typeof ev.seq !== "number") continue;
      if (this.bySeq.has(ev.seq) || ev.seq <= this.floorSeq()) continue;
      const rec = new Rec(ev);
      rec.bytes = each;
      this.bytes += each;
      if (this.recs.length && ev.seq < this.recs[this.recs.length - 1].seq) outOfOrder = true;
      this.recs.push(rec);
      this.bySeq.set(ev.seq, rec);
      if (ev.seq > this.maxSeq) this.maxSeq = ev.seq;
      this._index(rec);
      added.push(rec);
    }
    if (outOfOrder) {
      this.recs.sort((a, b) => a.seq - b.seq);
      this.resetVersion++;
    }
    if (added.length) this.version++;
    this._trim();
    return added;
  }

  /**
   * Seqs at or below this were held once and dropped (cap or clear): a copy sent again is not
   * shown again.
   */
  floorSeq() { return this._floor || 0; }

  _index(rec) {
    const ev = rec.ev;
    if (ev.event_type) this.eventTypes.add(ev.event_type);
    if (ev.tool_name) this.toolNames.add(ev.tool_name);
    if (ev.session_id) {
      this.sessionIds.add(ev.session_id);
      if (ev.cwd && !this.cwdOf.has(ev.session_id)) this.cwdOf.set(ev.session_id, ev.cwd);
    }
    if (ev.agent_id) {
      const type = ev.payload && typeof ev.payload === "object" ? ev.payload.agent_type : null;
      if (typeof type === "string" && type) this.agentTypes.set(ev.agent_id, type);
    }
    const id = ev.tool_use_id;
    const role = ev.event_type === "PreToolUse" ? "pre" : TOOL_END[ev.event_type] ? "end" : null;
    if (!id || !role) return;
    let span = this.spans.get(id);
    if (!span) {
      span = { tool_use_id: id, tool_name: ev.tool_name || "?", session_id: ev.session_id,
               agent_id: ev.agent_id || null, pre: null, end: null, status: "open" };
      this.spans.set(id, span);
    }
    if (role === "pre") span.pre = rec;
    else {
      span.end = rec;
      span.status = TOOL_END[ev.event_type];
    }
    if (ev.tool_name) span.tool_name = ev.tool_name;
  }

  _unindex(rec) {
    const id = rec.ev.tool_use_id;
    const span = id && this.spans.get(id);
    if (!span) return;
    if (span.pre === rec) span.pre = null;
    if (span.end === rec) span.end = null;
    if (!span.pre && !span.end) this.spans.delete(id);
  }

  _trim() {
    let n = 0;
    const over = this.recs.length - this.maxEvents;
    // Drop a little more than needed so trimming happens in chunks, not on every event.
    if (over > 0) n = over + Math.ceil(this.maxEvents * 0.05);
    if (this.bytes > this.maxBytes) {
      let bytes = this.bytes;
      let i = 0;
      while (i < this.recs.length - 1 && bytes > this.maxBytes * 0.95) bytes -= this.recs[i++].bytes;
      n = Math.max(n, i);
    }
    n = Math.min(n, this.recs.length);
    if (n <= 0) return;
    const dropped = this.recs.splice(0, n);
    for (const rec of dropped) {
      this.bySeq.delete(rec.seq);
      this.bytes -= rec.bytes;
      this._unindex(rec);
    }
    this._floor = Math.max(this.floorSeq(), dropped[dropped.length - 1].seq);
    this.resetVersion++;
    this.version++;
  }

  /** Forgets the loaded events (not the sessions table); a resume continues after maxSeq. */
  clear() {
    this.recs = [];
    this.bytes = 0;
    this.bySeq.clear();
    this.spans.clear();
    this.eventTypes.clear();
    this.toolNames.clear();
    this.sessionIds.clear();
    this._floor = this.maxSeq;
    this.resetVersion++;
    this.version++;
  }

  /** Forgets everything, resume position included (the daemon's journal is another one). */
  reset() {
    this.clear();
    this.maxSeq = 0;
    this._floor = 0;
    this.sessions.clear();
    this.agentTypes.clear();
    this.cwdOf.clear();
  }

  /**
   * Merges session objects by session_id (replace: `list` is the whole table, others go);
   * returns [{session, before}] for the ones in `list`, `before` being the previous object
   * or null.
   */
  applySessions(list, { replace = false } = {}) {
    const changes = [];
    if (replace) {
      const keep = new Set((list || []).map((s) => s && s.session_id));
      for (const id of [...this.sessions.keys()]) {
        if (!keep.has(id)) { this.sessions.delete(id); this.version++; }
      }
    }
    for (const s of list || []) {
      if (!s || !s.session_id) continue;
      const before = this.sessions.get(s.session_id) || null;
      this.sessions.set(s.session_id, s);
      for (const a of s.agents || []) {
        if (a && a.agent_id && a.agent_type) this.agentTypes.set(a.agent_id, a.agent_type);
      }
      changes.push({ session: s, before });
    }
    if (changes.length) this.version++;
    return changes;
  }

  /** Sessions newest activity first. */
  sessionList() {
    const key = (s) => parseTime(s.last_event_at || s.started_at) || 0;
    return [...this.sessions.values()].sort((a, b) => key(b) - key(a)
      || String(a.session_id).localeCompare(String(b.session_id)));
  }

  namespaceOf(type) { return this.namespaces[type] || "system"; }

  projectOf(sessionId) {
    const s = this.sessions.get(sessionId);
    if (s && s.project) return s.project;
    if (s && s.cwd) return projectOf(s.cwd);
    const cwd = this.cwdOf.get(sessionId);
    if (cwd) return projectOf(cwd);
    return sessionId ? String(sessionId).slice(0, 8) : "?";
  }

  agentLabel(agentId) {
    const type = this.agentTypes.get(agentId);
    return type ? `${type} · ${agentId}` : `subagent · ${agentId}`;
  }

  /** The loaded events that pass the filters, in seq order. */
  filtered(filters) {
    if (isEmptyFilter(filters)) return this.recs;
    const f = compileFilter(filters);
    return this.recs.filter(f);
  }

  /**
   * Tool spans whose events pass the filters: {span, start, end, open, status}. A span with
   * no end is open until `now` (or the session's end); a span known only by its end starts
   * duration_ms before it.
   */
  spanList(filters, now) {
    const f = compileFilter(filters);
    const out = [];
    for (const span of this.spans.values()) {
      if (!((span.pre && f(span.pre)) || (span.end && f(span.end)))) continue;
      const g = spanGeometry(span, now, this.sessions.get(span.session_id));
      if (g) out.push(g);
    }
    out.sort((a, b) => a.start - b.start);
    return out;
  }
}

export function isEmptyFilter(filters) {
  return !filters || (!filters.session && !filters.type && !filters.tool && !filters.text);
}

/** The filters as one predicate over Recs; type NO_USAGE: every event but the usage lines. */
export function compileFilter(filters = {}) {
  const session = filters.session || "";
  const type = filters.type || "";
  const tool = filters.tool || "";
  const words = String(filters.text || "").toLowerCase().split(/\s+/).filter(Boolean);
  return (rec) => {
    const ev = rec.ev;
    if (session && ev.session_id !== session) return false;
    if (type === NO_USAGE) {
      if (USAGE_EVENTS.has(ev.event_type)) return false;
    } else if (type && ev.event_type !== type) return false;
    if (tool && ev.tool_name !== tool) return false;
    if (words.length) {
      const hay = rec.haystack;
      for (const w of words) if (!hay.includes(w)) return false;
    }
    return true;
  };
}

/** Duration of a tool call: payload.duration_ms of its end, else end - start. */
export function spanDuration(span) {
  const p = span.end && span.end.ev.payload;
  if (p && typeof p === "object" && typeof p.duration_ms === "number" && p.duration_ms >= 0) {
    return p.duration_ms;
  }
  if (span.pre && span.end && Number.isFinite(span.pre.t) && Number.isFinite(span.end.t)) {
    return Math.max(0, span.end.t - span.pre.t);
  }
  return NaN;
}

export function spanGeometry(span, now, session) {
  const dur = spanDuration(span);
  let start, end;
  const open = !span.end;
  if (span.pre) start = span.pre.t;
  if (span.end) end = span.end.t;
  if (open) {
    end = now;
    const endedAt = session && session.ended_at ? parseTime(session.ended_at) : NaN;
    if (Number.isFinite(endedAt) && endedAt >= start) end = endedAt;
  }
  if (!Number.isFinite(start)) start = Number.isFinite(dur) ? end - dur : end;
  if (!Number.isFinite(start) || !Number.isFinite(end)) return null;
  if (end < start) end = start;
  const last = span.end || span.pre;
  return {
    span, start, end, open, status: span.status, duration: dur,
    tool_use_id: span.tool_use_id, tool_name: span.tool_name,
    session_id: span.session_id, agent_id: span.agent_id,
    summary: last.ev.summary || `${span.tool_name}`,
  };
}

/**
 * Per tool: calls (distinct tool_use_ids seen with PreToolUse/PostToolUse/PostToolUseFailure),
 * finished, ok, failed, success rate over finished calls, median duration of finished calls.
 * Sorted by calls, most first.
 */
export function toolStats(store, filters = {}) {
  const f = compileFilter({ session: filters.session });
  const by = new Map();
  const row = (name) => {
    let r = by.get(name);
    if (!r) {
      r = { tool: name, count: 0, ok: 0, failed: 0, open: 0, durations: [] };
      by.set(name, r);
    }
    return r;
  };
  for (const span of store.spans.values()) {
    if (!((span.pre && f(span.pre)) || (span.end && f(span.end)))) continue;
    const r = row(span.tool_name);
    r.count++;
    if (span.status === "ok") r.ok++;
    else if (span.status === "failed") r.failed++;
    else r.open++;
    if (span.end) {
      const d = spanDuration(span);
      if (Number.isFinite(d)) r.durations.push(d);
    }
  }
  const rows = [...by.values()].map((r) => ({
    tool: r.tool, count: r.count, ok: r.ok, failed: r.failed, open: r.open,
    successRate: r.ok + r.failed ? r.ok / (r.ok + r.failed) : NaN,
    median: median(r.durations),
  }));
  rows.sort((a, b) => b.count - a.count || a.tool.localeCompare(b.tool));
  return rows;
}

export function formatRate(rate) {
  return Number.isFinite(rate) ? `${Math.round(rate * 100)}%` : "—";
}

/**
 * Feed rows in order, grouped: consecutive events of one subagent (same session and agent_id)
 * form one block. Returns [{agentId|null, sessionId, recs: [...]}].
 */
export function feedBlocks(recs) {
  const blocks = [];
  let cur = null;
  for (const rec of recs) {
    const agentId = rec.ev.agent_id || null;
    const key = agentId ? `${rec.ev.session_id}\u0000${agentId}` : null;
    if (!cur || cur.key !== key) {
      cur = { key, agentId, sessionId: rec.ev.session_id, recs: [] };
      blocks.push(cur);
    }
    cur.recs.push(rec);
  }
  return blocks;
}

/** The export file's name: mpmd-export-<ISO time>.json, colons made dashes for file systems. */
export function exportFileName(now) {
  return `mpmd-export-${new Date(now).toISOString().replace(/:/g, "-")}.json`;
}

/** What a session needs the person for, as one short line: "Bash rm -rf node_modules (+1 more)"
 * for a permission, the dialog's text ("Claude is waiting for your input") for the rest. */
export function pendingText(pending) {
  if (!Array.isArray(pending) || !pending.length) return "";
  const first = pending[0] || {};
  const tool = first.tool_name || "";
  const detail = first.detail || first.message || "";
  // A detail taken from a notification's message may name the tool already.
  const text = first.kind === "input" ? detail || "your input"
    : (tool && detail.includes(tool) ? detail : [tool, detail].filter(Boolean).join(" "))
      || "a permission";
  return pending.length > 1 ? `${text} (+${pending.length - 1} more)` : text;
}

/** True when a session went from needing nothing to needing the person. */
export function startedWaiting(before, after) {
  const was = before && Array.isArray(before.pending) && before.pending.length > 0;
  const is = after && Array.isArray(after.pending) && after.pending.length > 0;
  return !was && is;
}

/**
 * The color class of an event: failed, denied, permission, usage (what a session cost, shown
 * quietly), or its namespace (tool, agent…).
 */
export function eventKind(ev, namespaces = {}) {
  const t = ev.event_type;
  if (t === "PostToolUseFailure" || t === "StopFailure") return "failed";
  if (t === "PermissionDenied") return "denied";
  if (USAGE_EVENTS.has(t)) return "usage";
  if (t === "PermissionRequest" || (t === "Notification" && ev.payload
      && ev.payload.notification_type === "permission_prompt")) return "permission";
  return namespaces[t] || "system";
}

const two = (n) => String(n).padStart(2, "0");

/** "10:04:05" (local time), "10:04:05.123" with milliseconds; "" for no time. */
export function fmtClock(t, withMs = false) {
  if (!Number.isFinite(t)) return "";
  const d = new Date(t);
  const s = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  return withMs ? `${s}.${String(d.getMilliseconds()).padStart(3, "0")}` : s;
}

/** A session's start: "10:04" today, "Nov 21 10:04" another day. */
export function fmtStart(t, now) {
  if (!Number.isFinite(t)) return "";
  const d = new Date(t), n = new Date(now);
  const hm = `${two(d.getHours())}:${two(d.getMinutes())}`;
  if (d.toDateString() === n.toDateString()) return hm;
  return `${d.toLocaleDateString(undefined, { month: "short", day: "numeric" })} ${hm}`;
}

/** How many sessions are active and how many need the person, by health(). */
export function healthCounts(sessions, now) {
  const counts = { active: 0, "needs-you": 0 };
  for (const s of sessions) {
    const h = health(s, now);
    if (h in counts) counts[h]++;
  }
  return counts;
}

/** The project an event belongs to: the sessions table's name (of `store`), else its folder's. */
export function projectFor(ev, store) {
  if (store.sessions.has(ev.session_id) || !ev.cwd) return store.projectOf(ev.session_id);
  return projectOf(ev.cwd);
}

/**
 * What the filter selects offer for the events of `store`: {session, type, tool}, each a
 * sorted list of {value, label} (type's led by "All but usage").
 */
export function filterOptions(store) {
  const ids = new Set([...store.sessions.keys(), ...store.sessionIds]);
  const session = [...ids].map((id) => ({ value: id, label: `${store.projectOf(id)} · ${String(id).slice(0, 8)}` }))
    .sort((a, b) => a.label.localeCompare(b.label));
  // Usage lines come one per API response: the first choice after all of them is without.
  const type = [{ value: NO_USAGE, label: "All but usage" },
                ...[...store.eventTypes].sort().map((t) => ({ value: t, label: t }))];
  const tool = [...store.toolNames].sort().map((t) => ({ value: t, label: t }));
  return { session, type, tool };
}

/** The Recs at the end of `recs` (in seq order) whose seq is above `seq`. */
export function recsAfter(recs, seq) {
  let i = recs.length;
  while (i > 0 && recs[i - 1].seq > seq) i--;
  return recs.slice(i);
}

/**
 * What the Activity view says when no line shows. loaded: events held; caughtUp: the backlog
 * is done; history: the past session shown ({loading, error}), or null for the live events.
 */
export function emptyFeedText({ loaded, caughtUp, history = null }) {
  if (loaded) return "No events match the filters.";
  if (history) {
    return history.error ? history.error
      : history.loading ? "Loading the session…" : "The index holds no events of this session.";
  }
  return caughtUp ? "Waiting for events…" : "Loading…";
}

export const TOASTS_PER_BATCH = 3;

/**
 * The toasts of a batch of live events: one per failed tool call or turn, the first few of
 * them, then one that counts the rest, so a burst stays readable. projectOf(sessionId): the
 * project's name. Each toast: {kind, title, text, detail, seq, sessionId, notify}; `notify`:
 * worth a desktop notification too (a failed tool call).
 */
export function failureToasts(recs, projectOf, perBatch = TOASTS_PER_BATCH) {
  const failures = recs.filter((r) => r.ev.event_type === "PostToolUseFailure"
    || r.ev.event_type === "StopFailure");
  const out = failures.slice(0, perBatch).map((rec) => {
    const ev = rec.ev;
    const what = ev.event_type === "StopFailure" ? "Turn failed" : `${ev.tool_name || "Tool"} failed`;
    return { kind: "error", title: `${what} · ${projectOf(ev.session_id)}`, text: errorText(ev),
             detail: ev.summary, seq: rec.seq, sessionId: ev.session_id,
             notify: ev.event_type === "PostToolUseFailure" };
  });
  const rest = failures.slice(perBatch);
  if (rest.length) {
    const projects = [...new Set(rest.map((r) => projectOf(r.ev.session_id)))];
    out.push({ kind: "error", title: `${rest.length} more failure${rest.length === 1 ? "" : "s"}`,
               text: `in ${projects.slice(0, 5).join(", ")}${projects.length > 5 ? ", …" : ""}` });
  }
  return out;
}

/** The desktop notification of a session that started waiting: {title, body, tag}. */
export function permissionNotice(session, project) {
  const what = (session.pending[0] || {}).kind === "input" ? "Input needed" : "Permission needed";
  return { title: `${what} · ${project}`, body: pendingText(session.pending),
           tag: `perm-${session.session_id}` };
}

/** The desktop notification of a request held for an answer from the page: {title, body, tag}. */
export function approvalNotice(approval, project) {
  return { title: `Approve or deny · ${project}`,
           body: [approval.tool_name, approval.detail].filter(Boolean).join(" "),
           tag: `approval-${approval.seq}` };
}

// ---------------------------------------------------------------- cost and tokens

// A field the table lacks, or of the wrong type, counts nothing (an older daemon's table).
const count = (x) => (typeof x === "number" && Number.isFinite(x) && x > 0 ? x : 0);
const usdOrNull = (x) => (typeof x === "number" && Number.isFinite(x) && x >= 0 ? x : null);

/** A whole count with thousands separators, "16,045", en-US whatever the browser's language
 * (as the summaries the daemon writes: "2,563 in"). */
export function formatCount(n) {
  return Math.round(count(n)).toLocaleString("en-US");
}

/** An amount for a row: "$0.07", "<$0.01", "$12.34", "$1,235"; "" for no amount. */
export function formatUsd(usd) {
  if (usdOrNull(usd) === null) return "";
  if (usd === 0) return "$0.00";
  if (usd < 0.01) return "<$0.01";
  if (usd < 999.995) return `$${usd.toFixed(2)}`;
  return `$${formatCount(usd)}`;
}

/** An amount to the hundredth of a cent, for tooltips and tables: "$0.0105"; "" for none. */
export function formatUsdPrecise(usd) {
  if (usdOrNull(usd) === null) return "";
  if (usd > 0 && usd < 0.00005) return "<$0.0001";
  return `$${usd.toLocaleString("en-US", { minimumFractionDigits: 4, maximumFractionDigits: 4 })}`;
}

/** A token count in a few characters: "999", "1.2k", "16k", "1.2M", "16M". */
export function formatTokens(n) {
  n = count(n);
  if (n < 999.5) return String(Math.round(n));
  // The unit is picked so the rounded figure stays under 1000 of it (999,999 is "1M").
  const [unit, size] = n < 999_500 ? ["k", 1e3] : n < 999_500_000 ? ["M", 1e6] : ["B", 1e9];
  const v = n / size;
  return `${v < 9.95 ? Number(v.toFixed(1)) : Math.round(v)}${unit}`;
}

/** Tokens by kind of a session's or a model's totals: [[label, count], ...]. */
function tokenKinds(t) {
  return [["input", count(t.input_tokens)], ["output", count(t.output_tokens)],
          ["cache read", count(t.cache_read_tokens)], ["cache write", count(t.cache_write_tokens)]];
}

function tokensTitle(kinds) {
  const total = kinds.reduce((a, [, n]) => a + n, 0);
  return `${formatCount(total)} tokens: ${kinds.map(([label, n]) => `${formatCount(n)} ${label}`).join(" · ")}`;
}

/**
 * What a session's row says of its usage (the sessions table's tokens and cost), or null
 * before any response or report is seen (nothing rather than "$0.00" for a session whose
 * transcript mpmd has not read). Returns {cost, costTitle, estimated, unpriced, unpricedTitle,
 * tokens, tokensTitle}, texts and their tooltips: cost "" when no response had a price,
 * estimated when it is mpmd's price rather than Claude Code's own figure, unpriced ("+ 2
 * unpriced") when some responses had no price.
 */
export function sessionUsage(s) {
  if (!s) return null;
  const kinds = tokenKinds(s);
  const total = kinds.reduce((a, [, n]) => a + n, 0);
  const usd = usdOrNull(s.cost_usd);
  const unpriced = count(s.unpriced_responses);
  if (usd === null && !total && !unpriced) return null;
  const estimated = s.cost_source !== "claude-code";
  let cost = "", costTitle = "";
  if (usd !== null) {
    cost = `${estimated ? "≈" : ""}${formatUsd(usd)}`;
    costTitle = estimated
      ? `${formatUsdPrecise(usd)}: mpmd's estimate, from its price table (Claude Code has not reported this session's cost yet)`
      : `${formatUsdPrecise(usd)}: Claude Code's own figure (with mpmd's price of any response since its last report)`;
  }
  const unpricedText = unpriced ? `${cost ? "+ " : ""}${formatCount(unpriced)} unpriced` : "";
  const unpricedTitle = unpriced
    ? `${formatCount(unpriced)} response${unpriced === 1 ? "" : "s"} of a model mpmd has no price for: not in the cost`
    : "";
  return { cost, costTitle, estimated, unpriced: unpricedText, unpricedTitle,
           tokens: total ? `${formatTokens(total)} tok` : "", tokensTitle: tokensTitle(kinds) };
}

/**
 * A session's usage in full, for its detail: {kinds: [[label, count], ...], total, models:
 * [{model, responses, tokens, tokensTitle, cost}]} (the busiest model first; cost "no price"
 * for a model mpmd has no price for), or null as for sessionUsage().
 */
export function usageBreakdown(s) {
  if (!sessionUsage(s)) return null;
  const kinds = tokenKinds(s);
  const models = Object.entries(s.models && typeof s.models === "object" ? s.models : {})
    .filter(([, m]) => m && typeof m === "object")
    .map(([model, m]) => {
      const mk = tokenKinds(m);
      const usd = usdOrNull(m.cost_usd);
      return { model, responses: count(m.responses),
               tokens: mk.reduce((a, [, n]) => a + n, 0), tokensTitle: tokensTitle(mk),
               cost: usd === null ? "no price" : formatUsdPrecise(usd) };
    })
    .sort((a, b) => b.responses - a.responses || a.model.localeCompare(b.model));
  return { kinds, total: kinds.reduce((a, [, n]) => a + n, 0), models };
}
