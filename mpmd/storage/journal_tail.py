"""Follows a journal that another process writes: each call returns the lines appended
since the last one, without reading anything twice (the index worker's input).

`Journal.read_from` finds its place by reading a segment from its start, which is right
for one pass but would cost up to a 64 MiB scan on every wake-up of a reader that keeps
up with the writer. A `Tail` keeps its place instead: the open file of the segment it is
in and the offset after the last complete line it has read. The open file keeps its data
even if the segment is compressed or deleted meanwhile; when the writer has moved on to a
newer segment, the tail finishes the old one and moves to the next.

A backlog in gzipped segments (the reader was far behind) is read through `read_from`,
once, until it runs dry; then the tail finds its offset in the plain segment it stopped in.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

from mpmd.storage.journal import Journal, line_seq

CHUNK = 1024 * 1024  # bytes read at a time from a plain segment


class Tail:
    def __init__(self, journal: Journal, after: int) -> None:
        self.journal = journal
        self.after = after  # the seq of the last line handed out
        self._fd: int | None = None
        self._first_seq = 0  # of the segment open in _fd
        self._offset = 0  # in it, just past the last complete line read
        self._backlog: Iterator[bytes] | None = None
        self._fresh = False  # the backlog has not yielded yet
        self.seek(after)

    def seek(self, after: int) -> None:
        """Go back (or forward) to just after seq ``after``."""
        self.close()
        self.after = after
        self._read_through(after)

    def _read_through(self, after: int) -> None:
        self._backlog = self.journal.read_from(after + 1)
        self._fresh = True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self, limit: int) -> list[bytes]:
        """Up to ``limit`` lines with seqs after the last one returned, in order; [] when
        the writer has written nothing more yet."""
        lines: list[bytes] = []
        while len(lines) < limit:
            got = self._step(limit - len(lines))
            if got is None:
                break
            lines += got
        return lines

    def _step(self, limit: int) -> list[bytes] | None:
        """Some lines; [] after moving on (to a newer segment, or from the backlog to a
        plain segment), which always ends; None when there is nothing new."""
        if self._backlog is not None:
            got = list(itertools.islice(self._backlog, limit))
            fresh, self._fresh = self._fresh, False
            if got:
                self.after = line_seq(got[-1])
                return got
            self._backlog = None
            if fresh:
                return None  # read_from found nothing past `after`: nothing new
            # Dry, but it took its segment list when it started: find the place again,
            # in a plain segment or with a fresh read_from.
            self._open_at(self.after)
            return []
        if self._fd is None:
            self._open_at(self.after)
            if self._fd is None:
                return [] if self._backlog is not None else None
        data = self._complete_lines()
        if not data:
            return self._next_segment()
        lines: list[bytes] = []
        for line in data.split(b"\n")[:-1]:
            if len(lines) == limit:
                break
            self._offset += len(line) + 1
            try:
                seq = line_seq(line)
            except ValueError:
                continue  # not an event (Journal.read_from warns about these)
            if seq > self.after:
                lines.append(line)
                self.after = seq
        return lines

    # ---- plain segments -----------------------------------------------------------------
    def _complete_lines(self) -> bytes:
        """The bytes after the offset up to the last newline (b"" if there is no complete
        line yet); a longer read when one line is longer than CHUNK."""
        assert self._fd is not None
        size = CHUNK
        while True:
            data = os.pread(self._fd, size, self._offset)
            end = data.rfind(b"\n") + 1
            if end or len(data) < size:
                return data[:end]
            size *= 2

    def _open_at(self, after: int) -> None:
        """Open the segment that holds seq ``after + 1`` (or will), at the line after
        ``after``: a scan of that one segment. If that segment is gzipped, the reader is
        still behind: the backlog reads through it."""
        self.close()
        segs = self.journal.segments()
        holding = [s for s in segs if s.first_seq <= after + 1] or segs[:1]
        if not holding:
            return  # an empty journal: nothing to follow yet
        seg = holding[-1]
        if seg.compressed or not self._open(seg.path, seg.first_seq):
            self._read_through(after)
            return
        while data := self._complete_lines():  # skip what was read already
            for line in data.split(b"\n")[:-1]:
                with contextlib.suppress(ValueError):
                    if line_seq(line) > after:
                        return
                self._offset += len(line) + 1

    def _open(self, path: Path, first_seq: int) -> bool:
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        self._first_seq, self._offset = first_seq, 0
        return True

    def _next_segment(self) -> list[bytes] | None:
        """At the end of the open segment: if the writer has started a newer one, this one
        is complete (rotation closes it first): move on to the next."""
        newer = [s for s in self.journal.segments() if s.first_seq > self._first_seq]
        if not newer:
            return None
        if self._complete_lines():
            return []  # it grew before the rotation: read that first
        nxt = newer[0]
        self.close()
        # Read through read_from when far behind (gzipped already), and when the next
        # segment does not start right after the last line: a directory scan taken while a
        # segment is renamed to .gz can miss it, and read_from looks again.
        if nxt.compressed or nxt.first_seq != self.after + 1 or \
                not self._open(nxt.path, nxt.first_seq):
            self._read_through(self.after)
        return []
