"""Tests for mpmd.storage.ring: the memory-mapped circular buffer of records."""

from __future__ import annotations

import mmap
import os
import signal
import stat
import struct
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mpmd.storage.ring import (
    HEADER_BYTES,
    MAGIC,
    MAX_CONSUMERS,
    VERSION,
    ConsumerSlotsFull,
    PageReleaser,
    Ring,
    RingCorrupt,
    open_ring_file,
    record_size,
)
from tests.utils import examples

CAP = 4096
HEAD_OFFSET = 24  # where head lives in the header
SLOTS_OFFSET = 64
SLOT_BYTES = 48
PAD = 0xFFFFFFFF


def make_ring(capacity: int = CAP, consumers: tuple[str, ...] = ("j",)) -> tuple[Ring, bytearray]:
    buf = bytearray(HEADER_BYTES + capacity)
    ring = Ring.create(buf, capacity)
    for name in consumers:
        ring.add_consumer(name)
    return ring, buf


def reopen(ring: Ring, buf: bytearray) -> Ring:
    """What the daemon does after a crash: attach to the same bytes again."""
    ring.close()
    return Ring.open(buf)


def datas(records: list[tuple[int, bytes]]) -> list[bytes]:
    return [data for _, data in records]


def needed_for(ring: Ring, size: int) -> int:
    """Bytes an append of ``size`` bytes needs now, lap-end waste included."""
    room = ring.capacity - ring.head % ring.capacity
    total = record_size(size)
    return total if total <= room else room + total


def set_head(buf: bytearray, head: int) -> None:
    struct.pack_into("<Q", buf, HEAD_OFFSET, head)


def set_cursor(buf: bytearray, slot: int, cursor: int) -> None:
    struct.pack_into("<Q", buf, SLOTS_OFFSET + slot * SLOT_BYTES + 32, cursor)


def phys(ring: Ring, pos: int) -> int:
    """Offset in the buffer of logical position ``pos``."""
    return HEADER_BYTES + pos % ring.capacity


# -- the model-based test ---------------------------------------------------------------

NAMES = ("journal", "ws", "fwd")


