"""A full disk, with a real daemon process: its journal writes fail while real hooks and a
socket client keep sending.

The promise: the daemon keeps acking while the ring has room, then answers BUSY (hooks
spool); it never exits, says in its log what is wrong and counts it; once writes work again
it catches up on its own, and every acked or spooled event is in the journal exactly once,
with no torn line.

Two ways to fill the disk: RLIMIT_FSIZE on the daemon (write() fails with EFBIG; works
unprivileged, always runs on Linux) and, when we may mount, a tiny tmpfs under the journal
(a real ENOSPC).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpm_hook import wire
from tests.utils import Daemon, run_hook, send_frame, spool_files, status, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="prlimit on another process and tmpfs are Linux only")

MAX_FRAME = 64 * 1024
RING = 6 * MAX_FRAME  # the smallest ring allowed: a few dozen BIG events fill it
BIG = 16 * 1024
SMALL = {"MPMD_MAX_FRAME_BYTES": str(MAX_FRAME), "MPMD_RING_BYTES": str(RING)}
PREFILL = 8  # events journaled before the disk fills: ~130 KiB, far more than the log


def prompt(n: int, size: int = BIG) -> bytes:
    return json.dumps({"session_id": "disk-full", "hook_event_name": "UserPromptSubmit",
                       "prompt": f"marker-{n} " + "x" * size}).encode()


def send(home: Path, payload: bytes) -> tuple[str, int]:
    """(id, ack status) for one event sent the way the hook does, without its spooling."""
    event_id = os.urandom(wire.ID_BYTES)
    acked_id, answer, _seq = send_frame(
        home, wire.encode_event(event_id, time.time_ns(), payload, len(payload)))
    assert acked_id == event_id
    return event_id.hex(), answer


def daemon_status(home: Path) -> dict:
    """What `mpmd status --json` prints, straight from the control socket (no interpreter
    start per poll)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(home / "control.sock"))
        s.sendall(b'{"cmd": "status"}\n')
        with s.makefile("rb") as f:
            return json.loads(f.readline())


class FileSizeLimit:
    """RLIMIT_FSIZE a little above the active segment: the next write lands in part, then
    fails with EFBIG (a torn line to clean up), as a disk filling up mid-write does.
    CPython ignores SIGXFSZ, so the daemon must survive it."""

    error = os.strerror(errno.EFBIG)

    def __init__(self, home: Path) -> None:
        self.home = home

    def fill(self, daemon: Daemon) -> None:
        # Per file: the daemon's log (its stdout) stays far below this, so it can still log.
        [segment] = (self.home / "journal").glob("*.jsonl")
        self.saved = resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE)
        limit = segment.stat().st_size + 100
        resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, (limit, self.saved[1]))

    def free(self, daemon: Daemon) -> None:
        with contextlib.suppress(ProcessLookupError):  # don't hide why the daemon died
            resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, self.saved)


class TinyTmpfs:
    """The journal folder is a 1 MiB tmpfs (the spool stays outside, as if on another disk);
    a filler file takes every free block (ENOSPC), deleting it frees the space. The
    segment's last page still has room: the next write lands in part, then fails."""

    error = os.strerror(errno.ENOSPC)

    def __init__(self, home: Path) -> None:
        self.journal = home / "journal"
        self.journal.mkdir(mode=0o700)
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                                   str(self.journal)], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot mount a tmpfs: {exc}")
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace')}")

    def fill(self, daemon: Daemon) -> None:
        fd = os.open(self.journal / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, bytes(4096))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def free(self, daemon: Daemon) -> None:
        (self.journal / "filler").unlink()

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.journal)], check=True, timeout=30)


@pytest.fixture
def tiny_tmpfs(home):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    tmpfs = TinyTmpfs(home)
    yield tmpfs
    tmpfs.unmount()


@pytest.fixture(params=["file_size_limit", "tiny_tmpfs"])
def disk(request, home):
    if request.param == "file_size_limit":
        return FileSizeLimit(home)
    return request.getfixturevalue("tiny_tmpfs")


def journal_file_events(home: Path) -> list[dict]:
    """Every line of the segment files, read directly: json.loads fails on a torn or glued
    line, which the journal's own reader would skip or cut."""
    data = b"".join(p.read_bytes() for p in sorted((home / "journal").glob("*.jsonl")))
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


def test_full_disk_keeps_acking_then_spools_and_loses_nothing(home, disk):
    acked: list[str] = []
    with Daemon(home, **SMALL) as daemon:
        for n in range(PREFILL):
            event_id, answer = send(home, prompt(n))
            assert answer == wire.STORED
            acked.append(event_id)
        wait_until(lambda: daemon_status(home)["journal_last_seq"] == PREFILL,
                   "the first events are journaled")
        disk.fill(daemon)
        try:
            # The ring takes what the journal cannot: STORED while it has room, then BUSY.
            for n in range(PREFILL, PREFILL + 4 * RING // BIG):
                event_id, answer = send(home, prompt(n))
                if answer != wire.STORED:
                    break
                acked.append(event_id)
            assert answer == wire.BUSY
            assert len(acked) > PREFILL + 10, "the ring went on acking while writes failed"
            # Real hooks get BUSY too and spool (bigger events: certainly no room left).
            for n in range(100, 103):
                assert run_hook(home, prompt(n, 2 * BIG)).returncode == 0
            spooled = [p.stem.split("-")[1] for p in spool_files(home)]
            assert len(spooled) == 3
            info = status(home)  # `mpmd status --json`
            assert info["journal_last_seq"] == PREFILL  # nothing got through meanwhile
            assert info["counters"].get("journal_errors", 0) >= 1
            assert info["counters"].get("busy", 0) >= 4  # the socket client's and the hooks'
            assert daemon.proc.poll() is None  # the failed writes did not kill it
            log = daemon.read_log()
            assert "journal write failed" in log and disk.error in log
            assert "ring full" in log
        finally:
            disk.free(daemon)
        # No help from us: the journal consumer retries, and a freed ring wakes the spool drain.
        expected = len(acked) + len(spooled)
        wait_until(lambda: not spool_files(home)
                   and daemon_status(home)["journal_last_seq"] >= expected,
                   "every acked and spooled event is journaled")
        assert daemon.stop() == 0
    events = journal_file_events(home)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sorted(e["id"] for e in events) == sorted(acked + spooled)
    assert {e["id"] for e in events if e["source"] == "spool"} == set(spooled)


def test_daemon_started_on_a_full_disk_acks_and_catches_up(home, tiny_tmpfs):
    with Daemon(home, **SMALL) as daemon:
        first, answer = send(home, prompt(0))
        assert answer == wire.STORED
        wait_until(lambda: daemon_status(home)["journal_last_seq"] == 1,
                   "the first event is journaled")
        tiny_tmpfs.fill(daemon)
        second, answer = send(home, prompt(1))
        assert answer == wire.STORED
        assert daemon.stop() == 0  # the second event stays in the ring for the next start
    # A restart (a crash, a login) while the disk is still full: the ring has room, so the
    # new daemon must listen and ack, and write the journal once space returns.
    with Daemon(home, **SMALL) as daemon:
        third, answer = send(home, prompt(2))
        assert answer == wire.STORED
        tiny_tmpfs.free(daemon)
        wait_until(lambda: daemon_status(home)["journal_last_seq"] >= 3,
                   "the events in the ring are journaled")
        assert daemon.stop() == 0
    events = journal_file_events(home)
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert [e["id"] for e in events] == [first, second, third]
