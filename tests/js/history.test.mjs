// The history side's pure helpers (webui/history.js) and the page's address (webui/address.js).

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  RANGES, SESSION_RANGES, rangeById, isoOf, sessionFromSummary, errorColumn, fmtDateTime,
  quoteValue, fmtCount, pastState, historyProgress,
} from "../../webui/history.js";
import { tokenOfFragment, queryOfFragment, fragmentOfQuery } from "../../webui/address.js";

test("rangeById finds the range in the list asked", () => {
  assert.equal(rangeById("7d").ms, 7 * 86400e3);
  assert.equal(rangeById("365d"), null, "not an analytics range");
  assert.equal(rangeById("365d", SESSION_RANGES).label, "Last year");
  assert.equal(rangeById(null), null);
  assert.deepEqual(RANGES.map((r) => r.id), ["1h", "24h", "7d", "30d"]);
});

test("isoOf: ms to an ISO time, anything else null", () => {
  assert.equal(isoOf(0), "1970-01-01T00:00:00.000Z");
  assert.equal(isoOf(NaN), null);
  assert.equal(isoOf("5"), null);
});

test("sessionFromSummary makes a past session look like a live one that ended at its last event", () => {
  const s = sessionFromSummary({ session_id: "abcdefghijk", cwd: "/w/shop", model: "m", first_ts: 1000,
                                 last_ts: 5000, end_reason: "logout", events: "12", tool_calls: 3 });
  assert.equal(s.project, "shop");
  assert.equal(s.started_at, isoOf(1000));
  assert.equal(s.ended_at, isoOf(5000));
  assert.equal(s.last_event_at, isoOf(5000));
  assert.equal(s.end_reason, "logout");
  assert.deepEqual([s.event_count, s.tool_count, s.failure_count], [12, 3, 0]);
  assert.deepEqual(s.pending, []);
  assert.equal(s.history, true);
  assert.equal(sessionFromSummary({ session_id: "abcdefghijk" }).project, "abcdefgh");
  assert.equal(sessionFromSummary({ session_id: "x" }).end_reason, null);
});

test("errorColumn reads the column a query error names", () => {
  assert.equal(errorColumn("bad query: unexpected ')' at column 11"), 11);
  assert.equal(errorColumn("unknown field (column 1)"), 1);
  assert.equal(errorColumn("no column here"), null);
  assert.equal(errorColumn(undefined), null);
});

test("fmtDateTime: the time alone today, with the day otherwise", () => {
  const t = new Date(2024, 4, 1, 9, 8, 7, 6).getTime();
  assert.equal(fmtDateTime(t, new Date(2024, 4, 1, 20, 0).getTime()), "09:08:07");
  assert.equal(fmtDateTime(t, new Date(2024, 4, 1, 20, 0).getTime(), true), "09:08:07.006");
  assert.equal(fmtDateTime(t, new Date(2024, 4, 3).getTime()), "May 1 09:08:07");
  assert.equal(fmtDateTime(t, new Date(2025, 4, 3).getTime()), "May 1, 2024 09:08:07");
  assert.equal(fmtDateTime(NaN, 0), "");
});

test("quoteValue quotes only when the query language needs it", () => {
  assert.equal(quoteValue("Bash"), "Bash");
  assert.equal(quoteValue("npm test"), '"npm test"');
  assert.equal(quoteValue('say "hi"'), '"say ""hi"""');
  assert.equal(quoteValue("f(x)"), '"f(x)"');
});

test("fmtCount separates thousands whatever the locale", () => {
  assert.equal(fmtCount(1234567.4), "1,234,567");
  assert.equal(fmtCount(NaN), "—");
  assert.equal(fmtCount(null), "—");
});

test("pastState: ended when a SessionEnd is stored, live when the daemon follows it", () => {
  assert.deepEqual(pastState({ end_reason: "clear" }, { ended_at: null }),
    { ended: true, badge: "ended", health: "ended" });
  assert.deepEqual(pastState({ end_reason: null }, { ended_at: null }),
    { ended: false, badge: "live", health: "active" });
  assert.deepEqual(pastState({}, { ended_at: "2024-01-01T00:00:00Z" }),
    { ended: false, badge: "no end", health: "stale" });
  assert.deepEqual(pastState({}, undefined), { ended: false, badge: "no end", health: "stale" });
});

test("historyProgress says how far loading a past session got", () => {
  assert.equal(historyProgress({ loaded: 0, total: null, loading: true }), "loading…");
  assert.equal(historyProgress({ loaded: 1000, total: 2500, loading: true }), "loading 1,000 of 2,500 events…");
  assert.equal(historyProgress({ loaded: 1000, total: 2500, next: { after: 9 } }), "1,000 of 2,500 events loaded");
  assert.equal(historyProgress({ loaded: 1, total: 1 }), "1 event");
  assert.equal(historyProgress({ loaded: 2500, total: 2500 }), "2,500 events");
  assert.equal(historyProgress({ loaded: 5, total: 9, loading: true, error: "refused" }), "refused");
});

test("tokenOfFragment takes the token out and keeps the rest of the fragment", () => {
  assert.deepEqual(tokenOfFragment("#token=abc%2Fd"), { token: "abc/d", rest: "" });
  assert.deepEqual(tokenOfFragment("#token=abc&q=tool%3ABash"), { token: "abc", rest: "q=tool%3ABash" });
  assert.deepEqual(tokenOfFragment("#q=x&token=abc"), { token: "abc", rest: "q=x" });
  assert.equal(tokenOfFragment("#q=x"), null);
  assert.equal(tokenOfFragment(""), null);
  assert.equal(tokenOfFragment(undefined), null);
});

test("queryOfFragment and fragmentOfQuery round-trip a search", () => {
  const q = 'tool:Bash "npm test" (rm OR curl) & more';
  assert.equal(queryOfFragment(fragmentOfQuery(q)), q);
  assert.equal(queryOfFragment("#q=a+b"), "a b");
  assert.equal(queryOfFragment("#token=t&q="), "");
  assert.equal(queryOfFragment("#q=%E0%A4%A"), null, "a broken escape is no query");
  assert.equal(queryOfFragment("#token=t"), null);
  assert.equal(fragmentOfQuery(null), "");
});
