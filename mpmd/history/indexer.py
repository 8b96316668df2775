"""The daemon's side of the index worker (mpmd.history.index_worker): starts it, wakes it when the
journal grows, passes on retention and rebuilds, and starts it again if it dies.

Nothing here waits on the worker: a wake-up is a few bytes on a pipe, sent only when none
is outstanding, so a slow or stuck worker costs the daemon nothing but a backlog in the
journal, which the worker reads back at its own pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from mpmd.counters import Count

log = logging.getLogger("mpmd.history.index")

RESTART_DELAYS_S = (0.5, 1, 2, 5, 10, 30)  # after the worker died that many times in a row
HEALTHY_AFTER_S = 60.0  # a worker that ran this long resets the count
STOP_TIMEOUT_S = 10.0


class IndexerGone(Exception):
    """The worker ended before answering (its end is logged and it is restarted)."""


class Indexer:
    def __init__(self, journal_dir: Path, index_path: Path, counters: Counter[str],
                 journal_last_seq: Callable[[], int]) -> None:
        self.journal_dir = journal_dir
        self.index_path = index_path
        self.counters = counters
        self.journal_last_seq = journal_last_seq
        self.last_seq = 0  # as the worker last reported it (committed)
        self.pid: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._wake_sent = False
        self._stopping = False
        self._failures = 0
        self._rebuild: tuple[asyncio.Future[int], Callable[[int], object]] | None = None
        self._restarting: asyncio.Task[None] | None = None  # referenced, or it may be collected

    # ---- life -------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mpmd.history.index_worker", str(self.journal_dir),
            str(self.index_path), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=1 << 20)
        self.pid = self._proc.pid
        self._wake_sent = False
        self._reader = asyncio.create_task(self._read(self._proc, started), name="indexer")

    async def stop(self) -> None:
        """Ask the worker to finish its batch and wait for it (killed past a timeout:
        whatever it had not committed is in the journal)."""
        self._stopping = True
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError, RuntimeError, AttributeError):
            self._send({"op": "stop"})
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("the index worker did not stop within %.0f s: killing it",
                        STOP_TIMEOUT_S)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader

    # ---- commands ---------------------------------------------------------------------
    def wake(self) -> None:
        """The journal has grown. One wake-up at a time: the worker reads to the end of
        the journal each time, and each report it sends lets the next one go."""
        if not self._wake_sent and self._send({"op": "wake"}):
            self._wake_sent = True

    def delete_before(self, seq: int) -> None:
        self._send({"op": "delete_before", "seq": seq})

    async def rebuild(self, progress: Callable[[int], object]) -> int:
        """Build the index anew from the whole journal; ``progress(events so far)`` as it
        goes; the last seq indexed. RuntimeError if one is running or the worker is down."""
        if self._rebuild is not None:
            raise RuntimeError("a rebuild is running already")
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if not self._send({"op": "rebuild"}):
            raise RuntimeError("the index worker is not running; try again in a moment")
        self._rebuild = (done, progress)
        try:
            return await done
        finally:
            self._rebuild = None

    def _send(self, command: dict[str, Any]) -> bool:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing() or \
                proc.returncode is not None:
            return False
        proc.stdin.write(msgspec.json.encode(command) + b"\n")
        return True

    # ---- reports ----------------------------------------------------------------------
    async def _read(self, proc: asyncio.subprocess.Process, started: float) -> None:
        assert proc.stdout is not None
        try:
            while line := await proc.stdout.readline():
                try:
                    report = msgspec.json.decode(line)
                except msgspec.DecodeError:
                    log.warning("index worker said: %.200r", line)
                    continue
                if isinstance(report, dict):
                    self._on_report(report)
        except (ValueError, asyncio.LimitOverrunError) as exc:
            log.error("index worker's output is unreadable (%s)", exc)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        code = await proc.wait()
        self._proc, self.pid = None, None
        if self._rebuild is not None and not self._rebuild[0].done():
            self._rebuild[0].set_exception(IndexerGone("the index worker ended mid-rebuild"))
        if self._stopping:
            return
        self.counters[Count.INDEX_WORKER_RESTARTS] += 1
        ran = asyncio.get_running_loop().time() - started
        self._failures = 0 if ran > HEALTHY_AFTER_S else self._failures + 1
        delay = RESTART_DELAYS_S[min(self._failures, len(RESTART_DELAYS_S)) - 1] \
            if self._failures else 0
        log.error("the index worker ended (exit status %s) after %.1f s; starting it again "
                  "in %.1f s", code, ran, delay)
        self._restart_later(delay)

    def _restart_later(self, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self._spawn_restart)

    def _spawn_restart(self) -> None:
        self._restarting = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        if self._stopping or self._proc is not None:
            return
        try:
            await self.start()
        except OSError as exc:  # no process at all (out of memory, pids, ...): keep trying
            self.counters[Count.INDEX_ERRORS] += 1
            log.error("could not start the index worker (%s); trying again in %.0f s", exc,
                      RESTART_DELAYS_S[-1])
            self._restart_later(RESTART_DELAYS_S[-1])

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
