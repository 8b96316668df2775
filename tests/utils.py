"""The harness shared by the tests and the benchmarks (benchmarks/_common.py imports it) for
running the real thing: daemon processes, hook processes, Unix sockets in short temporary
folders (AF_UNIX paths are limited to ~104 bytes)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parent.parent
HOOK_SCRIPT = ROOT / "mpm_hook" / "__main__.py"
# A copy of the shared fixture file, kept in the repository so a clean clone tests alone.
FIXTURES = ROOT / "tests" / "fixtures" / "claude-code-hooks.jsonl"


# A policy rule the tests of both transports and of the real CLI decide by (the shipped
# example's own, mpmd/ops/policy_example.toml).
DENY_RM_RF = """
[[rule]]
name = "no-rm-rf-outside-project"
action = "deny"
tools = ["Bash"]
command = "rm *"
options = ["r|R|recursive", "f|force"]
project = "outside"
reason = "rm -rf of a path outside the project is not allowed"
"""


def examples(count: int) -> int:
    """A property test's number of examples: as asked, or at most 20 for `make test-fast`
    (MPMD_TEST_FAST=1), the edit-test loop; `make test` tries them all."""
    return min(count, 20) if os.environ.get("MPMD_TEST_FAST") == "1" else count


def fixture_payloads() -> list[bytes]:
    """The 38 realistic payloads (all 31 event types), as Claude Code writes them."""
    return [line.rstrip(b"\n") for line in FIXTURES.read_bytes().splitlines() if line.strip()]


def fixture_payload(event: str, tool: str | None = None) -> bytes:
    """The first fixture payload of this event type (and tool)."""
    for payload in fixture_payloads():
        obj = json.loads(payload)
        if obj.get("hook_event_name") == event and (tool is None or obj.get("tool_name") == tool):
            return payload
    raise LookupError(f"no fixture payload for {event} {tool or ''}")


def short_tempdir(prefix: str = "mpmd-") -> Path:
    """A fresh folder short enough to hold an MPMD_HOME's Unix sockets."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any MPMD_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPMD_")}
    env.update(extra)
    return env


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return clean_env(**{"MPMD_HOME": str(home), **extra})


def run_hook(home: Path, payload: bytes, timeout: float = 30,
             **env: str) -> subprocess.CompletedProcess[bytes]:
    """One real hook process, started the way install-hooks tells Claude Code to."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(HOOK_SCRIPT)],
        input=payload, capture_output=True, env=env_for(home, **env), timeout=timeout,
    )


class Daemon:
    """A real `mpmd start --foreground` process; ready once it says so on a pipe.

    ``wrap`` prefixes the command (a profiler); ``log_name``, the file in ``home`` that gets
    its output."""

    def __init__(self, home: Path, *args: str, wrap: list[str] | None = None,
                 log_name: str = "daemon-test.log", **env: str) -> None:
        self.home = home
        self.args = args
        self.wrap = wrap or []
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / log_name

    def start(self, timeout: float = 30) -> Daemon:
        read_fd, write_fd = os.pipe()
        # Any free viewer and http ports: a test or a benchmark must not depend on (or take)
        # the defaults, nor fail when something else holds them.
        env = env_for(self.home, MPMD_READY_FD=str(write_fd),
                      **{"MPMD_VIEWER_PORT": "0", "MPMD_HTTP_PORT": "0", **self.env})
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.wrap, sys.executable, "-m", "mpmd", "start", "--foreground", *self.args],
                env=env, pass_fds=(write_fd,), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        os.close(write_fd)
        try:
            ready, _, _ = select.select([read_fd], [], [], timeout)
            data = os.read(read_fd, 64) if ready else b""
        finally:
            os.close(read_fd)
        if data != b"ready\n":
            self.kill9()
            raise RuntimeError("daemon did not start:\n" + self.read_log())
        return self

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def daemon_pid(self) -> int:
        """The daemon's own pid: under ``wrap``, the one it wrote in mpmd.pid, not the
        wrapper's."""
        if self.wrap:
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int((self.home / "mpmd.pid").read_text().strip())
        return self.pid

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill9(self) -> None:
        """SIGKILL (nothing drained) and reap, if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (the daemon drains the ring into the journal); its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.daemon_pid(), signal.SIGTERM)
        return self.proc.wait(timeout)

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill9()


def mpmd_cli(home: Path, *args: str, timeout: float = 60,
             **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpmd", *args], capture_output=True, text=True,
        env=env_for(home, **env), timeout=timeout,
    )


def journal_lines(home: Path) -> list[bytes]:
    """Every journal line (read-only: safe while the daemon writes)."""
    from mpmd.storage.journal import Journal

    journal = Journal(home / "journal", read_only=True)
    try:
        return list(journal.read_from(0))
    finally:
        journal.close()


def journal_events(home: Path) -> list[dict]:
    return [msgspec.json.decode(line) for line in journal_lines(home)]


def hook_events(home: Path) -> list[dict]:
    """The journaled events hooks (and the daemon itself) stored: all but those the
    transcript follower read off Claude Code's transcripts (source "transcript")."""
    return [e for e in journal_events(home) if e["source"] != "transcript"]


