"""Tests for mpmd.storage.journal: the JSON Lines segments that are the daemon's source of truth."""

from __future__ import annotations

import calendar
import errno
import gzip
import logging
import os
import stat
import threading
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpmd.storage import journal as journal_mod
from mpmd.storage.journal import Journal, line_seq
from tests.utils import examples

DAY = 86400
# 2025-03-10 12:00:00 UTC
NOON = float(calendar.timegm((2025, 3, 10, 12, 0, 0)))


class FakeClock:
    """A clock the test sets by hand: calling it returns `now`, nothing ever sleeps."""

    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def line(seq: int, pad: int = 20) -> bytes:
    """A journal line as the daemon writes it: the object starts with "seq"."""
    return msgspec.json.encode({"seq": seq, "event": "PreToolUse", "pad": "x" * pad})


def recs(first: int, last: int, pad: int = 20) -> list[tuple[int, bytes]]:
    return [(s, line(s, pad)) for s in range(first, last + 1)]


def seqs(lines) -> list[int]:
    return [line_seq(ln) for ln in lines]


def segment_files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jdir(tmp_path: Path) -> Path:
    return tmp_path / "journal"


# -- line_seq -----------------------------------------------------------------------------


def test_line_seq_fast_path_and_fallback():
    assert line_seq(b'{"seq":42,"a":1}') == 42
    assert line_seq(b'{"seq":0,"a":1}') == 0
    # Not the daemon's prefix: decoded with msgspec.
    assert line_seq(b'{"a":"x","seq":7}') == 7
    assert line_seq(b'{"seq":7}') == 7
    assert line_seq(b'{ "seq" : 8 , "a": 1}') == 8
    # int() would accept these digits; the fast path must not, and JSON rejects them.
    for bad in (b'{"seq":1_0,"a":1}', b'{"seq": ,"a":1}', b'{"seq":+5,"a":1}'):
        with pytest.raises(ValueError):
            line_seq(bad)
    for bad in (b"", b"garbage", b'{"a":1}', b'{"seq":"5"}', b'{"seq":true}', b"[1,2]"):
        with pytest.raises(ValueError):
            line_seq(bad)


# -- append / read ------------------------------------------------------------------------


def test_append_read_round_trip(jdir, clock):
    j = Journal(jdir, clock=clock)
    assert j.last_seq == 0
    assert j.first_seq is None
    assert list(j.read_from(1)) == []
    assert j.append(recs(1, 100)) == 100
    assert j.last_seq == 100
    assert j.first_seq == 1
    assert list(j.read_from(0)) == [ln for _, ln in recs(1, 100)]
    # The file itself is plain JSON Lines a user can read with jq.
    (seg,) = j.segments()
    assert seg.name == "0000000000000001-20250310.jsonl"
    assert seg.active and not seg.compressed
    text = seg.path.read_bytes()
    assert text.endswith(b"\n")
    assert [msgspec.json.decode(x)["seq"] for x in text.splitlines()] == list(range(1, 101))
    assert j.total_bytes == len(text) == seg.size
    j.close()


def test_append_visible_without_close(jdir, clock):
    """Nothing is buffered in user space: another reader sees every line at once."""
    j = Journal(jdir, clock=clock)
    j.append(recs(1, 3))
    (seg,) = j.segments()
    assert seg.path.read_bytes().count(b"\n") == 3
    # A second instance (what a process restarted after kill -9 would see).
    assert Journal(jdir, clock=clock).last_seq == 3
    j.close()


def test_append_skips_seq_at_or_below_last(jdir, clock):
    j = Journal(jdir, clock=clock)
    assert j.append(recs(1, 5)) == 5
    # Overlapping batch: only 6..8 are new.
    assert j.append(recs(3, 8)) == 3
    # Duplicates inside one batch are skipped too.
    assert j.append([(9, line(9)), (9, line(9)), (8, line(8)), (10, line(10))]) == 2
    assert j.append([]) == 0
    j.close()
    # After a "crash", the daemon hands everything back: nothing is written twice.
    j2 = Journal(jdir, clock=clock)
    assert j2.append(recs(1, 10)) == 0
    assert j2.append(recs(1, 12)) == 2
    assert seqs(j2.read_from(1)) == list(range(1, 13))
    j2.close()


