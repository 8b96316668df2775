"""Pure: the table of recent sessions the viewer lists, folded from stored events.

Each stored event updates its session's row: project and model, when it started and was last
active, how many events and tool calls it had, which permissions it is waiting for, which
subagents it ran. The page works out health (active, idle, stale...) from these and its own
clock, so the rules of time live in one place (docs/viewer.md).
"""

from __future__ import annotations

import posixpath
import re
from collections import OrderedDict

import msgspec

MAX_SESSIONS = 500
MAX_AGENTS = 50
MAX_DETAIL = 200

# Events that end whatever the session was waiting for: the user is back at the prompt.
_CLEARS_ALL_PENDING = frozenset({"UserPromptSubmit", "Stop", "StopFailure", "SessionEnd"})
# Events that end the wait for their own tool: it ran, failed or was denied.
_CLEARS_TOOL_PENDING = frozenset({"PostToolUse", "PostToolUseFailure", "PermissionDenied"})
_TOOL_CALLS = frozenset({"PostToolUse", "PostToolUseFailure"})
# Only these need their payload decoded; every other event is folded from its envelope.
_PAYLOAD_NEEDED = frozenset({
    "SessionStart", "SessionEnd", "PermissionRequest", "Notification", "SubagentStart",
})
_PERMISSION_TOOL = re.compile(r"permission to use (\S+)")


class EventView(msgspec.Struct, kw_only=True):
    """What the viewer's server side reads of a stored event (the payload stays raw)."""

    seq: int
    event_type: str
    session_id: str | None = None
    timestamp: str = ""
    cwd: str | None = None
    agent_id: str | None = None
    tool_name: str | None = None
    summary: str = ""
    payload: msgspec.Raw = msgspec.Raw(b"null")


class Pending(msgspec.Struct):
    tool_name: str | None
    detail: str
    since: str
    seq: int


class Agent(msgspec.Struct):
    agent_id: str
    agent_type: str | None
    started_at: str
    stopped_at: str | None = None


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
    pending: list[Pending] = msgspec.field(default_factory=list)
    agents: list[Agent] = msgspec.field(default_factory=list)


class _Payload(msgspec.Struct):
    """The few payload fields the table uses; anything else (or any other shape) is ignored."""

    model: str | None = None
    reason: str | None = None
    permission_mode: str | None = None
    notification_type: str | None = None
    message: str | None = None
    agent_type: str | None = None
    tool_input: dict[str, object] | None = None


_payload_decoder = msgspec.json.Decoder(_Payload)


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
        if row is None:
            row = Session(session_id=sid, started_at=ev.timestamp)
            self._rows[sid] = row
            if len(self._rows) > self._max:
                self._rows.popitem(last=False)
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

    def _fold(self, row: Session, ev: EventView) -> None:
        kind = ev.event_type
        p = _payload(ev) if kind in _PAYLOAD_NEEDED else None
        if p is not None and p.permission_mode:
            row.permission_mode = p.permission_mode
        if kind in _TOOL_CALLS:
            row.tool_count += 1
            if kind == "PostToolUseFailure":
                row.failure_count += 1
        if kind == "SessionStart" and p is not None:
            row.model = p.model or row.model
            row.ended_at = None  # a resumed session is live again
            row.end_reason = None
        elif kind == "SessionEnd":
            row.ended_at = ev.timestamp
            row.end_reason = p.reason if p is not None else None
        elif kind == "StopFailure":
            row.failure_count += 1
        elif kind == "PermissionRequest" and p is not None:
            self._wait(row, ev, ev.tool_name, detail_of(p.tool_input))
        elif kind == "Notification" and p is not None and p.notification_type == \
                "permission_prompt":
            match = _PERMISSION_TOOL.search(p.message or "")
            self._wait(row, ev, match.group(1) if match else None, (p.message or "")[:MAX_DETAIL])
        elif kind == "SubagentStart" and ev.agent_id:
            row.agents.append(Agent(ev.agent_id, p.agent_type if p else None, ev.timestamp))
            del row.agents[:-MAX_AGENTS]
        elif kind == "SubagentStop" and ev.agent_id:
            for agent in row.agents:
                if agent.agent_id == ev.agent_id and agent.stopped_at is None:
                    agent.stopped_at = ev.timestamp
        if kind in _CLEARS_ALL_PENDING:
            row.pending.clear()
        elif kind in _CLEARS_TOOL_PENDING and row.pending:
            row.pending[:] = [w for w in row.pending if w.tool_name != ev.tool_name]

    @staticmethod
    def _wait(row: Session, ev: EventView, tool: str | None, detail: str) -> None:
        """A permission prompt is showing. PermissionRequest and the permission_prompt
        Notification usually both announce the same prompt: keep one entry per tool, the
        one with the command in it."""
        for wait in row.pending:
            if wait.tool_name == tool:
                if ev.event_type == "PermissionRequest":
                    wait.detail = detail
                return
        row.pending.append(Pending(tool, detail, ev.timestamp, ev.seq))
