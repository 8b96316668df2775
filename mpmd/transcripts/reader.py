"""Following a Claude Code transcript as it grows: each complete line once, within bounds.

Claude Code appends JSON Lines to a session's transcript while the session runs; a reader
may come while a line is half written. ``LineSplitter`` (no I/O) cuts bytes into whole
lines and holds a torn last line until its newline comes. ``TranscriptFile`` follows one
file by its path: it reads at most a budget a call from where it left off, starts again
from the beginning when the file is replaced or truncated, and gives a ``Position`` to save,
from which a later ``TranscriptFile`` (after a daemon restart) goes on without reading a
line twice or missing one.

Bounds and checks, as in mpmd.transcripts.prompt_watch (the path comes from a hook payload):
only an absolute path ending in .jsonl, opened without following a final symlink and
without blocking (a FIFO would), read only when it is a regular file of this user's; a
line longer than MAX_LINE is passed over, never held whole.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

MAX_LINE = 4 * 1024 * 1024  # as prompt_watch: a longer line is a huge tool result, not ours
# The most read of one transcript in one call: a pass over many transcripts stays short,
# and a long backlog (a resumed session's whole file) is read over several passes.
READ_BYTES = 1024 * 1024
# How far back from the end a follower that starts at the end looks for the beginning of
# the last line, a step at a time (most lines are a few KiB).
_BACK_STEP = 64 * 1024

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class LineSplitter:
    """Sans-I/O: bytes in, each complete non-blank line out once (without its newline).

    A torn last line is held (``pending``) until its newline comes; a line longer than
    ``max_line`` is dropped as soon as it is known to be, passed over up to its newline and
    counted in ``skipped_long``, so what is held never exceeds ``max_line`` bytes.
    ``consumed`` counts the bytes fed up to the last newline: the end of the last line given
    out, blank or passed over, where a reader starting again would start."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.skipped_long = 0
        self.consumed = 0
        self._fed = 0
        # A torn line's pieces, joined once its newline comes (not joined at each piece: a
        # long line written slowly comes in many).
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._skipping = False  # inside a line not to keep, until its newline

    @property
    def pending(self) -> int:
        """Bytes held of a line not ended yet."""
        return self._held_bytes

    def reset(self) -> None:
        """Start over on other bytes (the file under it changed); ``skipped_long`` stays."""
        self.consumed = self._fed = 0
        self._hold(b"")
        self._skipping = False

    def skip_to_newline(self) -> None:
        """Pass over what comes up to the next newline (the rest of a line), uncounted."""
        self._hold(b"")
        self._skipping = True

    def feed(self, data: bytes) -> list[bytes]:
        fed = self._fed
        self._fed += len(data)
        if not data:
            return []
        if b"\n" not in data:
            if not self._skipping:
                if self._held_bytes + len(data) > self.max_line:
                    self._pass_over_long()
                else:
                    self._held.append(data)
                    self._held_bytes += len(data)
            return []
        parts = data.split(b"\n")
        tail = parts.pop()
        self.consumed = fed + len(data) - len(tail)
        if self._skipping:  # the first part ends the line passed over
            self._skipping = False
            parts[0] = b""
        elif self._held_bytes:
            parts[0] = b"".join([*self._held, parts[0]])
        lines = []
        for line in parts:
            if len(line) > self.max_line:
                self.skipped_long += 1
            elif line.strip():
                lines.append(line)
        if len(tail) > self.max_line:
            self._pass_over_long()
        else:
            self._hold(tail)
        return lines

    def _hold(self, data: bytes) -> None:
        self._held = [data] if data else []
        self._held_bytes = len(data)

    def _pass_over_long(self) -> None:
        self._hold(b"")
        self._skipping = True
        self.skipped_long += 1


class Position(NamedTuple):
    """Where a follower is: the file (st_dev, st_ino) and the bytes of whole lines read."""

    dev: int
    ino: int
    offset: int


