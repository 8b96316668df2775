"""The hook's one job: get the event to the daemon, or onto disk, and get out of the way.

    read stdin (bounded) -> [policy] -> frame -> send over the Unix socket -> wait for the ack
                                                   \\-- any failure --> spool file (tmp + rename)
    exit 0, printing nothing, or the policy's decision

The policy (docs/policy.md) is looked at only for PreToolUse and PermissionRequest events, and
costs nothing but one failed ``open`` when there is none: without a compiled policy in the
state folder the hook only observes, as it always did. With one, mpm_hook.policy decides;
the decision travels in the frame (journaled with the rule that made it) and is printed
after the event is delivered or spooled. Any error in the policy's path means: observe.

Cost is the product's promise (Claude Code waits for us on every event), so this module
imports only what a ``python -I -S`` interpreter has already loaded (``sys``, ``time``,
``_signal``, ``posix``) plus ``_socket``. No ``os``, no ``json``, no ``socket`` wrapper.

Worst case, documented in docs/protocol.md: STDIN_TIMEOUT_S to read a stdin that never
closes, plus SOCKET_TIMEOUT_S for connect + send + ack, plus one spool write with fsync.

With ``--start-daemon`` (install-hooks gives it to the SessionStart command when Claude
Code's other hooks are http ones, which cannot spool), a SessionStart that finds no daemon
starts one, detached, and waits (START_WAIT_S at most) until it accepts events, so that the
session's http hooks find it. Only after the delivery failed: the usual run pays nothing.
"""

import _signal
import posix
import sys
import time

from mpm_hook import paths, wire

STDIN_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 1.0
# Past a remote rule's timeout_s, how long the hook still waits for the daemon's own
# "no answer" (sent at timeout_s) before it gives up by itself.
REMOTE_GRACE_S = 5.0
_READ_CHUNK = 1 << 16
START_FLAG = "--start-daemon"
# How long a SessionStart that started the daemon waits for it to accept events.
START_WAIT_S = 5.0


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


def payload_limit(state_dir: str) -> int:
    """How much of a payload to keep so the frame fits the daemon's max_frame_bytes, as the
    daemon last published it (wire.FRAME_LIMIT_NAME in the state folder). Without it (no
    daemon ever started here), the wire's ceiling: the daemon cuts what still does not fit.
    One small read, instead of parsing config.toml (tomllib) on Claude Code's clock."""
    try:
        fd = posix.open(paths.join(state_dir, wire.FRAME_LIMIT_NAME), posix.O_RDONLY)
    except OSError:
        return wire.MAX_PAYLOAD_BYTES
    try:
        data = posix.read(fd, 32)
    except OSError:
        data = b""
    finally:
        posix.close(fd)
    return wire.payload_limit(wire.parse_frame_limit(data))


def deliver(socket_path: str, frame: bytes, event_id: bytes, timeout_s: float = SOCKET_TIMEOUT_S,
            hold=None):
    """True when the daemon acked the event as stored (or already stored).

    ``hold``: a callable given the still open socket once the event is acked, before it is
    closed (the remote wait, see remote_decision); with it, the hook keeps its sending side
    open, so the daemon knows this hook waits for more than its ack.
    """
    import _socket  # the one C module the hot path needs; ~0.7 ms, so only here

    deadline = time.monotonic() + timeout_s
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout_s)
        sock.connect(socket_path)
        sock.sendall(frame)
        if hold is None:
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
        try:
            acked_id, status, _seq = wire.decode_ack(ack)
        except ValueError:
            return False
        stored = acked_id == event_id and status in (wire.STORED, wire.DUPLICATE)
        if stored and hold is not None:
            hold(sock)
        return stored
    except OSError:  # no socket, refused, reset, timed out
        return False
    finally:
        sock.close()


def spool(spool_dir: str, frame: bytes, event_id: bytes, ts_ns: int) -> str:
    """Write the frame as one owner-only file, atomically: tmp name, fsync, rename.

    The daemon drains the folder in name order (ts first) and deduplicates by id, so a
    frame that reached the daemon after all (ack lost or late) is never stored twice.
    """
    _makedirs(spool_dir)
    name = f"{ts_ns:020d}-{event_id.hex()}"
    tmp = paths.join(spool_dir, "." + name + ".tmp")
    final = paths.join(spool_dir, name + ".frame")
    from mpm_hook.files import write_atomically  # the spool path only

    write_atomically(tmp, final, frame)
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


