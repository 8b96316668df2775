"""mpmd.transcripts.reader: a growing transcript read as whole lines, each once, within bounds;
across a replaced or truncated file and a saved and restored position."""

from __future__ import annotations

import errno
import itertools
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpmd.transcripts import reader
from mpmd.transcripts.reader import LineSplitter, Position, TranscriptFile
from tests.utils import examples


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


# ---- LineSplitter


def test_a_torn_line_is_given_when_its_newline_comes() -> None:
    s = LineSplitter()
    assert s.feed(b'{"a": 1}\n{"b"') == [b'{"a": 1}']
    assert (s.pending, s.consumed) == (4, 9)
    assert s.feed(b": 2") == []
    assert s.feed(b"}\n\n  \n{") == [b'{"b": 2}']  # blank lines are dropped
    assert (s.pending, s.consumed) == (1, 22)


def test_a_line_too_long_is_passed_over_never_held_whole() -> None:
    s = LineSplitter(max_line=10)
    assert s.feed(b"0123456789\n01234567890\nok\n") == [b"0123456789", b"ok"]
    assert s.skipped_long == 1
    assert s.feed(b"x" * 8) == []
    assert s.feed(b"x" * 8) == []  # past max_line: dropped already
    assert (s.pending, s.skipped_long) == (0, 2)
    assert s.feed(b"x" * 100) == []
    assert s.feed(b"xx\nafter\n" + b"y" * 11) == [b"after"]  # the long one's end, then one
    assert (s.pending, s.skipped_long) == (0, 3)
    assert s.feed(b"\nz\n") == [b"z"]
    assert s.skipped_long == 3  # counted once a line


# ---- TranscriptFile


def test_the_file_is_read_as_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"")
    f = TranscriptFile(str(path))
    assert f.read() == [] and f.problem is None
    append(path, b'{"n": 1}\n{"n": ')
    assert f.read() == [b'{"n": 1}']
    assert f.offset == 9
    assert f.read() == []  # the torn line waits
    append(path, b"2}\n")
    assert f.read() == [b'{"n": 2}']
    assert (f.offset, f.restarts, f.more) == (path.stat().st_size, 0, False)


def test_max_bytes_bounds_a_read(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    lines = [b'{"n": %d}' % i for i in range(100)]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    f = TranscriptFile(str(path))
    got: list[bytes] = []
    reads = 0
    while True:
        before = f.offset + f.pending
        got += f.read(25)
        reads += 1
        assert f.offset + f.pending - before <= 25
        if not f.more:
            break
    assert got == lines
    assert reads >= path.stat().st_size // 25


def test_a_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2}\n{"torn')
    f = TranscriptFile(str(path))
    assert f.read() == [b'{"n": 1}', b'{"n": 2}']
    path.write_bytes(b'{"n": 3}\n')  # shorter than what was read: cut and rewritten
    assert f.read() == [b'{"n": 3}']
    assert f.restarts == 1


def test_a_file_replaced_by_rename_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"n": 1}\n')
    f = TranscriptFile(str(path))
    assert f.read() == [b'{"n": 1}']
    new = tmp_path / "new.jsonl"
    new.write_bytes(b'{"n": 1}\n{"n": 2}\n{"n": 3}\n')  # longer: only its inode tells
    os.rename(new, path)
    assert f.read() == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
    assert f.restarts == 1
    assert f.position() == (path.stat().st_dev, path.stat().st_ino, path.stat().st_size)


def test_a_missing_file_is_a_problem_until_it_comes(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    f = TranscriptFile(str(path))
    assert f.read() == [] and f.problem == "missing"
    assert f.position() is None
    path.write_bytes(b'{"n": 1}\n')
    assert f.read() == [b'{"n": 1}'] and f.problem is None
    path.unlink()
    assert f.read() == [] and f.problem == "missing"
    assert TranscriptFile(str(tmp_path / "no" / "s.jsonl")).read() == []


def test_only_regular_jsonl_files_of_ours_are_read_and_nothing_blocks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "real.jsonl"
    target.write_bytes(b'{"n": 1}\n')
    link = tmp_path / "link.jsonl"
    os.symlink(target, link)
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)  # opened blocking, with no writer, this would wait forever
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    other = tmp_path / "notes.txt"
    other.write_bytes(b'{"n": 1}\n')
    cases = {link: "not a regular file", fifo: "not a regular file",
             folder: "not a regular file", other: "not a transcript path",
             Path("relative.jsonl"): "not a transcript path"}
    for path, problem in cases.items():
        f = TranscriptFile(str(path))
        assert f.read() == [], path
        assert f.problem == problem, path
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)
    f = TranscriptFile(str(target))
    assert f.read() == [] and f.problem == "not yours"
    monkeypatch.undo()
    assert f.read() == [b'{"n": 1}']


def test_a_failing_read_is_a_problem_not_an_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"n": 1}\n')
    f = TranscriptFile(str(path))

    def pread(*args: object) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "pread", pread)
    assert f.read() == [] and f.problem == f"unreadable: {os.strerror(errno.EIO)}"
    monkeypatch.undo()
    assert f.read() == [b'{"n": 1}'] and f.problem is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_a_problem_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"n": 1}\n')
    path.chmod(0)
    f = TranscriptFile(str(path))
    assert f.read() == []
    assert f.problem is not None and f.problem.startswith("unreadable: ")