def test_reopen_sees_same_last_seq(jdir, clock):
    j = Journal(jdir, segment_max_bytes=500, clock=clock)
    j.append(recs(1, 57))
    j.close()
    j2 = Journal(jdir, segment_max_bytes=500, clock=clock)
    assert j2.last_seq == 57
    assert j2.first_seq == 1
    # The reopened active segment keeps being appended to.
    before = len(j2.segments())
    j2.append(recs(58, 58))
    assert len(j2.segments()) == before
    assert seqs(j2.read_from(56)) == [56, 57, 58]
    j2.close()


def test_reopen_after_rotate_and_compress_finds_last_seq_in_gz(jdir, clock):
    j = Journal(jdir, clock=clock)
    j.append(recs(1, 20))
    j.rotate()
    assert j.compress_closed() == 0  # the newest segment is kept plain: see retention
    j.append(recs(21, 30))
    j.rotate()
    assert j.compress_closed() == 1
    j.close()
    # Make the newest segment a .gz by hand: last_seq must come from inside it.
    (jdir / "0000000000000021-20250310.jsonl").unlink()
    j2 = Journal(jdir, clock=clock)
    assert j2.last_seq == 20
    j2.close()


def test_append_after_close_raises(jdir, clock):
    j = Journal(jdir, clock=clock)
    j.close()
    j.close()  # idempotent
    with pytest.raises(ValueError):
        j.append(recs(1, 1))


def test_short_writes_are_completed(jdir, clock, monkeypatch):
    real_write = os.write

    def short_write(fd, data):
        return real_write(fd, bytes(data[:7]))

    j = Journal(jdir, clock=clock)
    monkeypatch.setattr(journal_mod.os, "write", short_write)
    assert j.append(recs(1, 10)) == 10
    monkeypatch.undo()
    assert seqs(j.read_from(1)) == list(range(1, 11))
    j.close()


def test_failed_write_leaves_no_torn_line(jdir, clock, monkeypatch):
    real_write = os.write
    j = Journal(jdir, clock=clock)
    j.append(recs(1, 3))
    size = j.segments()[0].size

    def failing_write(fd, data):
        real_write(fd, bytes(data[:10]))  # part of the batch reaches the file...
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_mod.os, "write", failing_write)
    with pytest.raises(OSError):
        j.append(recs(4, 6))
    monkeypatch.undo()
    assert j.last_seq == 3
    assert j.segments()[0].size == size  # ...and is cut away again
    assert j.append(recs(4, 6)) == 3
    assert seqs(j.read_from(1)) == [1, 2, 3, 4, 5, 6]
    j.close()


# -- torn line repair ---------------------------------------------------------------------


def test_torn_last_line_repaired_at_open(jdir, clock, caplog):
    j = Journal(jdir, clock=clock)
    j.append(recs(1, 3))
    path = j.segments()[0].path
    j.close()
    with open(path, "ab") as f:
        f.write(line(4)[:15])  # killed in the middle of a write
    # A reader never yields the partial line, even before the repair.
    assert seqs(j.read_from(1)) == [1, 2, 3]
    with caplog.at_level(logging.WARNING, logger="mpmd.storage.journal"):
        j2 = Journal(jdir, clock=clock)
    assert "torn" in caplog.text
    assert j2.last_seq == 3
    assert path.read_bytes().endswith(line(3) + b"\n")
    assert j2.append(recs(4, 5)) == 2
    assert [msgspec.json.decode(x)["seq"] for x in path.read_bytes().splitlines()] == [
        1,
        2,
        3,
        4,
        5,
    ]
    j2.close()


