"""The daemon's side of the notifier's process (mpmd.notify.worker): starts it
(mpmd.workers: and again if it dies), tells it when the journal grew, keeps its last status.
Started only when config.toml has a [[notify]] table.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from mpmd.counters import Count
from mpmd.workers import WorkerProcess

log = logging.getLogger("mpmd.notify")

STATE_FILE_NAME = "notify.json"
WAKE_EVERY_S = 0.02


class _Message(msgspec.Struct):
    status: dict[str, Any] | None = None


_message = msgspec.json.Decoder(_Message)


class NotifyWorker(WorkerProcess):
    def __init__(self, journal_dir: Path, state_dir: Path, key_path: Path | None,
                 base_url: str, links_url: str, tables: Any, start_seq: int,
                 counters: Counter[str]) -> None:
        # start_seq: where a notifier with no state (the first start, or a damaged file)
        # begins, the journal's end as the daemon started.
        super().__init__("notifier", "mpmd.notify.worker",
                         [str(journal_dir), str(state_dir / STATE_FILE_NAME),
                          str(key_path or ""), base_url, links_url,
                          msgspec.json.encode(tables).decode(),
                          str(start_seq)],
                         counters, Count.NOTIFY_WORKER_RESTARTS)
        self.last_status: dict[str, Any] = {}
        self._wake_due: asyncio.TimerHandle | None = None
        self._woken_at = float("-inf")

    def wake(self) -> None:
        """The journal grew. At most one wake-up line every WAKE_EVERY_S: at full load the
        journal grows thousands of times a second, and the notifier reads all there is. The
        first goes at once, the ones after it within WAKE_EVERY_S as one."""
        if self._wake_due is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._woken_at + WAKE_EVERY_S - loop.time()
        if wait <= 0:
            self._send_wake()
        else:
            self._wake_due = loop.call_later(wait, self._send_wake)

    def _send_wake(self) -> None:
        self._wake_due = None
        self._woken_at = asyncio.get_running_loop().time()
        self.send({"wake": True})

    def status(self) -> dict[str, Any]:
        return dict(self.last_status, worker_pid=self.pid)

    def on_line(self, line: bytes) -> None:
        try:
            message = _message.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("notifier said: %.200r", line)
            return
        if message.status is not None:
            self.last_status = message.status
