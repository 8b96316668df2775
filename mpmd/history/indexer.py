"""The daemon's side of the index worker (mpmd.history.index_worker): starts it, wakes it when the
journal grows, passes on retention and rebuilds, and starts it again if it dies.

Nothing here waits on the worker: a wake-up is a few bytes on a pipe, sent only when none
is outstanding, so a slow or stuck worker costs the daemon nothing but a backlog in the
journal, which the worker reads back at its own pace.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from mpmd.counters import Count
from mpmd.workers import WorkerProcess

log = logging.getLogger("mpmd.history.index")


class IndexerGone(Exception):
    """The worker ended before answering (its end is logged and it is restarted)."""


class Indexer(WorkerProcess):
    def __init__(self, journal_dir: Path, index_path: Path, counters: Counter[str],
                 journal_last_seq: Callable[[], int]) -> None:
        super().__init__("index worker", "mpmd.history.index_worker",
                         [str(journal_dir), str(index_path)], counters,
                         Count.INDEX_WORKER_RESTARTS)
        self.journal_last_seq = journal_last_seq
        self.last_seq = 0  # as the worker last reported it (committed)
        self._wake_sent = False
        self._rebuild: tuple[asyncio.Future[int], Callable[[int], object]] | None = None

    async def stop(self, farewell: dict[str, Any] | None = None) -> None:
        """Ask the worker to finish its batch and wait for it (killed past a timeout:
        whatever it had not committed is in the journal)."""
        await super().stop({"op": "stop"})

    # ---- commands ---------------------------------------------------------------------
    def wake(self) -> None:
        """The journal has grown. One wake-up at a time: the worker reads to the end of
        the journal each time, and each report it sends lets the next one go."""
        if not self._wake_sent and self.send({"op": "wake"}):
            self._wake_sent = True

    def delete_before(self, seq: int) -> None:
        self.send({"op": "delete_before", "seq": seq})

    async def rebuild(self, progress: Callable[[int], object]) -> int:
        """Build the index anew from the whole journal; ``progress(events so far)`` as it
        goes; the last seq indexed. RuntimeError if one is running or the worker is down."""
        if self._rebuild is not None:
            raise RuntimeError("a rebuild is running already")
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if not self.send({"op": "rebuild"}):
            raise RuntimeError("the index worker is not running; try again in a moment")
        self._rebuild = (done, progress)
        try:
            return await done
        finally:
            self._rebuild = None

    # ---- reports ----------------------------------------------------------------------
    def on_start(self) -> None:
        self._wake_sent = False

    def on_exit(self) -> None:
        if self._rebuild is not None and not self._rebuild[0].done():
            self._rebuild[0].set_exception(IndexerGone("the index worker ended mid-rebuild"))

    def on_start_failed(self, exc: OSError) -> None:
        self.counters[Count.INDEX_ERRORS] += 1

    def on_line(self, line: bytes) -> None:
        try:
            report = msgspec.json.decode(line)
        except msgspec.DecodeError:
            log.warning("index worker said: %.200r", line)
            return
        if isinstance(report, dict):
            self._on_report(report)

    def _on_report(self, report: dict[str, Any]) -> None:
        if "last_seq" in report:
            self.last_seq = int(report["last_seq"])
            self._wake_sent = False
            if int(report.get("read", self.last_seq)) < self.journal_last_seq():
                self.wake()  # it may have read the journal just before the last append
        elif "rebuilt" in report:
            if self._rebuild is not None:
                self._rebuild[1](int(report["rebuilt"]))
        elif "rebuild_done" in report:
            self.last_seq = int(report["rebuild_done"])
            if self._rebuild is not None and not self._rebuild[0].done():
                self._rebuild[0].set_result(self.last_seq)
        elif "rebuild_failed" in report:
            self.counters[Count.INDEX_ERRORS] += 1
            if self._rebuild is not None and not self._rebuild[0].done():
                self._rebuild[0].set_exception(RuntimeError(str(report["rebuild_failed"])))
        elif "error" in report:
            # Retried at the next wake-up, that is with the next journal write: not at once,
            # which would spin on a full disk.
            self.counters[Count.INDEX_ERRORS] += 1
            self._wake_sent = False
        elif "log" in report:
            log.log(int(report["log"]), "%s", report.get("msg", ""))
