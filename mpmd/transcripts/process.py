"""The daemon's side of the transcript follower's process (mpmd.transcripts.worker): starts
it, tells it when the journal grew, stores the events it hands over and says so, keeps its
last status, and starts it again if it dies.

Nothing here waits on the worker: a wake-up is a few bytes, sent only when none is
outstanding; its events are stored as they come, like a hook's.
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
from mpmd.transcripts.prices import Price

log = logging.getLogger("mpmd.transcripts")

RESTART_DELAYS_S = (0.5, 1, 2, 5, 10, 30)  # after it died that many times in a row
HEALTHY_AFTER_S = 60.0  # a worker that ran this long resets the count
STOP_TIMEOUT_S = 10.0

Store = Callable[[bytes, bytes, int], None]
"""Store one event (id, payload, time in ns) or spool it; returns once it is one or other."""


class _Message(msgspec.Struct):
    """A batch of events (``batch``, ``events``) or a ``status``."""

    batch: int | None = None
    events: list[tuple[str, msgspec.Raw, int]] = msgspec.field(default_factory=list)
    status: dict[str, Any] | None = None


_message = msgspec.json.Decoder(_Message)


class TranscriptWorker:
    def __init__(self, journal_dir: Path, state_path: Path, store: Store,
                 prices: dict[str, Price], roots: str, backfill_after_s: float,
                 counters: Counter[str]) -> None:
        self.args = [str(journal_dir), str(state_path), roots, repr(backfill_after_s),
                     msgspec.json.encode(prices).decode()]
        self.store = store
        self.counters = counters
        self.last_status: dict[str, Any] = {}
        self.pid: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._restarting: asyncio.Task[None] | None = None
        self._wake_sent = False
        self._stopping = False
        self._failures = 0

    async def start(self) -> None:
        started = asyncio.get_running_loop().time()
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mpmd.transcripts.worker", *self.args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26)
        self.pid = self._proc.pid
        self._wake_sent = False
        self._reader = asyncio.create_task(self._read(self._proc, started),
                                           name="transcripts")

    async def stop(self) -> None:
        """Close its stdin (it saves its positions and exits) and wait for it."""
        self._stopping = True
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError, RuntimeError, AttributeError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("the transcript worker did not stop within %.0f s: killing it "
                        "(it reads again from its saved positions)", STOP_TIMEOUT_S)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader

    def wake(self) -> None:
        """The journal grew. One wake-up at a time: a status or a batch lets the next go."""
        if not self._wake_sent and self._send({"wake": True}):
            self._wake_sent = True

    def status(self) -> dict[str, Any]:
        return dict(self.last_status, worker_pid=self.pid)

    def _send(self, command: dict[str, Any]) -> bool:
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
                try:
                    message = _message.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    log.warning("transcript worker said: %.200r", line)
                    continue
                self._wake_sent = False
                if message.status is not None:
                    self.last_status = message.status
                if message.batch is not None:
                    for event_id, payload, ts_ns in message.events:
                        self.store(bytes.fromhex(event_id), bytes(payload), ts_ns)
                    self._send({"stored": message.batch})
        except (ValueError, asyncio.LimitOverrunError) as exc:
            log.error("transcript worker's output is unreadable (%s)", exc)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        code = await proc.wait()
        self._proc, self.pid = None, None
        if self._stopping:
            return
        self.counters[Count.TRANSCRIPT_WORKER_RESTARTS] += 1
        ran = asyncio.get_running_loop().time() - started
        self._failures = 0 if ran > HEALTHY_AFTER_S else self._failures + 1
        delay = RESTART_DELAYS_S[min(self._failures, len(RESTART_DELAYS_S)) - 1] \
            if self._failures else 0
        log.error("the transcript worker ended (exit status %s) after %.1f s; starting it "
                  "again in %.1f s", code, ran, delay)
        asyncio.get_running_loop().call_later(delay, self._spawn_restart)

    def _spawn_restart(self) -> None:
        self._restarting = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        if self._stopping or self._proc is not None:
            return
        try:
            await self.start()
        except OSError as exc:  # no process at all (out of memory, pids, ...): keep trying
            log.error("could not start the transcript worker (%s); trying again in %.0f s",
                      exc, RESTART_DELAYS_S[-1])
            asyncio.get_running_loop().call_later(RESTART_DELAYS_S[-1], self._spawn_restart)
