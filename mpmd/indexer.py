"""Keeps the search index (mpmd.index) up with the journal, in a thread of its own.

The journal consumer hands it every batch it has just written (`offer`, never blocking: the
daemon's loop must not wait on SQLite). The index's own cursor is its `last_seq`, committed
with its rows; whenever a batch starts past last_seq + 1 (the index was behind at start, a
batch was dropped because the thread was busy, a write failed), the gap is read back from
the journal first, which already holds everything offered. So the index never misses an
event and never takes one twice, whatever happens to the thread or the process.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from mpmd.index import Index, open_index, rebuild, set_aside
from mpmd.journal import Journal, line_seq

log = logging.getLogger("mpmd.indexer")

QUEUE_BATCHES = 256
# Lines waiting for the thread, at most (measured: bounded by batches alone, a busy daemon
# held ~60 MB of them). Past it a batch is read back from the journal instead.
QUEUE_BYTES = 2 * 1024 * 1024
CATCH_UP_BATCH = 1000  # lines a catch-up transaction: small, it runs beside a busy loop
REBUILD_BATCH = 5000

Task = Callable[[Index], object]


def batches(lines: Iterable[bytes], size: int) -> Iterable[list[bytes]]:
    it = iter(lines)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


class Indexer:
    def __init__(self, path: Path, journal: Journal, counters: Counter[str],
                 queue_batches: int = QUEUE_BATCHES, queue_bytes: int = QUEUE_BYTES) -> None:
        self.path = path
        self.journal = journal
        self.counters = counters
        self.last_seq = 0  # as of the last commit (read by status; an int swap is atomic)
        self._queue: queue.Queue[list[bytes] | Task | None] = queue.Queue(queue_batches)
        self._thread = threading.Thread(target=self._run, name="indexer", daemon=True)
        self._index: Index | None = None
        self._deferred = False
        self._stopping = False
        self._queue_bytes = queue_bytes
        self._queued_bytes = 0  # of lines in the queue; both threads update it, under _lock
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def offer(self, lines: list[bytes]) -> None:
        """Journaled lines to index. Never blocks: when the thread is this far behind, the
        batch is dropped and read back from the journal later."""
        size = sum(map(len, lines))
        with self._lock:
            fits = not self._queued_bytes or self._queued_bytes + size <= self._queue_bytes
            if fits:
                try:
                    self._queue.put_nowait(lines)
                    self._queued_bytes += size
                except queue.Full:
                    fits = False
        if not fits:
            self.counters["index_batches_deferred"] += 1
            self._deferred = True  # read back from the journal once the queue is empty

    def submit(self, task: Task) -> bool:
        """Run ``task(index)`` in the indexer thread after what is queued; False (not
        queued) when the queue is full."""
        try:
            self._queue.put_nowait(task)
        except queue.Full:
            return False
        return True

    def stop(self, timeout_s: float = 30.0) -> None:
        """End the thread after the batch it is on: what is still queued is in the journal,
        and the next start reads it back from there (a stop must not wait on a backlog)."""
        if self._thread.is_alive():
            self._stopping = True
            self._queue.put(None)
            self._thread.join(timeout_s)

    # ---- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._index = open_index(self.path)
            self.last_seq = self._index.last_seq
            self._catch_up(None)
        except Exception:
            self.counters["index_errors"] += 1
            log.exception("search index unavailable")
        while (item := self._queue.get()) is not None and not self._stopping:
            if not callable(item):
                with self._lock:
                    self._queued_bytes -= sum(map(len, item))
            try:
                self._handle(item)
                if self._deferred and self._queue.empty():
                    # Batches were dropped while we were busy, and no later batch may come
                    # to reveal the gap: read the journal up to its end now.
                    self._deferred = False
                    self._catch_up(None)
            except Exception as exc:  # one bad batch or a failing disk must not end the thread
                self.counters["index_errors"] += 1
                log.error("indexing failed (%s); the journal has the events, retrying with "
                          "the next batch", exc)
                if isinstance(exc, sqlite3.DatabaseError) and \
                        not isinstance(exc, sqlite3.OperationalError):
                    self._replace_damaged(str(exc))
        if self._index is not None:
            self._index.close()

    def _handle(self, item: list[bytes] | Task) -> None:
        if self._index is None:
            self._index = open_index(self.path)
        if callable(item):
            item(self._index)
        else:
            first = line_seq(item[0])
            if first > self._index.last_seq + 1:
                self._catch_up(first)
            self._index.add(item)
        self.last_seq = self._index.last_seq

    def _catch_up(self, until: int | None) -> None:
        """Index journal lines after last_seq (up to ``until``, exclusive)."""
        assert self._index is not None
        start = self._index.last_seq
        lines = self.journal.read_from(start + 1)
        if until is not None:
            lines = itertools.takewhile(lambda line: line_seq(line) < until, lines)
        for chunk in batches(lines, CATCH_UP_BATCH):
            self._index.add(chunk)
        self.last_seq = self._index.last_seq
        if self._index.last_seq > start:
            log.info("search index caught up from the journal: seq %d to %d", start + 1,
                     self._index.last_seq)

    def _replace_damaged(self, why: str) -> None:
        if self._index is not None:
            with contextlib.suppress(sqlite3.Error):
                self._index.conn.close()
        set_aside(self.path, why)
        self._index = None

    def rebuild(self, progress: Callable[[int], object] | None = None) -> None:
        """Build the index anew from the whole journal (in the indexer thread: submit it)."""
        if self._index is not None:
            self._index.close()
            self._index = None
        self._index = rebuild(self.path, self.journal.read_from(0), REBUILD_BATCH, progress)
        self.last_seq = self._index.last_seq

