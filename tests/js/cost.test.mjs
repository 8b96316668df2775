// What the history side shows of tokens and cost: the cost chart (webui/charts.js), a usage
// split's figures and a past session's usage fields (webui/history.js), the analytics cost
// section (webui/analytics.js) and a past session's usage panel (webui/past.js).

import { test } from "node:test";
import assert from "node:assert/strict";

import { fillBuckets, niceScale, costChart, timeChart } from "../../webui/charts.js";
import { sessionFromSummary, tokensOf, usageFigures } from "../../webui/history.js";
import {
  reportedShare, costCardsHtml, costModelRowsHtml, costProjectRowsHtml, costliestPromptRowsHtml,
  costliestSessionRowsHtml,
} from "../../webui/analytics.js";
import { pastUsageHtml } from "../../webui/past.js";
import { usageHtml } from "../../webui/sessions.js";

// Sums as the index gives them (USAGE_SUM_KEYS), for a model, a prompt, a range...
const sums = (responses, input, output, usd, extra = {}) => ({
  responses, input_tokens: input, output_tokens: output, cache_read_tokens: 0,
  cache_write_tokens: 0, unpriced_responses: 0, cost_usd: usd, ...extra,
});

test("fillBuckets fills the keys asked, a null figure as 0", () => {
  const points = [{ t: 1000, responses: 2, tokens: 300, cost_usd: null }, { t: 3000, responses: 1, tokens: 5, cost_usd: 0.25 }];
  assert.deepEqual(fillBuckets(points, 0, 4000, 1000, ["responses", "tokens", "cost_usd"]), [
    { t: 0, responses: 0, tokens: 0, cost_usd: 0 }, { t: 1000, responses: 2, tokens: 300, cost_usd: 0 },
    { t: 2000, responses: 0, tokens: 0, cost_usd: 0 }, { t: 3000, responses: 1, tokens: 5, cost_usd: 0.25 },
  ]);
});

test("niceScale: fractional steps below 1 only, clear of float error", () => {
  assert.deepEqual(niceScale(0.065), { max: 0.08, step: 0.02 });
  assert.deepEqual(niceScale(0.08), { max: 0.08, step: 0.02 }, "0.08 / 0.02 is not 5 steps");
  assert.deepEqual(niceScale(0.9), { max: 1, step: 0.5 });
  assert.deepEqual(niceScale(0.0004), { max: 0.0004, step: 0.0001 });
  assert.deepEqual(niceScale(1), { max: 1, step: 1 }, "a count of 1: no 0.5 line");
  assert.deepEqual(niceScale(3.5), { max: 4, step: 1 });
});

