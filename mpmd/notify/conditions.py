"""Pure: which notifications the journal calls for, given the rules and the time.

``Watch.feed`` folds journal lines into the sessions table the viewer uses
(mpmd.model.sessions), so "needs you" means here what it means on the page; ``Watch.due``
says what to send now. Its state (``dump``/``load``) is saved with the notifier's cursor,
so a restart neither repeats nor forgets.

The rules of sending (docs/notify.md):
- one condition instance, one notification: a lasting condition (needs-you, idle) is sent
  once, while it lasts, when it has lasted the rule's ``after_s``, outside quiet hours; its
  end is followed up (``follow_up``) where it was sent;
- an event condition (a failure, a stop, an end) is sent once, unless it is older than
  MAX_EVENT_AGE_S when read (a daemon that was down does not flood you) or falls in quiet
  hours (counted, not sent);
- what one pass finds for a rule goes out as one message (grouped), and a rule sends at most
  ``max_per_hour``: past it, lasting conditions wait, events wait in a bounded backlog.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import msgspec

from mpmd.model.sessions import (
    INPUT,
    MAX_SESSIONS,
    EventView,
    Ledger,
    Pending,
    Session,
    Sessions,
)
from mpmd.notify import rules as R

MAX_EVENT_AGE_S = 3600.0  # an event condition read later than this is not sent
MAX_LASTING_AGE_S = 86400.0  # a wait older than this is a session long gone
MAX_BACKLOG = 100  # event notices a rule holds past its rate (more are dropped, counted)
# Lasting instances a rule remembers having sent: more than the sessions table can hold
# open (MAX_SESSIONS x MAX_PENDING), so none still open is forgotten (and sent again).
MAX_SENT = 10_000
MAX_HELD = 1000  # held requests remembered
MAX_GROUP_LINES = 10  # notices listed in a grouped message
MAX_TEXT = 200
IDLE_PROMPT = "idle_prompt"


class Held(msgspec.Struct, array_like=True):
    """A permission request held for an answer (policy action remote)."""

    event_id: str  # hex
    expires_at: float  # unix seconds


class Notice(msgspec.Struct, kw_only=True):
    """One thing to tell: a condition that started (``open``), one that ended
    (``resolved``), or an event (``event``)."""

    condition: str
    phase: str  # "open", "resolved", "event"
    key: str  # the condition instance
    session_id: str | None = None
    project: str | None = None
    tool_name: str | None = None
    detail: str = ""  # the command, the path, the question, the error
    since: float = 0.0  # unix seconds: when it started
    resolution: str = ""  # how it ended
    held_seq: int | None = None  # a held request: Approve / Deny links go with it
    held: Held | None = None
    cost_usd: float | None = None


class State(msgspec.Struct, kw_only=True):
    """What the notifier keeps between passes and restarts."""

    rows: list[Session] = msgspec.field(default_factory=list)
    ledgers: dict[str, Ledger] = msgspec.field(default_factory=dict)
    held: dict[int, Held] = msgspec.field(default_factory=dict)
    # By rule: the lasting instances sent and still open (followed up when they end), and
    # the once-only ones told (a session's cost crossing its budget).
    sent: dict[str, dict[str, Notice]] = msgspec.field(default_factory=dict)
    # (key: session id), as long as the session is in the table: as many as it holds.
    told: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)
    events: list[Notice] = msgspec.field(default_factory=list)  # read, not yet evaluated
    backlog: dict[str, list[Notice]] = msgspec.field(default_factory=dict)  # rule: notices
    rate: dict[str, list[float]] = msgspec.field(default_factory=dict)  # rule: send times
    counts: dict[str, int] = msgspec.field(default_factory=dict)  # quiet, stale, dropped


class _Line(msgspec.Struct):
    """What is read of a journal line beyond the sessions table's view."""

    id: str = ""
    event_type: str = ""
    session_id: str | None = None
    timestamp: str = ""
    tool_name: str | None = None
    summary: str = ""
    decision: dict[str, Any] | None = None
    payload: msgspec.Raw = msgspec.Raw(b"null")


class _Payload(msgspec.Struct):
    error: Any = None
    is_interrupt: bool = False
    reason: str | None = None
    behavior: str | None = None
    answered_by: str | None = None
    last_assistant_message: Any = None
    answer_to: Any = None


_line = msgspec.json.Decoder(_Line)
_view = msgspec.json.Decoder(EventView)
_payload = msgspec.json.Decoder(_Payload)


def epoch(iso: str) -> float:
    """Unix seconds of an ISO 8601 time (0 when it is none)."""
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (ValueError, TypeError):
        return 0.0


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value[:MAX_TEXT]
    return "" if value is None else str(value)[:MAX_TEXT]


