"""Which event ids are already stored, so a retry can never make a duplicate.

A hook that timed out waiting for its ack spools the event it may already have delivered;
the daemon drains that spool file later. Every stored event's id goes in a bounded window
(insertion-ordered dict: id -> seq). The window knows how far back it is exact: ``horizon_ns``
is the receive time of the newest id it has evicted. A spool file whose hook timestamp is
at or after the horizon gets an exact answer from memory; an older one needs the journal
(``mpmd.spool`` scans it), which only happens after long outages.
"""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    def __init__(self, capacity: int = 65536) -> None:
        self.capacity = capacity
        # OrderedDict: popitem(last=False) is O(1); next(iter(dict)) after many deletes
        # scans past the dead slots (41 us an add once the window is full).
        self._seq: OrderedDict[bytes, int] = OrderedDict()
        self._received: dict[bytes, int] = {}
        self.horizon_ns = 0

    def __len__(self) -> int:
        return len(self._seq)

    def get(self, event_id: bytes) -> int | None:
        return self._seq.get(event_id)

    def exact_for(self, ts_ns: int) -> bool:
        """True when an event stamped ``ts_ns`` by its hook, if stored, is in the window."""
        return ts_ns >= self.horizon_ns

    def add(self, event_id: bytes, seq: int, received_ns: int) -> None:
        self._seq[event_id] = seq
        self._received[event_id] = received_ns
        if len(self._seq) > self.capacity:
            oldest, _ = self._seq.popitem(last=False)
            self.horizon_ns = max(self.horizon_ns, self._received.pop(oldest))