test("costChart: a bar per bucket with responses, in dollars on the axis, tokens when nothing is priced", () => {
  const buckets = [
    { t: 0, responses: 3, tokens: 8265, cost_usd: 0.042045 },
    { t: 60e3, responses: 0, tokens: 0, cost_usd: 0 },
    { t: 120e3, responses: 2, tokens: 4834, cost_usd: 0 },
  ];
  const { svg, height } = costChart({ buckets, bucketMs: 60e3, width: 600, describe: (t) => `at ${t}` });
  assert.equal(height, 160);
  const bars = svg.match(/<g [^>]*data-testid="cost-bar"[^]*?<\/g>/g);
  assert.equal(bars.length, 2, "an empty bucket has none");
  assert.match(bars[0], /data-cost="0.042045" data-tokens="8265" data-responses="3"/);
  assert.match(bars[0], /<title>at 0: \$0\.0420 \(mpmd&#39;s price\), 3 responses, 8,265 tokens<\/title><rect class="ch-cost"/);
  assert.match(bars[1], /<title>at 120000: no price, 2 responses, 4,834 tokens<\/title><\/g>/, "unpriced: no bar");
  for (const label of ["$0.00", "$0.02", "$0.04", "$0.06"]) assert.ok(svg.includes(`>${label}</text>`), label);

  const tokens = costChart({ buckets, bucketMs: 60e3, width: 600, metric: "tokens" }).svg;
  assert.equal((tokens.match(/class="ch-cost"/g) || []).length, 2, "both buckets have tokens");
  assert.ok(tokens.includes(">10k</text>"), "the axis in tokens");
  assert.deepEqual(costChart({ buckets: [], bucketMs: 60e3, width: 600 }), { svg: "", height: 0 });
  // The events chart's axis still counts in whole numbers.
  const events = timeChart({ buckets: [{ t: 0, events: 3, failures: 0 }], bucketMs: 60e3, width: 600 }).svg;
  assert.ok(events.includes(">3</text>") && !events.includes(">0.5</text>"));
});

test("tokensOf and usageFigures: mpmd's price to the hundredth of a cent, no price as such", () => {
  const opus = sums(6, 16045, 72, 0.082025, { cache_read_tokens: 10 });
  assert.equal(tokensOf(opus), 16127);
  assert.equal(tokensOf({ input_tokens: null }), 0);
  const f = usageFigures(opus);
  assert.deepEqual([f.responses, f.tokens, f.cost, f.unpriced], [6, 16127, "$0.0820", ""]);
  assert.equal(f.tokensTitle, "16,127 tokens: 16,045 input · 72 output · 10 cache read · 0 cache write");
  assert.match(f.costTitle, /^\$0\.0820: mpmd's price of 6 responses/);
  const some = usageFigures({ ...opus, responses: 8, unpriced_responses: 2 });
  assert.equal(some.unpriced, "+ 2 unpriced");
  assert.match(some.costTitle, /of 6 responses/);
  const none = usageFigures(sums(2, 4810, 24, null, { unpriced_responses: 2 }));
  assert.deepEqual([none.cost, none.unpriced], ["no price", ""]);
});

test("sessionFromSummary carries a past session's usage as the live table names it", () => {
  const summary = { session_id: "00e5ca8a", cwd: "/w/project", first_ts: 1, last_ts: 2, events: 22,
                    ...sums(6, 16045, 72, 0.06562), cost_source: "claude-code" };
  const usage = { models: [{ model: "claude-opus-5-5", ...sums(6, 16045, 72, 0.082025) }], agents: [], prompts: [] };
  const s = sessionFromSummary(summary, usage);
  assert.deepEqual([s.cost_usd, s.cost_source, s.input_tokens, s.unpriced_responses], [0.06562, "claude-code", 16045, 0]);
  assert.deepEqual(Object.keys(s.models), ["claude-opus-5-5"]);
  assert.equal(s.models["claude-opus-5-5"].cost_usd, 0.082025);
  assert.match(usageHtml(summary), /data-source="claude-code"[^>]*>\$0\.07<.*>16k tok</, "a past row says it as a live one");
  const bare = sessionFromSummary({ session_id: "s1", first_ts: 1, last_ts: 2 });
  assert.deepEqual([bare.cost_usd, bare.cost_source, bare.models], [null, null, {}], "an older index's summary");
  assert.equal(usageHtml(bare), "");
});

const COST = { ...sums(12, 32000, 144, 0.127925, { unpriced_responses: 2 }), mpmd_usd: 0.127925, cost_usd: 0.11152, sessions: 2 };
const SESSIONS = [
  { session_id: "00e5ca8a-1", cwd: "/w/project", project: "project", first_prompt: "do <things>",
    ...sums(6, 16045, 72, 0.06562), mpmd_usd: 0.082025, cost_source: "claude-code" },
  { session_id: "7e57c0a7-2", cwd: "/w/api", project: "api", first_prompt: "do things",
    ...sums(6, 16045, 72, 0.0459, { unpriced_responses: 2 }), mpmd_usd: 0.0459, cost_source: "mpmd" },
];

test("reportedShare: Claude Code's part, known only when every session is listed", () => {
  assert.deepEqual(reportedShare(COST, SESSIONS), { usd: 0.06562, sessions: 1 });
  assert.equal(reportedShare({ ...COST, sessions: 11 }, SESSIONS), null);
  assert.deepEqual(reportedShare(COST, SESSIONS.map((s) => ({ ...s, cost_source: "mpmd" }))), { usd: 0, sessions: 0 });
});

test("the cost cards: the range's cost, mpmd's price beside it, tokens and responses", () => {
  const html = costCardsHtml(COST, SESSIONS);
  const card = (id) => html.match(new RegExp(`<div class="stat-card" data-testid="stat-${id}"[^]*?</div></div>`))[0];
  assert.match(card("cost"), /title="\$0\.1115 over 2 sessions: [^"]*"><div class="stat-label">Cost<\/div><div class="stat-value">\$0\.11<\/div><div class="stat-note">\$0\.07 of it Claude Code&#39;s own figure \(1 of 2 sessions\)</);
  assert.match(card("mpmd-price"), /stat-value">\$0\.13<.*stat-note">\+ 2 unpriced responses</);
  assert.match(card("mpmd-price"), /title="\$0\.1279: mpmd&#39;s price[^"]*; 2 responses of a model it has no price for are not in it"/);
  assert.match(card("tokens"), /title="32,144 tokens: 32,000 input[^"]*"[^]*stat-value">32k</);
  assert.match(card("responses"), /stat-value">12<.*in 2 sessions/);
  assert.match(costCardsHtml({ ...COST, sessions: 30 }, SESSIONS), /stat-note">Claude Code&#39;s own figure where it reported</);
  assert.match(costCardsHtml({ ...COST, mpmd_usd: null }, []), /stat-value">—</, "no price at all");
});

test("cost tables: by model and project, costliest prompts and sessions open their session", () => {
  const models = costModelRowsHtml([{ model: "claude-opus-5-5", ...sums(10, 27352, 48, 0.127925) },
                                    { model: "<m>", ...sums(2, 4810, 24, null, { unpriced_responses: 2 }) }]);
  assert.match(models, /data-model="claude-opus-5-5"><td class="mono model">claude-opus-5-5<\/td><td class="num responses">10<\/td><td class="num tokens"[^>]*>27,400<\/td><td class="num cost"[^>]*>\$0\.1279<\/td>/);
  assert.match(models, /data-model="&lt;m&gt;".*class="num cost muted"[^>]*>no price</);

  const projects = costProjectRowsHtml([{ cwd: "/w/my project", project: "my project", sessions: 1,
                                          ...sums(6, 16045, 72, 0.06562), mpmd_usd: 0.082025 }], "24h");
  assert.match(projects, /class="num cost" title="\$0\.0656: its sessions&#39; cost[^"]*; mpmd&#39;s price of its responses: \$0\.0820">\$0\.0656</);
  assert.ok(projects.includes('data-search="cwd:&quot;/w/my project&quot; since:24h"'));

  const prompts = costliestPromptRowsHtml([
    { prompt_id: "p1", session_id: "00e5ca8a-1", prompt: "do <things>", ...sums(3, 8229, 36, 0.042045) },
    { prompt_id: "p2", session_id: "9999aaaa-3", prompt: null, ...sums(1, 3006, 12, 0.01533) },
  ], new Map([["00e5ca8a-1", "project"]]));
  const rows = prompts.match(/<tr [^]*?<\/tr>/g);
  assert.match(rows[0], /data-open-session="00e5ca8a-1" data-prompt-id="p1" tabindex="0"/);
  assert.match(rows[0], /<td class="prompt" title="do &lt;things&gt;">do &lt;things&gt;<\/td>/);
  assert.match(rows[0], /<td class="session">project <span class="mono muted">00e5ca8a<\/span><\/td>/);
  assert.match(rows[0], />3<\/td>.*>8,265<\/td>.*>\$0\.0420<\/td>/s);
  assert.match(rows[1], /<td class="prompt muted" title="p2">\(its text is not indexed\)<\/td>/);
  assert.match(rows[1], /<td class="session"><span class="mono muted">9999aaaa<\/span>/, "a session not listed: its id");

  const sessions = costliestSessionRowsHtml(SESSIONS).match(/<tr [^]*?<\/tr>/g);
  assert.match(sessions[0], /data-open-session="00e5ca8a-1"/);
  assert.match(sessions[0], /class="num cost" data-source="claude-code" title="\$0\.0656: Claude Code&#39;s own figure[^"]*">\$0\.07</);
  assert.match(sessions[0], /<td class="prompt muted" title="do &lt;things&gt;">do &lt;things&gt;</);
  assert.match(sessions[1], /class="num cost estimated" data-source="mpmd" title="\$0\.0459: mpmd&#39;s price of its responses in this range[^"]*">≈\$0\.05</);
});

test("pastUsageHtml: the detail's usage, then a table per subagent and per prompt", () => {
  const summary = { session_id: "00e5ca8a", ...sums(6, 16045, 72, 0.06562), cost_source: "claude-code" };
  const usage = {
    models: [{ model: "claude-opus-5-5", ...sums(6, 16045, 72, 0.082025) }],
    agents: [{ agent_id: null, ...sums(4, 11235, 48, 0.05742) }, { agent_id: "abc5a592f7c7fcd63", ...sums(2, 4810, 24, 0.024605) }],
    prompts: [{ prompt_id: "p1", prompt: "do <things>", ...sums(3, 8229, 36, 0.042045) },
              { prompt_id: null, prompt: null, ...sums(2, 4810, 24, 0.024605) },
              { prompt_id: "p2", prompt: null, ...sums(1, 3006, 12, null, { unpriced_responses: 1 }) }],
  };
  const labels = { abc5a592f7c7fcd63: "general-purpose" };
  const html = pastUsageHtml(sessionFromSummary(summary, usage), usage, (aid) => labels[aid] || "subagent");
  assert.match(html.total, /class="cost"[^>]*>\$0\.07<.*>16k tok</);
  assert.match(html.body, /data-testid="usage-model" data-model="claude-opus-5-5".*>\$0\.0820</);
  const agents = html.body.match(/<tr data-testid="usage-agent"[^]*?<\/tr>/g);
  assert.match(agents[0], /data-agent-id=""><td class="split-label" title="the responses of the session&#39;s own turns">the session itself</);
  assert.match(agents[1], /data-agent-id="abc5a592f7c7fcd63"><td class="split-label" title="subagent abc5a592f7c7fcd63">general-purpose <span class="mono muted">abc5a592<\/span>/);
  assert.match(agents[1], />2<\/td>.*>4,834<\/td>.*>\$0\.0246</s);
  const prompts = html.body.match(/<tr data-testid="usage-prompt"[^]*?<\/tr>/g);
  assert.equal(prompts.length, 3);
  assert.match(prompts[0], /data-prompt-id="p1"><td class="split-label" title="do &lt;things&gt;">do &lt;things&gt;</);
  assert.match(prompts[1], /data-prompt-id="">.*\(none named\)/);
  assert.match(prompts[2], /\(its text is not known\).*class="num cost muted"[^>]*>no price</);
  assert.ok(!html.body.includes("<things>"), "a prompt's text is text");
  assert.equal(pastUsageHtml(sessionFromSummary({ session_id: "s1" }, null), null, () => ""), null, "none read");
  const noSplits = pastUsageHtml(sessionFromSummary(summary, null), null, () => "");
  assert.ok(noSplits && !noSplits.body.includes("usage-agent"), "an older daemon's answer: no splits");
});
