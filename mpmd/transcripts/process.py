"""The daemon's side of the transcript follower's process (mpmd.transcripts.worker): starts
it (mpmd.workers: and again if it dies), tells it when the journal grew, stores the events
it hands over and says so, and keeps its last status.

Nothing here waits on the worker: a wake-up is a few bytes, sent only when none is
outstanding; its events are stored as they come, like a hook's.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from mpmd.counters import Count
from mpmd.transcripts.prices import Price
from mpmd.workers import WorkerProcess

log = logging.getLogger("mpmd.transcripts")

Store = Callable[[bytes, bytes, int], None]
"""Store one event (id, payload, time in ns) or spool it; returns once it is one or other."""


class _Message(msgspec.Struct):
    """A batch of events (``batch``, ``events``) or a ``status``."""

    batch: int | None = None
    events: list[tuple[str, msgspec.Raw, int]] = msgspec.field(default_factory=list)
    status: dict[str, Any] | None = None


_message = msgspec.json.Decoder(_Message)


class TranscriptWorker(WorkerProcess):
    def __init__(self, journal_dir: Path, state_path: Path, store: Store,
                 prices: dict[str, Price], roots: str, backfill_after_s: float,
                 counters: Counter[str]) -> None:
        # A batch is one pass's events: the line limit bounds it (the follower reads at
        # most 16 MiB a pass).
        super().__init__("transcript worker", "mpmd.transcripts.worker",
                         [str(journal_dir), str(state_path), roots, repr(backfill_after_s),
                          msgspec.json.encode(prices).decode()],
                         counters, Count.TRANSCRIPT_WORKER_RESTARTS, line_limit=1 << 26)
        self.store = store
        self.last_status: dict[str, Any] = {}
        self._wake_sent = False

    def wake(self) -> None:
        """The journal grew. One wake-up at a time: a status or a batch lets the next go."""
        if not self._wake_sent and self.send({"wake": True}):
            self._wake_sent = True

    def status(self) -> dict[str, Any]:
        return dict(self.last_status, worker_pid=self.pid)

    def on_start(self) -> None:
        self._wake_sent = False

    def on_line(self, line: bytes) -> None:
        try:
            message = _message.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("transcript worker said: %.200r", line)
            return
        self._wake_sent = False
        if message.status is not None:
            self.last_status = message.status
        if message.batch is not None:
            for event_id, payload, ts_ns in message.events:
                self.store(bytes.fromhex(event_id), bytes(payload), ts_ns)
            self.send({"stored": message.batch})
