// The timeline's pure half (webui/timeline.js): extent, zoom and pan, layout and markup.

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  escapeXml, extentOf, zoomView, panView, layoutTimeline, timelineMarkup, describeItem,
} from "../../webui/timeline.js";
import { Store, eventKind } from "../../webui/model.js";

const T0 = Date.parse("2024-05-01T10:00:00Z");
const iso = (ms) => new Date(ms).toISOString();

test("escapeXml escapes the five characters markup cares about", () => {
  assert.equal(escapeXml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  assert.equal(escapeXml(42), "42");
});

test("extentOf pads the range of ticks and spans; nothing is null", () => {
  assert.equal(extentOf([], []), null);
  assert.equal(extentOf([{ t: NaN }], []), null);
  assert.deepEqual(extentOf([{ t: 1000 }, { t: 11_000 }], []), { start: 800, end: 11_200 });
  assert.deepEqual(extentOf([{ t: 5000 }], [{ start: 4000, end: 4500 }]), { start: 3950, end: 5050 },
    "at least 50 ms of padding");
});

test("zoomView keeps the anchor in place and fits everything when zoomed out past it", () => {
  const extent = { start: 0, end: 1000 };
  assert.deepEqual(zoomView(null, extent, 0.5, 250), { start: 125, end: 625 });
  assert.deepEqual(zoomView(null, extent, 0.5), { start: 250, end: 750 }, "no anchor: the middle");
  assert.equal(zoomView({ start: 250, end: 750 }, extent, 2), null);
  assert.equal(zoomView(null, null, 0.5), null);
  const tiny = zoomView({ start: 0, end: 30 }, extent, 0.01, 0);
  assert.equal(tiny.end - tiny.start, 20, "never narrower than 20 ms");
  assert.deepEqual(zoomView(null, extent, 0.5, 1000), { start: 500, end: 1000 }, "kept inside the extent");
});

test("panView moves the window and stops at the ends", () => {
  const extent = { start: 0, end: 1000 };
  assert.deepEqual(panView({ start: 100, end: 300 }, extent, 50), { start: 150, end: 350 });
  assert.deepEqual(panView({ start: 100, end: 300 }, extent, -500), { start: 0, end: 200 });
  assert.deepEqual(panView({ start: 100, end: 300 }, extent, 5000), { start: 800, end: 1000 });
  assert.equal(panView(null, extent, 10), null);
});

function sample() {
  const st = new Store();
  st.namespaces = { PreToolUse: "tool", PostToolUse: "tool" };
  let seq = 1;
  const e = (fields) => ({ seq: seq++, session_id: "s1", ...fields });
  st.applySessions([{ session_id: "s1", project: "shop<>" }, { session_id: "s2", project: "api" }]);
  st.applyEvents([
    e({ event_type: "PreToolUse", tool_use_id: "t1", tool_name: "Bash", timestamp: iso(T0) }),
    e({ event_type: "PreToolUse", tool_use_id: "t2", tool_name: "Read", timestamp: iso(T0 + 1000) }),
    e({ event_type: "PostToolUse", tool_use_id: "t1", tool_name: "Bash", timestamp: iso(T0 + 4000) }),
    e({ event_type: "PostToolUseFailure", tool_use_id: "t2", tool_name: "Read", timestamp: iso(T0 + 2000) }),
    e({ event_type: "SubagentStart", agent_id: "ag", timestamp: iso(T0 + 3000) }),
    e({ event_type: "Stop", session_id: "s2", timestamp: iso(T0 + 500) }),
  ]);
  return st;
}

function layout(st, { width = 1000, view = null, now = T0 + 60_000 } = {}) {
  return layoutTimeline({
    recs: st.recs, spans: st.spanList({}, now), view, now, width,
    labelOf: (sid) => st.projectOf(sid), agentLabelOf: (aid) => `agent ${aid}`,
    kindOf: (rec) => eventKind(rec.ev, st.namespaces),
  });
}

test("layoutTimeline: nothing to show, or no room, is empty", () => {
  const empty = layoutTimeline({ recs: [], spans: [], view: null, now: T0, width: 800,
                                 labelOf: String, agentLabelOf: String, kindOf: () => "tool" });
  assert.equal(empty.empty, true);
  assert.equal(layout(sample(), { width: 150 }).empty, true);
  assert.match(timelineMarkup(empty), /No events in view yet/);
});

test("layoutTimeline: a group per session, its subagents after it, overlapping calls on two rows", () => {
  const L = layout(sample());
  assert.equal(L.empty, false);
  assert.equal(L.zoomed, false);
  assert.deepEqual(L.groups.map((g) => [g.sessionId, g.agentId, g.label, g.newSession]), [
    ["s1", null, "shop<>", true], ["s1", "ag", "↳ agent ag", false], ["s2", null, "api", true],
  ]);
  const main = L.groups[0];
  assert.equal(main.spans.length, 2);
  const rows = new Set(main.spans.map((sp) => sp.y));
  assert.equal(rows.size, 2, "t1 and t2 overlap: two rows");
  for (const g of L.groups) assert.ok(g.top >= 24, "below the axis");
  assert.ok(L.groups[1].top > main.top && L.groups[2].top > L.groups[1].top);
  assert.equal(L.nowX, null, "now is past the extent");
  assert.ok(L.axis.length > 0);
  assert.ok(L.height > L.groups[2].top);
});

test("layoutTimeline marks now when it falls in the window, and keeps a zoomed view", () => {
  const st = sample();
  const L = layout(st, { now: T0 + 2500 });
  assert.ok(L.nowX > L.labelW && L.nowX < L.width);
  const z = layout(st, { view: { start: T0, end: T0 + 1500 } });
  assert.equal(z.zoomed, true);
  assert.deepEqual(z.view, { start: T0, end: T0 + 1500 });
  const ticks = z.groups.flatMap((g) => g.ticks.map((t) => t.rec.seq));
  assert.ok(!ticks.includes(5), "an event after the window has no tick");
});

test("timelineMarkup draws a span per call with its id, escapes labels, and describes items", () => {
  const L = layout(sample());
  const svg = timelineMarkup(L);
  assert.match(svg, /data-tool-use-id="t1"/);
  assert.match(svg, /class="span ok" data-tool-use-id="t1"/);
  assert.match(svg, /class="span failed" data-tool-use-id="t2"/);
  assert.ok(svg.includes("shop&lt;&gt;"));
  assert.ok(!svg.includes("shop<>"));
  assert.equal(L.items.length, (svg.match(/data-i="/g) || []).length);
  const span = L.items.find((it) => it.s && it.s.tool_use_id === "t2");
  assert.match(describeItem(span), /Read · 1\.00 s · failed/);
  const tick = L.items.find((it) => it.rec);
  assert.match(describeItem(tick), /PreToolUse|PostToolUse|Stop|SubagentStart/);
  assert.equal(describeItem(null), "");
});
