"""Permission prompts answered "no" in the terminal, read off Claude Code's transcript.

Claude Code (checked with 2.1.328) fires no hook at all when the person answers a permission
prompt "No" or cancels it with Esc: no PermissionDenied, no PostToolUseFailure, no Stop. A
session would show "needs you" until its next prompt. What does record the answer is the
session's transcript (the ``transcript_path`` of its hooks): a ``tool_result`` for the call,
``is_error`` true, "The user doesn't want to proceed with this tool use...". So while a
session waits for a permission on a call whose ``tool_use_id`` is known, this watch reads
what that transcript gains, and on a refusal of that call the daemon journals a
``PermissionAnswered`` event of its own, which ends the wait (mpmd.model.sessions). A "yes" needs
nothing from here: the tool runs and its PostToolUse ends the wait.

Bounds: a transcript is read only while a wait is open, only from its last TAIL_BYTES when
the wait is first seen, at most READ_BYTES a pass, only as whole lines, and only when it is
a regular file of this user's whose name ends in .jsonl (the path comes from a hook payload).
"""

from __future__ import annotations

import logging
import os
import stat
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from mpmd.model.sessions import PERMISSION, Session

log = logging.getLogger(__name__)

TAIL_BYTES = 256 * 1024  # where reading starts, before the end, when a wait is first seen
READ_BYTES = 1024 * 1024  # the most read of one transcript in one pass
MAX_LINE = 4 * 1024 * 1024  # a longer line is passed over (a huge tool result, not ours)
MAX_WATCHED = 64  # transcripts followed at once; more waits than that wait for a later pass
MAX_MESSAGE = 500


@dataclass(frozen=True)
class Wait:
    """A permission prompt open on a known tool call, in a session with a transcript."""

    session_id: str
    transcript_path: str
    tool_name: str | None
    tool_use_id: str
    answer_to: int  # the seq of the event that opened the wait


@dataclass(frozen=True)
class Answer:
    """A permission prompt the person answered no to (or cancelled)."""

    session_id: str
    tool_name: str | None
    tool_use_id: str
    answer_to: int  # the seq of the event that opened the wait
    message: str  # what Claude Code told the model


class _Block(msgspec.Struct):
    type: str = ""
    tool_use_id: str | None = None
    is_error: bool | None = None
    content: Any = None


class _Message(msgspec.Struct):
    content: list[_Block] | str | None = None


class _Line(msgspec.Struct):
    type: str = ""
    message: _Message | None = None


_line_decoder = msgspec.json.Decoder(_Line)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(b.get("text", "") for b in value
                        if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""


def refusal(chunk: bytes, tool_use_id: str) -> str | None:
    """Pure: the text of a refused result for ``tool_use_id`` among these whole transcript
    lines, or None. Only lines that name the id are decoded."""
    needle = tool_use_id.encode()
    if needle not in chunk:
        return None
    for line in chunk.split(b"\n"):
        if needle not in line or len(line) > MAX_LINE:
            continue
        try:
            entry = _line_decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            continue
        if entry.type != "user" or entry.message is None or \
                not isinstance(entry.message.content, list):
            continue
        for block in entry.message.content:
            if block.type == "tool_result" and block.tool_use_id == tool_use_id:
                return _text(block.content)[:MAX_MESSAGE] if block.is_error else None
    return None


class PromptWatch:
    """Follows the transcripts of sessions that wait for a permission; ``scan`` is one pass."""

    def __init__(self) -> None:
        # (transcript path, tool_use_id) -> offset read up to
        self._offsets: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._answered: OrderedDict[str, None] = OrderedDict()  # ids journaled already

    def waits(self, rows: Iterable[Session]) -> list[Wait]:
        """The permission waits to look for answers to (taken on the event loop, where the
        sessions table changes; ``scan`` then reads files in a thread)."""
        found = []
        for row in rows:
            if not row.pending or not row.transcript_path:
                continue
            for wait in row.pending:
                if wait.kind == PERMISSION and wait.tool_use_id and \
                        wait.tool_use_id not in self._answered:
                    found.append(Wait(row.session_id, row.transcript_path, wait.tool_name,
                                      wait.tool_use_id, wait.seq))
        return found[:MAX_WATCHED]

    def scan(self, waits: list[Wait]) -> list[Answer]:
        keep = {(w.transcript_path, w.tool_use_id) for w in waits}
        for key in [k for k in self._offsets if k not in keep]:
            del self._offsets[key]  # that wait ended
        answers = []
        for w in waits:
            text = self._read(w.transcript_path, w.tool_use_id)
            if text is None:
                continue
            self._answered[w.tool_use_id] = None
            while len(self._answered) > 1024:
                self._answered.popitem(last=False)
            answers.append(Answer(w.session_id, w.tool_name, w.tool_use_id, w.answer_to,
                                  text or "The person answered no"))
        return answers

    def _read(self, path: str, tool_use_id: str) -> str | None:
        key = (path, tool_use_id)
        try:
            fd = _open_transcript(path)
        except OSError as exc:
            log.debug("transcript %s: %s", path, exc)
            return None
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            offset = self._offsets.get(key)
            if offset is None or offset > size:  # first look, or the file was rewritten
                offset = max(0, size - TAIL_BYTES)
                if offset:  # start at a line's beginning
                    f.seek(offset - 1)
                    before = f.read(min(size - offset + 1, READ_BYTES))
                    newline = before.find(b"\n")
                    offset = offset + newline if newline >= 0 else size
            f.seek(offset)
            chunk = f.read(min(size - offset, READ_BYTES))
        end = chunk.rfind(b"\n")
        if end < 0:
            # No whole line yet; a line longer than a pass is passed over whole.
            self._offsets[key] = offset + len(chunk) if len(chunk) >= READ_BYTES else offset
            return None
        self._offsets[key] = offset + end + 1
        return refusal(chunk[: end + 1], tool_use_id)


def _open_transcript(path: str) -> int:
    """A descriptor for a transcript, or OSError: absolute, *.jsonl, a regular file of ours,
    not through a final symlink."""
    if not os.path.isabs(path) or not path.endswith(".jsonl"):
        raise OSError(f"not a transcript path: {path!r}")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise OSError(f"not a regular file of this user's: {path!r}")
    return fd
