"""Pure: the table of recent sessions the viewer lists, folded from stored events.

Each stored event updates its session's row: project and model, when it started and was last
active, how many events and tool calls it had, which tool calls are running, what it needs the
person for, which subagents it ran. The page works out health (needs you, active, idle,
stale...) from these and its own clock, so the rules of time live in one place
(docs/viewer.md).

"Needs you", as Claude Code 2.1.328 signals it (checked with the real client, docs/viewer.md):
a permission prompt fires PermissionRequest as it appears, naming the tool and its input
(without the tool_use_id, which the PreToolUse just before it carries); a
``permission_prompt`` Notification follows some seconds later with no tool named; dialogs
send a Notification (``agent_needs_input``, ``elicitation_dialog``, ``idle_prompt``...) as
they open. Answering yes runs the tool (PostToolUse). Answering no, or Esc, fires no hook at
all: only the transcript records it, and mpmd.transcripts.prompt_watch turns that into a
PermissionAnswered event of mpmd's own.
"""

from __future__ import annotations

import posixpath
import re
from collections import OrderedDict
from typing import Any

import msgspec

from mpmd.model.events import NEEDS_YOU_NOTIFICATIONS

MAX_SESSIONS = 500
MAX_AGENTS = 50
MAX_DETAIL = 200
MAX_RUNNING = 20  # open tool calls kept per session (a session runs a handful at once)
MAX_PENDING = 20  # waits kept per session
MAX_MODELS = 20  # models kept per session (more are summed under "other")
MAX_SPLITS = 50  # subagents and prompts whose usage a session keeps (the latest)
MAX_PROMPT_TEXT = 200
MAX_AFTER_REPORT = 2000  # responses remembered past Claude Code's last cost report

PERMISSION = "permission"  # a tool call waits for the person's approval
INPUT = "input"  # a dialog, a question or the prompt waits for the person

# Events that end whatever the session was waiting for: the user is back at the prompt.
_CLEARS_ALL_PENDING = frozenset({"UserPromptSubmit", "Stop", "StopFailure", "SessionEnd"})
# Events that end the wait for their own tool: it ran, failed or was denied (by a hook, or by
# the person in the terminal).
_CLEARS_TOOL_PENDING = frozenset({"PostToolUse", "PostToolUseFailure", "PermissionDenied",
                                  "PermissionAnswered"})
_TOOL_CALLS = frozenset({"PostToolUse", "PostToolUseFailure"})
# Events that show the session moving again after a dialog: the person answered it.
_MOVES_ON = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure", "PostToolBatch",
                       "PermissionRequest", "PermissionDenied", "PermissionAnswered",
                       "ElicitationResult", "SubagentStart", "PreCompact", "MessageDisplay"})
# Only these need their payload decoded; every other event is folded from its envelope.
# (UserPromptSubmit for its permission_mode: a headless SessionStart carries none.)
_PAYLOAD_NEEDED = frozenset({
    "SessionStart", "SessionEnd", "PermissionRequest", "Notification", "SubagentStart",
    "UserPromptSubmit", "PostModelSwitch", "Elicitation", "RemoteAnswer",
})
# mpmd's own events read off the transcript: what the session cost, not what it did (they
# do not make it active, nor count as its events).
_USAGE_EVENTS = frozenset({"ModelUsage", "CostReport"})
_PERMISSION_TOOL = re.compile(r"permission to use (\S+)")
_PERMISSION_NOTES = frozenset({"permission_prompt", "worker_permission_prompt"})


class EventView(msgspec.Struct, kw_only=True):
    """What the viewer's server side reads of a stored event (the payload stays raw)."""

    seq: int
    event_type: str
    session_id: str | None = None
    timestamp: str = ""
    cwd: str | None = None
    agent_id: str | None = None
    tool_name: str | None = None
    tool_use_id: str | None = None
    summary: str = ""
    payload: msgspec.Raw = msgspec.Raw(b"null")


class Running(msgspec.Struct):
    """A tool call that started (PreToolUse) and has not ended yet."""

    tool_use_id: str | None
    tool_name: str | None
    summary: str
    since: str
    seq: int


