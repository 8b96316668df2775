"""The duplicate window: exact for the newest ids, bounded, and honest about its horizon."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mpmd.storage.dedup import RecentIds


@given(
    capacity=st.integers(1, 40),
    received=st.lists(st.integers(0, 10**6), max_size=300),
)
def test_window_against_a_list(capacity: int, received: list[int]) -> None:
    recent = RecentIds(capacity)
    added = []
    for seq, ns in enumerate(received, 1):
        event_id = seq.to_bytes(16, "big")
        recent.add(event_id, seq, ns)
        added.append((event_id, seq, ns))
        assert len(recent) <= capacity + max(1, capacity // 8)
    for event_id, seq, _ns in added[-capacity:]:
        assert recent.get(event_id) == seq  # the newest ids are always exact
    evicted = [ns for event_id, _seq, ns in added if recent.get(event_id) is None]
    # Anything stamped after the horizon that is not in the window was never stored.
    assert recent.horizon_ns == max(evicted, default=0)
    for event_id, seq, _ns in added:
        assert recent.get(event_id) in (seq, None)


def test_adding_an_id_again_updates_it_in_place() -> None:
    recent = RecentIds(4)
    recent.add(b"a" * 16, 1, 10)
    recent.add(b"a" * 16, 2, 20)
    assert recent.get(b"a" * 16) == 2
    assert len(recent) == 1
    for seq in range(3, 10):
        recent.add(seq.to_bytes(16, "big"), seq, seq * 10)
    assert recent.get(b"a" * 16) is None
    # Evicted so far: a (10), 3, 4 and 5 (50): the horizon is the newest of them.
    assert [recent.get(i.to_bytes(16, "big")) for i in (5, 6)] == [None, 6]
    assert recent.horizon_ns == 50
    assert not recent.exact_for(49) and recent.exact_for(50)