def test_torn_segment_with_no_complete_line_is_removed(jdir, clock):
    j = Journal(jdir, segment_max_bytes=10_000, clock=clock)
    j.append(recs(1, 5))
    j.rotate()
    j.close()
    torn = jdir / "0000000000000006-20250310.jsonl"
    torn.write_bytes(line(6)[:9])  # created, then killed during the first write
    j2 = Journal(jdir, clock=clock)
    assert not torn.exists()
    assert j2.last_seq == 5
    assert j2.append(recs(6, 7)) == 2
    assert seqs(j2.read_from(1)) == list(range(1, 8))
    j2.close()


# -- rotation -----------------------------------------------------------------------------


def test_rotation_by_size(jdir, clock):
    max_bytes = 1000
    j = Journal(jdir, segment_max_bytes=max_bytes, clock=clock)
    for start in range(1, 200, 10):
        j.append(recs(start, start + 9))
    segs = j.segments()
    assert len(segs) > 5
    assert [s.active for s in segs] == [False] * (len(segs) - 1) + [True]
    for seg in segs:
        data = seg.path.read_bytes()
        assert 0 < len(data) <= max_bytes
        # The name's seq is the seq of the segment's first line.
        assert line_seq(data.split(b"\n", 1)[0]) == seg.first_seq
    # Rotation only happens when needed: a segment plus the next line would not fit.
    first_lens = [len(line(s.first_seq)) + 1 for s in segs[1:]]
    for seg, nxt in zip(segs, first_lens, strict=False):
        assert seg.size + nxt > max_bytes
    assert seqs(j.read_from(1)) == list(range(1, 201))
    j.close()


def test_line_larger_than_segment_gets_its_own_segment(jdir, clock):
    j = Journal(jdir, segment_max_bytes=100, clock=clock)
    j.append([(1, line(1, 5)), (2, line(2, 500)), (3, line(3, 5))])
    segs = j.segments()
    assert [s.first_seq for s in segs] == [1, 2, 3]
    assert segs[1].size == len(line(2, 500)) + 1
    assert seqs(j.read_from(1)) == [1, 2, 3]
    j.close()


def test_rotation_by_utc_day(jdir):
    clock = FakeClock(float(calendar.timegm((2025, 3, 10, 23, 59, 58))))
    j = Journal(jdir, clock=clock)
    j.append(recs(1, 3))
    clock.now += 1  # 23:59:59: same day, same segment
    j.append(recs(4, 4))
    assert len(j.segments()) == 1
    clock.now += 2  # 00:00:01 the next day
    j.append(recs(5, 6))
    assert [s.name for s in j.segments()] == [
        "0000000000000001-20250310.jsonl",
        "0000000000000005-20250311.jsonl",
    ]
    assert seqs(j.read_from(1)) == [1, 2, 3, 4, 5, 6]
    j.close()


def test_reopened_segment_from_yesterday_rotates_on_first_append(jdir, clock):
    j = Journal(jdir, clock=clock)
    j.append(recs(1, 2))
    j.close()
    clock.now += DAY
    j2 = Journal(jdir, clock=clock)
    assert j2.segments()[-1].active
    j2.append(recs(3, 3))
    assert [s.name for s in j2.segments()] == [
        "0000000000000001-20250310.jsonl",
        "0000000000000003-20250311.jsonl",
    ]
    j2.close()


def test_rotate_then_append_opens_new_segment(jdir, clock):
    j = Journal(jdir, clock=clock)
    j.append(recs(1, 2))
    j.rotate()
    j.rotate()  # nothing to close: no empty segment either
    assert [s.active for s in j.segments()] == [False]
    j.append(recs(3, 4))
    assert [(s.first_seq, s.active) for s in j.segments()] == [(1, False), (3, True)]
    j.close()


# -- fsync --------------------------------------------------------------------------------


