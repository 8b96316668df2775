// The viewer's pure state (webui/model.js), under node's own test runner.

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  Store, MAX_EVENTS, IDLE_MS, STALE_MS, parseTime, health, sessionDuration, formatDuration,
  formatRate, median, errorText, projectOf, compileFilter, isEmptyFilter, toolStats, feedBlocks,
  exportFileName, pendingText, startedWaiting, spanDuration, eventKind, fmtClock, fmtStart,
  healthCounts, projectFor, filterOptions, recsAfter, emptyFeedText, failureToasts,
  TOASTS_PER_BATCH, permissionNotice, approvalNotice, NO_USAGE, formatUsd, formatUsdPrecise,
  formatTokens, sessionUsage, usageBreakdown,
} from "../../webui/model.js";

const T0 = Date.parse("2024-05-01T10:00:00Z");
const iso = (ms) => new Date(ms).toISOString();

let nextSeq = 1;
/** A stored event as the daemon sends it; seq counts up unless given. */
function ev(fields = {}) {
  return { seq: nextSeq++, event_type: "Stop", session_id: "s1", timestamp: iso(T0), ...fields };
}
function seqs(store) { return store.recs.map((r) => r.seq); }

// ---------------------------------------------------------------- times and texts

test("parseTime reads any number of fraction digits and offsets", () => {
  assert.equal(parseTime("2024-05-01T10:00:00Z"), T0);
  assert.equal(parseTime("2024-05-01T10:00:00.5Z"), T0 + 500);
  assert.equal(parseTime("2024-05-01T10:00:00.123456789Z"), T0 + 123);
  assert.equal(parseTime("2024-05-01T12:00:00+02:00"), T0);
  assert.equal(parseTime("2024-05-01T10:00:00"), T0, "no offset: UTC");
  assert.ok(Number.isNaN(parseTime("")));
  assert.ok(Number.isNaN(parseTime(null)));
  assert.ok(Number.isNaN(parseTime("yesterday")));
});

test("formatDuration picks the unit by size", () => {
  assert.equal(formatDuration(850), "850 ms");
  assert.equal(formatDuration(4200), "4.2 s");
  assert.equal(formatDuration(42_000), "42 s");
  assert.equal(formatDuration(187_000), "3m 07s");
  assert.equal(formatDuration((2 * 3600 + 5 * 60) * 1000), "2h 05m");
  assert.equal(formatDuration((3 * 86400 + 4 * 3600) * 1000), "3d 4h");
  assert.equal(formatDuration(NaN), "—");
});

test("formatRate rounds to a percentage; no rate is a dash", () => {
  assert.equal(formatRate(0.666), "67%");
  assert.equal(formatRate(1), "100%");
  assert.equal(formatRate(NaN), "—");
});

