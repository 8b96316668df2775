// The pure parts next to the views: chart markup (webui/charts.js), approval cards
// (webui/approvals.js), the reconnect backoff (webui/connection.js) and the API client
// (webui/api.js, with a stand-in fetch).

import { test } from "node:test";
import assert from "node:assert/strict";

import { fillBuckets, niceScale, barChart, toolChart } from "../../webui/charts.js";
import { Approvals, approvalHtml } from "../../webui/approvals.js";
import { backoffDelay, BACKOFF } from "../../webui/connection.js";
import { makeApi, ApiError } from "../../webui/api.js";

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
