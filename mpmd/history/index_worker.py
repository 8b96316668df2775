"""The index worker: a process of its own that keeps the search index up with the journal.

    python -m mpmd.history.index_worker JOURNAL_DIR INDEX_PATH

Why a process: indexing costs some 40 us an event of Python and SQLite work that holds the
GIL. In a thread of the daemon it competed with the event loop (measured: 5,450 events/s
indexed while the daemon stored 20,000/s) and its memory (SQLite's page cache, zlib's
buffers, the batches waiting for it) counted against the daemon's. Here it has a core of
its own and the daemon's memory stays what it was before the index.

It reads the journal itself (`journal_tail.Tail`) from the index's own cursor, `last_seq`,
committed with its rows: the daemon sends it nothing but wake-ups, so nothing can be lost
between the two processes, and a kill -9 of either costs at most the batch being written,
which is read again from the journal.

Protocol, one JSON object a line. On stdin, from the daemon:
    {"op": "wake"}                       the journal has grown
    {"op": "delete_before", "seq": N}    retention removed the journal's events below N
    {"op": "rebuild"}                    build the index anew from the whole journal
    {"op": "stop"}, or the end of input  finish the batch at hand and exit
On stdout, to the daemon:
    {"last_seq": N, "read": M}           after each commit and each wake: N indexed, the
                                         journal read up to M (the same, unless some line
                                         was not an event)
    {"rebuilt": n}                       rebuild progress: events indexed so far
    {"rebuild_done": N} | {"rebuild_failed": "why"}
    {"error": "why"}                     a batch failed; the journal has it, retried next wake
    {"log": levelno, "msg": "..."}       for the daemon's log
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import sqlite3
import sys
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from mpmd.history.index import Index, open_index, rebuild, set_aside
from mpmd.storage.journal import Journal
from mpmd.storage.journal_tail import Tail

log = logging.getLogger("mpmd.history.index_worker")

BATCH = 2000  # lines a transaction: big enough to amortise the commit, small enough to
# answer a stop or a delete within a fraction of a second
REBUILD_BATCH = 5000


class Channel:
    """The daemon's end of things: commands in, reports out."""

    def __init__(self, inp: int, out: BinaryIO) -> None:
        self.inp = inp
        self.out = out
        self._rest = b""
        self.closed = False
        self.held: list[dict[str, Any]] = []  # read during a rebuild, taken after it

    def say(self, **report: Any) -> None:
        self.out.write(msgspec.json.encode(report) + b"\n")
        self.out.flush()

    def commands(self, block: bool) -> list[dict[str, Any]]:
        """The commands that have arrived (waiting for one if ``block``), those held back
        during a rebuild first; the end of input is a stop."""
        if self.held:
            held, self.held = self.held, []
            return held
        return self.read(block)

    def read(self, block: bool) -> list[dict[str, Any]]:
        """What the daemon has sent since the last read (waiting for something if
        ``block``)."""
        if self.closed:
            return [{"op": "stop"}]
        ready, _, _ = select.select([self.inp], [], [], None if block else 0)
        if not ready:
            return []
        data = os.read(self.inp, 65536)
        if not data:
            self.closed = True
            return [{"op": "stop"}]
        *lines, self._rest = (self._rest + data).split(b"\n")
        commands = []
        for line in lines:
            try:
                command = msgspec.json.decode(line)
            except msgspec.DecodeError:
                log.error("ignoring a command that is not JSON: %.80r", line)
                continue
            if isinstance(command, dict):
                commands.append(command)
        return commands


class _ToDaemon(logging.Handler):
    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError, ValueError):  # the daemon is gone: nobody to tell
            self.channel.say(log=record.levelno, msg=self.format(record))


class Stopped(Exception):
    """A stop arrived in the middle of a rebuild."""


