"""Talking to a running daemon over its control socket (mpmd.control.server), and starting
or stopping it: the functions behind `mpmd start`, `mpmd stop` and `mpmd status`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from mpmd.control import protocol
from mpmd.control.protocol import Answer, FollowRequest, Request, StatusRequest, StopRequest
from mpmd.errors import NotRunning, StateError
from mpmd.status import Status

if TYPE_CHECKING:
    from mpmd.config import Settings

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0


def _connect(settings: Settings, timeout_s: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(str(settings.control_path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise NotRunning(str(exc)) from None
    return sock


def request(settings: Settings, req: Request, timeout_s: float = 5.0) -> bytes:
    """The daemon's one-line answer to ``req``."""
    sock = _connect(settings, timeout_s)
    with sock, sock.makefile("rb") as f:
        sock.sendall(protocol.encode(req))
        return f.readline()


def status(settings: Settings) -> Status:
    """The running daemon's status: NotRunning when none answers, OSError or ValueError
    (a msgspec.ValidationError too) when the answer is not one."""
    return msgspec.json.decode(request(settings, StatusRequest()), type=Status)


def stream(settings: Settings, req: Request) -> Iterator[bytes]:
    """Every line the daemon answers ``req`` with, as they come."""
    sock = _connect(settings, None)
    with sock, sock.makefile("rb") as f:
        sock.sendall(protocol.encode(req))
        for line in f:
            yield line.rstrip(b"\n")


def answers(settings: Settings, req: Request) -> Iterator[Answer]:
    """The daemon's typed answers to a streaming request (reindex, replay), as they come; a
    ValueError for a line that is not one."""
    for line in stream(settings, req):
        yield protocol.decode_answer(line)


def follow(settings: Settings, after: int) -> Iterator[bytes]:
    return stream(settings, FollowRequest(after=after))


def lock_holder(settings: Settings) -> bool:
    """True when a daemon holds the lock for these folders (alive, maybe hung)."""
    try:
        fd = os.open(settings.lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def wait_for_exit(settings: Settings, timeout_s: float) -> bool:
    """Block until the daemon releases its lock, i.e. has exited. No polling: flock waits,
    and SIGALRM bounds the wait."""
    try:
        fd = os.open(settings.lock_path, os.O_RDWR)
    except FileNotFoundError:
        return True

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except TimeoutError:
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.close(fd)


def start_background(settings: Settings, extra_args: list[str] | None = None) -> int:
    """Start `mpmd start --foreground` detached; return its pid once it accepts
    connections. The child reports readiness on a pipe (MPMD_READY_FD), so there is no
    polling; if it dies first, the pipe closes and we report its log."""
    from mpmd.config import owner_only_dir

    owner_only_dir(settings.log_dir)
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, MPMD_READY_FD=str(write_fd))
    log_fd = os.open(settings.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mpmd", "start", "--foreground", "--log-file",
             *(extra_args or [])],
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            pass_fds=(write_fd,),
            start_new_session=True,
            env=env,
        )
    finally:
        os.close(write_fd)
        os.close(log_fd)
    deadline = time.monotonic() + START_TIMEOUT_S
    with os.fdopen(read_fd, "rb") as ready:
        import select

        got = b""
        while b"\n" not in got:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([ready], [], [], remaining)[0]:
                proc.kill()
                raise StateError(f"mpmd did not become ready in {START_TIMEOUT_S:.0f}s; "
                                   f"see {settings.log_path}")
            chunk = os.read(ready.fileno(), 64)
            if not chunk:
                code = proc.wait()
                raise StateError(f"mpmd exited during start-up (code {code}):\n"
                                   + tail_file(settings.log_path, 15))
            got += chunk
    return proc.pid


def stop(settings: Settings, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Ask the daemon to stop and wait until it has exited. False if none was running."""
    if not lock_holder(settings):
        return False
    try:
        request(settings, StopRequest())
    except (NotRunning, OSError, ValueError):
        pid = read_pid(settings.pid_path)  # control socket gone or hung: fall back to a signal
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    if not wait_for_exit(settings, timeout_s):
        raise StateError(f"mpmd did not exit within {timeout_s:.0f}s")
    return True


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def tail_file(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