def decide(state_dir: str, payload: bytes):
    """The policy's Decision for this event (mpm_hook.policy), or None: no compiled policy
    (one failed open, the whole cost of having none), an event no rule matches, or any
    error (logged; the hook then only observes). Never raises."""
    compiled = paths.policy_compiled_path(state_dir)
    try:
        fd = posix.open(compiled, posix.O_RDONLY)
    except OSError:
        return None
    note = None
    decision = None
    try:
        from mpm_hook import policy

        decision, note = policy.decide_for_hook(fd, compiled, payload, posix.environ,
                                                 _recompile)
    except Exception as exc:  # noqa: BLE001 - a broken policy must never break the hook
        note = f"policy error, observing: {exc!r}"
    finally:
        posix.close(fd)
    if note:
        _log(state_dir, note)
    return decision


def _recompile(source, compiled_path):
    """mpm_hook.policy_compile.refresh, imported only when policy.toml changed since it was
    compiled (tomllib: ~20 ms, once per change of the file)."""
    from mpm_hook import policy_compile

    return policy_compile.refresh(source, compiled_path)


def remote_decision(sock, event_id: bytes, decision):
    """The viewer's answer to a ``remote`` rule's request (docs/policy.md): (behavior,
    message) to print, or None for no decision (Claude Code then asks in the terminal).

    Called once the daemon has acked the event, with the connection still open (this hook
    did not shut down its sending side, which tells the daemon it waits). The daemon answers
    within the rule's timeout_s, with an answer, or with "none" when the time runs out or
    no viewer is open; the hook's own deadline, a little later, covers a daemon that hangs,
    and a daemon that dies closes the socket: None at once.
    """
    from mpm_hook import remote

    deadline = time.monotonic() + decision.timeout_s + REMOTE_GRACE_S
    behavior, message = remote.read_answer(sock, event_id, deadline, time.monotonic)
    if behavior == remote.ALLOW:
        return "allow", message
    if behavior == remote.DENY:
        return "deny", message
    return None


def run(runtime_dir: str, state_dir: str, start: bool = False) -> None:
    ts_ns = time.time_ns()
    payload, original_size = read_stdin()
    if len(payload) > wire.MIN_PAYLOAD_BYTES:  # shorter fits any daemon's limit
        payload = payload[:payload_limit(state_dir)]
    event_id = posix.urandom(wire.ID_BYTES)
    decision = hold = verdict = None
    # Only these two events are decided; a cut payload cannot be read, so it never is.
    if original_size == len(payload) and (
            b'"PreToolUse"' in payload or b'"PermissionRequest"' in payload):
        decision = decide(state_dir, payload)
    if decision is None:
        frame = wire.encode_event(event_id, ts_ns, payload, original_size)
    else:
        frame, hold, verdict = _decided_frame(state_dir, event_id, ts_ns, payload,
                                              original_size, decision)
    try:
        if not deliver(paths.socket_path(runtime_dir), frame, event_id, hold=hold):
            spool(paths.spool_dir(state_dir), frame, event_id, ts_ns)
            if start and b'"SessionStart"' in payload:
                start_daemon(runtime_dir, state_dir)
    finally:  # a decision holds even when the event could not be kept (logged by main)
        if decision is not None:
            _print(decision.output(verdict[0] if verdict else None))


def _decided_frame(state_dir, event_id, ts_ns, payload, original_size, decision):
    """(frame with the decision, hold for deliver, a list the remote verdict lands in)."""
    try:
        frame = wire.encode_event(event_id, ts_ns, payload, original_size, decision.record())
    except Exception as exc:  # noqa: BLE001 - cannot happen; the event matters more
        _log(state_dir, f"decision not journaled: {exc!r}")
        frame = wire.encode_event(event_id, ts_ns, payload, original_size)
    if decision.action != "remote":
        return frame, None, None
    verdict = []

    def hold(sock):
        try:
            answer = remote_decision(sock, event_id, decision)
        except Exception as exc:  # noqa: BLE001 - no answer: Claude Code asks as usual
            _log(state_dir, f"remote decision failed, no decision: {exc!r}")
            answer = None
        if answer is not None:
            verdict.append(answer)

    return frame, hold, verdict


# ---- starting the daemon (SessionStart with --start-daemon, the daemon down) ---------------
def service_files(environ=None):
    """The service files of `mpmd service install` found for this user: a service manager
    owns the daemon (its socket unit starts it; a stopped unit is the user's choice)."""
    env = posix.environ if environ is None else environ
    home = (env.get(b"HOME") or b"").decode()
    config = (env.get(b"XDG_CONFIG_HOME") or b"").decode() or (home + "/.config")
    found = []
    for path in (config + "/systemd/user/mpmd.socket", config + "/systemd/user/mpmd-http.socket",
                 home + "/Library/LaunchAgents/local.mpmd.daemon.plist"):
        try:
            posix.stat(path)
        except OSError:
            continue
        found.append(path)
    return found