class Pending(msgspec.Struct):
    """What the session waits for the person for."""

    tool_name: str | None
    detail: str  # what a person approves: the command, the path, the URL; or the dialog's text
    since: str
    seq: int
    kind: str = PERMISSION  # PERMISSION or INPUT
    message: str = ""  # what Claude Code said of it (a Notification's text)
    notification_type: str | None = None
    tool_use_id: str | None = None  # of the tool call waiting, when known


class Agent(msgspec.Struct):
    agent_id: str
    agent_type: str | None
    started_at: str
    stopped_at: str | None = None


class ModelTotals(msgspec.Struct):
    """One model's share of a session: tokens by kind and what they cost (None: no price)."""

    responses: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = 0.0


class UsageSplit(msgspec.Struct):
    """A share of a session's responses: a subagent's (``agent_id``; None: the session's
    own turns) or a prompt's (``prompt_id``, and its text once its UserPromptSubmit is seen).
    ``cost_usd``: mpmd's price of its priced responses (None: none is priced)."""

    agent_id: str | None = None
    prompt_id: str | None = None
    prompt: str | None = None
    responses: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    unpriced_responses: int = 0
    cost_usd: float | None = None


class Session(msgspec.Struct):
    session_id: str
    cwd: str | None = None
    project: str | None = None
    model: str | None = None
    permission_mode: str | None = None
    started_at: str = ""
    last_event_at: str = ""
    ended_at: str | None = None
    end_reason: str | None = None
    event_count: int = 0
    tool_count: int = 0
    failure_count: int = 0
    last_seq: int = 0
    last_summary: str = ""
    transcript_path: str | None = None
    running: list[Running] = msgspec.field(default_factory=list)
    pending: list[Pending] = msgspec.field(default_factory=list)
    agents: list[Agent] = msgspec.field(default_factory=list)
    # What the session cost (from its transcript: ModelUsage, CostReport; fold_usage).
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None  # None until a response or a report is seen
    cost_source: str | None = None  # "claude-code" (its own report, and after it) or "mpmd"
    unpriced_responses: int = 0  # responses of a model with no price: not in cost_usd
    models: dict[str, ModelTotals] = msgspec.field(default_factory=dict)
    usage_by_agent: list[UsageSplit] = msgspec.field(default_factory=list)
    usage_by_prompt: list[UsageSplit] = msgspec.field(default_factory=list)  # newest last


class Ledger(msgspec.Struct):
    """How a session's cost is reconciled (kept beside its row, not shown): mpmd's price of
    every response, Claude Code's last report, and mpmd's price of the responses after it."""

    estimated_usd: float = 0.0
    reported_usd: float | None = None
    reported_as_of: str = ""
    after_report: list[tuple[str, float]] = msgspec.field(default_factory=list)


class _Payload(msgspec.Struct):
    """The few payload fields the table uses; anything else (or any other shape) is ignored."""

    model: str | None = None
    to_model: str | None = None
    reason: str | None = None
    permission_mode: str | None = None
    notification_type: str | None = None
    message: str | None = None
    agent_type: str | None = None
    tool_input: dict[str, object] | None = None
    transcript_path: str | None = None
    prompt: str | None = None
    prompt_id: str | None = None
    answer_to: int | None = None
    behavior: str | None = None


class UsagePayload(msgspec.Struct):
    """What is read of a ModelUsage or CostReport payload (mpmd.model.events): by this table
    and by the search index (mpmd.history.index), so that both count the same events."""

    hook_event_name: str = ""
    model: str | None = None
    prompt_id: Any = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float | None = None
    at: str | None = None
    total_cost_usd: float | None = None
    as_of: str | None = None


_payload_decoder = msgspec.json.Decoder(_Payload)
_usage_decoder = msgspec.json.Decoder(UsagePayload)


def _payload(view: EventView) -> _Payload:
    try:
        return _payload_decoder.decode(view.payload)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return _Payload()


