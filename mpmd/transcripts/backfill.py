"""Pure: the prompts and tool calls a transcript holds that no hook delivered, and the
events that stand in for them (docs/events.md, "Backfill").

A hook can miss: the daemon was down while Claude Code posted its http hooks, a hook was
killed at its timeout, Claude Code was killed. The transcript still has the prompt (a
``user`` entry with its ``promptId``), the call (``tool_use``) and its outcome
(``tool_result``, by ``tool_use_id``). Each is a key:

    (session, "prompt", prompt_id)   claimed by UserPromptSubmit
    (session, "pre", tool_use_id)    claimed by PreToolUse
    (session, "post", tool_use_id)   claimed by PostToolUse, PostToolUseFailure,
                                     PermissionDenied, PermissionAnswered, and by a
                                     PreToolUse a policy rule denied (the call never ran)

A key seen in a transcript waits WAIT_S (``transcript_backfill_after_s``) after it was
read; if by then no journaled event has claimed it, the follower journals the hook event
it stands for (UserPromptSubmit, PreToolUse, PostToolUse or PostToolUseFailure), with
source "transcript", the transcript entry's time as its timestamp, and an id derived from
the key, so that sending it again is a DUPLICATE. A hook that delivers at all delivers
within its timeout, and a spooled one is drained within seconds (at start-up before the
follower starts), so the wait is far longer than a hook can be late. A hook event that
comes after all (the daemon hung longer than the wait) is journaled too, an acknowledged
event is never dropped, and counted as ``late_hooks``.

Keys older than what the journal tells (``Claims.since``: the first event the follower
read; claims are remembered up to MAX_CLAIMS, and forgetting one moves ``since`` past it)
are never backfilled: no claim for them can be known.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

import msgspec

from mpmd.transcripts.entries import Prompt, ToolResult, ToolUse

PROMPT, PRE, POST = "prompt", "pre", "post"
HOOK, TRANSCRIPT = "hook", "transcript"
MAX_CLAIMS = 500_000  # keys remembered (a key is ~200 bytes: ~100 MB at most)
MAX_TOOLS = 1000  # tool calls of a file remembered, for their results' events
MAX_PENDING = 10_000  # keys of a file waiting; past it the oldest are decided early
# A stand-in event's payload, at most: within the smallest frame limit a daemon may have
# (64 KiB), so it is stored whole and typed, its key readable, where a hook's payload past
# the limit is cut to raw bytes. Its largest fields are cut to MAX_CUT_FIELD first.
MAX_PAYLOAD = 48 * 1024
MAX_CUT_FIELD = 8 * 1024
_CUTTABLE = ("tool_response", "tool_input", "error", "prompt")

Key = tuple[str, str, str]

# What each event type claims (a PreToolUse a policy denied claims POST too).
CLAIMED_BY: dict[str, str] = {
    "UserPromptSubmit": PROMPT, "PreToolUse": PRE, "PostToolUse": POST,
    "PostToolUseFailure": POST, "PermissionDenied": POST, "PermissionAnswered": POST,
}


def encode(payload: dict[str, Any]) -> bytes:
    """A stand-in event's payload as JSON, within MAX_PAYLOAD: if it is larger, its large
    fields (the tool's input and response, an error, a prompt) become their first
    MAX_CUT_FIELD characters as text, and ``cut_fields`` names them."""
    data = msgspec.json.encode(payload)
    if len(data) <= MAX_PAYLOAD:
        return data
    payload = dict(payload)
    cut = []
    for key in _CUTTABLE:
        value = payload.get(key)
        if value is None:
            continue
        text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
        if len(text) > MAX_CUT_FIELD:
            payload[key] = text[:MAX_CUT_FIELD]
            cut.append(key)
    payload["cut_fields"] = cut
    return msgspec.json.encode(payload)


class Claims:
    """The keys journaled events claimed, oldest first, and by whom (HOOK or TRANSCRIPT)."""

    def __init__(self, capacity: int = MAX_CLAIMS) -> None:
        self.keys: OrderedDict[Key, str] = OrderedDict()
        self.capacity = capacity
        self.since = ""  # keys older than this time are never backfilled (ISO UTC)
        self.late_hooks = 0  # hook events that came after their key was backfilled

    def saw(self, event_type: str, session_id: str, tool_use_id: str | None,
            prompt_id: str | None, by: str, timestamp: str, denied: bool = False) -> None:
        """A journaled event: the keys it claims."""
        if not self.since:
            self.since = timestamp
        kind = CLAIMED_BY.get(event_type)
        if kind is None:
            return
        ident = prompt_id if kind == PROMPT else tool_use_id
        if not ident:
            return
        self.claim((session_id, kind, ident), by, timestamp)
        if denied and kind == PRE:
            self.claim((session_id, POST, ident), by, timestamp)

    def claim(self, key: Key, by: str, timestamp: str = "") -> None:
        had = self.keys.get(key)
        if had == TRANSCRIPT and by == HOOK:
            self.late_hooks += 1
        if had is None:
            self.keys[key] = by
            while len(self.keys) > self.capacity:
                self.keys.popitem(last=False)
                # what was forgotten can no longer be told from what was never claimed
                self.since = max(self.since, timestamp)

    def __contains__(self, key: Key) -> bool:
        return key in self.keys


class Due(NamedTuple):
    """A key no event claimed in time, and the event that stands in for it."""

    key: Key
    payload: dict[str, Any]
    timestamp: str


class _Waiting(NamedTuple):
    key: Key
    due: float  # monotonic
    payload: dict[str, Any]
    timestamp: str
    position: Any  # where to read again from to see this key again


class FileBackfill:
    """One transcript's keys waiting for a claim."""

    def __init__(self, path: str, session_id: str, wait_s: float) -> None:
        self.path = path
        self.session_id = session_id
        self.wait_s = wait_s
        self.waiting: list[_Waiting] = []
        self._keys: set[Key] = set()  # of those waiting (a line read again adds nothing)
        self.tools: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()

    def take(self, fact: object, now: float, position: Any, prompt_id: str | None) -> None:
        """A fact read off the transcript (at ``position`` or after it)."""
        common = {"session_id": self.session_id, "transcript_path": self.path}
        if isinstance(fact, Prompt):
            if fact.agent_id is not None or not fact.prompt_id:
                return  # a subagent's prompt: no UserPromptSubmit is fired for it
            self._wait((self.session_id, PROMPT, fact.prompt_id), now, position, fact.timestamp,
                       {**common, "hook_event_name": "UserPromptSubmit", "cwd": fact.cwd,
                        "prompt_id": fact.prompt_id, "prompt": fact.text})
        elif isinstance(fact, ToolUse):
            self.tools[fact.tool_use_id] = (fact.name, fact.input)
            while len(self.tools) > MAX_TOOLS:
                self.tools.popitem(last=False)
            self._wait((self.session_id, PRE, fact.tool_use_id), now, position, fact.timestamp,
                       {**common, "hook_event_name": "PreToolUse", "cwd": fact.cwd,
                        "agent_id": fact.agent_id, "prompt_id": prompt_id,
                        "tool_name": fact.name, "tool_input": fact.input,
                        "tool_use_id": fact.tool_use_id})
        elif isinstance(fact, ToolResult):
            name, tool_input = self.tools.get(fact.tool_use_id, (None, None))
            payload: dict[str, Any] = {
                **common, "agent_id": fact.agent_id, "prompt_id": fact.prompt_id,
                "tool_name": name, "tool_input": tool_input, "tool_use_id": fact.tool_use_id}
            if fact.is_error:
                payload.update(hook_event_name="PostToolUseFailure", error=fact.content)
            else:
                payload.update(hook_event_name="PostToolUse", tool_response=(
                    fact.tool_use_result if fact.tool_use_result is not None
                    else fact.content))
            self._wait((self.session_id, POST, fact.tool_use_id), now, position,
                       fact.timestamp, payload)

    def _wait(self, key: Key, now: float, position: Any, timestamp: str,
              payload: dict[str, Any]) -> None:
        if key in self._keys:
            return
        self._keys.add(key)
        payload = {k: v for k, v in payload.items() if v is not None}
        self.waiting.append(_Waiting(key, now + self.wait_s, payload, timestamp, position))
        if len(self.waiting) > MAX_PENDING:
            first = self.waiting[0]
            self.waiting[0] = first._replace(due=now)  # decided at the next pass

    def due(self, now: float, claims: Claims) -> list[Due]:
        """The keys whose wait is over that no event claimed; the claimed ones are dropped.
        Call ``done`` once the returned ones are stored."""
        out: list[Due] = []
        keep: list[_Waiting] = []
        for w in self.waiting:
            # (ISO UTC times; Claude Code's and the journal's differ only in their digits
            # past the millisecond, so they compare as times)
            if w.key in claims or (w.timestamp and w.timestamp < claims.since):
                self._keys.discard(w.key)
                continue
            if w.due <= now:
                out.append(Due(w.key, w.payload, w.timestamp))
            keep.append(w)
        self.waiting = keep
        return out

    def done(self, keys: set[Key], claims: Claims) -> None:
        """These were stored: claimed by the transcript, no longer waiting."""
        for key in keys:
            claims.claim(key, TRANSCRIPT)
        self.waiting = [w for w in self.waiting if w.key not in keys]
        self._keys -= keys

    def oldest_position(self) -> Any:
        """Where to read again from after a restart, so no waiting key is lost; None when
        none waits."""
        return self.waiting[0].position if self.waiting else None