test("median of odd and even lists, without sorting the input in place", () => {
  const values = [5, 1, 3];
  assert.equal(median(values), 3);
  assert.deepEqual(values, [5, 1, 3]);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test("errorText: a turn's error with its details, a tool's error, else the summary", () => {
  assert.equal(errorText({ event_type: "StopFailure", payload: { error: "rate_limit", error_details: "429" } }),
    "rate_limit: 429");
  assert.equal(errorText({ event_type: "PostToolUseFailure", payload: { error: "Exit code 1" } }), "Exit code 1");
  assert.equal(errorText({ event_type: "PostToolUseFailure", summary: "Bash failed" }), "Bash failed");
  assert.equal(errorText({ event_type: "StopFailure", payload: null }), "StopFailure");
});

test("projectOf is the folder's last component, whatever the separators", () => {
  assert.equal(projectOf("/home/a/shop"), "shop");
  assert.equal(projectOf("/home/a/shop/"), "shop");
  assert.equal(projectOf("C:\\work\\api"), "api");
  assert.equal(projectOf(""), "");
  assert.equal(projectOf(undefined), "");
});

test("exportFileName has no colons", () => {
  assert.equal(exportFileName(T0), "mpmd-export-2024-05-01T10-00-00.000Z.json");
});

test("pendingText: a permission names the tool once, input says what the dialog says", () => {
  assert.equal(pendingText([]), "");
  assert.equal(pendingText(undefined), "");
  assert.equal(pendingText([{ kind: "permission", tool_name: "Bash", detail: "rm -rf x" }]), "Bash rm -rf x");
  assert.equal(pendingText([{ kind: "permission", tool_name: "Bash", detail: "Claude wants to use Bash" }]),
    "Claude wants to use Bash");
  assert.equal(pendingText([{ kind: "permission" }]), "a permission");
  assert.equal(pendingText([{ kind: "input", message: "Pick one" }]), "Pick one");
  assert.equal(pendingText([{ kind: "input" }, { kind: "permission" }, {}]), "your input (+2 more)");
  assert.equal(pendingText([{ tool_name: "Edit" }, {}]), "Edit (+1 more)");
});

test("startedWaiting only on the step from nothing pending to something", () => {
  const waiting = { pending: [{ kind: "permission" }] };
  assert.equal(startedWaiting(null, waiting), true);
  assert.equal(startedWaiting({ pending: [] }, waiting), true);
  assert.equal(startedWaiting(waiting, waiting), false);
  assert.equal(startedWaiting(waiting, { pending: [] }), false);
});

test("fmtClock and fmtStart use the local clock", () => {
  const t = new Date(2024, 0, 2, 9, 4, 5, 7).getTime();
  assert.equal(fmtClock(t), "09:04:05");
  assert.equal(fmtClock(t, true), "09:04:05.007");
  assert.equal(fmtClock(NaN), "");
  assert.equal(fmtStart(t, new Date(2024, 0, 2, 23, 0).getTime()), "09:04");
  const otherDay = fmtStart(t, new Date(2024, 0, 5, 9, 0).getTime());
  assert.match(otherDay, / 09:04$/);
  assert.notEqual(otherDay, "09:04");
  assert.equal(fmtStart(NaN, T0), "");
});

// ---------------------------------------------------------------- health

test("health: ended, needs-you, then by how long the session has been quiet", () => {
  const last = iso(T0);
  assert.equal(health({ ended_at: last, pending: [{}] }, T0), "ended");
  assert.equal(health({ last_event_at: last, pending: [{ kind: "permission" }] }, T0 + STALE_MS), "needs-you");
  assert.equal(health({ last_event_at: last }, T0 + IDLE_MS - 1), "active");
  assert.equal(health({ last_event_at: last }, T0 + IDLE_MS), "idle");
  assert.equal(health({ last_event_at: last }, T0 + STALE_MS), "stale");
  assert.equal(health({ started_at: last }, T0 + IDLE_MS), "idle", "no event yet: from its start");
  assert.equal(health({}, T0), "active");
  assert.equal(health(null, T0), "active");
});

test("sessionDuration runs to the end, to the last event once stale, else to now", () => {
  const s = { started_at: iso(T0), last_event_at: iso(T0 + 60_000) };
  assert.equal(sessionDuration(s, T0 + 120_000), 120_000);
  assert.equal(sessionDuration(s, T0 + 60_000 + STALE_MS), 60_000);
  assert.equal(sessionDuration({ ...s, ended_at: iso(T0 + 30_000) }, T0 + 999_999), 30_000);
  assert.ok(Number.isNaN(sessionDuration({}, T0)));
});

test("healthCounts counts active and waiting sessions only", () => {
  const now = T0;
  const counts = healthCounts([
    { last_event_at: iso(now) },
    { last_event_at: iso(now), pending: [{}] },
    { last_event_at: iso(now - STALE_MS) },
    { ended_at: iso(now) },
  ], now);
  assert.deepEqual(counts, { active: 1, "needs-you": 1 });
});

// ---------------------------------------------------------------- Store

test("applyEvents keeps seq order, drops copies and events without a seq", () => {
  const st = new Store();
  const added = st.applyEvents([ev({ seq: 1 }), ev({ seq: 2 }), { event_type: "Stop" }, null]);
  assert.deepEqual(added.map((r) => r.seq), [1, 2]);
  assert.deepEqual(st.applyEvents([ev({ seq: 2 })]), [], "a copy of a held seq is not added");
  const reset = st.resetVersion;
  st.applyEvents([ev({ seq: 5 }), ev({ seq: 3 })]);
  assert.deepEqual(seqs(st), [1, 2, 3, 5]);
  assert.ok(st.resetVersion > reset, "out of order: the views rebuild");
  assert.equal(st.maxSeq, 5);
  assert.equal(st.size, 4);
  assert.equal(st.bySeq.get(3).ev.seq, 3);
});

test("applyEvents indexes types, tools, sessions, folders and subagent types", () => {
  const st = new Store();
  st.applyEvents([
    ev({ seq: 1, event_type: "PreToolUse", tool_name: "Bash", cwd: "/w/shop", tool_use_id: "t1" }),
    ev({ seq: 2, event_type: "SubagentStart", session_id: "s2", agent_id: "a1", payload: { agent_type: "Explore" } }),
  ]);
  assert.deepEqual([...st.eventTypes].sort(), ["PreToolUse", "SubagentStart"]);
  assert.deepEqual([...st.toolNames], ["Bash"]);
  assert.deepEqual([...st.sessionIds].sort(), ["s1", "s2"]);
  assert.equal(st.cwdOf.get("s1"), "/w/shop");
  assert.equal(st.agentTypes.get("a1"), "Explore");
  assert.equal(st.agentLabel("a1"), "Explore · a1");
  assert.equal(st.agentLabel("zz"), "subagent · zz");
});

test("the event cap drops the oldest in chunks, and a dropped seq never comes back", () => {
  const st = new Store({ maxEvents: 20 });
  st.applyEvents(Array.from({ length: 21 }, (_, i) => ev({ seq: i + 1 })));
  // One over the cap drops it and 5% of the cap more.
  assert.deepEqual(seqs(st), Array.from({ length: 19 }, (_, i) => i + 3));
  assert.equal(st.floorSeq(), 2);
  assert.deepEqual(st.applyEvents([ev({ seq: 1 }), ev({ seq: 2 })]), []);
  assert.equal(st.bySeq.has(1), false);
  assert.equal(MAX_EVENTS, new Store().maxEvents);
});

test("the byte cap drops the oldest until the rest fit, keeping the newest", () => {
  const st = new Store({ maxBytes: 1000 });
  st.applyEvents([ev({ seq: 1 }), ev({ seq: 2 })], 800);
  assert.equal(st.bytes, 800);
  st.applyEvents([ev({ seq: 3 }), ev({ seq: 4 })], 800);
  assert.ok(st.bytes <= 950, `bytes held: ${st.bytes}`);
  assert.deepEqual(seqs(st), [3, 4]);
  st.applyEvents([ev({ seq: 5 })], 5000);
  assert.deepEqual(seqs(st), [5], "one huge event is still held");
});

test("clear forgets the events but not the resume position or the sessions", () => {
  const st = new Store();
  st.applySessions([{ session_id: "s1", cwd: "/w/api" }]);
  st.applyEvents([ev({ seq: 7, tool_use_id: "t", event_type: "PreToolUse", tool_name: "Read" })]);
  st.clear();
  assert.equal(st.size, 0);
  assert.equal(st.spans.size, 0);
  assert.equal(st.toolNames.size, 0);
  assert.equal(st.maxSeq, 7);
  assert.equal(st.sessions.size, 1);
  assert.deepEqual(st.applyEvents([ev({ seq: 7 })]), [], "a resend of a cleared seq stays cleared");
  assert.equal(st.applyEvents([ev({ seq: 8 })]).length, 1);
  st.reset();
  assert.equal(st.maxSeq, 0);
  assert.equal(st.sessions.size, 0);
  assert.equal(st.applyEvents([ev({ seq: 1 })]).length, 1, "another journal starts at 1 again");
});

test("applySessions merges by id, or replaces the whole table", () => {
  const st = new Store();
  const a = { session_id: "a", agents: [{ agent_id: "x", agent_type: "Plan" }] };
  const b = { session_id: "b" };
  assert.deepEqual(st.applySessions([a, b, null, {}]).map((c) => c.before), [null, null]);
  const a2 = { session_id: "a", project: "api" };
  const [change] = st.applySessions([a2]);
  assert.equal(change.before, a);
  assert.equal(change.session, a2);
  assert.equal(st.sessions.size, 2, "a partial table keeps the others");
  assert.equal(st.agentTypes.get("x"), "Plan");
  st.applySessions([b], { replace: true });
  assert.deepEqual([...st.sessions.keys()], ["b"]);
});

test("sessionList: newest activity first, ties by id", () => {
  const st = new Store();
  st.applySessions([
    { session_id: "old", last_event_at: iso(T0) },
    { session_id: "new", last_event_at: iso(T0 + 1000) },
    { session_id: "b", started_at: iso(T0 + 500) },
    { session_id: "a", started_at: iso(T0 + 500) },
  ]);
  assert.deepEqual(st.sessionList().map((s) => s.session_id), ["new", "a", "b", "old"]);
});

test("Store.projectOf: the table's project, its folder, the events' folder, the id", () => {
  const st = new Store();
  st.applySessions([{ session_id: "p", project: "named", cwd: "/w/other" }, { session_id: "c", cwd: "/w/api" }]);
  st.applyEvents([ev({ session_id: "e", cwd: "/w/shop" })]);
  assert.equal(st.projectOf("p"), "named");
  assert.equal(st.projectOf("c"), "api");
  assert.equal(st.projectOf("e"), "shop");
  assert.equal(st.projectOf("0123456789abcdef"), "01234567");
  assert.equal(st.projectOf(""), "?");
});

test("projectFor: the table's name for a known session, else the event's folder", () => {
  const st = new Store();
  st.applySessions([{ session_id: "s1", project: "api" }]);
  assert.equal(projectFor({ session_id: "s1", cwd: "/w/elsewhere" }, st), "api");
  assert.equal(projectFor({ session_id: "s9", cwd: "/w/shop" }, st), "shop");
  assert.equal(projectFor({ session_id: "abcdefghij" }, st), "abcdefgh");
});

// ---------------------------------------------------------------- filters

test("isEmptyFilter and compileFilter: every field must match, text words in any order", () => {
  assert.equal(isEmptyFilter(null), true);
  assert.equal(isEmptyFilter({ session: "", type: "", tool: "", text: "" }), true);
  assert.equal(isEmptyFilter({ text: "x" }), false);
  const st = new Store();
  st.applyEvents([
    ev({ seq: 1, session_id: "s1", event_type: "PreToolUse", tool_name: "Bash", summary: "Running npm test",
         payload: { tool_input: { command: "npm test -- --Watch" } } }),
    ev({ seq: 2, session_id: "s2", event_type: "PreToolUse", tool_name: "Read", summary: "Reading a.ts" }),
    ev({ seq: 3, session_id: "s1", event_type: "Stop", summary: "Done" }),
  ]);
  const pick = (filters) => st.filtered(filters).map((r) => r.seq);
  assert.deepEqual(pick({}), [1, 2, 3]);
  assert.equal(st.filtered({}), st.recs, "no filter: the held list itself");
  assert.deepEqual(pick({ session: "s1" }), [1, 3]);
  assert.deepEqual(pick({ type: "PreToolUse" }), [1, 2]);
  assert.deepEqual(pick({ tool: "Read" }), [2]);
  assert.deepEqual(pick({ text: "WATCH npm" }), [1], "case-insensitive, payload included");
  assert.deepEqual(pick({ text: "npm nothing" }), []);
  assert.deepEqual(pick({ session: "s1", type: "Stop" }), [3]);
  const f = compileFilter({ tool: "Bash" });
  assert.equal(f(st.bySeq.get(1)), true);
  assert.equal(f(st.bySeq.get(2)), false);
});

test("the event type All but usage leaves out ModelUsage and CostReport, and only them", () => {
  const st = new Store();
  st.applyEvents([
    ev({ seq: 1, event_type: "UserPromptSubmit" }),
    ev({ seq: 2, event_type: "ModelUsage", summary: "Model response (claude-opus-5-5): 2,563 in, 12 out, $0.0105" }),
    ev({ seq: 3, event_type: "PreToolUse", tool_name: "Bash" }),
    ev({ seq: 4, event_type: "CostReport", summary: "Claude Code's cost so far: $0.0534" }),
    ev({ seq: 5, event_type: "ModelUsage", session_id: "s2" }),
  ]);
  const pick = (filters) => st.filtered(filters).map((r) => r.seq);
  assert.deepEqual(pick({ type: NO_USAGE }), [1, 3]);
  assert.deepEqual(pick({ type: NO_USAGE, session: "s2" }), []);
  assert.deepEqual(pick({ type: "ModelUsage" }), [2, 5], "asked for by name: shown");
  assert.deepEqual(pick({ text: "claude-opus" }), [2]);
  assert.equal(isEmptyFilter({ type: NO_USAGE }), false);
});

test("filterOptions offers the sessions, types and tools held, sorted", () => {
  const st = new Store();
  st.applySessions([{ session_id: "zz-session", project: "api" }]);
  st.applyEvents([
    ev({ session_id: "aa-session", cwd: "/w/shop", event_type: "PreToolUse", tool_name: "Read" }),
    ev({ session_id: "aa-session", event_type: "Notification", tool_name: "Bash" }),
  ]);
  const o = filterOptions(st);
  assert.deepEqual(o.session, [
    { value: "zz-session", label: "api · zz-sessi" },
    { value: "aa-session", label: "shop · aa-sessi" },
  ]);
  assert.deepEqual(o.type.map((t) => t.value), [NO_USAGE, "Notification", "PreToolUse"]);
  assert.equal(o.type[0].label, "All but usage");
  assert.deepEqual(o.tool, [{ value: "Bash", label: "Bash" }, { value: "Read", label: "Read" }]);
});

// ---------------------------------------------------------------- tool calls

function call(id, tool, { start, end, status = "ok", duration, session = "s1" } = {}) {
  const out = [];
  if (start !== undefined) {
    out.push(ev({ event_type: "PreToolUse", tool_use_id: id, tool_name: tool, session_id: session, timestamp: iso(start) }));
  }
  if (end !== undefined) {
    out.push(ev({ event_type: status === "ok" ? "PostToolUse" : "PostToolUseFailure", tool_use_id: id,
                  tool_name: tool, session_id: session, timestamp: iso(end),
                  payload: duration === undefined ? {} : { duration_ms: duration } }));
  }
  return out;
}

test("spans pair PreToolUse with its end; duration_ms wins over the timestamps", () => {
  const st = new Store();
  st.applyEvents([
    ...call("t1", "Bash", { start: T0, end: T0 + 2000 }),
    ...call("t2", "Bash", { start: T0, end: T0 + 2000, duration: 1500, status: "failed" }),
    ...call("t3", "Read", { start: T0 + 100 }),
  ]);
  assert.equal(st.spans.get("t1").status, "ok");
  assert.equal(spanDuration(st.spans.get("t1")), 2000);
  assert.equal(st.spans.get("t2").status, "failed");
  assert.equal(spanDuration(st.spans.get("t2")), 1500);
  assert.equal(st.spans.get("t3").status, "open");
  assert.ok(Number.isNaN(spanDuration(st.spans.get("t3"))));
});

test("spanList: an open call runs to now, or to its session's end; an end alone starts duration_ms before", () => {
  const st = new Store();
  st.applySessions([{ session_id: "done", ended_at: iso(T0 + 5000) }]);
  st.applyEvents([
    ...call("open", "Bash", { start: T0 }),
    ...call("ended", "Bash", { start: T0 + 1000, session: "done" }),
    ...call("late", "Read", { end: T0 + 9000, duration: 4000 }),
  ]);
  const now = T0 + 10_000;
  const by = Object.fromEntries(st.spanList({}, now).map((g) => [g.tool_use_id, g]));
  assert.deepEqual([by.open.start, by.open.end, by.open.open], [T0, now, true]);
  assert.equal(by.ended.end, T0 + 5000);
  assert.deepEqual([by.late.start, by.late.end, by.late.open], [T0 + 5000, T0 + 9000, false]);
  assert.deepEqual(st.spanList({ tool: "Read" }, now).map((g) => g.tool_use_id), ["late"]);
  assert.deepEqual(st.spanList({}, now).map((g) => g.start), [T0, T0 + 1000, T0 + 5000], "by start");
});

test("toolStats: calls, outcomes, success rate over finished calls, median; busiest first", () => {
  const st = new Store();
  st.applyEvents([
    ...call("b1", "Bash", { start: T0, end: T0 + 100 }),
    ...call("b2", "Bash", { start: T0, end: T0 + 300, status: "failed" }),
    ...call("b3", "Bash", { start: T0 }),
    ...call("r1", "Read", { start: T0, end: T0 + 50 }),
    ...call("r2", "Read", { start: T0, end: T0 + 50, session: "s2" }),
    ...call("g1", "Glob", { start: T0 }),
    ...call("g2", "Glob", { start: T0, session: "s2" }),
  ]);
  const rows = toolStats(st);
  assert.deepEqual(rows.map((r) => [r.tool, r.count, r.ok, r.failed, r.open]),
    [["Bash", 3, 1, 1, 1], ["Glob", 2, 0, 0, 2], ["Read", 2, 2, 0, 0]]);
  assert.equal(rows[0].successRate, 0.5);
  assert.equal(rows[0].median, 200);
  assert.ok(Number.isNaN(rows[1].successRate), "no finished call: no rate");
  assert.ok(Number.isNaN(rows[1].median));
  const s1 = toolStats(st, { session: "s1", tool: "ignored" });
  assert.deepEqual(s1.map((r) => [r.tool, r.count]), [["Bash", 3], ["Glob", 1], ["Read", 1]]);
});

// ---------------------------------------------------------------- feed

test("feedBlocks groups consecutive events of one subagent of one session", () => {
  const st = new Store();
  st.applyEvents([
    ev({ seq: 1 }),
    ev({ seq: 2, agent_id: "a" }),
    ev({ seq: 3, agent_id: "a" }),
    ev({ seq: 4, agent_id: "a", session_id: "s2" }),
    ev({ seq: 5 }),
    ev({ seq: 6 }),
  ]);
  const blocks = feedBlocks(st.recs);
  assert.deepEqual(blocks.map((b) => [b.agentId, b.sessionId, b.recs.map((r) => r.seq)]), [
    [null, "s1", [1]], ["a", "s1", [2, 3]], ["a", "s2", [4]], [null, "s1", [5, 6]],
  ]);
  assert.deepEqual(feedBlocks([]), []);
});

test("recsAfter takes the tail above a seq", () => {
  const st = new Store();
  st.applyEvents([1, 2, 5, 9].map((seq) => ev({ seq })));
  assert.deepEqual(recsAfter(st.recs, 2).map((r) => r.seq), [5, 9]);
  assert.deepEqual(recsAfter(st.recs, 9), []);
  assert.equal(recsAfter(st.recs, 0).length, 4);
});

test("emptyFeedText says why the Activity view is empty", () => {
  assert.equal(emptyFeedText({ loaded: 3, caughtUp: true }), "No events match the filters.");
  assert.equal(emptyFeedText({ loaded: 0, caughtUp: true }), "Waiting for events…");
  assert.equal(emptyFeedText({ loaded: 0, caughtUp: false }), "Loading…");
  assert.equal(emptyFeedText({ loaded: 0, history: { loading: true, error: "" } }), "Loading the session…");
  assert.equal(emptyFeedText({ loaded: 0, history: { loading: false, error: "boom" } }), "boom");
  assert.equal(emptyFeedText({ loaded: 0, history: { loading: false, error: "" } }),
    "The index holds no events of this session.");
});

test("eventKind: failures, denials and prompts first, else the event's namespace", () => {
  const ns = { PreToolUse: "tool", SubagentStart: "agent" };
  assert.equal(eventKind({ event_type: "PostToolUseFailure" }, ns), "failed");
  assert.equal(eventKind({ event_type: "StopFailure" }, ns), "failed");
  assert.equal(eventKind({ event_type: "PermissionDenied" }, ns), "denied");
  assert.equal(eventKind({ event_type: "PermissionRequest" }, ns), "permission");
  assert.equal(eventKind({ event_type: "Notification", payload: { notification_type: "permission_prompt" } }, ns),
    "permission");
  assert.equal(eventKind({ event_type: "Notification", payload: { notification_type: "idle_prompt" } }, ns), "system");
  assert.equal(eventKind({ event_type: "PreToolUse" }, ns), "tool");
  assert.equal(eventKind({ event_type: "SubagentStart" }, ns), "agent");
  assert.equal(eventKind({ event_type: "Unknown" }), "system");
  const withUsage = { ...ns, ModelUsage: "session", CostReport: "session" };
  assert.equal(eventKind({ event_type: "ModelUsage" }, withUsage), "usage", "quiet, not its namespace");
  assert.equal(eventKind({ event_type: "CostReport" }, withUsage), "usage");
});

// ---------------------------------------------------------------- cost and tokens

test("formatUsd: cents for a row, <$0.01 below a cent, whole dollars from $1,000", () => {
  assert.equal(formatUsd(0.06562), "$0.07");
  assert.equal(formatUsd(0.053356), "$0.05");
  assert.equal(formatUsd(0.0105), "$0.01");
  assert.equal(formatUsd(0.0099), "<$0.01");
  assert.equal(formatUsd(0.000001), "<$0.01");
  assert.equal(formatUsd(0), "$0.00", "a reported zero is a figure");
  assert.equal(formatUsd(12.345), "$12.35");
  assert.equal(formatUsd(999.994), "$999.99");
  assert.equal(formatUsd(999.996), "$1,000", "never $1000.00");
  assert.equal(formatUsd(12_345.6), "$12,346");
  for (const none of [null, undefined, NaN, -1, "0.5"]) assert.equal(formatUsd(none), "");
});

test("formatUsdPrecise: to the hundredth of a cent", () => {
  assert.equal(formatUsdPrecise(0.0105), "$0.0105");
  assert.equal(formatUsdPrecise(0.06562), "$0.0656");
  assert.equal(formatUsdPrecise(0.00001), "<$0.0001", "not a price of nothing");
  assert.equal(formatUsdPrecise(0), "$0.0000");
  assert.equal(formatUsdPrecise(1234.5), "$1,234.5000");
  assert.equal(formatUsdPrecise(null), "");
});

test("formatTokens: 999, 1.2k, 16k, 1.2M; the unit changes where rounding would reach 1000", () => {
  const cases = [[0, "0"], [999, "999"], [1000, "1k"], [1234, "1.2k"], [9949, "9.9k"], [9950, "10k"],
    [16_117, "16k"], [999_499, "999k"], [999_500, "1M"], [1_200_000, "1.2M"], [16_400_000, "16M"],
    [999_999_999, "1B"], [2_500_000_000, "2.5B"]];
  for (const [n, text] of cases) assert.equal(formatTokens(n), text, String(n));
  assert.equal(formatTokens(null), "0");
  assert.equal(formatTokens(-5), "0");
});

// The session of tests/fixtures/transcripts/session.jsonl once its last report is read.
const REPORTED = {
  session_id: "00e5ca8a", input_tokens: 16045, output_tokens: 72, cache_read_tokens: 0,
  cache_write_tokens: 0, cost_usd: 0.06562, cost_source: "claude-code", unpriced_responses: 0,
  models: { "claude-opus-5-5": { responses: 6, input_tokens: 16045, output_tokens: 72,
                                 cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: 0.06562 } },
};

test("sessionUsage: nothing before any response or report, not $0.00", () => {
  assert.equal(sessionUsage(null), null);
  assert.equal(sessionUsage({ session_id: "s1" }), null, "an older daemon's table");
  assert.equal(sessionUsage({ session_id: "s1", input_tokens: 0, output_tokens: 0, cache_read_tokens: 0,
                              cache_write_tokens: 0, cost_usd: null, unpriced_responses: 0, models: {} }), null);
});

test("sessionUsage: Claude Code's own figure plain, mpmd's price marked ≈, tooltips say which", () => {
  const u = sessionUsage(REPORTED);
  assert.equal(u.cost, "$0.07");
  assert.equal(u.estimated, false);
  assert.match(u.costTitle, /^\$0\.0656: Claude Code's own figure/);
  assert.equal(u.tokens, "16k tok");
  assert.equal(u.tokensTitle, "16,117 tokens: 16,045 input · 72 output · 0 cache read · 0 cache write");
  assert.equal(u.unpriced, "");

  const est = sessionUsage({ ...REPORTED, cost_usd: 0.053356, cost_source: "mpmd", input_tokens: 13039,
                             output_tokens: 60 });
  assert.equal(est.cost, "≈$0.05");
  assert.equal(est.estimated, true);
  assert.match(est.costTitle, /^\$0\.0534: mpmd's estimate/);
  assert.equal(est.tokens, "13k tok");

  const cached = sessionUsage({ ...REPORTED, cache_read_tokens: 1_180_000, cache_write_tokens: 24_000 });
  assert.equal(cached.tokens, "1.2M tok", "cache counts as tokens too");
});

test("sessionUsage: responses without a price are counted apart, never guessed", () => {
  const some = sessionUsage({ ...REPORTED, unpriced_responses: 2 });
  assert.equal(some.cost, "$0.07");
  assert.equal(some.unpriced, "+ 2 unpriced");
  assert.match(some.unpricedTitle, /^2 responses of a model mpmd has no price for/);
  const none = sessionUsage({ session_id: "s1", input_tokens: 1200, output_tokens: 8, cost_usd: null,
                              cost_source: null, unpriced_responses: 1 });
  assert.equal(none.cost, "", "no priced response: no amount");
  assert.equal(none.unpriced, "1 unpriced");
  assert.match(none.unpricedTitle, /^1 response of/);
  assert.equal(none.tokens, "1.2k tok");
  const reportOnly = sessionUsage({ session_id: "s1", cost_usd: 0.004, cost_source: "claude-code" });
  assert.equal(reportOnly.cost, "<$0.01");
  assert.equal(reportOnly.tokens, "", "a report alone carries no tokens for the row");
});

test("usageBreakdown: tokens by kind, and a row per model, busiest first, no price as such", () => {
  assert.equal(usageBreakdown({ session_id: "s1" }), null);
  const b = usageBreakdown({
    ...REPORTED, input_tokens: 17245, output_tokens: 84, cache_read_tokens: 300, unpriced_responses: 1,
    models: {
      "claude-next-1": { responses: 1, input_tokens: 1200, output_tokens: 12, cache_read_tokens: 0,
                         cache_write_tokens: 0, cost_usd: null },
      ...REPORTED.models,
      "claude-haiku-5": { responses: 1, input_tokens: 0, output_tokens: 0, cache_read_tokens: 300,
                          cache_write_tokens: 0, cost_usd: 0.00003 },
      broken: "not an object",
    },
  });
  assert.deepEqual(b.kinds, [["input", 17245], ["output", 84], ["cache read", 300], ["cache write", 0]]);
  assert.equal(b.total, 17629);
  assert.deepEqual(b.models.map((m) => [m.model, m.responses, m.tokens, m.cost]), [
    ["claude-opus-5-5", 6, 16117, "$0.0656"],
    ["claude-haiku-5", 1, 300, "<$0.0001"],
    ["claude-next-1", 1, 1212, "no price"],
  ]);
  assert.equal(b.models[2].tokensTitle, "1,212 tokens: 1,200 input · 12 output · 0 cache read · 0 cache write");
});

// ---------------------------------------------------------------- toasts and notifications

test("failureToasts: one per failure up to the batch size, then one that counts the rest", () => {
  const st = new Store();
  st.applySessions([{ session_id: "s1", project: "shop" }, { session_id: "s2", project: "api" }]);
  const recs = st.applyEvents([
    ev({ event_type: "PostToolUse" }),
    ev({ event_type: "PostToolUseFailure", tool_name: "Bash", payload: { error: "Exit code 1" }, summary: "npm test" }),
    ev({ event_type: "StopFailure", session_id: "s2", payload: { error: "rate_limit", error_details: "429" } }),
    ev({ event_type: "PostToolUseFailure", payload: {}, summary: "x" }),
    ev({ event_type: "PostToolUseFailure", session_id: "s2" }),
    ev({ event_type: "PostToolUseFailure", session_id: "s2" }),
    ev({ event_type: "StopFailure" }),
  ]);
  const toasts = failureToasts(recs, (id) => st.projectOf(id));
  assert.equal(TOASTS_PER_BATCH, 3);
  assert.equal(toasts.length, 4);
  assert.deepEqual(toasts[0], {
    kind: "error", title: "Bash failed · shop", text: "Exit code 1", detail: "npm test",
    seq: recs[1].seq, sessionId: "s1", notify: true,
  });
  assert.equal(toasts[1].title, "Turn failed · api");
  assert.equal(toasts[1].text, "rate_limit: 429");
  assert.equal(toasts[1].notify, false, "a failed turn makes no notification");
  assert.equal(toasts[2].title, "Tool failed · shop");
  assert.deepEqual(toasts[3], { kind: "error", title: "3 more failures", text: "in api, shop" });
  assert.deepEqual(failureToasts(recs.slice(0, 1), () => "p"), []);
  assert.equal(failureToasts(recs, () => "p", 5).at(-1).title, "1 more failure");
  assert.equal(failureToasts(recs, () => "p", 6).length, 6);
});

test("permissionNotice and approvalNotice: the notifications' texts and tags", () => {
  assert.deepEqual(
    permissionNotice({ session_id: "s1", pending: [{ kind: "permission", tool_name: "Bash", detail: "ls" }] }, "shop"),
    { title: "Permission needed · shop", body: "Bash ls", tag: "perm-s1" });
  assert.equal(permissionNotice({ session_id: "s1", pending: [{ kind: "input" }] }, "shop").title,
    "Input needed · shop");
  assert.deepEqual(approvalNotice({ seq: 12, tool_name: "Bash", detail: "rm x" }, "api"),
    { title: "Approve or deny · api", body: "Bash rm x", tag: "approval-12" });
  assert.equal(approvalNotice({ seq: 1 }, "api").body, "");
});