class RingMachine(RuleBasedStateMachine):
    """The ring against a model: one FIFO of pending records per consumer."""

    def __init__(self) -> None:
        super().__init__()
        self.buf = bytearray()
        self.ring: Ring | None = None
        self.model: dict[str, deque[bytes]] = {}
        self.counter = 0

    @initialize(capacity=st.integers(512, 2048).map(lambda k: k * 8), n=st.integers(1, 3))
    def setup(self, capacity: int, n: int) -> None:
        self.buf = bytearray(HEADER_BYTES + capacity)
        self.ring = Ring.create(self.buf, capacity)
        for name in NAMES[:n]:
            self.ring.add_consumer(name)
            self.model[name] = deque()

    @property
    def r(self) -> Ring:
        assert self.ring is not None
        return self.ring

    def record(self, size: int) -> bytes:
        """A distinct record of ``size`` bytes."""
        self.counter += 1
        return (self.counter.to_bytes(8, "little") * (size // 8 + 1))[:size]

    def size(self, raw: int) -> int:
        return raw % (self.r.capacity // 4 + 1)

    def do_append(self, size: int) -> bool:
        data = self.record(size)
        needed = needed_for(self.r, size)
        free = self.r.free_bytes
        ok = self.r.append(data)
        if not self.model:
            assert ok, "with no consumer nothing is retained: append must succeed"
        else:
            # False exactly when the record (plus lap-end waste) would reach unread data.
            assert ok == (needed <= free), (ok, needed, free)
        if ok:
            for pending in self.model.values():
                pending.append(data)
        return ok

    def do_reopen(self) -> None:
        self.ring = reopen(self.r, self.buf)
        count = self.ring.recover()
        assert count == max((len(p) for p in self.model.values()), default=0)
        assert self.ring.note is None

    @rule(raw=st.integers(0, 48) | st.integers(0, 1 << 20))
    def append(self, raw: int) -> None:
        self.do_append(self.size(raw))

    @rule(raw=st.integers(0, 1 << 20))
    def fill(self, raw: int) -> None:
        """Append records of one size until the ring refuses one."""
        size = self.size(raw)
        for _ in range(self.r.capacity // 8 + 1):
            if not self.do_append(size) or not self.model:
                break

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def read_commit(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        max_records = data.draw(st.integers(1, 12))
        max_bytes = data.draw(st.sampled_from([0, 64, 700, 1 << 30]))
        records = self.r.read(name, max_records=max_records, max_bytes=max_bytes)
        expected = list(self.model[name])
        got = datas(records)
        assert got == expected[: len(got)]
        want = min(max_records, len(expected))
        if max_bytes == 1 << 30:
            assert len(got) == want
        else:
            assert (len(got) >= 1) == (want >= 1)
            assert len(got) <= want
            assert len(got) <= 1 or sum(map(len, got)) <= max_bytes
            if len(got) < want:  # stopped by the byte budget
                assert sum(map(len, got)) + len(expected[len(got)]) > max_bytes
        positions = [pos for pos, _ in records]
        assert positions == sorted(set(positions))
        assert all(pos <= self.r.head for pos in positions)
        n = data.draw(st.integers(0, len(records)))
        if n:
            self.r.commit(name, records[n - 1][0])
            for _ in range(n):
                self.model[name].popleft()

    @precondition(lambda self: len(self.model) < len(NAMES))
    @rule(data=st.data())
    def add_consumer(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from([n for n in NAMES if n not in self.model]))
        self.r.add_consumer(name)
        self.model[name] = deque()

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove_consumer(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        assert self.r.remove_consumer(name)
        del self.model[name]

    @rule()
    def crash_and_reopen(self) -> None:
        self.do_reopen()

    @rule(raw=st.integers(0, 1 << 20))
    def torn_append(self, raw: int) -> None:
        """The daemon dies after writing a record's bytes but before storing head."""
        saved = bytes(self.buf[HEAD_OFFSET : HEAD_OFFSET + 8])
        self.r.append(self.record(self.size(raw)))
        self.buf[HEAD_OFFSET : HEAD_OFFSET + 8] = saved
        self.do_reopen()

    @invariant()
    def consistent(self) -> None:
        if self.ring is None:
            return
        r = self.ring
        assert 0 <= r.used_bytes <= r.capacity
        assert r.free_bytes == r.capacity - r.used_bytes
        assert set(r.consumers) == set(self.model)
        cursors = r.consumers.values()
        assert r.used_bytes == (r.head - min(cursors) if cursors else 0)
        for name, pending in self.model.items():
            assert datas(r.read(name, max_records=1 << 30, max_bytes=1 << 62)) == list(pending)


TestRingMachine = RingMachine.TestCase
TestRingMachine.settings = settings(max_examples=examples(150), stateful_step_count=40,
                                    deadline=None)


# -- records ------------------------------------------------------------------------------


def test_records_round_trip_with_end_positions() -> None:
    ring, _ = make_ring()
    assert ring.append(b"")
    assert ring.append(b"abc")
    assert ring.append(bytearray(b"12345678"))
    assert ring.append(memoryview(b"xyz"))
    records = ring.read("j")
    assert datas(records) == [b"", b"abc", b"12345678", b"xyz"]
    ends = [pos for pos, _ in records]
    assert ends == [8, 8 + 16, 8 + 16 + 16, 8 + 16 + 16 + 16]
    assert ring.head == ends[-1]
    assert all(type(data) is bytes for _, data in records)


def test_read_does_not_move_the_cursor_and_commit_does() -> None:
    ring, _ = make_ring()
    for i in range(3):
        ring.append(b"r%d" % i)
    first = ring.read("j")
    assert datas(ring.read("j")) == datas(first)
    ring.commit("j", first[0][0])
    assert datas(ring.read("j")) == [b"r1", b"r2"]
    assert ring.consumers == {"j": first[0][0]}
    ring.commit("j", first[0][0])  # committing the cursor again is a no-op
    assert ring.lag("j") == ring.head - first[0][0]


def test_read_limits() -> None:
    ring, _ = make_ring()
    for i in range(10):
        ring.append(bytes([i]) * 100)
    assert len(ring.read("j", max_records=3)) == 3
    assert ring.read("j", max_records=0) == []
    assert len(ring.read("j", max_bytes=250)) == 2
    # One record is always returned, even larger than the byte budget.
    assert datas(ring.read("j", max_bytes=10)) == [bytes([0]) * 100]
    assert len(ring.read("j", max_bytes=0)) == 1


def test_record_size_limit() -> None:
    ring, _ = make_ring()
    assert ring.max_record_bytes == CAP // 4
    assert ring.append(b"m" * (CAP // 4))
    with pytest.raises(ValueError, match="exceeds"):
        ring.append(b"m" * (CAP // 4 + 1))
    assert datas(ring.read("j")) == [b"m" * (CAP // 4)]


def test_record_size() -> None:
    assert [record_size(n) for n in (0, 1, 8, 9, 16)] == [8, 16, 16, 24, 24]


def test_wrap_writes_a_padding_marker_and_starts_the_next_lap() -> None:
    ring, buf = make_ring()
    # Fill the first lap up to 24 bytes before its end.
    size = 1000 - 8
    for _ in range(4):
        assert ring.append(b"a" * size)
    ring.append(b"b" * (CAP - 4000 - 24 - 8))
    assert ring.head == CAP - 24
    ring.commit("j", ring.read("j", 100)[-1][0])
    assert ring.append(b"c" * 40)  # 48 bytes: does not fit in the last 24
    assert struct.unpack_from("<I", buf, HEADER_BYTES + CAP - 24)[0] == PAD
    assert ring.head == CAP + 48
    assert struct.unpack_from("<I", buf, HEADER_BYTES)[0] == 40
    assert ring.read("j") == [(CAP + 48, b"c" * 40)]


def test_record_ending_exactly_at_lap_end_needs_no_padding() -> None:
    ring, _ = make_ring()
    assert ring.append(b"x" * (CAP // 4 - 8))
    assert ring.append(b"x" * (CAP // 4 - 8))
    assert ring.append(b"x" * (CAP // 4 - 8))
    assert ring.append(b"y" * (CAP // 4 - 8))
    assert ring.head == CAP
    ring.commit("j", ring.read("j")[-1][0])
    assert ring.append(b"z")
    assert ring.read("j") == [(CAP + 16, b"z")]


def test_many_laps_keep_fifo_order() -> None:
    ring, _ = make_ring(consumers=("a", "b"))
    expected: dict[str, list[bytes]] = {"a": [], "b": []}
    for i in range(2000):
        data = (b"%d-" % i) * (i % 37)
        if not ring.append(data):
            for name in ("a", "b"):
                records = ring.read(name, max_records=1 << 20, max_bytes=1 << 30)
                expected[name].extend(datas(records))
                ring.commit(name, records[-1][0])
            assert ring.append(data)
    for name in ("a", "b"):
        expected[name].extend(datas(ring.read(name, max_records=1 << 20, max_bytes=1 << 30)))
    sent = [(b"%d-" % i) * (i % 37) for i in range(2000)]
    assert expected["a"] == sent
    assert expected["b"] == sent
    assert ring.head > 10 * CAP


# -- full ring --------------------------------------------------------------------------


def fill(ring: Ring, size: int = 200) -> int:
    count = 0
    while ring.append(b"f" * size):
        count += 1
        assert count < 10_000
    return count


def test_append_returns_false_when_full_and_true_after_a_commit() -> None:
    ring, _ = make_ring()
    stored = fill(ring)
    assert stored == CAP // record_size(200)
    assert ring.free_bytes < needed_for(ring, 200)
    assert ring.used_bytes <= CAP
    before = ring.head
    assert not ring.append(b"f" * 200)
    assert ring.head == before  # a refused append changes nothing
    records = ring.read("j", max_records=1)
    ring.commit("j", records[0][0])
    assert ring.append(b"f" * 200)
    assert len(ring.read("j", max_records=1 << 20, max_bytes=1 << 30)) == stored


def test_full_ring_never_overwrites_unread_records() -> None:
    ring, _ = make_ring()
    sent = []
    i = 0
    while True:
        data = b"%05d" % i * (i % 50 + 1)
        if len(data) > ring.max_record_bytes or not ring.append(data):
            break
        sent.append(data)
        i += 1
    assert datas(ring.read("j", max_records=1 << 20, max_bytes=1 << 30)) == sent


def test_slow_consumer_blocks_reuse_and_fast_one_does_not() -> None:
    ring, _ = make_ring(consumers=("fast", "slow"))
    fill(ring)
    ring.commit("fast", ring.read("fast", max_records=1 << 20)[-1][0])
    assert ring.lag("fast") == 0
    assert not ring.append(b"f" * 200)  # "slow" still holds everything
    assert ring.used_bytes == ring.lag("slow")
    ring.commit("slow", ring.read("slow", max_records=2)[-1][0])
    assert ring.append(b"f" * 200)
    assert len(ring.read("fast")) == 1


def test_removing_the_slow_consumer_frees_its_records() -> None:
    ring, _ = make_ring(consumers=("fast", "slow"))
    fill(ring)
    ring.commit("fast", ring.read("fast", max_records=1 << 20)[-1][0])
    assert not ring.append(b"f" * 200)
    assert ring.remove_consumer("slow")
    assert ring.used_bytes == 0
    assert ring.append(b"f" * 200)


def test_without_consumers_nothing_is_retained() -> None:
    ring, _ = make_ring(consumers=())
    for _ in range(100):
        assert ring.append(b"n" * 500)
    assert ring.used_bytes == 0
    assert ring.free_bytes == CAP
    ring.add_consumer("late")
    assert ring.read("late") == []
    assert ring.append(b"seen")
    assert datas(ring.read("late")) == [b"seen"]


# -- consumers --------------------------------------------------------------------------


def test_new_consumer_sees_only_new_records() -> None:
    ring, _ = make_ring()
    ring.append(b"old")
    ring.add_consumer("new")
    assert ring.consumers["new"] == ring.head
    ring.append(b"fresh")
    assert datas(ring.read("new")) == [b"fresh"]
    assert datas(ring.read("j")) == [b"old", b"fresh"]


def test_add_existing_consumer_is_a_no_op() -> None:
    ring, _ = make_ring()
    ring.append(b"pending")
    ring.add_consumer("j")
    assert ring.consumers == {"j": 0}
    assert datas(ring.read("j")) == [b"pending"]


def test_consumer_slots_limit_and_reuse() -> None:
    ring, _ = make_ring(consumers=())
    for i in range(MAX_CONSUMERS):
        ring.add_consumer(f"c{i}")
    with pytest.raises(ConsumerSlotsFull):
        ring.add_consumer("one-too-many")
    assert isinstance(ConsumerSlotsFull("x"), ValueError)
    assert ring.remove_consumer("c3")
    assert not ring.remove_consumer("c3")
    ring.add_consumer("one-too-many")
    assert len(ring.consumers) == MAX_CONSUMERS


@pytest.mark.parametrize("name", ["", "x" * 33, "a\0b", "é" * 17])
def test_bad_consumer_names(name: str) -> None:
    ring, _ = make_ring(consumers=())
    with pytest.raises(ValueError, match="consumer name"):
        ring.add_consumer(name)
    assert ring.consumers == {}


def test_consumers_persist_across_reopen() -> None:
    ring, buf = make_ring(consumers=("journal", "é" * 16))
    ring.append(b"one")
    ring.append(b"two")
    ring.commit("journal", ring.read("journal", 1)[0][0])
    ring.remove_consumer("é" * 16)
    ring.add_consumer("x" * 32)
    cursors = ring.consumers
    ring = reopen(ring, buf)
    assert ring.consumers == cursors
    assert datas(ring.read("journal")) == [b"two"]
    assert ring.read("x" * 32) == []


def test_commit_validation() -> None:
    ring, _ = make_ring()
    ring.append(b"a" * 10)
    ring.append(b"b" * 10)
    end1, end2 = (pos for pos, _ in ring.read("j"))
    ring.commit("j", end1)
    with pytest.raises(ValueError):
        ring.commit("j", 0)  # backwards
    with pytest.raises(ValueError):
        ring.commit("j", ring.head + 8)  # beyond head
    with pytest.raises(ValueError):
        ring.commit("j", end1 + 4)  # misaligned
    with pytest.raises(KeyError):
        ring.commit("nobody", end1)
    with pytest.raises(KeyError):
        ring.read("nobody")
    assert ring.consumers == {"j": end1}
    ring.commit("j", end2)
    assert ring.lag("j") == 0


# -- create / open ----------------------------------------------------------------------


def test_header_layout() -> None:
    ring, buf = make_ring(capacity=8192, consumers=("journal",))
    ring.append(b"hello")
    assert buf[:8] == MAGIC
    assert struct.unpack_from("<IIQQ", buf, 8) == (VERSION, HEADER_BYTES, 8192, 16)
    assert buf[SLOTS_OFFSET : SLOTS_OFFSET + 32] == b"journal".ljust(32, b"\0")
    assert struct.unpack_from("<Q", buf, SLOTS_OFFSET + 32) == (0,)
    assert struct.unpack_from("<I", buf, HEADER_BYTES) == (5,)
    assert buf[HEADER_BYTES + 8 : HEADER_BYTES + 13] == b"hello"


@pytest.mark.parametrize("capacity", [4095, 4100, 0, 2048])
def test_create_rejects_bad_capacity(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Ring.create(bytearray(HEADER_BYTES + 8192), capacity)


def test_create_rejects_small_or_readonly_buffers() -> None:
    with pytest.raises(ValueError, match="too small"):
        Ring.create(bytearray(HEADER_BYTES + CAP - 1), CAP)
    with pytest.raises(TypeError):
        Ring.create(bytes(HEADER_BYTES + CAP), CAP)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Ring.create(bytearray(HEADER_BYTES + CAP), CAP, head=12)
    with pytest.raises(TypeError):
        Ring()


def test_create_with_a_start_position() -> None:
    buf = bytearray(HEADER_BYTES + CAP)
    ring = Ring.create(buf, CAP, head=10 * CAP + 24)
    ring.add_consumer("j")
    ring.append(b"late")
    assert ring.read("j") == [(10 * CAP + 40, b"late")]
    ring = reopen(ring, buf)
    assert ring.recover() == 1


def _corrupt_cases() -> list[tuple[str, int, bytes, str]]:
    u32 = struct.Struct("<I").pack
    u64 = struct.Struct("<Q").pack
    cursor0 = SLOTS_OFFSET + 32
    return [
        ("magic", 0, b"NOTARING", "magic"),
        ("version", 8, u32(2), "version"),
        ("header size", 12, u32(512), "header size"),
        ("capacity unaligned", 16, u64(CAP + 4), "capacity"),
        ("capacity too big", 16, u64(CAP * 2), "truncated"),
        ("head unaligned", 24, u64(1004), "head"),
        ("cursor after head", cursor0, u64(2048), "cursor"),
        ("cursor unaligned", cursor0, u64(4), "cursor"),
        ("cursor a lap behind", cursor0, u64(0), "cursor"),
        ("bad utf-8 name", SLOTS_OFFSET, b"\xff\xfe", "name"),
        ("NUL inside name", SLOTS_OFFSET + 1, b"\0x", "name"),
        ("duplicate name", SLOTS_OFFSET + SLOT_BYTES, b"j", "two slots"),
    ]


@pytest.mark.parametrize(
    ("offset", "patch", "match"),
    [case[1:] for case in _corrupt_cases()],
    ids=[case[0] for case in _corrupt_cases()],
)
def test_open_rejects_corrupt_headers(offset: int, patch: bytes, match: str) -> None:
    ring, buf = make_ring()
    ring.append(b"x" * 1000)  # head = 1008
    ring.commit("j", ring.head)
    if match == "cursor" and patch == struct.pack("<Q", 0):
        # Put head more than a lap ahead of the cursor (0).
        set_head(buf, CAP + 8)
    ring.close()
    Ring.open(bytearray(buf))  # the untouched copy is fine
    buf[offset : offset + len(patch)] = patch
    with pytest.raises(RingCorrupt, match=match):
        Ring.open(buf)


def test_open_rejects_short_buffers() -> None:
    _, buf = make_ring()
    with pytest.raises(RingCorrupt, match="truncated"):
        Ring.open(buf[:-8])
    with pytest.raises(RingCorrupt, match="smaller than"):
        Ring.open(buf[:100])
    with pytest.raises(RingCorrupt):
        Ring.open(bytearray(HEADER_BYTES + CAP))  # all zeros
    assert issubclass(RingCorrupt, ValueError)


# -- crashes ----------------------------------------------------------------------------


def test_torn_append_is_invisible_after_reopen() -> None:
    ring, buf = make_ring()
    ring.append(b"one")
    ring.append(b"two")
    saved = bytes(buf[HEAD_OFFSET : HEAD_OFFSET + 8])
    assert ring.append(b"torn" * 50)  # record bytes written ...
    buf[HEAD_OFFSET : HEAD_OFFSET + 8] = saved  # ... but the store of head never happened
    ring = reopen(ring, buf)
    assert ring.recover() == 2
    assert ring.note is None
    assert datas(ring.read("j")) == [b"one", b"two"]
    assert ring.append(b"three")
    assert datas(ring.read("j")) == [b"one", b"two", b"three"]


def test_head_past_the_last_record_is_cut_back_over_stale_laps() -> None:
    """Stale records of earlier laps must not pass for records at the current position."""
    ring, buf = make_ring()
    for i in range(200):  # many laps of identical-looking records
        assert ring.append(b"%03d" % i * 30)
        ring.commit("j", ring.read("j")[-1][0])
    for i in range(3):
        ring.append(b"%03d" % i * 30)
    real_head = ring.head
    set_head(buf, real_head + 1024)
    ring = reopen(ring, buf)
    assert ring.head == real_head + 1024
    assert ring.recover() == 3
    assert ring.head == real_head
    assert ring.note is not None and "damaged record" in ring.note
    assert datas(ring.read("j")) == [b"%03d" % i * 30 for i in range(3)]


def test_records_of_an_earlier_ring_in_the_same_buffer_are_not_resurrected() -> None:
    ring, buf = make_ring()
    for i in range(10):
        ring.append(b"old %d" % i)
    ring.close()
    ring = Ring.create(buf, CAP)  # same positions, new ring
    ring.add_consumer("j")
    ring.append(b"old 0")
    real_head = ring.head
    set_head(buf, real_head + 64)
    ring = reopen(ring, buf)
    assert ring.recover() == 1
    assert ring.head == real_head


def test_corrupt_record_read_raises_and_recover_truncates() -> None:
    ring, buf = make_ring(consumers=("a", "b"))
    for i in range(5):
        ring.append(b"record %d " % i * 10)
    ends = [pos for pos, _ in ring.read("a")]
    ring.commit("b", ends[3])
    buf[phys(ring, ends[1]) + 20] ^= 0x01  # a data byte of the third record
    # Good records before the damage are still delivered ...
    assert datas(ring.read("a")) == [b"record 0 " * 10, b"record 1 " * 10]
    ring.commit("a", ends[1])
    # ... then the damaged one raises.
    with pytest.raises(RingCorrupt, match="checksum"):
        ring.read("a")
    # A consumer already past the damage is not affected.
    assert datas(ring.read("b")) == [b"record 4 " * 10]


def test_recover_truncates_at_a_damaged_record_and_clamps_cursors() -> None:
    ring, buf = make_ring(consumers=("a", "b"))
    for i in range(5):
        ring.append(b"record %d " % i * 10)
    ends = [pos for pos, _ in ring.read("a")]
    ring.commit("b", ends[3])
    buf[phys(ring, ends[1]) + 20] ^= 0x01  # damage the third record
    ring = reopen(ring, buf)
    assert ring.recover() == 2
    assert ring.head == ends[1]
    assert ring.consumers == {"a": 0, "b": ends[1]}
    assert ring.note is not None and f"position {ends[1]}" in ring.note
    assert datas(ring.read("a")) == [b"record 0 " * 10, b"record 1 " * 10]
    assert ring.read("b") == []
    # The repaired ring reopens cleanly and takes new records.
    ring = reopen(ring, buf)
    assert ring.recover() == 2
    assert ring.note is None
    assert ring.append(b"after")
    assert datas(ring.read("b")) == [b"after"]


@pytest.mark.parametrize("where", ["length", "checksum", "padding"])
def test_recover_handles_damaged_headers(where: str) -> None:
    ring, buf = make_ring()
    for _ in range(3):
        ring.append(b"a" * 1000)
    ring.commit("j", ring.head)
    b_at = ring.head
    ring.append(b"b" * 100)
    pad_at = ring.head
    ring.append(b"c" * 1000)  # does not fit before the lap end: padding, next lap
    assert (b_at, pad_at, ring.head) == (3024, 3136, CAP + 1008)
    assert struct.unpack_from("<I", buf, HEADER_BYTES + pad_at)[0] == PAD
    if where == "length":
        struct.pack_into("<I", buf, HEADER_BYTES + b_at, 0xFFFF)
    elif where == "checksum":
        buf[HEADER_BYTES + b_at + 4] ^= 0x80
    else:
        buf[HEADER_BYTES + pad_at + 4] ^= 0x80
    ring = reopen(ring, buf)
    if where == "padding":
        assert datas(ring.read("j")) == [b"b" * 100]
        ring.commit("j", pad_at)
    with pytest.raises(RingCorrupt):
        ring.read("j")
    good_end = pad_at if where == "padding" else b_at
    assert ring.recover() == 0
    assert ring.head == good_end
    assert ring.note is not None and f"position {good_end}" in ring.note


def test_recover_moves_a_cursor_off_a_record_interior() -> None:
    ring, buf = make_ring(consumers=("a", "b"))
    ring.append(b"x" * 100)
    ring.append(b"y" * 100)
    set_cursor(buf, 1, 16)  # "b" inside the first record
    ring = reopen(ring, buf)
    assert ring.recover() == 2
    assert ring.consumers == {"a": 0, "b": 112}
    assert ring.note is not None and "b" in ring.note
    assert datas(ring.read("b")) == [b"y" * 100]


def test_recover_on_a_clean_ring_changes_nothing() -> None:
    ring, buf = make_ring(consumers=("a", "b"))
    for i in range(20):
        ring.append(b"%d" % i * i)
    ring.commit("b", ring.read("b", 5)[-1][0])
    snapshot = bytes(buf)
    ring = reopen(ring, buf)
    assert ring.recover() == 20
    assert ring.note is None
    assert bytes(buf) == snapshot


# -- files ------------------------------------------------------------------------------


def test_open_ring_file_creates_an_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    ring, mm = open_ring_file(path, 8192)
    try:
        assert ring.note is None
        assert ring.capacity == 8192
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.stat().st_size == HEADER_BYTES + 8192
        assert mm[:8] == MAGIC
    finally:
        ring.close()
        mm.close()


def test_open_ring_file_tightens_permissions(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    ring, mm = open_ring_file(path, CAP)
    ring.close()
    mm.close()
    path.chmod(0o644)
    ring, mm = open_ring_file(path, CAP)
    ring.close()
    mm.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_open_ring_file_keeps_pending_records(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    ring, mm = open_ring_file(path, CAP)
    ring.add_consumer("journal")
    ring.append(b"one")
    ring.append(b"two")
    ring.commit("journal", ring.read("journal", 1)[0][0])
    ring.append(b"three")
    ring.close()
    mm.close()
    ring, mm = open_ring_file(path, CAP)
    try:
        assert ring.note is None
        assert datas(ring.read("journal")) == [b"two", b"three"]
    finally:
        ring.close()
        mm.close()


def test_mmap_cannot_close_before_the_ring(tmp_path: Path) -> None:
    ring, mm = open_ring_file(tmp_path / "ring", CAP)
    with pytest.raises(BufferError):
        mm.close()
    ring.close()
    ring.close()  # idempotent
    mm.close()
    assert mm.closed


@pytest.mark.parametrize(
    "content",
    [b"garbage" * 2000, b"", MAGIC + bytes(100)],
    ids=["garbage", "empty", "short"],
)
def test_open_ring_file_moves_an_invalid_file_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ring"
    path.write_bytes(content)
    ring, mm = open_ring_file(path, CAP)
    try:
        aside = sorted(tmp_path.glob("ring.corrupt-*"))
        if not content:  # an empty file is just a new file
            assert aside == []
            assert ring.note is None
        else:
            assert len(aside) == 1
            assert aside[0].read_bytes() == content
            assert ring.note is not None and aside[0].name in ring.note
        assert ring.capacity == CAP
        assert ring.head == 0
        assert ring.consumers == {}
        ring.add_consumer("j")
        assert ring.append(b"fresh")
        assert datas(ring.read("j")) == [b"fresh"]
    finally:
        ring.close()
        mm.close()


def test_open_ring_file_moves_a_truncated_ring_aside(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    ring, mm = open_ring_file(path, 8192)
    ring.close()
    mm.close()
    os.truncate(path, HEADER_BYTES + 4096)
    ring, mm = open_ring_file(path, 8192)
    try:
        assert ring.note is not None and "truncated" in ring.note
        assert len(list(tmp_path.glob("ring.corrupt-*"))) == 1
        assert path.stat().st_size == HEADER_BYTES + 8192
    finally:
        ring.close()
        mm.close()


def test_open_ring_file_recovers_a_damaged_record(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    ring, mm = open_ring_file(path, CAP)
    ring.add_consumer("j")
    ring.append(b"good")
    ring.append(b"bad!")
    mm[HEADER_BYTES + 16 + 8] ^= 0xFF
    ring.close()
    mm.close()
    ring, mm = open_ring_file(path, CAP)
    try:
        assert ring.note is not None and "damaged" in ring.note
        assert datas(ring.read("j")) == [b"good"]
        assert ring.head == 16
    finally:
        ring.close()
        mm.close()


def test_capacity_change_recreates_a_drained_ring(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    ring, mm = open_ring_file(path, CAP)
    ring.add_consumer("journal")
    ring.add_consumer("ws")
    for _ in range(3):
        ring.append(b"done")
    for name in ("journal", "ws"):
        ring.commit(name, ring.head)
    head = ring.head
    ring.close()
    mm.close()
    ring, mm = open_ring_file(path, 16384)
    try:
        assert ring.capacity == 16384
        assert path.stat().st_size == HEADER_BYTES + 16384
        assert ring.note is not None and "re-created" in ring.note
        assert ring.head == head  # positions keep increasing
        assert ring.consumers == {"journal": head, "ws": head}
        assert ring.append(b"x" * 4000)  # too big for the old capacity
        assert datas(ring.read("ws")) == [b"x" * 4000]
    finally:
        ring.close()
        mm.close()


def test_capacity_change_keeps_a_ring_with_unread_records(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    ring, mm = open_ring_file(path, CAP)
    ring.add_consumer("journal")
    ring.append(b"unread")
    ring.close()
    mm.close()
    ring, mm = open_ring_file(path, 16384)
    try:
        assert ring.capacity == CAP
        assert path.stat().st_size == HEADER_BYTES + CAP
        assert ring.note is not None and "kept" in ring.note
        assert datas(ring.read("journal")) == [b"unread"]
    finally:
        ring.close()
        mm.close()


def test_open_ring_file_rejects_bad_capacity_before_touching_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        open_ring_file(tmp_path / "ring", 1000)
    assert not (tmp_path / "ring").exists()


def test_ring_over_a_real_mmap_survives_kill_9(tmp_path: Path) -> None:
    """Records appended by a process killed with SIGKILL (no flush, no close) are kept."""
    path = tmp_path / "ring"
    child = (
        "import os, signal, sys\n"
        "from mpmd.storage.ring import open_ring_file\n"
        "ring, mm = open_ring_file(sys.argv[1], 65536)\n"
        "ring.add_consumer('journal')\n"
        "for i in range(500):\n"
        "    assert ring.append(b'event %d' % i)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), *sys.path]))
    proc = subprocess.run([sys.executable, "-c", child, str(path)], env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    ring, mm = open_ring_file(path, 65536)
    try:
        assert ring.note is None
        records = ring.read("journal", max_records=1000)
        assert datas(records) == [b"event %d" % i for i in range(500)]
    finally:
        ring.close()
        mm.close()


def test_ring_over_anonymous_mmap() -> None:
    mm = mmap.mmap(-1, HEADER_BYTES + CAP)
    ring = Ring.create(mm, CAP)
    ring.add_consumer("j")
    ring.append(b"in an mmap")
    other = Ring.open(mm)  # a second view of the same bytes sees the record
    assert datas(other.read("j")) == [b"in an mmap"]
    other.close()
    ring.close()
    mm.close()


def _mapping_rss_kib(path: Path) -> int:
    """Resident KiB of this process's mapping of ``path`` (Linux /proc/self/smaps)."""
    rss = 0
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1] in "0123456789abcdef" and "-" in line.split()[0]:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            rss += int(line.split()[1])
    return rss


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs /proc/self/smaps")
def test_page_releaser_gives_back_passed_pages_and_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    ring, mm = open_ring_file(path, 8 * 1024 * 1024)
    try:
        ring.add_consumer("journal")
        release = PageReleaser(ring, mm, chunk=64 * 1024)
        records = [os.urandom(1000) for _ in range(12_000)]  # 1.5 laps of the ring
        for data in records[:4000]:
            assert ring.append(data)
        got = ring.read("journal", max_records=4000, max_bytes=1 << 30)
        assert [d for _end, d in got] == records[:4000]
        ring.commit("journal", got[-1][0])
        assert _mapping_rss_kib(path) > 3500  # ~4 MB written and read: resident
        release()
        assert _mapping_rss_kib(path) < 256  # passed by every consumer: given back
        most = 0
        for i in range(4000, len(records)):
            assert ring.append(records[i])
            if i % 100 == 99:
                got = ring.read("journal", max_records=1000)
                assert [d for _end, d in got] == records[i - 99 : i + 1]  # data intact
                ring.commit("journal", got[-1][0])
                release()
                most = max(most, _mapping_rss_kib(path))
        assert most < 1024  # only about one chunk and the unread tail stay resident
        assert ring.append(b"after")
        assert ring.read("journal") == [(ring.head, b"after")]
    finally:
        ring.close()
        mm.close()
