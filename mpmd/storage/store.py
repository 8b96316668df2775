"""The one door into the ring: dedup, seq, record, append. Socket frames and spool files
both come through here, so they follow the same rules.

STORED is only answered after the record is in the ring (a file-backed mmap), which is what
lets an ack promise the event survives a daemon crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from mpm_hook import wire
from mpmd.counters import Count, events_from
from mpmd.model import record
from mpmd.model.events import EventFrame
from mpmd.storage.dedup import RecentIds
from mpmd.storage.latency import LatencyHistogram
from mpmd.storage.ring import Ring

log = logging.getLogger("mpmd.storage.store")


class Store:
    def __init__(self, ring: Ring, recent: RecentIds, next_seq: int, counters: Counter[str],
                 wakeups: list[asyncio.Event] | None = None):
        self.ring = ring
        self.recent = recent
        self.next_seq = next_seq
        self.counters = counters
        # Set whenever a record lands in the ring: the journal consumer waits on `appended`,
        # the other ring consumers on their own events, given in `wakeups`.
        self.appended = asyncio.Event()
        self.wakeups: list[asyncio.Event] = [self.appended, *(wakeups or ())]
        # Set whenever the ring refuses a record; cleared when a consumer frees room.
        self.full = False
        self.accepting = True
        self._max_record = ring.capacity // 4
        self.latency = LatencyHistogram()  # hook started -> in the ring (/metrics)

    def put(self, frame: EventFrame, source: str = "hook",
            received_ns: int | None = None) -> tuple[int, int]:
        """(ack status, seq) for one frame; ``received_ns`` defaults to now (the frames of
        one read share one)."""
        seq = self.recent.get(frame.id)
        if seq is not None:
            self.counters[Count.DUPLICATES] += 1
            return wire.DUPLICATE, seq
        if not self.accepting:
            self.counters[Count.BUSY] += 1
            return wire.BUSY, 0
        if source == "hook" and not self.recent.exact_for(frame.ts_ns):
            # Stamped before the oldest id the window still knows: from memory we cannot
            # tell a retry from a new event. BUSY makes the hook spool it, and the spool
            # drain looks it up in the journal first (SpoolDrainer._mark_old_duplicates),
            # so the answer is exact whatever the id's age (docs/protocol.md, Idempotency).
            self.counters[Count.BUSY] += 1
            self.counters[Count.BUSY_STAMPED_BEFORE_WINDOW] += 1
            return wire.BUSY, 0
        seq = self.next_seq
        now = time.time_ns() if received_ns is None else received_ns
        try:
            line = record.build(seq, frame, now, source, max_bytes=self._max_record)
        except Exception as exc:  # noqa: BLE001 - a bug of ours must not lose the event
            self.counters[Count.INTERNAL_ERRORS] += 1
            log.exception("could not build the stored event for seq %d; storing its bytes", seq)
            line = record.unprocessable(seq, frame, now, source, exc)
        if not self.ring.append(line):
            if not self.full:
                log.warning("ring full (%d bytes used): answering BUSY, hooks will spool",
                            self.ring.used_bytes)
            self.full = True
            self.counters[Count.BUSY] += 1
            return wire.BUSY, 0
        self.next_seq = seq + 1
        self.recent.add(frame.id, seq, now)
        self.latency.observe_ns(now - frame.ts_ns)
        self.counters[Count.EVENTS_TOTAL] += 1
        self.counters[events_from(source)] += 1
        for wakeup in self.wakeups:
            wakeup.set()
        return wire.STORED, seq