class TranscriptFile:
    """Follows one transcript by its path; ``read`` is one bounded pass.

    Never raises for a file that is missing, unreadable or not acceptable: ``read`` returns
    nothing and ``problem`` says why (None after a good read). ``restarts`` counts the times
    the file was found replaced or truncated and read again from its beginning; ``more``
    tells whether the last read left bytes unread (come back soon). A file truncated and
    grown past where it was read between two reads, in place, cannot be told from one that
    only grew (Claude Code only appends; a rewrite is a new file)."""

    def __init__(self, path: str, max_line: int = MAX_LINE, start_at_end: bool = False,
                 position: Position | tuple[int, int, int] | None = None) -> None:
        self.path = path
        self.problem: str | None = None
        self.restarts = 0
        self.more = False
        self._splitter = LineSplitter(max_line)
        self._identity: tuple[int, int] | None = None
        self._base = 0  # the file offset the splitter's bytes start at
        self._read_at = 0  # where the next read starts (past what the splitter holds)
        self._start_at_end = start_at_end and position is None
        self._check_boundary = False
        if position is not None:
            dev, ino, offset = position
            self._identity = (dev, ino)
            self._base = self._read_at = max(0, offset)
            self._check_boundary = self._base > 0

    @property
    def offset(self) -> int:
        """Bytes of whole lines consumed: a line boundary."""
        return self._base + self._splitter.consumed

    @property
    def pending(self) -> int:
        """Bytes read past ``offset``: a torn line's, held until its newline."""
        return self._splitter.pending

    @property
    def skipped_long(self) -> int:
        return self._splitter.skipped_long

    def position(self) -> Position | None:
        """What to save to go on from here later; None before the file was first seen."""
        if self._identity is None:
            return None
        return Position(*self._identity, self.offset)

    def read(self, max_bytes: int = READ_BYTES) -> list[bytes]:
        """The complete lines among at most ``max_bytes`` more bytes of the file."""
        self.more = False
        if not os.path.isabs(self.path) or not self.path.endswith(".jsonl"):
            self.problem = "not a transcript path"
            return []
        try:
            fd = os.open(self.path, _OPEN_FLAGS)
        except OSError as exc:
            self.problem = _open_problem(exc)
            return []
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self.problem = "not a regular file"
                return []
            if st.st_uid != os.geteuid():
                self.problem = "not yours"
                return []
            self._follow(fd, st)
            want = min(st.st_size - self._read_at, max_bytes)
            data = os.pread(fd, want, self._read_at) if want > 0 else b""
        except OSError as exc:
            self.problem = f"unreadable: {exc.strerror or exc}"
            return []
        finally:
            os.close(fd)
        self.problem = None
        self._read_at += len(data)
        self.more = self._read_at < st.st_size
        return self._splitter.feed(data)

    def _follow(self, fd: int, st: os.stat_result) -> None:
        """Where to read from in this file: go on, or start again."""
        identity = (st.st_dev, st.st_ino)
        if self._identity is None:
            self._identity = identity
            if self._start_at_end:
                self._start_at_end = False
                self._skip_existing(fd, st.st_size)
            return
        if identity != self._identity or st.st_size < self._read_at:
            # Another file under the path, or this one cut shorter than what was read:
            # what it holds now is new.
            self._identity = identity
            self._base = self._read_at = 0
            self._splitter.reset()
            self.restarts += 1
        elif self._check_boundary and os.pread(fd, 1, self._base - 1) != b"\n":
            # A saved position inside a line (one too long to keep when the follower
            # started at the end): its rest is not a line of its own.
            self._splitter.skip_to_newline()
        self._check_boundary = False

    def _skip_existing(self, fd: int, size: int) -> None:
        """Start after the file's last whole line (a torn one being written is kept)."""
        at = size
        while at > 0 and size - at <= self._splitter.max_line:
            start = max(0, at - _BACK_STEP)
            newline = os.pread(fd, at - start, start).rfind(b"\n")
            if newline >= 0:
                self._base = self._read_at = start + newline + 1
                return
            at = start
        if at == 0:
            return  # the whole file is one torn line: read it from 0
        # The last line is already too long to keep: pass over it.
        self._base = self._read_at = size
        self._splitter.skip_to_newline()


def _open_problem(exc: OSError) -> str:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "missing"
    if exc.errno == errno.ELOOP:  # O_NOFOLLOW on a symbolic link
        return "not a regular file"
    return f"unreadable: {exc.strerror or exc}"
