"""The hook's one job: get the event to the daemon, or onto disk, and get out of the way.

    read stdin (bounded) -> frame -> send over the Unix socket -> wait for the ack (bounded)
                                        \\-- any failure --> spool file (tmp + rename)
    exit 0, print nothing

Cost is the product's promise (Claude Code waits for us on every event), so this module
imports only what a ``python -I -S`` interpreter has already loaded (``sys``, ``time``,
``_signal``, ``posix``) plus ``_socket``. No ``os``, no ``json``, no ``socket`` wrapper.

Worst case, documented in docs/protocol.md: STDIN_TIMEOUT_S to read a stdin that never
closes, plus SOCKET_TIMEOUT_S for connect + send + ack, plus one spool write with fsync.
"""

import _signal
import posix
import sys
import time

from mpm_hook import paths, wire

STDIN_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 1.0
_READ_CHUNK = 1 << 16


class _StdinTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _StdinTimeout


def read_stdin(limit: int = wire.MAX_PAYLOAD_BYTES, timeout_s: float = STDIN_TIMEOUT_S):
    """(payload, original_size): at most ``limit`` bytes, within ``timeout_s``.

    Claude Code closes stdin after writing one JSON object, but a known bug can leave it
    open; an interval timer interrupts the blocking read (no ``select`` import needed).
    Bytes past ``limit`` are read and counted, not kept, so the writer never sees EPIPE.
    """
    chunks = []
    kept = 0
    total = 0
    previous = _signal.signal(_signal.SIGALRM, _on_alarm)
    _signal.setitimer(_signal.ITIMER_REAL, timeout_s)
    try:
        while True:
            chunk = posix.read(0, _READ_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if kept < limit:
                chunk = chunk[: limit - kept]
                chunks.append(chunk)
                kept += len(chunk)
    except (_StdinTimeout, OSError):
        pass  # send what arrived; the daemon classifies a cut payload as malformed
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        _signal.signal(_signal.SIGALRM, previous)
    return b"".join(chunks), total


def deliver(socket_path: str, frame: bytes, event_id: bytes, timeout_s: float = SOCKET_TIMEOUT_S):
    """True when the daemon acked the event as stored (or already stored)."""
    import _socket  # the one C module the hot path needs; ~0.7 ms, so only here

    deadline = time.monotonic() + timeout_s
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout_s)
        sock.connect(socket_path)
        sock.sendall(frame)
        # Nothing more to send: the daemon then sees the frame and the end of the stream
        # together and can close without watching this connection any longer.
        sock.shutdown(_socket.SHUT_WR)
        ack = b""
        while len(ack) < wire.ACK_FRAME_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            sock.settimeout(remaining)
            chunk = sock.recv(wire.ACK_FRAME_BYTES - len(ack))
            if not chunk:
                return False
            ack += chunk
    except OSError:  # no socket, refused, reset, timed out
        return False
    finally:
        sock.close()
    try:
        acked_id, status, _seq = wire.decode_ack(ack)
    except ValueError:
        return False
    return acked_id == event_id and status in (wire.STORED, wire.DUPLICATE)


def spool(spool_dir: str, frame: bytes, event_id: bytes, ts_ns: int) -> str:
    """Write the frame as one owner-only file, atomically: tmp name, fsync, rename.

    The daemon drains the folder in name order (ts first) and deduplicates by id, so a
    frame that reached the daemon after all (ack lost or late) is never stored twice.
    """
    _makedirs(spool_dir)
    name = f"{ts_ns:020d}-{event_id.hex()}"
    tmp = paths.join(spool_dir, "." + name + ".tmp")
    final = paths.join(spool_dir, name + ".frame")
    fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL, 0o600)
    try:
        view = memoryview(frame)
        while view:
            view = view[posix.write(fd, view) :]
        posix.fsync(fd)
    finally:
        posix.close(fd)
    posix.rename(tmp, final)
    return final


def _makedirs(path: str) -> None:
    try:
        posix.mkdir(path, 0o700)
    except FileExistsError:
        return
    except FileNotFoundError:
        _makedirs(path.rstrip("/").rpartition("/")[0])
        posix.mkdir(path, 0o700)


def _log(state_dir: str, message: str) -> None:
    """One line to the hook log; never raises (the hook must not fail Claude Code)."""
    try:
        log_path = paths.hook_log_path(state_dir)
        _makedirs(log_path.rpartition("/")[0])
        fd = posix.open(log_path, posix.O_WRONLY | posix.O_CREAT | posix.O_APPEND, 0o600)
        try:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            posix.write(fd, f"{stamp}Z pid={posix.getpid()} {message}\n".encode())
        finally:
            posix.close(fd)
    except Exception:
        pass


def parse_args(argv):
    """(runtime_dir, state_dir) from ``--runtime DIR --state DIR``; MPMD_HOME wins over both."""
    runtime = state = None
    it = iter(argv)
    for arg in it:
        if arg == "--runtime":
            runtime = next(it, None)
        elif arg == "--state":
            state = next(it, None)
    home = posix.environ.get(paths.HOME_ENV.encode())
    if home:
        home_dir = home.decode()
        return home_dir, home_dir
    return runtime, state


def run(runtime_dir: str, state_dir: str) -> None:
    ts_ns = time.time_ns()
    payload, original_size = read_stdin()
    event_id = posix.urandom(wire.ID_BYTES)
    frame = wire.encode_event(event_id, ts_ns, payload, original_size)
    if deliver(paths.socket_path(runtime_dir), frame, event_id):
        return
    spool(paths.spool_dir(state_dir), frame, event_id, ts_ns)


def main(argv=None) -> int:
    """Always 0, printing nothing: an observer must never change what Claude Code does."""
    state_dir = None
    try:
        runtime_dir, state_dir = parse_args(sys.argv[1:] if argv is None else argv)
        if not runtime_dir or not state_dir:
            raise ValueError("no MPMD_HOME and no --runtime/--state: cannot place the event")
        run(runtime_dir, state_dir)
    except BaseException as exc:  # noqa: BLE001 - swallow everything, after one log line
        if state_dir:
            _log(state_dir, f"error: {exc!r}")
    return 0


def console_main() -> None:
    """The ``mpm-hook`` console script: slower start-up, so it may resolve default paths."""
    argv = sys.argv[1:]
    if "--runtime" not in argv and not posix.environ.get(paths.HOME_ENV.encode()):
        from mpmd.config import default_dirs

        runtime_dir, state_dir = default_dirs()
        argv = [*argv, "--runtime", runtime_dir, "--state", state_dir]
    sys.exit(main(argv))
