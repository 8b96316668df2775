"""Permission requests waiting for an answer from the viewer (policy action ``remote``,
docs/policy.md).

The hook sends its PermissionRequest as usual and, after the ack, keeps the connection open;
the ingest server hands the socket here. The request shows on every viewer's pending badge
with Approve and Deny, and a notification may carry links that answer it (the viewer's
/act/ route); the first answer is written to the hook's socket (mpm_hook.remote) and the
socket closed. Every outcome is journaled as a ``RemoteAnswer`` event saying where it came
from: a viewer, a link, the time limit, no viewer being open, the daemon stopping.

Nothing here blocks: the hook's socket is watched for its end (a hook that gave up or was
killed closes it, and the request is withdrawn), and answers are a few dozen bytes written
without waiting.
"""

from __future__ import annotations

import _socket
import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from mpm_hook import remote
from mpmd.counters import Count, remote_answers
from mpmd.model.events import EventFrame
from mpmd.model.redact import redact_obj, redact_text
from mpmd.model.sessions import detail_of

log = logging.getLogger("mpmd.serve.approvals")

# After the last viewer closes, how long waiting hooks are kept for a page reload to come
# back, before they are let go to ask in the terminal.
NO_VIEWER_GRACE_S = 5.0
DEFAULT_TIMEOUT_S = 60.0


@dataclass
class Waiting:
    """One request held open."""

    seq: int
    event_id: bytes
    session_id: str | None
    tool_name: str | None
    detail: str  # what the user approves: the command, the file, the URL
    rule: str | None  # the policy rule that sent it here
    expires_at_ms: int  # wall clock, for the viewer's countdown
    sock: _socket.socket = field(repr=False)
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    # Kept for "always allow" (a rule for exactly this call), never shown to viewers.
    tool_input: Any = field(default=None, repr=False)
    cwd: str | None = None
    rule_index: int | None = None
    added_rule: str | None = None  # the rule "always allow" wrote

    def view(self) -> dict[str, object]:
        return {"seq": self.seq, "session_id": self.session_id, "tool_name": self.tool_name,
                "detail": self.detail, "rule": self.rule, "expires_at_ms": self.expires_at_ms}


# journal(waiting, behavior name, message, answered by, who): store a RemoteAnswer event
Journal = Callable[[Waiting, str, str, str, str], None]


# How an answer's message names where it came from, by answered_by.
_ANSWERED_FROM = {"viewer": "from the mpmd viewer", "link": "with an mpmd link"}


class Approvals:
    """``hold_without_viewer``: keep requests with no viewer open (until their timeout),
    because something else may answer them: the links of a notification."""

    def __init__(self, counters: Counter[str], journal: Journal,
                 on_change: Callable[[], None], viewers: Callable[[], int],
                 grace_s: float = NO_VIEWER_GRACE_S, hold_without_viewer: bool = False) -> None:
        self.counters = counters
        self.journal = journal
        self.on_change = on_change
        self.viewers = viewers
        self.grace_s = grace_s
        self.hold_without_viewer = hold_without_viewer
        self.waiting: dict[int, Waiting] = {}
        self.loop = asyncio.get_running_loop()
        self._no_viewer: asyncio.TimerHandle | None = None

    def all(self) -> list[dict[str, object]]:
        return [w.view() for w in self.waiting.values()]

    def hold(self, w: Waiting, timeout_s: float) -> None:
        """Keep ``w`` open for an answer, at most ``timeout_s``."""
        self.counters[Count.REMOTE_REQUESTS] += 1
        if not self.viewers() and not self.hold_without_viewer:
            self._finish(w, "none", "no viewer is open: asked in the terminal", "no-viewer", "")
            return
        w.sock.setblocking(False)
        self.waiting[w.seq] = w
        self.loop.add_reader(w.sock.fileno(), self._hook_readable, w.seq)
        w.timer = self.loop.call_later(timeout_s, self._expire, w.seq)
        self.on_change()

    def find(self, seq: int, event_id: bytes) -> Waiting | None:
        """Request ``seq`` if it still waits and is the event ``event_id`` (a link names
        both: a seq alone could be another journal's, after a reset)."""
        w = self.waiting.get(seq)
        return w if w is not None and w.event_id == event_id else None

    def answer(self, seq: int, behavior: str, who: str,
               answered_by: Literal["viewer", "link"] = "viewer") -> str | None:
        """An answer (allow or deny) to request ``seq``, from a viewer or a link
        (``answered_by``); None when it was taken, else why not (the first answer wins,
        and an ended request takes none)."""
        w = self.waiting.get(seq)
        if w is None:
            self.counters[Count.REMOTE_ANSWERS_REFUSED] += 1
            return "this request is no longer waiting (answered, timed out, or withdrawn)"
        word = "approved" if behavior == "allow" else "denied"
        self._finish(w, behavior, f"{word} {_ANSWERED_FROM[answered_by]}", answered_by, who)
        return None

    def viewers_changed(self) -> None:
        """A viewer came or went: with none left, let the waiting hooks go after a grace
        (unless requests are held without a viewer)."""
        if self.viewers():
            if self._no_viewer is not None:
                self._no_viewer.cancel()
                self._no_viewer = None
        elif self.waiting and self._no_viewer is None and not self.hold_without_viewer:
            self._no_viewer = self.loop.call_later(self.grace_s, self._release_all,
                                                   "no viewer is open", "no-viewer")

    def close_all(self) -> None:
        self._release_all("the daemon is stopping", "daemon-stopping")

    # ---- endings ------------------------------------------------------------------------
    def _release_all(self, why: str, answered_by: str) -> None:
        self._no_viewer = None
        for w in list(self.waiting.values()):
            self._finish(w, "none", f"{why}: asked in the terminal", answered_by, "")

    def _expire(self, seq: int) -> None:
        w = self.waiting.get(seq)
        if w is not None:
            self._finish(w, "none", "no answer in time: asked in the terminal", "timeout", "")

    def _hook_readable(self, seq: int) -> None:
        """The hook sends nothing after its frame: readable means it closed (gave up, was
        killed). Withdraw the request; there is no one to answer."""
        w = self.waiting.get(seq)
        if w is None:
            return
        try:
            w.sock.recv(1)
        except (BlockingIOError, InterruptedError):
            return  # woken for nothing
        except OSError:
            pass
        self.counters[Count.REMOTE_WITHDRAWN] += 1
        self._drop(w)
        self.on_change()

    def _finish(self, w: Waiting, behavior: str, message: str, answered_by: str,
                who: str) -> None:
        frame = remote.encode_answer(w.event_id, remote.BEHAVIORS[behavior], message)
        try:
            w.sock.send(frame)  # a few dozen bytes into an empty socket buffer
        except OSError as exc:  # the hook is gone: it asks in the terminal by itself
            log.info("could not answer request %d: %s", w.seq, exc)
        was_waiting = w.seq in self.waiting
        self._drop(w)
        self.counters[remote_answers(answered_by)] += 1
        try:
            self.journal(w, behavior, message, answered_by, who)
        except Exception:  # the answer went out; a journaling bug must not undo it
            self.counters[Count.INTERNAL_ERRORS] += 1
            log.exception("could not journal the answer to request %d", w.seq)
        if was_waiting:
            self.on_change()

    def _drop(self, w: Waiting) -> None:
        if self.waiting.pop(w.seq, None) is not None:
            self.loop.remove_reader(w.sock.fileno())
        if w.timer is not None:
            w.timer.cancel()
        w.sock.close()


