"""What the daemon finds on disk before it listens: the ring recovered (records past the
journal's cursor survive a kill -9), the journal opened (a torn last line is cut), the next
seq past the highest of either, and the duplicate window seeded from both, so an event a
hook sends again after a crash is still known.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
from dataclasses import dataclass
from datetime import datetime

import msgspec

from mpmd.config import Settings
from mpmd.model.events import StoredEventView
from mpmd.storage.dedup import RecentIds
from mpmd.storage.journal import Journal, line_seq
from mpmd.storage.ring import Ring, open_ring_file

log = logging.getLogger("mpmd")

JOURNAL_CONSUMER = "journal"  # the ring's consumer the journal reads as
_received_decoder = msgspec.json.Decoder(dict[str, object])


@dataclass
class Recovered:
    """The storage the daemon starts from; ``close`` closes it (journal first: it fsyncs)."""

    ring: Ring
    mmap: mmap.mmap
    journal: Journal
    recent: RecentIds  # the duplicate window
    next_seq: int
    tail: list[bytes]  # the journal's newest lines (the window's size)
    pending: list[bytes]  # ring records the journal has not taken yet, oldest first

    def close(self) -> None:
        try:
            self.journal.close()
        finally:
            self.mmap.flush()
            self.ring.close()
            self.mmap.close()


def recover(s: Settings) -> Recovered:
    ring, mapped = open_ring_file(s.ring_path, s.ring_bytes)
    try:
        note = getattr(ring, "note", None)
        if note:
            log.warning("ring: %s", note)
        ring.add_consumer(JOURNAL_CONSUMER)
        recovered = ring.recover()
        journal = Journal(
            s.journal_dir,
            segment_max_bytes=s.segment_bytes,
            retention_days=s.retention_days,
            retention_max_bytes=s.retention_bytes,
            fsync_interval_s=s.fsync_interval_s,
        )
    except BaseException:
        ring.close()
        mapped.close()
        raise
    pending = [rec for _pos, rec in ring.read(JOURNAL_CONSUMER, max_records=1 << 30,
                                               max_bytes=ring.capacity)]
    if recovered:
        log.info("recovered %d events from the ring", recovered)
    # Highest seq anywhere: the journal's, or a record still in the ring.
    last_seq = max([journal.last_seq, *map(line_seq, pending)])
    recent = RecentIds()
    tail = journal.read_last(recent.capacity)
    _remember(recent, tail)
    if len(tail) >= recent.capacity:
        recent.horizon_ns = _received_ns(tail[0])
    _remember(recent, pending)
    return Recovered(ring, mapped, journal, recent, last_seq + 1, tail, pending)


def _remember(recent: RecentIds, lines: list[bytes]) -> None:
    views = msgspec.json.Decoder(StoredEventView)
    for line in lines:
        with contextlib.suppress(msgspec.DecodeError, ValueError):
            view = views.decode(line)
            recent.add(bytes.fromhex(view.id), view.seq, 0)


def _received_ns(line: bytes) -> int:
    try:
        stamp = _received_decoder.decode(line).get("received_at")
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1e9)
    except (msgspec.DecodeError, ValueError, TypeError):
        return 0