def test_maybe_sync_respects_interval(jdir, clock, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd):
        synced.append(fd)
        real_fsync(fd)

    j = Journal(jdir, fsync_interval_s=1.0, clock=clock)
    assert j.maybe_sync() is False  # nothing written
    j.append(recs(1, 1))
    monkeypatch.setattr(journal_mod.os, "fsync", counting_fsync)
    clock.now += 0.5
    assert j.maybe_sync() is False  # not due yet
    clock.now += 0.6
    assert j.maybe_sync() is True
    assert len(synced) == 1
    clock.now += 5
    assert j.maybe_sync() is False  # due, but nothing new to sync
    j.append(recs(2, 2))
    j.sync()  # forced
    assert len(synced) == 2
    clock.now -= 100  # wall clock stepped back: sync rather than wait for it to catch up
    j.append(recs(3, 3))
    assert j.maybe_sync() is True
    assert len(synced) == 3
    j.close()


# -- compression --------------------------------------------------------------------------


def make_segments(jdir: Path, clock: FakeClock, per_segment: int, count: int) -> Journal:
    """A journal with `count` segments of `per_segment` lines each, the last one active."""
    j = Journal(jdir, clock=clock)
    seq = 1
    for i in range(count):
        if i:
            j.rotate()
        j.append(recs(seq, seq + per_segment - 1))
        seq += per_segment
    return j


def test_compress_closed(jdir, clock):
    j = make_segments(jdir, clock, 10, 4)
    plain_before = {s.name: s.path.read_bytes() for s in j.segments()}
    mtimes = {s.name: s.path.stat().st_mtime_ns for s in j.segments()}
    assert j.compress_closed() == 3
    segs = j.segments()
    assert [s.compressed for s in segs] == [True, True, True, False]
    assert segs[-1].active
    for seg in segs[:-1]:
        plain_name = seg.name[: -len(".gz")]
        assert not (jdir / plain_name).exists()
        # A real gzip file with the same content, and the same mtime for retention.
        assert gzip.decompress(seg.path.read_bytes()) == plain_before[plain_name]
        assert seg.path.stat().st_mtime_ns == mtimes[plain_name]
        assert stat.S_IMODE(seg.path.stat().st_mode) == 0o600
    assert not any(n.endswith(".tmp") for n in segment_files(jdir))
    assert seqs(j.read_from(1)) == list(range(1, 41))
    assert j.compress_closed() == 0  # idempotent
    j.append(recs(41, 42))
    assert seqs(j.read_from(38)) == [38, 39, 40, 41, 42]
    j.close()


