// The live sessions list (the left column, "Live"): one row per session the daemon follows,
// with its health, what it waits for, what it cost, and the permission requests held for an
// answer here.

import {
  health, HEALTH_LABEL, sessionDuration, formatDuration, pendingText, parseTime, projectOf, fmtStart,
  sessionUsage,
} from "./model.js";
import { escapeXml as esc } from "./timeline.js";
import { approvalHtml } from "./approvals.js";

const $ = (sel, root = document) => root.querySelector(sel);

/**
 * The session's cost and tokens, for the end of its row's last line; "" before its first
 * response or report is read.
 */
export function usageHtml(s) {
  const u = sessionUsage(s);
  if (!u) return "";
  const source = s.cost_source === "claude-code" ? "claude-code" : "mpmd";
  return `<span class="usage">`
    + (u.cost ? `<span class="cost${u.estimated ? " estimated" : ""}" data-testid="session-cost" data-source="${source}" title="${esc(u.costTitle)}">${esc(u.cost)}</span>` : "")
    + (u.unpriced ? `<span class="unpriced" data-testid="session-unpriced" title="${esc(u.unpricedTitle)}">${esc(u.unpriced)}</span>` : "")
    + (u.tokens ? `<span class="tokens" data-testid="session-tokens" title="${esc(u.tokensTitle)}">${esc(u.tokens)}</span>` : "")
    + `</span>`;
}

function rowInner(s, h, now) {
  const pend = pendingText(s.pending);
  const start = parseTime(s.started_at);
  const project = s.project || projectOf(s.cwd) || String(s.session_id).slice(0, 8);
  const last = s.last_summary || "";
  const usage = usageHtml(s);
  return `<div class="l1"><span class="hdot" aria-hidden="true"></span><span class="project">${esc(project)}</span><span class="hbadge">${HEALTH_LABEL[h]}</span><span class="grow"></span><span class="start" title="started ${esc(s.started_at || "")}">${esc(fmtStart(start, now))}</span><span class="duration" title="duration">${formatDuration(sessionDuration(s, now))}</span></div>
      <div class="l2"><span class="model">${esc(s.model || "—")}</span><span class="grow"></span><span class="stat"><span class="event-count">${Number(s.event_count) || 0}</span> ev</span><span class="stat"><span class="tool-count">${Number(s.tool_count) || 0}</span> tools</span>${s.failure_count ? `<span class="stat bad"><span class="failure-count">${Number(s.failure_count)}</span> failed</span>` : ""}</div>
      ${pend ? `<div class="pbadge" data-testid="permission-badge" data-kind="${esc((s.pending[0] || {}).kind || "permission")}" title="${esc(pend)}">needs you: <span class="mono">${esc(pend)}</span></div>` : ""}
      ${last || usage ? `<div class="foot">${last ? `<div class="l3 muted mono" title="${esc(last)}">${esc(last)}</div>` : ""}${usage}</div>` : ""}`;
}

export class Sessions {
  /**
   * live: the live Store. approvals: the Approvals. selected(): the session the views follow
   * ("" for all, null for none: a past session is shown). showsTotal(): the list is the one
   * shown (its count goes in the title). onSelect(sessionId): a row was chosen ("" for all).
   */
  constructor({ live, approvals, selected, showsTotal, onSelect }) {
    Object.assign(this, { live, approvals, selected, showsTotal, onSelect });
    this.box = $("#session-list");
    // Rows are kept per session and updated in place: a row is rebuilt only when its session
    // changed, and the clock only rewrites durations, so hovering and clicking stay steady.
    this.rowEls = new Map();
    this.allRow = null;
    this.box.addEventListener("click", (e) => {
      const answer = e.target.closest("button[data-answer]");
      if (answer) { this.approvals.answer(answer); return; }
      const row = e.target.closest(".srow");
      if (!row) return;
      this.onSelect(row.dataset.sessionId || "");
    });
    this.box.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" && e.key !== " ") return;
      if (e.target.closest("button[data-answer]")) return; // the button's own click
      const row = e.target.closest(".srow");
      if (row) { e.preventDefault(); this.onSelect(row.dataset.sessionId || ""); }
    });
  }

  render(now) {
    const box = this.box;
    const live = this.live;
    const list = live.sessionList();
    const sel = this.selected();
    let allRow = this.allRow;
    if (!allRow) {
      allRow = this.allRow = document.createElement("div");
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
      let el = this.rowEls.get(s.session_id);
      if (!el) {
        el = document.createElement("div");
        el.setAttribute("data-testid", "session-row");
        el.dataset.sessionId = s.session_id;
        el.setAttribute("role", "option");
        el.tabIndex = 0;
        this.rowEls.set(s.session_id, el);
      }
      const h = health(s, now);
      const waiting = this.approvals.forSession(s.session_id);
      const approvalsKey = waiting.map((a) => a.seq).join(",");
      if (el._session !== s || el._health !== h || el._approvals !== approvalsKey) {
        el._session = s;
        el._health = h;
        el._approvals = approvalsKey;
        el.dataset.health = h;
        el.innerHTML = rowInner(s, h, now) + waiting.map((a) => approvalHtml(a, Date.now())).join("");
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
    for (const [id, el] of this.rowEls) {
      if (!keep.has(id)) { el.remove(); this.rowEls.delete(id); }
    }
    const empty = $("#session-list .empty");
    if (!list.length && !empty) {
      box.insertAdjacentHTML("beforeend", `<div class="empty small">No sessions yet. Install the hooks with <code>mpmd install-hooks</code>, then use Claude Code as usual.</div>`);
    } else if (list.length && empty) {
      empty.remove();
    }
    if (this.showsTotal()) $("#session-total").textContent = list.length ? String(list.length) : "";
    const waiting = list.filter((x) => health(x, now) === "needs-you").length;
    document.title = waiting ? `(${waiting}) mpmd — needs you` : "mpmd";
  }
}
