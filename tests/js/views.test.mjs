// The pure parts next to the views: chart markup (webui/charts.js), approval cards
// (webui/approvals.js), a session's cost in its row and in the detail panel (webui/sessions.js,
// webui/detail.js), the reconnect backoff (webui/connection.js) and the API client
// (webui/api.js, with a stand-in fetch).

import { test } from "node:test";
import assert from "node:assert/strict";

import { fillBuckets, niceScale, barChart, toolChart } from "../../webui/charts.js";
import { Approvals, approvalHtml } from "../../webui/approvals.js";
import { backoffDelay, BACKOFF } from "../../webui/connection.js";
import { makeApi, ApiError } from "../../webui/api.js";
import { usageHtml } from "../../webui/sessions.js";
import { usageDetailHtml } from "../../webui/detail.js";

test("fillBuckets puts the empty buckets back between since and until", () => {
  const points = [{ t: 2000, events: 3, failures: 1 }];
  assert.deepEqual(fillBuckets(points, 500, 4000, 1000), [
    { t: 0, events: 0, failures: 0 }, { t: 1000, events: 0, failures: 0 },
    { t: 2000, events: 3, failures: 1 }, { t: 3000, events: 0, failures: 0 },
  ]);
  assert.deepEqual(fillBuckets([{ t: 9 }, { t: 1 }], 5, 5, 1000).map((p) => p.t), [1, 9], "no range: sorted");
});

test("niceScale rounds the axis top up with at most 4 grid steps", () => {
  assert.deepEqual(niceScale(0), { max: 1, step: 1 });
  assert.deepEqual(niceScale(3), { max: 3, step: 1 });
  assert.deepEqual(niceScale(7), { max: 8, step: 2 });
  assert.deepEqual(niceScale(130), { max: 150, step: 50 });
});

