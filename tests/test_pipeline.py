"""End to end with real processes: hook processes -> Unix socket -> daemon -> ring -> journal.

Covers the promises: every fixture event lands enriched, redacted, exactly once; no event
acked or spooled is lost or duplicated when the daemon is down, killed -9, or hung.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
from concurrent.futures import ThreadPoolExecutor

import msgspec

from mpm_hook import wire
from tests.utils import (
    Daemon,
    fixture_payloads,
    iter_files,
    journal_events,
    run_hook,
    spool_files,
    status,
    wait_until,
)

SECRET = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def marked_payload(n: int) -> bytes:
    return json.dumps({
        "session_id": "load-session", "hook_event_name": "UserPromptSubmit",
        "cwd": "/home/dev/shop", "prompt": f"marker-{n}",
    }).encode()


def markers(events: list[dict]) -> list[str]:
    return [e["payload"]["prompt"] for e in events if e["event_type"] == "UserPromptSubmit"
            and e["payload"]["prompt"].startswith("marker-")]


def test_every_fixture_event_lands_once_enriched_and_redacted(home):
    payloads = fixture_payloads()
    with Daemon(home):
        for payload in payloads:
            result = run_hook(home, payload)
            assert result.returncode == 0
            assert result.stdout == b"" and result.stderr == b""
        assert status(home)["events_total"] == len(payloads)
    events = journal_events(home)
    assert [e["seq"] for e in events] == list(range(1, len(payloads) + 1))
    assert len({e["id"] for e in events}) == len(payloads)
    sent_types = [json.loads(p)["hook_event_name"] for p in payloads]
    assert [e["event_type"] for e in events] == sent_types
    assert all(e["status"] == "ok" for e in events)
    by_type = {e["event_type"]: e for e in events}
    read = next(e for e in events if e.get("tool_name") == "Read"
                and e["event_type"] == "PostToolUse")
    assert read["summary"] == "Read src/auth/login.ts"
    assert read["operation"] == "read"
    assert read["file_path"] == "/home/dev/shop/src/auth/login.ts"
    assert by_type["PermissionDenied"]["risk"] == "high"
    assert by_type["SessionStart"]["session_id"] == "9f1c2b7e-4d3a-4e59-9b1a-6c0f2d8e5a71"
    # Unknown fields are kept: the stored payload is the original, field for field.
    for payload, event in zip(payloads, events, strict=True):
        if SECRET not in payload:
            assert event["payload"] == json.loads(payload)
    # The secret never reaches disk, anywhere under the home folder.
    for path in iter_files(home):
        assert SECRET not in path.read_bytes(), path
    deploy = next(e for e in events if "deploy.sh" in json.dumps(e["payload"]))
    assert deploy["redactions"] >= 1
    assert "AWS_SECRET_ACCESS_KEY=" in deploy["payload"]["tool_input"]["command"]


def test_files_and_socket_are_owner_only(home):
    with Daemon(home):
        run_hook(home, fixture_payloads()[0])
        sock = home / "mpmd.sock"
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE((home / "control.sock").stat().st_mode) == 0o600
        assert stat.S_IMODE((home / "ring.mmap").stat().st_mode) == 0o600
        assert stat.S_IMODE((home / "journal").stat().st_mode) == 0o700
    for path in (home / "journal").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_daemon_down_hooks_spool_and_start_drains_them(home):
    payloads = fixture_payloads()[:10]
    for payload in payloads:
        assert run_hook(home, payload).returncode == 0
    files = spool_files(home)
    assert len(files) == 10
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    with Daemon(home):
        assert spool_files(home) == []
    events = journal_events(home)
    assert len(events) == 10
    assert all(e["source"] == "spool" for e in events)
    assert [e["event_type"] for e in events] == [
        json.loads(p)["hook_event_name"] for p in payloads]


def test_kill9_while_hooks_send_loses_and_duplicates_nothing(home):
    total = 120
    daemon = Daemon(home).start()

    def send(n: int) -> int:
        if n == total // 2:
            daemon.kill9()
        return run_hook(home, marked_payload(n)).returncode

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(send, range(total))) == {0}
    assert spool_files(home), "hooks sent after the kill must have spooled"
    with Daemon(home):
        pass
    seen = markers(journal_events(home))
    assert sorted(seen) == sorted(f"marker-{n}" for n in range(total))
    assert spool_files(home) == []


def test_acked_events_survive_kill9_before_journaling(home):
    # Journal fsync and writes happen after the ack; a kill -9 right after the acks must
    # still find every event, through the ring file, at the next start.
    with Daemon(home) as daemon:
        for n in range(30):
            run_hook(home, marked_payload(n))
        assert spool_files(home) == []  # all acked
        daemon.kill9()
    with Daemon(home):
        pass
    assert sorted(markers(journal_events(home))) == sorted(f"marker-{n}" for n in range(30))


def test_hung_daemon_hooks_return_and_spool_no_duplicates_after_sigcont(home):
    with Daemon(home) as daemon:
        run_hook(home, marked_payload(0))
        daemon.signal(signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                codes = list(pool.map(lambda n: run_hook(home, marked_payload(n)).returncode,
                                      range(1, 9)))
            assert codes == [0] * 8
            # Each hook gave up on the ack and spooled; the daemon may still hold the frames
            # in its socket buffers.
            assert len(spool_files(home)) == 8
        finally:
            daemon.signal(signal.SIGCONT)
    with Daemon(home):
        pass
    seen = markers(journal_events(home))
    assert sorted(seen) == sorted(f"marker-{n}" for n in range(9))
    assert spool_files(home) == []


def test_bad_input_is_classified_and_never_stops_the_daemon(home):
    bad_payloads = [b"", b"not json at all", b"[1, 2, 3]", b"\xff\xfe\x00binary",
                    b'{"hook_event_name": "BrandNewEvent", "session_id": "s", "x": {"y": 1}}',
                    b'{"hook_event_name": "PreToolUse", "tool_name": 42}',
                    b'{"hook_event_name": "Stop"', b"null"]
    with Daemon(home):
        for payload in bad_payloads:
            assert run_hook(home, payload).returncode == 0
        # Garbage on the socket itself: random bytes, a huge length prefix, a truncated
        # frame, a valid-length frame with a broken body, a connection that says nothing.
        for raw in (os.urandom(64), b"\xff\xff\xff\xff", b"\x00\x00\x00\x10abc",
                    b"\x00\x00\x00\x03abc"):
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(home / "mpmd.sock"))
                s.sendall(raw)
                s.shutdown(socket.SHUT_WR)
                assert s.recv(100) == b""  # closed without an ack
        idle = [socket.socket(socket.AF_UNIX) for _ in range(200)]
        for s in idle:
            s.connect(str(home / "mpmd.sock"))
        # The daemon still takes events while 200 idle connections sit there.
        assert run_hook(home, fixture_payloads()[0]).returncode == 0
        info = status(home)
        for s in idle:
            s.close()
        assert info["events_total"] == len(bad_payloads) + 1
        counters = info["counters"]
        assert counters.get("rejected_oversized", 0) >= 1
        assert counters.get("rejected_invalid", 0) >= 1
        assert counters.get("rejected_truncated", 0) >= 1
    events = journal_events(home)
    statuses = [e["status"] for e in events[: len(bad_payloads)]]
    assert statuses == ["empty", "malformed", "not_object", "malformed", "unknown_type",
                        "schema_mismatch", "malformed", "not_object"]
    assert events[4]["event_type"] == "BrandNewEvent"
    assert events[4]["payload"] == {"hook_event_name": "BrandNewEvent", "session_id": "s",
                                    "x": {"y": 1}}
    assert events[1]["raw"] == "not json at all"
    assert events[3]["raw_encoding"] == "base64"
    assert list((home / "rejected").iterdir()), "rejected streams are kept aside"


def test_connections_that_make_no_progress_are_closed(home):
    with Daemon(home, MPMD_IDLE_TIMEOUT_S="0.2"):
        with socket.socket(socket.AF_UNIX) as silent, socket.socket(socket.AF_UNIX) as cut:
            silent.connect(str(home / "mpmd.sock"))
            cut.connect(str(home / "mpmd.sock"))
            cut.sendall(wire.encode_event(os.urandom(16), 1, b"{}", 2)[:-1])  # one byte short
            for s in (silent, cut):
                s.settimeout(30)  # a bound on the test, not what it measures
                assert s.recv(100) == b""  # the daemon closed it, without an ack
        counters = status(home)["counters"]
        assert counters.get("closed_idle", 0) == 2
        assert counters.get("rejected_truncated", 0) == 1


def test_a_client_that_leaves_its_acks_unread_loses_nothing(home):
    # Far more acks than socket buffers hold: the daemon must stop reading this client while
    # its acks wait (not buffer without bound), and go on once they are read.
    n = 60_000
    ids = [os.urandom(16) for _ in range(n)]
    payload = b'{"hook_event_name": "Stop", "session_id": "s"}'
    blob = b"".join(wire.encode_event(i, 1, payload, len(payload)) for i in ids)
    with Daemon(home) as daemon:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(home / "mpmd.sock"))
            s.settimeout(60)
            with ThreadPoolExecutor(max_workers=1) as pool:
                sent = pool.submit(s.sendall, blob)  # blocks while the daemon waits for us
                wait_until(lambda: status(home)["counters"].get("paused_for_unread_acks"),
                           "the daemon pauses this client")
                acks = bytearray()
                while len(acks) < n * wire.ACK_FRAME_BYTES:
                    chunk = s.recv(1 << 16)
                    assert chunk, "the daemon closed the connection"
                    acks += chunk
                sent.result()
        assert daemon.stop() == 0  # SIGTERM: the ring drains into the journal
    answers = [wire.decode_ack(bytes(acks[k : k + wire.ACK_FRAME_BYTES]))
               for k in range(0, len(acks), wire.ACK_FRAME_BYTES)]
    assert [a[0] for a in answers] == ids  # one ack each, in order
    assert {a[1] for a in answers} == {wire.STORED}
    assert [e["id"] for e in journal_events(home)] == [i.hex() for i in ids]


def test_oversized_payload_is_cut_and_recorded(home):
    big = b'{"hook_event_name": "UserPromptSubmit", "prompt": "' + b"x" * 200_000 + b'"}'
    with Daemon(home, MPMD_MAX_FRAME_BYTES=str(64 * 1024),
                MPMD_RING_BYTES=str(1 << 20)) as daemon:
        # The hook cuts to the limit this daemon published (64 KiB), not to the wire's 8 MiB.
        assert run_hook(home, big).returncode == 0
        assert daemon.stop() == 0
    [event] = journal_events(home)
    assert (event["status"], event["source"]) == ("truncated", "hook")
    assert event["original_size"] == len(big)
    assert len(event["raw"]) == 64 * 1024 - wire.EVENT_OVERHEAD
    assert not (home / "rejected").exists()


def test_stored_events_decode_with_documented_schema(home):
    from mpmd.model.events import StoredEvent

    with Daemon(home):
        for payload in fixture_payloads():
            run_hook(home, payload)
    for line in (home / "journal").glob("*.jsonl"):
        for raw in line.read_bytes().splitlines():
            event = msgspec.json.decode(raw, type=StoredEvent)
            assert event.timestamp.endswith("Z") and event.received_at.endswith("Z")
            assert raw.startswith(b'{"seq":')


def test_tail_while_running_and_follow_sees_new_events(home):
    import subprocess
    import sys

    from tests.utils import env_for, mpmd_cli

    payloads = fixture_payloads()
    with Daemon(home):
        for payload in payloads[:5]:
            run_hook(home, payload)
        shown = mpmd_cli(home, "tail", "-n", "3")
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert len(lines) == 3 and "Reading src/auth/login.ts" in lines[-1]
        follower = subprocess.Popen(
            [sys.executable, "-m", "mpmd", "tail", "-n", "100", "-f", "--json"],
            stdout=subprocess.PIPE, env=env_for(home))
        try:
            # Whether these land before or after the follower connects, it shows them once:
            # from the journal, or live after the seq it last read there.
            for payload in payloads[5:8]:
                run_hook(home, payload)
            assert follower.stdout is not None
            got = [json.loads(follower.stdout.readline()) for _ in range(8)]
        finally:
            follower.kill()
            follower.wait(30)
        assert [e["seq"] for e in got] == list(range(1, 9))
    # Reading while the daemon wrote changed nothing: every event is there once.
    assert [e["seq"] for e in journal_events(home)] == list(range(1, 9))
