"""A worker process of the daemon: a child that speaks JSON lines, one message a line, the
daemon's commands on its stdin and its reports on its stdout; started again, after a
growing delay, whenever it ends while the daemon runs. The index worker
(mpmd.history.indexer), the transcript follower (mpmd.transcripts.process) and the notifier
(mpmd.notify.process) are three; ``child_loop`` is the child's side of the pipes.

Nothing here waits on the child: a command is a write to a pipe, a report is handled as it
comes. A child that floods its stdout with something unreadable is killed (and started
again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec

log = logging.getLogger("mpmd")

STATUS_EVERY_S = 1.0  # a child says its status at most this often
RESTART_DELAYS_S = (0.5, 1, 2, 5, 10, 30)  # after it ended that many times in a row
HEALTHY_AFTER_S = 60.0  # one that ran this long resets the count
STOP_TIMEOUT_S = 10.0


class WorkerProcess:
    """``python -m module *args``. Subclasses handle its lines (``on_line``) and, if they
    need to, its end (``on_exit``); ``restarts`` names the counter of its restarts."""

    def __init__(self, name: str, module: str, args: list[str], counters: Counter[str],
                 restarts: str, line_limit: int = 1 << 20) -> None:
        self.name = name
        self.module = module
        self.args = args
        self.counters = counters
        self.restarts = restarts
        self.line_limit = line_limit
        self.pid: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._restarting: asyncio.Task[None] | None = None  # referenced, or it may be collected
        self._stopping = False
        self._failures = 0

    # ---- for subclasses ------------------------------------------------------------------
    def on_start(self) -> None:
        """A process was started (the first, or again)."""

    def on_line(self, line: bytes) -> None:
        raise NotImplementedError

    def on_exit(self) -> None:
        """The process ended (its last line handled)."""

    def on_start_failed(self, exc: OSError) -> None:
        """No process could be started again (it is tried again later)."""

    # ---- life -------------------------------------------------------------------------
    async def start(self) -> None:
        started = asyncio.get_running_loop().time()
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, *self.args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=self.line_limit)
        self.pid = self._proc.pid
        self.on_start()
        self._reader = asyncio.create_task(self._read(self._proc, started), name=self.name)

    async def stop(self, farewell: dict[str, Any] | None = None) -> None:
        """Send ``farewell`` if given, close its stdin (it finishes and exits) and wait for
        it; killed past STOP_TIMEOUT_S."""
        self._stopping = True
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError, RuntimeError, AttributeError):
            if farewell is not None:
                self.send(farewell)
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("the %s did not stop within %.0f s: killing it", self.name,
                        STOP_TIMEOUT_S)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader

    def send(self, command: dict[str, Any]) -> bool:
        """One command line; False when there is no process to take it."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing() or \
                proc.returncode is not None:
            return False
        proc.stdin.write(msgspec.json.encode(command) + b"\n")
        return True

    async def _read(self, proc: asyncio.subprocess.Process, started: float) -> None:
        assert proc.stdout is not None
        try:
            while line := await proc.stdout.readline():
                self.on_line(line)
        except (ValueError, asyncio.LimitOverrunError) as exc:
            log.error("the %s's output is unreadable (%s)", self.name, exc)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        code = await proc.wait()
        self._proc, self.pid = None, None
        self.on_exit()
        if self._stopping:
            return
        self.counters[self.restarts] += 1
        ran = asyncio.get_running_loop().time() - started
        self._failures = 0 if ran > HEALTHY_AFTER_S else self._failures + 1
        delay = RESTART_DELAYS_S[min(self._failures, len(RESTART_DELAYS_S)) - 1] \
            if self._failures else 0
        log.error("the %s ended (exit status %s) after %.1f s; starting it again in %.1f s",
                  self.name, code, ran, delay)
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
            self.on_start_failed(exc)
            log.error("could not start the %s (%s); trying again in %.0f s", self.name, exc,
                      RESTART_DELAYS_S[-1])
            self._restart_later(RESTART_DELAYS_S[-1])


def child_loop(on_line: Callable[[bytes], None], status: Callable[[], object],
               say: Callable[[object], None], running: Callable[[], bool]) -> int:
    """The child's side: hand each line the daemon writes on stdin to ``on_line``, and say
    ``{"status": status()}`` when it changed, at most every STATUS_EVERY_S. Returns the exit
    status: 0 once the daemon closed stdin (stop) or went away, 1 when ``running()`` turned
    false (the child's work stopped on a bug: the daemon starts it again)."""
    said = None
    said_at = 0.0
    pending = b""
    fd = sys.stdin.buffer.fileno()
    try:
        while True:
            if not running():
                return 1
            ready, _, _ = select.select([fd], [], [], STATUS_EVERY_S)
            if ready:
                data = os.read(fd, 1 << 16)
                if not data:
                    return 0
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    on_line(line)
            now = time.monotonic()
            if now - said_at >= STATUS_EVERY_S:
                said_at = now
                current = status()
                if current != said:
                    say({"status": current})
                    said = current
    except (OSError, ValueError):  # the daemon went away
        return 0