def test_open_removes_compression_leftovers(jdir, clock, caplog):
    j = make_segments(jdir, clock, 10, 3)
    j.close()
    first = jdir / "0000000000000001-20250310.jsonl"
    second = jdir / "0000000000000011-20250310.jsonl"
    # Crash before the rename: a temporary file.
    tmp = jdir / (first.name + ".gz.tmp")
    tmp.write_bytes(gzip.compress(first.read_bytes())[:20])
    # Crash between the rename and the unlink: both files.
    twin = jdir / (second.name + ".gz")
    twin.write_bytes(gzip.compress(second.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="mpmd.storage.journal"):
        j2 = Journal(jdir, clock=clock)
    assert not tmp.exists()
    assert not twin.exists()
    assert first.exists() and second.exists()
    assert "unfinished compression" in caplog.text
    assert seqs(j2.read_from(1)) == list(range(1, 31))
    assert j2.compress_closed() == 2
    j2.close()


def test_compress_in_worker_thread_while_appending(jdir, clock):
    j = Journal(
        jdir, segment_max_bytes=2000, retention_days=None, retention_max_bytes=None, clock=clock
    )
    done = threading.Event()
    tick = threading.Event()  # the worker finished a pass: lets the test interleave passes
    compressed: list[int] = []
    deleted: list[int] = []
    errors: list[BaseException] = []

    def worker():
        try:
            while not done.is_set():
                compressed.append(j.compress_closed())
                deleted.append(j.enforce_retention())  # no limits: must delete nothing
                tick.set()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            tick.set()

    t = threading.Thread(target=worker)
    t.start()
    try:
        for i, start in enumerate(range(1, 3001, 50)):
            assert j.append(recs(start, start + 49)) == 50
            if i % 10 == 9:
                tick.clear()
                assert tick.wait(timeout=30)
    finally:
        done.set()
        t.join()
    assert not errors
    assert sum(compressed) > 0
    assert sum(deleted) == 0
    j.compress_closed()
    assert seqs(j.read_from(1)) == list(range(1, 3001))
    segs = j.segments()
    assert all(s.compressed for s in segs[:-1]) and not segs[-1].compressed
    j.close()


# -- retention ----------------------------------------------------------------------------


def test_retention_by_age(jdir, clock, caplog):
    j = make_segments(jdir, clock, 10, 4)
    j.compress_closed()
    segs = j.segments()
    old = clock.now - 31 * DAY
    # Segments 0 and 1 are old, 2 is recent; the active one is old but must stay.
    for seg in (segs[0], segs[1], segs[3]):
        os.utime(seg.path, (old, old))
    with caplog.at_level(logging.INFO, logger="mpmd.storage.journal"):
        assert j.enforce_retention() == 2
    assert segs[0].name in caplog.text and segs[1].name in caplog.text
    assert [s.first_seq for s in j.segments()] == [21, 31]
    assert j.first_seq == 21
    assert seqs(j.read_from(1)) == list(range(21, 41))
    assert j.enforce_retention() == 0
    j.close()


def test_retention_by_age_not_yet(jdir, clock):
    j = make_segments(jdir, clock, 10, 3)
    for seg in j.segments():
        t = clock.now - 29 * DAY
        os.utime(seg.path, (t, t))
    assert j.enforce_retention() == 0
    assert len(j.segments()) == 3
    j.close()


def test_retention_by_total_size(jdir, clock):
    j = make_segments(jdir, clock, 10, 5)
    sizes = [s.size for s in j.segments()]
    # Room for the last three segments only.
    j.retention_max_bytes = sum(sizes[-3:])
    assert j.enforce_retention() == 2
    assert [s.first_seq for s in j.segments()] == [21, 31, 41]
    assert j.total_bytes <= j.retention_max_bytes
    j.close()


def test_retention_never_deletes_the_active_or_newest_segment(jdir, clock):
    j = make_segments(jdir, clock, 10, 3)
    old = clock.now - 365 * DAY
    for seg in j.segments():
        os.utime(seg.path, (old, old))
    j.retention_max_bytes = 1
    assert j.enforce_retention() == 2
    (seg,) = j.segments()
    assert seg.active and seg.first_seq == 21
    # Without an active segment (after rotate) the newest one stays: it holds last_seq.
    j.rotate()
    assert j.enforce_retention() == 0
    assert j.compress_closed() == 0
    j.close()
    assert Journal(jdir, clock=clock).last_seq == 30


# -- read_from / read_last ----------------------------------------------------------------


def test_read_from_positions(jdir, clock):
    j = make_segments(jdir, clock, 10, 4)
    j.compress_closed()
    assert seqs(j.read_from(15)) == list(range(15, 41))
    assert seqs(j.read_from(21)) == list(range(21, 41))  # exactly a segment's first
    assert seqs(j.read_from(40)) == [40]
    assert list(j.read_from(41)) == []
    assert list(j.read_from(10**12)) == []
    # Before the first retained segment: from the oldest.
    (jdir / "0000000000000001-20250310.jsonl.gz").unlink()
    assert seqs(j.read_from(3)) == list(range(11, 41))
    assert seqs(j.read_from(-5)) == list(range(11, 41))
    j.close()


def test_read_from_skips_segments_that_end_before_seq(jdir, clock, monkeypatch):
    j = make_segments(jdir, clock, 10, 4)
    opened: list[str] = []
    real = Journal._open_segment_for_read

    def spy(self, seg):
        opened.append(seg.base)
        return real(self, seg)

    monkeypatch.setattr(Journal, "_open_segment_for_read", spy)
    assert seqs(j.read_from(25)) == list(range(25, 41))
    assert [int(n[:16]) for n in opened] == [21, 31]
    j.close()


def test_read_from_tolerates_compression_and_deletion_while_iterating(jdir, clock):
    j = make_segments(jdir, clock, 10, 4)
    it = j.read_from(1)
    got = [next(it)]  # the first segment is open now
    assert j.compress_closed() == 3  # the plain files the iterator listed are gone
    got.extend(it)
    assert seqs(got) == list(range(1, 41))

    it = j.read_from(1)
    got = [next(it)]
    (jdir / "0000000000000011-20250310.jsonl.gz").unlink()  # retention, say
    got.extend(it)
    assert seqs(got) == list(range(1, 11)) + list(range(21, 41))
    j.close()


def test_read_from_skips_unparseable_lines(jdir, clock, caplog):
    j = Journal(jdir, clock=clock)
    j.append(recs(1, 2))
    path = j.segments()[0].path
    with open(path, "ab") as f:
        f.write(b"not json at all\n")
    j.append(recs(3, 3))
    with caplog.at_level(logging.WARNING, logger="mpmd.storage.journal"):
        assert seqs(j.read_from(1)) == [1, 2, 3]
    assert "not an event" in caplog.text
    assert seqs(j.read_last(3)) == [1, 2, 3]
    j.close()


def test_read_last(jdir, clock):
    j = make_segments(jdir, clock, 10, 3)
    assert seqs(j.read_last(3)) == [28, 29, 30]
    # Across the boundary between the active segment and a plain closed one...
    assert seqs(j.read_last(12)) == list(range(19, 31))
    j.compress_closed()
    # ...and across gzipped ones.
    assert seqs(j.read_last(25)) == list(range(6, 31))
    assert seqs(j.read_last(1000)) == list(range(1, 31))
    assert j.read_last(0) == []
    j.close()


def test_read_last_reads_backwards_over_blocks(jdir, clock, monkeypatch):
    """Lines longer than a block and a torn tail, on the backwards path."""
    monkeypatch.setattr(journal_mod, "_TAIL_CHUNK", 64)
    j = Journal(jdir, clock=clock)
    j.append([(s, line(s, pad=s * 37 % 150)) for s in range(1, 40)])
    path = j.segments()[0].path
    with open(path, "ab") as f:
        f.write(b'{"seq":40,"tor')
    assert j.read_last(5) == [line(s, pad=s * 37 % 150) for s in range(35, 40)]
    assert j.read_last(100) == [line(s, pad=s * 37 % 150) for s in range(1, 40)]
    j.close()


def test_read_last_from_empty_journal(jdir, clock):
    j = Journal(jdir, clock=clock)
    assert j.read_last(5) == []
    j.close()


# -- permissions --------------------------------------------------------------------------


def test_permissions_owner_only(tmp_path, clock):
    old_umask = os.umask(0)  # prove the modes do not depend on a strict umask
    try:
        d = tmp_path / "deep" / "journal"
        j = Journal(d, segment_max_bytes=300, clock=clock)
        j.append(recs(1, 10))
        j.compress_closed()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    segs = j.segments()
    assert any(s.compressed for s in segs) and not segs[-1].compressed
    for seg in segs:
        assert stat.S_IMODE(seg.path.stat().st_mode) == 0o600
    j.close()


# -- model-based property test ------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("append"),
            st.integers(min_value=0, max_value=30),  # new records
            st.integers(min_value=0, max_value=5),  # old ones sent again
            st.integers(min_value=0, max_value=120),  # padding
        ),
        st.tuples(st.just("rotate")),
        st.tuples(st.just("compress")),
        st.tuples(st.just("next_day")),
        st.tuples(st.just("reopen")),
        st.tuples(st.just("torn"), st.integers(min_value=1, max_value=30)),
    ),
    max_size=25,
)


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=ops, segment_max_bytes=st.sampled_from([120, 400, 1 << 20]), data=st.data())
def test_model(tmp_path_factory, monkeypatch, ops, segment_max_bytes, data):
    # Durability is not under test here, and on a busy disk fsync latency would dominate.
    monkeypatch.setattr(journal_mod.os, "fsync", lambda fd: None)
    d = tmp_path_factory.mktemp("model") / "journal"
    clock = FakeClock()
    model: list[bytes] = []

    def open_journal() -> Journal:
        return Journal(d, segment_max_bytes=segment_max_bytes, clock=clock)

    j = open_journal()
    for op in ops:
        kind = op[0]
        if kind == "append":
            _, new, again, pad = op
            last = len(model)
            batch = [(s, model[s - 1]) for s in range(max(1, last - again + 1), last + 1)]
            batch += [(s, line(s, pad)) for s in range(last + 1, last + new + 1)]
            assert j.append(batch) == new
            model.extend(ln for _, ln in batch[len(batch) - new :])
        elif kind == "rotate":
            j.rotate()
        elif kind == "compress":
            j.compress_closed()
        elif kind == "next_day":
            clock.now += DAY
        elif kind == "reopen":
            j.close()
            j = open_journal()
        elif kind == "torn":
            segs = j.segments()
            if segs and not segs[-1].compressed:
                j.close()
                with open(segs[-1].path, "ab") as f:
                    f.write(line(len(model) + 1)[: op[1]])
                j = open_journal()
        assert j.last_seq == len(model)

    n = len(model)
    for k in {0, 1, n // 2, n, n + 1, data.draw(st.integers(min_value=0, max_value=n + 2))}:
        assert list(j.read_from(k)) == model[max(k, 1) - 1 :]
    last_n = data.draw(st.integers(min_value=0, max_value=n + 2))
    assert j.read_last(last_n) == (model[-last_n:] if last_n else [])
    for seg in j.segments():
        raw = seg.path.read_bytes()
        content = gzip.decompress(raw) if seg.compressed else raw
        lines = content.split(b"\n")
        assert lines.pop() == b""
        # Named after its first line; no bigger than the limit unless it is one big line.
        assert line_seq(lines[0]) == seg.first_seq
        assert len(content) <= segment_max_bytes or len(lines) == 1
    j.close()
    j2 = open_journal()
    assert j2.last_seq == n
    j2.close()


def test_read_only_reader_never_touches_a_journal_being_written(tmp_path):
    # A reader (mpmd tail) opening the journal while the daemon is mid-write must not cut
    # the in-progress line: that write belongs to events the daemon has already acked.
    writer = Journal(tmp_path / "j")
    writer.append([(1, b'{"seq":1,"a":1}'), (2, b'{"seq":2,"a":2}')])
    active = next(p for p in (tmp_path / "j").iterdir() if p.suffix == ".jsonl")
    with open(active, "ab") as f:
        f.write(b'{"seq":3,"a":')  # a write in progress
    before = active.read_bytes()
    reader = Journal(tmp_path / "j", read_only=True)
    assert reader.last_seq == 2
    assert list(reader.read_from(0)) == [b'{"seq":1,"a":1}', b'{"seq":2,"a":2}']
    assert reader.read_last(5) == [b'{"seq":1,"a":1}', b'{"seq":2,"a":2}']
    with pytest.raises(ValueError):
        reader.append([(4, b'{"seq":4}')])
    reader.close()
    assert active.read_bytes() == before
    writer.close()


def test_read_only_reader_of_a_missing_journal_creates_nothing(tmp_path):
    reader = Journal(tmp_path / "none", read_only=True)
    assert reader.last_seq == 0 and list(reader.read_from(0)) == []
    reader.close()
    assert not (tmp_path / "none").exists()


def test_read_from_misses_no_segment_while_they_are_gzipped(tmp_path):
    """A directory scan taken while segments are renamed to .gz can list a segment under
    neither name; read_from notices the hole in seqs and looks again."""
    j = Journal(tmp_path / "j", segment_max_bytes=300, retention_days=None,
                retention_max_bytes=None)
    j.append((s, line(s)) for s in range(1, 3001))
    j.rotate()
    reader = Journal(tmp_path / "j", read_only=True)
    compressing = threading.Thread(target=j.compress_closed)
    compressing.start()
    reads = 0
    while compressing.is_alive() or reads == 0:
        assert [line_seq(x) for x in reader.read_from(1)] == list(range(1, 3001))
        reads += 1
    compressing.join()
    segments = j.segments()
    assert sum(s.compressed for s in segments) == len(segments) - 1  # all but the last
