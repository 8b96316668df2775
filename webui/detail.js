// The detail panel: one event whole (its metadata and JSON), from the feed, the timeline or a
// search result, with what its session cost so far (tokens by kind, and per model); ↑/↓ step
// through the lines, "Open session" opens its session as history.

import { projectFor, sessionUsage, usageBreakdown, formatCount } from "./model.js";
import { usageFigures } from "./history.js";
import { escapeXml as esc } from "./timeline.js";

const $ = (sel, root = document) => root.querySelector(sel);

/**
 * A session's usage for the panel: {total: its cost and tokens in a line, body: tokens by kind
 * and the per-model table}, or null before any response or report is read.
 */
export function usageDetailHtml(session) {
  const b = usageBreakdown(session);
  if (!b) return null;
  const u = sessionUsage(session);
  const total = [
    u.cost && `<span class="cost${u.estimated ? " estimated" : ""}" title="${esc(u.costTitle)}">${esc(u.cost)}</span>`,
    u.unpriced && `<span class="unpriced" title="${esc(u.unpricedTitle)}">${esc(u.unpriced)}</span>`,
    u.tokens && `<span class="tokens" title="${esc(u.tokensTitle)}">${esc(u.tokens)}</span>`,
  ].filter(Boolean).join("");
  const kinds = [...b.kinds, ["total", b.total]]
    .map(([k, n]) => `<dt>${esc(k)}</dt><dd class="mono">${formatCount(n)}</dd>`).join("");
  const rows = b.models.map((m) => `<tr data-testid="usage-model" data-model="${esc(m.model)}">`
    + `<td class="mono">${esc(m.model)}</td><td class="num responses">${formatCount(m.responses)}</td>`
    + `<td class="num tokens" title="${esc(m.tokensTitle)}">${formatCount(m.tokens)}</td>`
    + `<td class="num cost${m.cost === "no price" ? " muted" : ""}">${esc(m.cost)}</td></tr>`).join("");
  const table = rows ? `<table class="tool-table usage-models"><thead><tr><th>Model</th>`
    + `<th class="num">Responses</th><th class="num">Tokens</th><th class="num">Cost</th></tr></thead>`
    + `<tbody>${rows}</tbody></table>` : "";
  // The session's own cost may be Claude Code's figure; a model's is always mpmd's price.
  const note = session.cost_source === "claude-code" && rows
    ? `<p class="muted small">The session's cost is Claude Code's own figure; each model's is mpmd's price of its responses.</p>` : "";
  return { total, body: `<dl class="usage-kinds">${kinds}</dl>${table}${note}` };
}

/**
 * The cells a usage split's row ends with (here and in the analytics' cost tables): its
 * responses, tokens (by kind in the tooltip) and mpmd's price of them.
 */
export function usageCellsHtml(u) {
  const f = usageFigures(u);
  return `<td class="num responses">${formatCount(f.responses)}</td>`
    + `<td class="num tokens" title="${esc(f.tokensTitle)}">${formatCount(f.tokens)}</td>`
    + `<td class="num cost${f.cost === "no price" ? " muted" : ""}" title="${esc(f.costTitle)}">${esc(f.cost)}`
    + `${f.unpriced ? ` <span class="unpriced">${esc(f.unpriced)}</span>` : ""}</td>`;
}

/** A table of a usage split: rows [{testid, key, keyAttr, label, title, u}] (u: the split's sums). */
function splitTable(head, rows) {
  if (!rows.length) return "";
  const tr = rows.map(({ testid, key, keyAttr, label, title, u }) => `<tr data-testid="${testid}" ${keyAttr}="${esc(key)}">`
    + `<td class="split-label" title="${esc(title)}">${label}</td>${usageCellsHtml(u)}</tr>`).join("");
  return `<table class="tool-table usage-models usage-split"><thead><tr><th>${esc(head)}</th>`
    + `<th class="num">Responses</th><th class="num">Tokens</th><th class="num">Cost</th></tr></thead>`
    + `<tbody>${tr}</tbody></table>`;
}

/**
 * A session's usage split by subagent and by prompt, a table each (rows of {agent_id or
 * prompt_id, prompt, and the split's sums}, as the live sessions table and
 * /api/history/session give them); agentLabel(agentId): a subagent's type.
 */