def expires_at_ms(timeout_s: float) -> int:
    return int((time.time() + timeout_s) * 1000)


def remote_request(frame: EventFrame) -> tuple[float, str | None] | None:
    """(timeout, rule) when the hook that sent ``frame`` waits for an answer (its policy
    decision, the frame's sixth element, says ``remote``), else None."""
    decision = frame.decision
    if not isinstance(decision, dict) or decision.get("action") != "remote":
        return None
    timeout = decision.get("timeout_s", DEFAULT_TIMEOUT_S)
    rule = decision.get("rule")
    return (float(timeout) if isinstance(timeout, (int, float)) else DEFAULT_TIMEOUT_S,
            rule if isinstance(rule, str) else None)


class _Request(msgspec.Struct):
    """What the approvals read of a PermissionRequest payload."""

    session_id: str | None = None
    cwd: str | None = None
    tool_name: str | None = None
    tool_input: Any = None


_request_decoder = msgspec.json.Decoder(_Request)


class RemoteHolder:
    """The ingest server's Holder: takes the connections of hooks that wait for an answer
    (their frame's decision says ``remote``) and hands them to the Approvals."""

    def __init__(self, approvals: Approvals) -> None:
        self.approvals = approvals

    def wants(self, frame: EventFrame) -> bool:
        return remote_request(frame) is not None

    def take(self, frame: EventFrame, seq: int, sock: _socket.socket) -> None:
        asked = remote_request(frame)
        timeout_s, rule = asked if asked is not None else (DEFAULT_TIMEOUT_S, None)
        index = (frame.decision or {}).get("rule_index")
        try:
            request = _request_decoder.decode(frame.payload)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            request = _Request()
        tool_input = request.tool_input if isinstance(request.tool_input, dict) else None
        # Shown on every viewer: redacted whole before the detail is cut, so a secret the
        # cut goes through is still one the redactor sees. The input itself stays as it
        # came: "Always allow" writes a rule matching exactly this call.
        shown = redact_obj(tool_input)[0] if tool_input else None
        self.approvals.hold(Waiting(
            seq=seq, event_id=frame.id, session_id=_redacted(request.session_id),
            tool_name=_redacted(request.tool_name), detail=detail_of(shown), rule=rule,
            expires_at_ms=expires_at_ms(timeout_s), sock=sock, tool_input=tool_input,
            cwd=request.cwd, rule_index=index if isinstance(index, int) else None),
            timeout_s)


def _redacted(text: str | None) -> str | None:
    return None if text is None else redact_text(text)[0]