class Worker:
    def __init__(self, journal_dir: Path, index_path: Path, channel: Channel) -> None:
        self.journal = Journal(journal_dir, read_only=True)
        self.path = index_path
        self.channel = channel
        self.index: Index | None = None
        self.tail: Tail | None = None
        self.stopping = False
        self._lock_fd: int | None = None

    def run(self) -> None:
        self._lock()
        self._open()
        while not self.stopping:
            self.catch_up()
            for command in self.channel.commands(block=True):
                self.handle(command)

    def _lock(self) -> None:
        """One writer at a time: a worker whose daemon was killed finishes its batch (or is
        told to stop by the end of its input) before a new daemon's worker may write."""
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for the previous index worker to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd  # held until the process ends

    def _open(self) -> None:
        self.index = open_index(self.path)
        if self.tail is None:
            self.tail = Tail(self.journal, self.index.last_seq)
        else:
            self.tail.seek(self.index.last_seq)
        self._report()

    def _report(self) -> None:
        assert self.index is not None and self.tail is not None
        self.channel.say(last_seq=self.index.last_seq, read=self.tail.after)

    def catch_up(self) -> None:
        """Index what the journal has past the index's last_seq, a batch a transaction,
        taking commands between batches."""
        assert self.tail is not None
        while not self.stopping:
            try:
                if self.index is None:
                    self._open()
                assert self.index is not None
                lines = self.tail.read(BATCH)
                if lines:
                    self.index.add(lines)
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc)
                return
            self._report()  # also when there was nothing: it answers the wake-up
            if not lines:
                return
            for command in self.channel.commands(block=False):
                self.handle(command)

    def _failed(self, exc: Exception) -> None:
        """A failed batch: the journal keeps it; read it again from the index's cursor at
        the next wake. A damaged file (not a full disk or a lock) is set aside first."""
        self.channel.say(error=f"indexing failed: {exc}")
        log.error("indexing failed (%s); the journal keeps the events, retrying at the next "
                  "wake", exc)
        if self.index is not None and isinstance(exc, sqlite3.DatabaseError) and \
                not isinstance(exc, sqlite3.OperationalError):
            self.index.conn.close()
            set_aside(self.path, str(exc))
            self.index = None
        if self.index is not None and self.tail is not None:
            self.tail.seek(self.index.last_seq)

    def handle(self, command: dict[str, Any]) -> None:
        op = command.get("op")
        if op == "stop":
            self.stopping = True
        elif op == "delete_before" and isinstance(command.get("seq"), int):
            if self.index is not None:
                try:
                    self.index.delete_before(command["seq"])
                except sqlite3.Error as exc:
                    self.channel.say(error=f"pruning the index failed: {exc}")
        elif op == "rebuild":
            self._rebuild()
        elif op != "wake":
            log.error("ignoring an unknown command: %r", command)

    def _rebuild(self) -> None:
        if self.index is not None:
            self.index.close()
            self.index = None
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            self.channel.say(rebuilt=done)
            for command in self.channel.read(block=False):
                if command.get("op") == "stop":
                    raise Stopped
                self.channel.held.append(command)  # after the rebuild

        try:
            self.index = rebuild(self.path, self.journal.read_from(0), REBUILD_BATCH, progress)
        except Stopped:
            self.channel.say(rebuild_failed="stopped")
            self.stopping = True
            return
        except (sqlite3.Error, OSError) as exc:
            self.channel.say(rebuild_failed=str(exc))
            self._open()  # the old index is still in place
            return
        assert self.tail is not None
        self.tail.seek(self.index.last_seq)
        self.channel.say(rebuild_done=self.index.last_seq)

    def close(self) -> None:
        if self.index is not None:
            self.index.close()
        if self.tail is not None:
            self.tail.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m mpmd.history.index_worker JOURNAL_DIR INDEX_PATH", file=sys.stderr)
        return 2
    channel = Channel(sys.stdin.fileno(), sys.stdout.buffer)
    handler = _ToDaemon(channel)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    worker = Worker(Path(argv[0]), Path(argv[1]), channel)
    try:
        worker.run()
    except BrokenPipeError:
        return 0  # the daemon is gone
    finally:
        worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