# How a wait ended, by the event that ended it.
_RESOLVED_BY = {
    "PostToolUse": "approved: the tool ran",
    "PostToolUseFailure": "approved: the tool ran, and failed",
    "PermissionDenied": "denied",
    "PermissionAnswered": "answered in the terminal",
    "UserPromptSubmit": "you are back at the prompt",
    "Stop": "the turn ended",
    "StopFailure": "the turn ended",
    "SessionEnd": "the session ended",
}


class Watch:
    def __init__(self, rules: list[R.Rule], state: State | None = None,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self.rules = rules
        st = state or State()
        self.state = st
        self.sessions = Sessions.load(st.rows, st.ledgers, max_sessions)
        self._resolved: dict[str, str] = {}  # instance key: how it ended (this pass)

    # ---- reading ------------------------------------------------------------------------
    def feed(self, line: bytes, now: float) -> None:
        """One journal line."""
        try:
            view = _view.decode(line)
            extra = _line.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return
        kind = view.event_type
        sid = view.session_id
        before = self._waits(sid)
        row = self.sessions.apply(view)
        if before:
            after = {w.seq for w in row.pending} if row is not None else set()
            for seq in before - after:
                self._resolved[f"{sid}:{seq}"] = self._how_resolved(kind, extra)
        if kind == "PermissionRequest" and isinstance(extra.decision, dict) and \
                extra.decision.get("action") == "remote" and len(extra.id) == 32:
            timeout = extra.decision.get("timeout_s", 60.0)
            timeout = float(timeout) if isinstance(timeout, (int, float)) else 60.0
            self.state.held[view.seq] = Held(extra.id, epoch(view.timestamp) + timeout)
            while len(self.state.held) > MAX_HELD:
                self.state.held.pop(next(iter(self.state.held)))
        elif kind == "RemoteAnswer":
            answer_to = self._payload(extra).answer_to
            if isinstance(answer_to, int):
                self.state.held.pop(answer_to, None)
        condition = {"PostToolUseFailure": R.TOOL_FAILED, "StopFailure": R.TURN_FAILED,
                     "Stop": R.STOPPED, "SessionEnd": R.ENDED}.get(kind)
        if condition is None or not any(r.wants(condition) for r in self.rules):
            return
        p = self._payload(extra)
        if kind == "PostToolUseFailure" and p.is_interrupt:
            return  # the person pressed Esc: nothing to tell them
        at = epoch(view.timestamp)
        if now - at > MAX_EVENT_AGE_S:
            self._count("stale")
            return
        detail = {R.TOOL_FAILED: _text(p.error), R.TURN_FAILED: _text(p.error),
                  R.ENDED: _text(p.reason),
                  R.STOPPED: _text(p.last_assistant_message)}[condition]
        self.state.events.append(Notice(
            condition=condition, phase="event", key=f"{sid}:{view.seq}", session_id=sid,
            project=row.project if row else None, tool_name=view.tool_name,
            detail=detail or _text(view.summary), since=at))
        most = MAX_BACKLOG * max(1, len(self.rules))
        if len(self.state.events) > most:  # more read in one pass than any rule keeps
            self._count("dropped", len(self.state.events) - most)
            del self.state.events[:-most]

    def _waits(self, sid: str | None) -> set[int]:
        row = self.sessions.get(sid) if sid else None
        return {w.seq for w in row.pending} if row is not None else set()

    @staticmethod
    def _payload(extra: _Line) -> _Payload:
        try:
            return _payload.decode(extra.payload)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return _Payload()

    def _how_resolved(self, kind: str, extra: _Line) -> str:
        if kind == "RemoteAnswer":
            p = self._payload(extra)
            verb = {"allow": "approved", "deny": "denied"}.get(p.behavior or "", "answered")
            where = {"viewer": "in the viewer", "link": "from a notification"}.get(
                p.answered_by or "", "")
            return f"{verb} {where}".strip()
        return _RESOLVED_BY.get(kind, "answered")

    def _count(self, what: str, n: int = 1) -> None:
        self.state.counts[what] = self.state.counts.get(what, 0) + n

    # ---- deciding -----------------------------------------------------------------------
    def due(self, now: float, minute_of_day: int | None = None) -> list[tuple[R.Rule,
                                                                            list[Notice]]]:
        """What to send now: for each rule, the notices of one message (grouped)."""
        if minute_of_day is None:
            local = time.localtime(now)
            minute_of_day = local.tm_hour * 60 + local.tm_min
        lasting = self._lasting(now)
        events, self.state.events = self.state.events, []
        resolved, self._resolved = self._resolved, {}
        out: list[tuple[R.Rule, list[Notice]]] = []
        open_keys = {n.key for n in lasting}
        for rule in self.rules:
            quiet = rule.quiet(minute_of_day)
            notices: list[Notice] = []
            # Lasting conditions that ended: follow up where they were sent.
            sent_by_rule = self.state.sent.setdefault(rule.name, {})
            told = self.state.told.setdefault(rule.name, {})
            for key in [k for k, sid in told.items() if self.sessions.get(sid) is None]:
                del told[key]  # the session left the table: so has its cost
            for key in [k for k in sent_by_rule if k not in open_keys]:
                n = sent_by_rule.pop(key)
                if rule.follow_up and n.condition == R.NEEDS_YOU and not quiet:
                    notices.append(msgspec.structs.replace(
                        n, phase="resolved",
                        resolution=resolved.get(n.key, "no longer waiting")))
            backlog = self.state.backlog.setdefault(rule.name, [])
            for n in events:
                if rule.wants(n.condition) and rule.covers(n.session_id, n.project, None):
                    if quiet:
                        self._count("quiet")
                    else:
                        backlog.append(n)
            if len(backlog) > MAX_BACKLOG:
                self._count("dropped", len(backlog) - MAX_BACKLOG)
                del backlog[:-MAX_BACKLOG]
            fresh = []
            if not quiet:
                for n in lasting:
                    if n.key in sent_by_rule or n.key in told or not rule.wants(n.condition) or \
                            not rule.covers(n.session_id, n.project, None):
                        continue
                    if n.condition == R.NEEDS_YOU and now - n.since < rule.after_s:
                        continue
                    if n.condition == R.IDLE and now - n.since < rule.idle_minutes * 60:
                        continue
                    if n.condition == R.COST and (n.cost_usd is None or rule.budget_usd is None
                                                  or n.cost_usd < rule.budget_usd):
                        continue
                    fresh.append(n)
            if not (notices or backlog or fresh):
                continue
            times = [t for t in self.state.rate.get(rule.name, []) if now - t < 3600]
            if len(times) >= rule.max_per_hour:
                self.state.rate[rule.name] = times
                continue  # lasting ones wait (still open next pass), events in the backlog
            times.append(now)
            self.state.rate[rule.name] = times
            for n in fresh:
                if n.phase == "open":
                    sent_by_rule[n.key] = n
                else:
                    told[n.key] = n.session_id or ""
            while len(sent_by_rule) > MAX_SENT:
                sent_by_rule.pop(next(iter(sent_by_rule)))
            notices += backlog + fresh
            backlog.clear()
            out.append((rule, notices))
        return out

    def _lasting(self, now: float) -> list[Notice]:
        """Every lasting condition instance open now (before the rules' delays)."""
        wanted = {c for r in self.rules for c in r.on}
        out: list[Notice] = []
        for row in self.sessions.all():
            last = epoch(row.last_event_at)
            if now - last > MAX_LASTING_AGE_S:
                continue  # a session long gone (or only usage read of it yet)
            if R.NEEDS_YOU in wanted and row.ended_at is None:
                # Claude Code's idle_prompt ("waiting for your input", a minute after each
                # turn) is the idle condition's business, not a wait for an answer.
                out += [self._needs_you(row, w) for w in row.pending
                        if w.notification_type != IDLE_PROMPT]
            if R.IDLE in wanted and row.ended_at is None and not row.pending and \
                    not row.running:
                out.append(Notice(condition=R.IDLE, phase="open",
                                  key=f"idle:{row.session_id}:{row.last_seq}",
                                  session_id=row.session_id, project=row.project,
                                  detail=row.last_summary[:MAX_TEXT], since=last))
            if R.COST in wanted and row.cost_usd is not None:
                out.append(Notice(condition=R.COST, phase="event",
                                  key=f"cost:{row.session_id}", session_id=row.session_id,
                                  project=row.project, cost_usd=row.cost_usd, since=now))
        return out

    def _needs_you(self, row: Session, w: Pending) -> Notice:
        held = self.state.held.get(w.seq) if w.kind != INPUT else None
        what = w.detail or w.message
        return Notice(condition=R.NEEDS_YOU, phase="open", key=f"{row.session_id}:{w.seq}",
                      session_id=row.session_id, project=row.project, tool_name=w.tool_name,
                      detail=what[:MAX_TEXT], since=epoch(w.since) or 0.0,
                      held_seq=w.seq if held is not None else None, held=held)

    # ---- keeping ------------------------------------------------------------------------
    def dump(self) -> State:
        rows, ledgers = self.sessions.dump()
        self.state.rows, self.state.ledgers = rows, ledgers
        return self.state