def detail_of(tool_input: dict[str, object] | None) -> str:
    """The part of a tool call a person approves: the command, the file, the URL..."""
    if not tool_input:
        return ""
    for key in ("command", "file_path", "url", "pattern", "path", "query", "prompt"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return value[:MAX_DETAIL]
    for value in tool_input.values():
        if isinstance(value, str) and value:
            return value[:MAX_DETAIL]
    return ""


class Sessions:
    """The most recently active MAX_SESSIONS sessions, updated one event at a time."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._rows: OrderedDict[str, Session] = OrderedDict()  # least recently active first
        self._ledgers: dict[str, Ledger] = {}
        self._max = max_sessions

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, session_id: str) -> Session | None:
        return self._rows.get(session_id)

    def all(self) -> list[Session]:
        """Most recently active first."""
        return list(reversed(self._rows.values()))

    def apply(self, ev: EventView) -> Session | None:
        """Fold one event in; returns the session it changed (None: it has no session)."""
        sid = ev.session_id
        if not sid:
            return None
        row = self._rows.get(sid)
        if ev.event_type in _USAGE_EVENTS:
            if row is None:
                row = self._new(sid, "")
            ledger = self._ledgers.get(sid)
            if ledger is None:
                ledger = self._ledgers[sid] = Ledger()
            fold_usage(row, ledger, ev)
            return row
        if row is None:
            row = self._new(sid, ev.timestamp)
        else:
            self._rows.move_to_end(sid)
        row.event_count += 1
        row.last_seq = max(row.last_seq, ev.seq)
        if ev.timestamp > row.last_event_at:  # ISO UTC strings sort by time
            row.last_event_at = ev.timestamp
        if ev.timestamp and (not row.started_at or ev.timestamp < row.started_at):
            row.started_at = ev.timestamp
        if ev.cwd and row.cwd is None:
            row.cwd = ev.cwd
            row.project = posixpath.basename(ev.cwd.rstrip("/")) or ev.cwd
        if ev.summary:
            row.last_summary = ev.summary
        self._fold(row, ev)
        return row

    def dump(self) -> tuple[list[Session], dict[str, Ledger]]:
        """Everything the table holds, least recently active first (for ``load``)."""
        return list(self._rows.values()), dict(self._ledgers)

    @classmethod
    def load(cls, rows: list[Session], ledgers: dict[str, Ledger],
             max_sessions: int = MAX_SESSIONS) -> Sessions:
        table = cls(max_sessions)
        for row in rows[-max_sessions:]:
            table._rows[row.session_id] = row
        table._ledgers = {sid: ledgers[sid] for sid in table._rows if sid in ledgers}
        return table

    def _new(self, sid: str, started_at: str) -> Session:
        row = self._rows[sid] = Session(session_id=sid, started_at=started_at)
        if len(self._rows) > self._max:
            gone, _ = self._rows.popitem(last=False)
            self._ledgers.pop(gone, None)
        return row

    def _fold(self, row: Session, ev: EventView) -> None:
        kind = ev.event_type
        p = _payload(ev) if kind in _PAYLOAD_NEEDED else None
        if p is not None and p.permission_mode:
            row.permission_mode = p.permission_mode
        if p is not None and p.transcript_path:
            row.transcript_path = p.transcript_path[:4096]
        if kind in _TOOL_CALLS:
            row.tool_count += 1
            if kind == "PostToolUseFailure":
                row.failure_count += 1
        if kind in _MOVES_ON or kind in _CLEARS_ALL_PENDING:
            row.pending[:] = [w for w in row.pending if w.kind != INPUT]
        if kind == "SessionStart" and p is not None:
            row.model = p.model or row.model
            row.ended_at = None  # a resumed session is live again
            row.end_reason = None
        elif kind == "PostModelSwitch" and p is not None:
            row.model = p.to_model or row.model
        elif kind == "SessionEnd":
            row.ended_at = ev.timestamp
            row.end_reason = p.reason if p is not None else None
        elif kind == "StopFailure":
            row.failure_count += 1
        elif kind == "PreToolUse":
            row.running.append(Running(ev.tool_use_id, ev.tool_name, ev.summary, ev.timestamp,
                                       ev.seq))
            del row.running[:-MAX_RUNNING]
        elif kind == "PermissionRequest" and p is not None:
            self._wait_for_tool(row, ev, ev.tool_name, detail_of(p.tool_input), "", None)
        elif kind == "Notification" and p is not None and \
                p.notification_type in NEEDS_YOU_NOTIFICATIONS:
            message = (p.message or "")[:MAX_DETAIL]
            if p.notification_type in _PERMISSION_NOTES:
                match = _PERMISSION_TOOL.search(p.message or "")
                self._wait_for_tool(row, ev, match.group(1) if match else None, "", message,
                                    p.notification_type)
            elif not any(w.kind == INPUT and w.notification_type == p.notification_type
                         for w in row.pending):  # the Elicitation event opened it already
                self._add(row, Pending(None, message, ev.timestamp, ev.seq, INPUT, message,
                                       p.notification_type))
        elif kind == "Elicitation" and p is not None:
            # An MCP server asks the person, at once (its Notification follows 6 s later
            # and joins this wait).
            message = (p.message or "")[:MAX_DETAIL] or "An MCP server needs your input"
            self._add(row, Pending(None, message, ev.timestamp, ev.seq, INPUT, message,
                                   "elicitation_dialog"))
        elif kind == "UserPromptSubmit" and p is not None and p.prompt_id and p.prompt:
            _split(row.usage_by_prompt, None, p.prompt_id).prompt = p.prompt[:MAX_PROMPT_TEXT]
        elif kind == "SubagentStart" and ev.agent_id:
            row.agents.append(Agent(ev.agent_id, p.agent_type if p else None, ev.timestamp))
            del row.agents[:-MAX_AGENTS]
        elif kind == "SubagentStop" and ev.agent_id:
            for agent in row.agents:
                if agent.agent_id == ev.agent_id and agent.stopped_at is None:
                    agent.stopped_at = ev.timestamp
        elif kind == "RemoteAnswer" and p is not None and p.behavior in ("allow", "deny"):
            # A held request answered (from the viewer or a link): its wait is over, whether
            # or not the tool then runs.
            row.pending[:] = [w for w in row.pending if w.seq != p.answer_to]
        if kind in _CLEARS_ALL_PENDING:
            row.pending.clear()
            if kind != "UserPromptSubmit":
                row.running.clear()  # the turn is over: nothing runs on (interrupted or not)
        elif kind in _CLEARS_TOOL_PENDING:
            self._ended(row, ev)

    @staticmethod
    def _ended(row: Session, ev: EventView) -> None:
        """A tool call ended (or was refused): it no longer runs, nor waits for anyone."""
        if ev.tool_use_id and any(r.tool_use_id == ev.tool_use_id for r in row.running):
            row.running[:] = [r for r in row.running if r.tool_use_id != ev.tool_use_id]
        else:  # no id to go by: the oldest call of that tool
            for r in row.running:
                if r.tool_name == ev.tool_name:
                    row.running.remove(r)
                    break
        if ev.tool_use_id and any(w.tool_use_id == ev.tool_use_id for w in row.pending):
            row.pending[:] = [w for w in row.pending if w.tool_use_id != ev.tool_use_id]
        elif row.pending:
            row.pending[:] = [w for w in row.pending
                              if w.kind != PERMISSION or w.tool_name != ev.tool_name]

    def _wait_for_tool(self, row: Session, ev: EventView, tool: str | None, detail: str,
                       message: str, notification_type: str | None) -> None:
        """A permission prompt is showing. PermissionRequest (which names the tool and its
        input) and the permission_prompt Notification (which names nothing, and comes some
        seconds later) both announce one prompt: one entry per tool call. The call waiting
        is the latest running one of that tool; a notification that names no tool is taken
        for the latest running call of any tool."""
        call = next((r for r in reversed(row.running)
                     if tool is None or r.tool_name == tool), None)
        if call is not None:
            tool = call.tool_name
        for wait in row.pending:
            if wait.kind == PERMISSION and (tool is None or wait.tool_name in (tool, None)):
                wait.tool_name = wait.tool_name or tool
                wait.tool_use_id = wait.tool_use_id or (call.tool_use_id if call else None)
                if detail:
                    wait.detail = detail
                wait.message = message or wait.message
                wait.notification_type = notification_type or wait.notification_type
                return
        if not detail:
            detail = _detail_of_summary(call.summary) if call is not None else message
        self._add(row, Pending(tool, detail, ev.timestamp, ev.seq, PERMISSION, message,
                               notification_type, call.tool_use_id if call else None))

    @staticmethod
    def _add(row: Session, wait: Pending) -> None:
        row.pending.append(wait)
        del row.pending[:-MAX_PENDING]


def _detail_of_summary(summary: str) -> str:
    """ "Running: npm test" -> "npm test": the summary of a PreToolUse, less its verb."""
    verb, sep, rest = summary.partition(": ")
    return (rest if sep and " " not in verb else summary)[:MAX_DETAIL]


def fold_usage(row: Session, ledger: Ledger, ev: EventView) -> None:
    """A ModelUsage or CostReport event into the session's tokens and cost.

    Tokens are the sum of the responses (each once: the follower sends a message id once).
    Cost is reconciled so nothing is counted twice: Claude Code's own report (cumulative,
    as of its ``as_of``) plus mpmd's price of the responses after it, where there is a
    report; mpmd's price of every response where there is none. A response of a model with
    no price adds tokens and ``unpriced_responses``, never a guessed cost."""
    try:
        u = _usage_decoder.decode(ev.payload)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return
    if u.hook_event_name == "CostReport":
        if u.total_cost_usd is None or not u.total_cost_usd >= 0:
            return
        ledger.reported_usd = u.total_cost_usd
        ledger.reported_as_of = u.as_of or ""
        ledger.after_report = [(at, usd) for at, usd in ledger.after_report
                               if at > ledger.reported_as_of]
    else:
        tokens = (max(0, u.input_tokens), max(0, u.output_tokens),
                  max(0, u.cache_read_input_tokens), max(0, u.cache_creation_input_tokens))
        row.input_tokens += tokens[0]
        row.output_tokens += tokens[1]
        row.cache_read_tokens += tokens[2]
        row.cache_write_tokens += tokens[3]
        name = (u.model or "unknown")[:100]
        if name not in row.models and len(row.models) >= MAX_MODELS:
            name = "other"
        m = row.models.get(name)
        if m is None:
            m = row.models[name] = ModelTotals()
        m.responses += 1
        m.input_tokens += tokens[0]
        m.output_tokens += tokens[1]
        m.cache_read_tokens += tokens[2]
        m.cache_write_tokens += tokens[3]
        usd = u.cost_usd if u.cost_usd is not None and u.cost_usd >= 0 else None
        prompt_id = u.prompt_id if isinstance(u.prompt_id, str) else None
        for split in (_split(row.usage_by_agent, ev.agent_id, None),
                      _split(row.usage_by_prompt, None, prompt_id)):
            split.responses += 1
            split.input_tokens += tokens[0]
            split.output_tokens += tokens[1]
            split.cache_read_tokens += tokens[2]
            split.cache_write_tokens += tokens[3]
            if usd is None:
                split.unpriced_responses += 1
            else:
                split.cost_usd = (split.cost_usd or 0.0) + usd
        if usd is None:
            row.unpriced_responses += 1
            m.cost_usd = None  # a guess would be worse than nothing
        else:
            if m.cost_usd is not None:
                m.cost_usd += usd
            ledger.estimated_usd += usd
            at = u.at or ""
            if at > ledger.reported_as_of:
                ledger.after_report.append((at, usd))
                del ledger.after_report[:-MAX_AFTER_REPORT]
    cost, source = reconciled_cost(
        ledger.reported_usd, sum(usd for _at, usd in ledger.after_report),
        ledger.estimated_usd, sum(m.responses for m in row.models.values()))
    if source is not None:
        row.cost_usd, row.cost_source = cost, source


def _split(splits: list[UsageSplit], agent_id: str | None,
           prompt_id: str | None) -> UsageSplit:
    """The split of this subagent or prompt, made (as the newest) when there is none; the
    oldest goes past MAX_SPLITS."""
    for split in splits:
        if split.agent_id == agent_id and split.prompt_id == prompt_id:
            return split
    split = UsageSplit(agent_id=agent_id, prompt_id=prompt_id)
    splits.append(split)
    del splits[:-MAX_SPLITS]
    return split


def reconciled_cost(reported_usd: float | None, after_report_usd: float, estimated_usd: float,
                    responses: int) -> tuple[float | None, str | None]:
    """A session's cost and where it comes from (docs/transcripts.md), shared by this
    table and the search index: Claude Code's last report plus mpmd's price of the
    responses written after it; with no report, mpmd's price of every response; (None,
    None) while there is neither."""
    if reported_usd is not None:
        return reported_usd + after_report_usd, "claude-code"
    if responses:
        return estimated_usd, "mpmd"
    return None, None
