"""The daemon's background tasks, supervised: each of them (journal, spool, broadcast,
maintenance, prompt watch) is what some promise rests on, so a bug in one is logged,
counted, shown in status and the task started again, never left dead: a dead journal task
would leave acked events in the ring, a dead broadcaster freezes every viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime

from mpmd.counters import Count
from mpmd.status import TaskFailure

log = logging.getLogger("mpmd")

# A background task that fails is started again after this delay, doubling up to the
# maximum while it keeps failing; one that ran this long before failing starts at the
# minimum again.
TASK_RESTART_S = (0.1, 30.0)
TASK_HEALTHY_S = 60.0


class Tasks:
    def __init__(self, counters: Counter[str]) -> None:
        self.counters = counters
        self.running: list[asyncio.Task[None]] = []
        # Tasks that failed (and were started again): in status, doctor and /metrics.
        self.failures: dict[str, TaskFailure] = {}

    def start(self, runs: dict[str, Callable[[], Awaitable[None]]]) -> None:
        self.running += [asyncio.create_task(self.supervised(name, run), name=name)
                         for name, run in runs.items()]

    async def cancel(self) -> None:
        for task in self.running:
            task.cancel()
        for task in self.running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.running = []

    async def supervised(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run`` until it returns; started again, after a growing delay, each time it
        fails."""
        delay = TASK_RESTART_S[0]
        while True:
            started = time.monotonic()
            try:
                await run()
                return
            except Exception as exc:  # noqa: BLE001 - any bug of ours: restart, never die
                if time.monotonic() - started >= TASK_HEALTHY_S:
                    delay = TASK_RESTART_S[0]
                failed = self.failures.get(name)
                self.failures[name] = TaskFailure(
                    failures=(failed.failures if failed else 0) + 1,
                    last_error=f"{type(exc).__name__}: {exc}"[:500],
                    at=datetime.now().astimezone().isoformat(timespec="seconds"))
                self.counters[Count.TASK_FAILURES] += 1
                log.exception("background task %s failed; starting it again in %.1fs",
                              name, delay)
            await asyncio.sleep(delay)  # a task that fails at once must not spin
            delay = min(delay * 2, TASK_RESTART_S[1])