def test_an_overlong_line_is_passed_over_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"n": 1}\n' + b"x" * 1000 + b'\n{"n": 2}\n')
    f = TranscriptFile(str(path), max_line=100)
    got = []
    while True:
        got += f.read(64)
        assert f.pending <= 100
        if not f.more:
            break
    assert got == [b'{"n": 1}', b'{"n": 2}']
    assert f.skipped_long == 1


def test_a_restored_position_goes_on_without_loss_or_repeat(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2}\n{"n": ')
    f = TranscriptFile(str(path))
    assert f.read() == [b'{"n": 1}', b'{"n": 2}']
    saved = f.position()
    assert saved == Position(path.stat().st_dev, path.stat().st_ino, 18)  # not the torn line
    append(path, b'3}\n{"n": 4}\n')
    g = TranscriptFile(str(path), position=saved)  # a daemon restarted
    assert g.read() == [b'{"n": 3}', b'{"n": 4}']
    assert g.restarts == 0
    # A position saved for another file (this one replaced since): read from its start.
    path.unlink()
    path.write_bytes(b'{"n": 5}\n')
    h = TranscriptFile(str(path), position=saved)
    assert h.read() == [b'{"n": 5}'] and h.restarts == 1


def test_starting_at_the_end_passes_over_the_whole_lines_there(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2}\n{"n": ')
    f = TranscriptFile(str(path), start_at_end=True)
    assert f.read() == []
    append(path, b'3}\n')
    assert f.read() == [b'{"n": 3}']  # the torn line being written is kept
    path2 = tmp_path / "t.jsonl"
    # The last line, too long already, and longer than what is looked through for its start.
    path2.write_bytes(b'{"n": 1}\n' + b"x" * (reader._BACK_STEP + 1000))
    g = TranscriptFile(str(path2), max_line=100, start_at_end=True)
    assert g.read() == []
    append(path2, b'x\n{"n": 2}\n')
    saved = g.position()
    assert g.read() == [b'{"n": 2}']
    # A position inside that long line: its rest is passed over, not taken for a line.
    h = TranscriptFile(str(path2), max_line=100, position=saved)
    assert h.read() == [b'{"n": 2}']


# ---- any writes, any reads: each complete line once, in order

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8)
MAX_LINE = 120
LINES = st.lists(st.one_of(
    JSON_VALUES.map(lambda v: json.dumps({"type": "user", "v": v}).encode()),  # entries
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),  # garbage
    st.sampled_from([b"", b" ", b"\t \r"]),  # blank
    st.integers(MAX_LINE + 1, 3 * MAX_LINE).map(lambda n: b"L" * n),  # too long
), max_size=25)


def expected(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.strip() and len(line) <= MAX_LINE]


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=examples(500))
@given(LINES, st.binary(max_size=40), st.lists(st.integers(0, 10_000), max_size=30))
def test_any_chunking_gives_each_complete_line_once(lines: list[bytes], torn: bytes,
                                                    points: list[int]) -> None:
    whole = b"".join(line + b"\n" for line in lines)
    stream = whole + torn.replace(b"\n", b"")  # a last line never completed
    s = LineSplitter(max_line=MAX_LINE)
    got: list[bytes] = []
    fed = 0
    for chunk in cut(stream, points):
        got += s.feed(chunk)
        fed += len(chunk)
        assert s.pending <= MAX_LINE
        assert s.consumed == stream.rfind(b"\n", 0, fed) + 1
    assert got == expected(lines)
    assert s.skipped_long == sum(len(line) > MAX_LINE for line in lines)


_names = itertools.count()


@settings(max_examples=examples(200), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(LINES, st.lists(st.integers(0, 10_000), max_size=20),
       st.lists(st.tuples(st.sampled_from(["write", "read", "restart"]), st.integers(0, 200)),
                max_size=40))
def test_a_followed_file_gives_each_complete_line_once_across_restarts(
        tmp_path: Path, lines: list[bytes], points: list[int],
        actions: list[tuple[str, int]]) -> None:
    path = tmp_path / f"{next(_names)}.jsonl"
    path.write_bytes(b"")
    stream = b"".join(line + b"\n" for line in lines)
    chunks = cut(stream, points)
    f = TranscriptFile(str(path), max_line=MAX_LINE)
    got: list[bytes] = []
    for action, budget in actions:
        if action == "write" and chunks:
            append(path, chunks.pop(0))
        elif action == "read":
            got += f.read(budget)
        elif action == "restart":  # the daemon saves where it is, and starts again
            f = TranscriptFile(str(path), max_line=MAX_LINE, position=f.position())
        assert f.pending <= MAX_LINE
    for chunk in chunks:
        append(path, chunk)
    while True:
        got += f.read(reader.READ_BYTES)
        if not f.more:
            break
    assert got == expected(lines)
    assert f.offset == len(stream)
    assert f.restarts == 0
