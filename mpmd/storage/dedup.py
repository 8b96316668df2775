"""Which event ids are already stored, so a retry can never make a duplicate.

A hook that timed out waiting for its ack spools the event it may already have delivered;
the daemon drains that spool file later. Every stored event's id goes in a bounded window
(id -> seq). The window knows how far back it is exact: ``horizon_ns`` is the receive time of
the newest id it has evicted. A spool file whose hook timestamp is at or after the horizon
gets an exact answer from memory; an older one needs the journal (``mpmd.ingest.spool`` scans it),
which only happens after long outages.
"""

from __future__ import annotations

from array import array
from itertools import islice


class RecentIds:
    def __init__(self, capacity: int = 65536) -> None:
        self.capacity = capacity
        # Evicted in blocks of an eighth of the window: deleting one entry per add from the
        # front of a dict leaves dead slots that every later next(iter()) scans past (41 us
        # an add, measured), and an OrderedDict costs twice the memory. A plain dict keeps
        # insertion order, and the receive times sit in an array in that same order.
        self._slack = max(1, capacity // 8)
        self._seq: dict[bytes, int] = {}
        self._received = array("q")
        self.horizon_ns = 0

    def __len__(self) -> int:
        return len(self._seq)

    def get(self, event_id: bytes) -> int | None:
        return self._seq.get(event_id)

    def exact_for(self, ts_ns: int) -> bool:
        """True when an event stamped ``ts_ns`` by its hook, if stored, is in the window."""
        return ts_ns >= self.horizon_ns

    def add(self, event_id: bytes, seq: int, received_ns: int) -> None:
        seqs = self._seq
        if event_id in seqs:  # keeps the dict and the array in the same order
            seqs[event_id] = seq
            return
        seqs[event_id] = seq
        self._received.append(received_ns)
        if len(seqs) > self.capacity + self._slack:
            evict = len(seqs) - self.capacity
            for old in list(islice(seqs, evict)):
                del seqs[old]
            self.horizon_ns = max(self.horizon_ns, max(self._received[:evict]))
            del self._received[:evict]
