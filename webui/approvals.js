// Permission requests the daemon holds for an answer from the page (policy action "remote"):
// the cards under their session's row, and the answers sent back over the WebSocket.

import { escapeXml as esc } from "./timeline.js";

export class Approvals {
  /** connection(): the page's Connection, null before it has one. */
  constructor({ connection }) {
    this.connection = connection;
    this.bySeq = new Map();
  }

  /** Takes the daemon's whole list; returns the requests that were not held before. */
  apply(list) {
    const before = this.bySeq;
    this.bySeq = new Map((list || []).map((a) => [a.seq, a]));
    return [...this.bySeq.values()].filter((a) => !before.has(a.seq));
  }

  /** The requests of one session, in the daemon's order. */
  forSession(sessionId) {
    return [...this.bySeq.values()].filter((a) => a.session_id === sessionId);
  }

  /** An answer button of a card was clicked: sends the answer. */
  answer(button) {
    const box = button.closest(".approval");
    const seq = Number(box && box.dataset.seq);
    const conn = this.connection();
    if (!Number.isFinite(seq) || !conn) return;
    for (const b of box.querySelectorAll("button")) b.disabled = true; // the first answer wins
    conn.send({ type: "answer", seq, behavior: button.dataset.answer, always: !!button.dataset.always });
  }
}

/** A request's card: what it is, the three answers, and the seconds left (`now`: page clock). */
export function approvalHtml(a, now) {
  const what = [a.tool_name, a.detail].filter(Boolean).join(" ") || "a tool";
  const until = Number(a.expires_at_ms);
  const left = Number.isFinite(until) ? Math.max(0, Math.round((until - now) / 1000)) : null;
  return `<div class="approval" data-testid="approval" data-seq="${Number(a.seq)}" role="group" aria-label="Permission request">
      <div class="what mono" title="${esc(what)}${a.rule ? `\nrule: ${esc(a.rule)}` : ""}">${esc(what)}</div>
      <div class="answers">
        <button type="button" class="btn ok" data-answer="allow" data-testid="approve">Approve</button>
        <button type="button" class="btn bad" data-answer="deny" data-testid="deny">Deny</button>
        <button type="button" class="btn ghost" data-answer="allow" data-always="1" data-testid="always-allow" title="Approve, and add a policy rule that allows this from now on">Always allow</button>
        ${left !== null ? `<span class="muted small" title="then Claude Code asks in the terminal">${left} s</span>` : ""}
      </div></div>`;
}
