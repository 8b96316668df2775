"""mpmd.storage.journal_tail: following a journal that is written, rotated, gzipped and pruned
under the reader, every line exactly once and in order."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpmd.storage.journal import Journal, line_seq
from mpmd.storage.journal_tail import Tail
from tests.utils import examples


def line(seq: int, pad: int = 40) -> bytes:
    return msgspec.json.encode({"seq": seq, "event_type": "PreToolUse", "pad": "x" * pad})


def writer(folder: Path, segment_bytes: int = 600) -> Journal:
    return Journal(folder, segment_max_bytes=segment_bytes, retention_days=None,
                   retention_max_bytes=None)


def drain(tail: Tail, limit: int = 7) -> list[int]:
    seqs: list[int] = []
    while got := tail.read(limit):
        assert len(got) <= limit
        seqs += [line_seq(x) for x in got]
    return seqs


def test_follows_appends_rotations_and_compression(tmp_path: Path) -> None:
    journal = writer(tmp_path / "j")
    reader = Journal(tmp_path / "j", read_only=True)
    tail = Tail(reader, 0)
    assert tail.read(10) == []  # nothing written yet
    seen: list[int] = []
    seq = 0
    for batch in range(30):
        journal.append((s, line(s)) for s in range(seq + 1, seq + 1 + batch % 5 + 1))
        seq = journal.last_seq
        if batch % 4 == 3:
            journal.compress_closed()  # gzips segments, including ones the tail is in
        seen += drain(tail)
    assert len(journal.segments()) > 5
    assert seen == list(range(1, seq + 1))


def test_starts_after_any_seq_plain_or_gzipped(tmp_path: Path) -> None:
    journal = writer(tmp_path / "j")
    journal.append((s, line(s)) for s in range(1, 101))
    journal.compress_closed()
    segs = journal.segments()
    assert segs[0].compressed and not segs[-1].compressed
    reader = Journal(tmp_path / "j", read_only=True)
    for after in (0, 1, segs[1].first_seq - 1, segs[-1].first_seq - 1, segs[-1].first_seq,
                  99, 100):
        tail = Tail(reader, after)
        assert drain(tail) == list(range(after + 1, journal.last_seq + 1)), after
        journal.append([(journal.last_seq + 1, line(journal.last_seq + 1))])
        assert drain(tail) == [journal.last_seq]
        journal.rotate()  # the next append opens a new segment
        journal.append([(journal.last_seq + 1, line(journal.last_seq + 1))])
        assert drain(tail) == [journal.last_seq]
        tail.close()


def test_half_written_lines_wait_for_their_end(tmp_path: Path) -> None:
    journal = writer(tmp_path / "j", segment_bytes=1 << 20)
    journal.append([(1, line(1))])
    tail = Tail(Journal(tmp_path / "j", read_only=True), 0)
    assert drain(tail) == [1]
    active = journal.segments()[-1].path
    whole = line(2) + b"\n"
    with open(active, "ab") as f:  # what a reader may see in the middle of a write
        f.write(whole[:10])
        f.flush()
        assert tail.read(5) == []
        f.write(whole[10:])
    assert drain(tail) == [2]


def test_a_line_longer_than_a_read(tmp_path: Path) -> None:
    from mpmd.storage import journal_tail

    journal = writer(tmp_path / "j", segment_bytes=1 << 22)
    journal.append([(1, line(1)), (2, line(2, pad=journal_tail.CHUNK * 2)), (3, line(3))])
    assert drain(Tail(Journal(tmp_path / "j", read_only=True), 0)) == [1, 2, 3]
    assert drain(Tail(Journal(tmp_path / "j", read_only=True), 2)) == [3]


def test_segments_deleted_under_the_reader(tmp_path: Path) -> None:
    journal = writer(tmp_path / "j")
    journal.append((s, line(s)) for s in range(1, 61))
    tail = Tail(Journal(tmp_path / "j", read_only=True), 0)
    assert tail.read(3) == [line(1), line(2), line(3)]  # it holds the first segment open
    first = journal.segments()[0]
    os.unlink(first.path)  # retention: an open file keeps its data
    assert drain(tail) == list(range(4, 61))


ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(1, 12)),
    st.tuples(st.just("read"), st.integers(1, 9)),
    st.tuples(st.just("rotate"), st.just(0)),
    st.tuples(st.just("compress"), st.just(0)),
), max_size=40)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, start=st.integers(0, 30))
def test_any_interleaving_reads_every_line_once_in_order(ops: list, start: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        journal = writer(Path(folder), segment_bytes=400)
        journal.append((s, line(s)) for s in range(1, start + 1))
        journal.compress_closed()
        tail = Tail(Journal(Path(folder), read_only=True), start // 2)
        seen: list[int] = []
        for op, n in ops:
            if op == "append":
                first = journal.last_seq + 1
                journal.append((s, line(s)) for s in range(first, first + n))
            elif op == "read":
                got = [line_seq(x) for x in tail.read(n)]
                assert len(got) <= n
                seen += got
            elif op == "rotate":
                journal.rotate()
            else:
                journal.compress_closed()
        seen += drain(tail)
        assert seen == list(range(start // 2 + 1, journal.last_seq + 1))
        tail.close()
        journal.close()


def test_a_reader_beside_a_busy_writer(tmp_path: Path) -> None:
    """The writer appends, rotates and gzips in its own thread, as the daemon does beside
    the index worker: the reader gets every line once, in order."""
    import threading

    journal = writer(tmp_path / "j", segment_bytes=2000)
    total = 20_000

    def write() -> None:
        for first in range(1, total + 1, 50):
            journal.append((s, line(s)) for s in range(first, first + 50))
            if first % 1000 == 1:
                journal.compress_closed()

    thread = threading.Thread(target=write)
    thread.start()
    tail = Tail(Journal(tmp_path / "j", read_only=True), 0)
    seen: list[int] = []
    while len(seen) < total:
        seen += [line_seq(x) for x in tail.read(500)]
        if not thread.is_alive():
            seen += drain(tail, 500)
            break
    thread.join()
    assert seen == list(range(1, total + 1))