export function usageSplitsHtml(agents, prompts, agentLabel) {
  const agentRows = agents.map((u) => ({
    testid: "usage-agent", keyAttr: "data-agent-id", key: u.agent_id || "",
    label: u.agent_id
      ? `${esc(agentLabel(u.agent_id))} <span class="mono muted">${esc(String(u.agent_id).slice(0, 8))}</span>`
      : "the session itself",
    title: u.agent_id ? `subagent ${u.agent_id}` : "the responses of the session's own turns",
    u,
  }));
  const promptRows = prompts.map((u) => {
    const text = typeof u.prompt === "string" && u.prompt ? u.prompt : "";
    return {
      testid: "usage-prompt", keyAttr: "data-prompt-id", key: u.prompt_id || "",
      label: text ? esc(text) : `<span class="muted">${u.prompt_id ? "(its text is not known)" : "(none named)"}</span>`,
      title: text || (u.prompt_id ? `prompt ${u.prompt_id}` : "responses that answer no prompt of the session's own (a subagent's, or before its first prompt)"),
      u,
    };
  });
  return splitTable("Subagent", agentRows) + splitTable("Prompt", promptRows);
}

export class Detail {
  /**
   * shown: what the event views show ({store, history}). kindOf(rec): the chip's color.
   * feed: the Feed (its selected line). search(): the Search, null before there is one.
   * showsEvents(), showsSearch(): which tab is up. toasts: for the copy's outcome.
   * onOpenSession(sessionId): "Open session".
   */
  constructor({ shown, kindOf, feed, search, showsEvents, showsSearch, toasts, onOpenSession }) {
    Object.assign(this, { shown, kindOf, feed, search, showsEvents, showsSearch, toasts });
    this.el = $("#event-detail");
    this.selectedSeq = null; // of the feed's event shown (null: none, or a search result)
    this.event = null;
    $("#detail-close").addEventListener("click", () => this.close());
    $("#detail-copy").addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText($("#detail-json").textContent);
        this.toasts.show({ kind: "info", title: "Event copied as JSON" });
      } catch {
        this.toasts.show({ kind: "info", title: "Copy failed", text: "The browser did not allow the clipboard." });
      }
    });
    $("#detail-session").addEventListener("click", () => {
      const ev = this.event;
      if (ev && ev.session_id) onOpenSession(ev.session_id);
    });
  }

  get hidden() { return this.el.hidden; }

  /** The event of `seq` of the events shown, its feed line selected. */
  open(seq) {
    const store = this.shown.store;
    const rec = store.bySeq.get(seq);
    if (!rec) return;
    this.selectedSeq = seq;
    this.feed.select(seq);
    this.show(rec.ev, store);
  }

  /** The panel for one stored event; `from`: the Store that knows its session's name. */
  show(ev, from) {
    this.event = ev;
    const kind = this.kindOf({ ev });
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
    this.showUsage(from.sessions.get(ev.session_id));
    $("#detail-json").textContent = JSON.stringify(ev, null, 2);
    // A search result, or a live event: its whole session can open as history.
    const h = this.shown.history;
    $("#detail-session").hidden = !ev.session_id || (h && h.id === ev.session_id && this.showsEvents());
    this.el.hidden = false;
  }

  /** The live sessions table changed: the open event's session usage, as it is now. */
  refreshUsage(live) {
    const ev = this.event;
    if (!this.el.hidden && ev && ev.session_id && this.shown.store === live) {
      this.showUsage(live.sessions.get(ev.session_id));
    }
  }

  /**
   * The session's usage as the sessions table has it now (hidden for a session with none
   * yet, or one the table does not hold: a past session's).
   */
  showUsage(session) {
    const html = usageDetailHtml(session);
    $("#detail-usage").hidden = !html;
    if (!html) return;
    const types = this.shown.store.agentTypes;
    const splits = usageSplitsHtml(session.usage_by_agent || [], session.usage_by_prompt || [],
      (aid) => (types && types.get(aid)) || "subagent");
    $("#detail-usage-total").innerHTML = html.total;
    $("#detail-usage-body").innerHTML = html.body + splits;
  }

  /** Shows the next (+1) or previous (-1) line (of the feed, or of the search results). */
  step(dir) {
    const search = this.search();
    if (this.showsSearch()) {
      const lines = [...document.querySelectorAll("#hsearch-results .line")];
      const i = lines.findIndex((el) => Number(el.dataset.seq) === search.selectedSeq);
      const next = lines[i < 0 ? 0 : i + dir];
      if (!next) return;
      search.pick(Number(next.dataset.seq));
      next.scrollIntoView({ block: "nearest" });
      return;
    }
    const lines = [...document.querySelectorAll("#feed .line")];
    const i = lines.findIndex((el) => Number(el.dataset.seq) === this.selectedSeq);
    const next = lines[i < 0 ? lines.length - 1 : i + dir];
    if (!next) return;
    this.open(Number(next.dataset.seq));
    next.scrollIntoView({ block: "nearest" });
  }

  close() {
    this.el.hidden = true;
    this.selectedSeq = null;
    this.event = null;
    this.feed.select(null);
    const search = this.search();
    if (search) search.select(null);
  }
}
