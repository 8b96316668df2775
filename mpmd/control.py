"""Talking to a running daemon, and starting or stopping it.

Server side: a second owner-only Unix socket (``control.sock``) that takes one JSON line
request and answers in JSON lines:
    {"cmd": "status"}           -> one object (what `mpmd status --json` prints)
    {"cmd": "stop"}             -> {"ok": true}, then the daemon shuts down gracefully
    {"cmd": "follow", "after": N} -> every journal line with seq > N, as they are written
    {"cmd": "reindex"}          -> {"total": N}, {"indexed": n} as it goes, then
                                   {"done": true, "last_seq": N} or {"error": "..."}
    {"cmd": "replay", "session": ID, "speed": X}
                                -> {"total": N}, {"sent": n} as it goes, then {"done": true}
Client side: the functions behind `mpmd start`, `mpmd stop` and `mpmd status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpmd import peercred

if TYPE_CHECKING:
    from mpmd.config import Settings
    from mpmd.daemon import Daemon

FOLLOWER_MAX_BUFFER = 16 * 1024 * 1024
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0


# ---- server -----------------------------------------------------------------------------
class Followers:
    """Live journal lines pushed to `mpmd tail -f` clients. A client that falls more than
    FOLLOWER_MAX_BUFFER behind is told it lagged and dropped; it resumes from the journal."""

    def __init__(self) -> None:
        self.writers: set[asyncio.StreamWriter] = set()

    def publish(self, lines: list[bytes]) -> None:
        if not self.writers:
            return
        data = b"\n".join(lines) + b"\n"
        for writer in list(self.writers):
            transport = writer.transport
            if transport.get_write_buffer_size() > FOLLOWER_MAX_BUFFER:
                writer.write(b'{"lagged": true}\n')
                writer.close()
                self.writers.discard(writer)
            else:
                writer.write(data)


async def _reindex(daemon: Daemon, writer: asyncio.StreamWriter) -> None:
    """Rebuild the search index in the index worker, streaming its progress."""
    first = daemon.journal.first_seq or 1
    total = max(0, daemon.journal.last_seq - first + 1)
    writer.write(json.dumps({"total": total}).encode() + b"\n")
    shown = 0

    def progress(done: int) -> None:  # cumulative from the worker; steps to the client
        nonlocal shown
        writer.write(json.dumps({"indexed": done - shown}).encode() + b"\n")
        shown = done

    try:
        last_seq = await daemon.indexer.rebuild(progress)
    except Exception as exc:  # the worker's own words: a busy or failed rebuild, or its end
        writer.write(json.dumps({"error": f"rebuild failed: {exc}"}).encode() + b"\n")
        return
    writer.write(json.dumps({"done": True, "last_seq": last_seq}).encode() + b"\n")


async def _replay(daemon: Daemon, writer: asyncio.StreamWriter,
                  request: dict[str, Any]) -> None:
    """Replay one session to the connected viewers (mpmd.replay), streaming progress."""
    from mpmd import index, replay

    speed = float(request.get("speed", 1.0))
    if not speed > 0:
        raise ValueError("speed must be above 0")
    path = daemon.settings.index_path

    def read() -> list[bytes]:
        conn = index.connect_read_only(path)
        try:
            return index.session_lines(conn, str(request.get("session", "")))
        finally:
            conn.close()

    if not path.exists():
        writer.write(b'{"error": "no search index yet"}\n')
        return
    try:
        lines = await asyncio.to_thread(read)
    except LookupError as exc:
        writer.write(json.dumps({"error": str(exc)}).encode() + b"\n")
        return
    session_id = json.loads(lines[0]).get("session_id")
    writer.write(json.dumps({"total": len(lines), "session_id": session_id}).encode() + b"\n")

    def progress(n: int) -> None:
        writer.write(json.dumps({"sent": n}).encode() + b"\n")

    await replay.to_viewers(daemon.broadcaster, str(session_id), lines, speed, progress)
    writer.write(b'{"done": true}\n')


async def serve(path: Path, daemon: Daemon) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        uid = peercred.peer_uid(sock) if sock is not None else None
        if uid is not None and uid != os.getuid():
            daemon.counters["rejected_foreign_uid"] += 1
            writer.close()
            return
        try:
            line = await asyncio.wait_for(reader.readline(), daemon.settings.idle_timeout_s)
            request = json.loads(line) if line.strip() else {}
            if not isinstance(request, dict):
                raise ValueError("request must be a JSON object")
            cmd = request.get("cmd")
            if cmd == "status":
                writer.write(json.dumps(daemon.status()).encode() + b"\n")
            elif cmd == "stop":
                writer.write(b'{"ok": true}\n')
                daemon.stopping.set()
            elif cmd == "follow":
                after = int(request.get("after", daemon.journal.last_seq))
                for old in daemon.journal.read_from(after + 1):
                    writer.write(old + b"\n")
                    await writer.drain()
                daemon.followers.writers.add(writer)
                await reader.read()  # until the client goes away
                daemon.followers.writers.discard(writer)
            elif cmd == "reindex":
                await _reindex(daemon, writer)
            elif cmd == "replay":
                await _replay(daemon, writer, request)
            else:
                writer.write(json.dumps({"error": f"unknown command {cmd!r}"}).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError) as exc:
            with contextlib.suppress(ConnectionError):
                writer.write(json.dumps({"error": str(exc) or type(exc).__name__}).encode()
                             + b"\n")
        finally:
            writer.close()

    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(handle, path=str(path))
    finally:
        os.umask(old_umask)
    return server


# ---- client -----------------------------------------------------------------------------
class NotRunning(RuntimeError):
    pass


def _connect(settings: Settings, timeout_s: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(str(settings.control_path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise NotRunning(str(exc)) from None
    return sock


def request(settings: Settings, payload: dict[str, Any], timeout_s: float = 5.0) -> Any:
    sock = _connect(settings, timeout_s)
    with sock, sock.makefile("rb") as f:
        sock.sendall(json.dumps(payload).encode() + b"\n")
        return json.loads(f.readline())


def stream(settings: Settings, payload: dict[str, Any]) -> Iterator[bytes]:
    """Every line the daemon answers ``payload`` with, as they come."""
    sock = _connect(settings, None)
    with sock, sock.makefile("rb") as f:
        sock.sendall(json.dumps(payload).encode() + b"\n")
        for line in f:
            yield line.rstrip(b"\n")


def follow(settings: Settings, after: int) -> Iterator[bytes]:
    return stream(settings, {"cmd": "follow", "after": after})


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
                raise RuntimeError(f"mpmd did not become ready in {START_TIMEOUT_S:.0f}s; "
                                   f"see {settings.log_path}")
            chunk = os.read(ready.fileno(), 64)
            if not chunk:
                code = proc.wait()
                raise RuntimeError(f"mpmd exited during start-up (code {code}):\n"
                                   + tail_file(settings.log_path, 15))
            got += chunk
    return proc.pid


def stop(settings: Settings, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Ask the daemon to stop and wait until it has exited. False if none was running."""
    if not lock_holder(settings):
        return False
    try:
        request(settings, {"cmd": "stop"})
    except (NotRunning, OSError, ValueError):
        pid = read_pid(settings.pid_path)  # control socket gone or hung: fall back to a signal
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    if not wait_for_exit(settings, timeout_s):
        raise RuntimeError(f"mpmd did not exit within {timeout_s:.0f}s")
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