def daemon_running(runtime_dir: str) -> bool:
    """Whether a daemon holds the folder's lock (running, or starting: it takes the lock
    first). The daemon's own lock is what keeps a second one from starting; this only
    spares the start of a process that would stop at once."""
    import fcntl

    try:
        fd = posix.open(paths.join(runtime_dir, "mpmd.lock"), posix.O_RDONLY)
    except OSError:
        return False  # never started here (or the runtime folder is gone): not running
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        posix.close(fd)  # closing drops a lock we took
    return False


def _listens(socket_path: str) -> bool:
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(0.2)
        sock.connect(socket_path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def start_daemon(runtime_dir: str, state_dir: str, wait_s: float = START_WAIT_S) -> str:
    """Start the daemon, detached, unless one runs or a service manager owns it; wait
    until it accepts events (``wait_s`` at most). What happened, in a word (logged unless
    it started). Never raises."""
    try:
        owned = service_files()
        if owned:
            _log(state_dir, f"daemon down, not started: a service manager owns it ({owned[0]})")
            return "service"
        if daemon_running(runtime_dir) or _listens(paths.socket_path(runtime_dir)):
            return "running"  # another hook started it, or it is slow: not ours to start
        started = time.monotonic()
        outcome = _spawn(runtime_dir, state_dir, wait_s)
        _log(state_dir, f"SessionStart found no daemon and started one: {outcome} after "
                        f"{time.monotonic() - started:.2f} s")
        return outcome
    except Exception as exc:  # noqa: BLE001 - the hook must not fail Claude Code
        _log(state_dir, f"could not start the daemon: {exc!r}")
        return "failed"


def _spawn(runtime_dir: str, state_dir: str, wait_s: float) -> str:
    """Double fork and setsid: the daemon belongs to no session of Claude Code's and holds
    none of its pipes (stdin from /dev/null, output to the daemon's log). It tells us on a
    pipe when it accepts events (MPMD_READY_FD, as `mpmd start` does)."""
    env = dict(posix.environ)
    env[b"MPMD_READY_FD"] = b"3"
    if runtime_dir == state_dir and paths.HOME_ENV.encode() not in env:
        env[paths.HOME_ENV.encode()] = runtime_dir.encode()  # the hook's one folder
    log_dir = paths.join(state_dir, paths.LOG_NAME)
    _makedirs(log_dir)
    # mpm_hook.start checks the folders, then runs `mpmd start --foreground --log-file`.
    argv = [sys.executable, "-P", "-m", "mpm_hook.start", runtime_dir, state_dir]
    read_end, write_end = posix.pipe()
    pid = posix.fork()
    if pid == 0:  # pragma: no cover - the child's side (it execs or exits)
        try:
            posix.setsid()
            if posix.fork():
                posix._exit(0)
            null = posix.open("/dev/null", posix.O_RDWR)
            out = posix.open(paths.join(log_dir, "mpmd.log"),
                             posix.O_WRONLY | posix.O_CREAT | posix.O_APPEND, 0o600)
            posix.dup2(null, 0)
            posix.dup2(out, 1)
            posix.dup2(out, 2)
            if write_end == 3:
                posix.set_inheritable(3, True)
            else:
                posix.dup2(write_end, 3)  # inheritable: the daemon's ready pipe
            posix.closerange(4, 1 << 16)
            posix.chdir("/")
            posix.umask(0o077)
            posix.execve(argv[0], argv, env)
        finally:
            posix._exit(127)
    posix.close(write_end)
    try:
        posix.waitpid(pid, 0)  # the first child, which exits at once
        return _await_ready(read_end, runtime_dir, wait_s)
    finally:
        posix.close(read_end)


def _await_ready(read_end: int, runtime_dir: str, wait_s: float) -> str:
    import select

    deadline = time.monotonic() + wait_s
    got = b""
    while b"\n" not in got:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
            return "slow"  # it goes on starting; the hooks that come first may miss it
        chunk = posix.read(read_end, 64)
        if not chunk:
            break  # it exited: another hook's daemon took the lock first, or it failed
        got += chunk
    if b"ready" in got:
        return "started"
    while time.monotonic() < deadline:  # the other daemon's start, if one is starting
        if _listens(paths.socket_path(runtime_dir)):
            return "running"
        time.sleep(0.05)
    return "exited"


def _print(data) -> None:
    """The decision on stdout, whole, for Claude Code (nothing when ``data`` is None)."""
    if not data:
        return
    view = memoryview(data)
    while view:
        view = view[posix.write(1, view):]


def main(argv=None) -> int:
    """Always 0. Prints nothing unless a policy rule decided the event (docs/policy.md):
    an observer must never change what Claude Code does."""
    state_dir = None
    try:
        args = sys.argv[1:] if argv is None else argv
        runtime_dir, state_dir = parse_args(args)
        if not runtime_dir or not state_dir:
            raise ValueError("no MPMD_HOME and no --runtime/--state: cannot place the event")
        run(runtime_dir, state_dir, START_FLAG in args)
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