def spool_files(home: Path) -> list[Path]:
    folder = home / "spool"
    return sorted(folder.glob("*.frame")) if folder.exists() else []


def status(home: Path) -> dict:
    result = mpmd_cli(home, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def iter_files(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        if path.is_file():
            yield path


def recv_http_message(sock: socket.socket,
                      buffered: bytes = b"") -> tuple[bytes, bytes, bytes] | None:
    """One HTTP/1.1 message read from ``sock`` after ``buffered`` (bytes read already): its
    head, its body (Content-Length long; none without one), and what came after it. None
    when the peer closes before the message is whole."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return head, rest[:length], rest[length:]


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` (something another process does) until true, failing after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)  # polling an outside observable: nothing to await


def send_frame(home: Path, frame: bytes) -> tuple[bytes, int, int]:
    """(id, status, seq) of the ack for one frame, sent the way the hook sends it (without
    its spooling)."""
    import socket

    from mpm_hook import wire

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(home / "mpmd.sock"))
        sock.sendall(frame)
        sock.shutdown(socket.SHUT_WR)
        ack = b""
        while len(ack) < wire.ACK_FRAME_BYTES:
            more = sock.recv(wire.ACK_FRAME_BYTES - len(ack))
            assert more, "the daemon closed the connection without an ack"
            ack += more
    return wire.decode_ack(ack)


def send_events(home: Path, payloads: list[bytes], window: int = 256,
                when_ns: int | None = None) -> list[int]:
    """Many events quickly: the hook's frames, pipelined on one connection to the daemon's
    socket (a hook process each would take ~10 ms). Returns the seqs the acks gave.
    ``when_ns``: date them as if the hook had run then (1 ms apart), instead of now."""
    import socket

    from mpm_hook import wire

    seqs: list[int] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(home / "mpmd.sock"))
        for start in range(0, len(payloads), window):
            chunk = payloads[start:start + window]
            sock.sendall(b"".join(
                wire.encode_event(os.urandom(16), time.time_ns() if when_ns is None
                                  else when_ns + (start + i) * 1_000_000, p, len(p))
                for i, p in enumerate(chunk)))
            want = len(chunk) * wire.ACK_FRAME_BYTES
            data = b""
            while len(data) < want:
                more = sock.recv(want - len(data))
                assert more, "the daemon closed the connection"
                data += more
            for i in range(len(chunk)):
                frame = data[i * wire.ACK_FRAME_BYTES:(i + 1) * wire.ACK_FRAME_BYTES]
                _id, state, seq = wire.decode_ack(frame)
                assert state == wire.STORED, state
                seqs.append(seq)
    return seqs