test("barChart: a row per item, segments scaled to the largest total", () => {
  const { svg, height } = barChart({ width: 600, rows: [
    { key: "Bash", label: "Bash", segments: [{ cls: "ok", value: 3 }, { cls: "failed", value: 1 }], text: "4" },
    { key: "R<", label: "R<", segments: [{ cls: "ok", value: 2 }, { cls: "failed", value: 0 }], text: "2" },
  ] });
  assert.equal(height, 2 * 22 + 8);
  assert.equal((svg.match(/data-testid="bar-row"/g) || []).length, 2);
  assert.equal((svg.match(/<rect class="ch-bar/g) || []).length, 3, "no bar for a zero segment");
  assert.ok(svg.includes('data-key="R&lt;"'));
  assert.deepEqual(barChart({ rows: [], width: 600 }), { svg: "", height: 0 });
});

test("toolChart: the first 15 tools, a bar per outcome, with rate and median", () => {
  const row = (tool, ok, failed, open) => ({ tool, count: ok + failed + open, ok, failed, open,
    successRate: ok + failed ? ok / (ok + failed) : NaN, median: 1500 });
  const { svg, height } = toolChart([row("Bash", 3, 1, 0), row("Read", 0, 0, 2)], 800);
  assert.equal(height, 2 * 22 + 30);
  assert.equal((svg.match(/class="bar ok"/g) || []).length, 1);
  assert.equal((svg.match(/class="bar failed"/g) || []).length, 1);
  assert.equal((svg.match(/class="bar open"/g) || []).length, 1);
  assert.ok(svg.includes("4 · 75% · 1.5 s"));
  assert.ok(svg.includes("2 · — · 1.5 s"));
  assert.ok(svg.includes("Bash: 1 failed"));
  const many = Array.from({ length: 20 }, (_, i) => row(`T${i}`, 1, 0, 0));
  assert.equal((toolChart(many, 800).svg.match(/class="bar-label"/g) || []).length, 15);
  const long = toolChart([row("x".repeat(40), 1, 0, 0)], 800).svg;
  assert.ok(long.includes(`${"x".repeat(25)}…`));
  assert.deepEqual(toolChart([], 800), { svg: "", height: 0 });
});

test("Approvals.apply returns the requests not held before; forSession filters", () => {
  const ap = new Approvals({ connection: () => null });
  const a = { seq: 1, session_id: "s1" }, b = { seq: 2, session_id: "s2" }, c = { seq: 3, session_id: "s1" };
  assert.deepEqual(ap.apply([a, b]), [a, b]);
  assert.deepEqual(ap.apply([b, c]), [c]);
  assert.deepEqual(ap.forSession("s1"), [c]);
  assert.deepEqual(ap.apply(undefined), []);
  assert.equal(ap.bySeq.size, 0);
});

test("approvalHtml escapes what it shows and counts the seconds left", () => {
  const html = approvalHtml({ seq: 7, tool_name: "Bash", detail: "rm <x>", rule: "ask-rm",
                              expires_at_ms: 10_400 }, 1000);
  assert.match(html, /data-seq="7"/);
  assert.ok(html.includes("Bash rm &lt;x&gt;"));
  assert.ok(!html.includes("<x>"));
  assert.ok(html.includes("rule: ask-rm"));
  assert.match(html, />9 s</);
  for (const id of ["approve", "deny", "always-allow"]) assert.ok(html.includes(`data-testid="${id}"`));
  const bare = approvalHtml({ seq: 1 }, 0);
  assert.ok(bare.includes(">a tool<"));
  assert.ok(!/ s<\/span>/.test(bare), "no deadline: no countdown");
  assert.match(approvalHtml({ seq: 1, expires_at_ms: 0 }, 5000), />0 s</, "never below zero");
});

// A session of tests/fixtures/transcripts/session.jsonl, and a model mpmd has no price for.
const SPENT = {
  session_id: "00e5ca8a", input_tokens: 17245, output_tokens: 84, cache_read_tokens: 0,
  cache_write_tokens: 0, cost_usd: 0.06562, cost_source: "claude-code", unpriced_responses: 1,
  models: {
    "claude-opus-5-5": { responses: 6, input_tokens: 16045, output_tokens: 72, cache_read_tokens: 0,
                         cache_write_tokens: 0, cost_usd: 0.06562 },
    "<b>next</b>": { responses: 1, input_tokens: 1200, output_tokens: 12, cache_read_tokens: 0,
                     cache_write_tokens: 0, cost_usd: null },
  },
};

test("a session row's usage: cost with its source and tooltip, unpriced, tokens; nothing unread", () => {
  const html = usageHtml(SPENT);
  assert.match(html, /data-testid="session-cost" data-source="claude-code" title="\$0\.0656: Claude Code&#39;s own figure[^"]*">\$0\.07</);
  assert.match(html, /data-testid="session-unpriced"[^>]*>\+ 1 unpriced</);
  assert.match(html, /title="17,329 tokens: 17,245 input · 84 output · 0 cache read · 0 cache write">17k tok</);
  const est = usageHtml({ ...SPENT, cost_source: "mpmd", unpriced_responses: 0 });
  assert.match(est, /class="cost estimated" data-testid="session-cost" data-source="mpmd"[^>]*>≈\$0\.07</);
  assert.ok(!est.includes("unpriced"));
  assert.equal(usageHtml({ session_id: "s1", cost_usd: null, input_tokens: 0 }), "");
});

test("the detail's usage: tokens by kind, a row per model, no price as such, text escaped", () => {
  assert.equal(usageDetailHtml({ session_id: "s1" }), null);
  const { total, body } = usageDetailHtml(SPENT);
  assert.match(total, />\$0\.07<.*>\+ 1 unpriced<.*>17k tok</);
  assert.match(body, /<dt>input<\/dt><dd class="mono">17,245<\/dd>/);
  assert.match(body, /<dt>total<\/dt><dd class="mono">17,329<\/dd>/);
  const rows = body.match(/<tr data-testid="usage-model"[^]*?<\/tr>/g);
  assert.equal(rows.length, 2);
  assert.match(rows[0], /data-model="claude-opus-5-5".*>6<.*>16,117<.*>\$0\.0656</);
  assert.match(rows[1], /data-model="&lt;b&gt;next&lt;\/b&gt;".*>1<.*>1,212<.*class="num cost muted">no price</);
  assert.ok(!body.includes("<b>"), "a model's name is text");
  assert.match(body, /Claude Code's own figure; each model's is mpmd's price/);
  assert.ok(!usageDetailHtml({ ...SPENT, cost_source: "mpmd" }).body.includes("own figure"),
    "mpmd's price throughout: nothing to tell apart");
});

test("backoffDelay doubles up to the cap, and jitter only shortens it", () => {
  assert.equal(backoffDelay(0, BACKOFF, () => 0), 500);
  assert.equal(backoffDelay(3, BACKOFF, () => 0), 4000);
  assert.equal(backoffDelay(30, BACKOFF, () => 0), 10_000);
  assert.equal(backoffDelay(30, BACKOFF, () => 1), 7500);
});

test("makeApi sends the token, drops empty parameters, and explains refusals", async () => {
  const calls = [];
  const answers = [
    { ok: true, status: 200, json: async () => ({ events: [] }) },
    { ok: false, status: 401, json: async () => ({ error: "bad token" }) },
    { ok: false, status: 404, statusText: "Not Found", json: async () => ({ error: "no such route" }) },
  ];
  const get = makeApi("tok", async (url, init) => { calls.push([url, init]); return answers.shift(); });
  assert.deepEqual(await get("/api/events", { q: "tool:Bash", before: null, limit: 5, after: "" }), { events: [] });
  assert.equal(calls[0][0], "/api/events?q=tool%3ABash&limit=5");
  assert.equal(calls[0][1].headers.Authorization, "Bearer tok");
  await assert.rejects(get("/api/stats"), (err) => err instanceof ApiError && err.status === 401
    && /open the viewer again/.test(err.message));
  await assert.rejects(get("/api/history/sessions"), /does not serve history yet/);
  const down = makeApi("tok", async () => { throw new TypeError("fetch failed"); });
  await assert.rejects(down("/api/status"), (err) => err.status === 0 && /does not answer/.test(err.message));
});
