"""Socket activation: take over the listening sockets a service manager made for us.

systemd (``.socket`` units, or ``systemd-socket-activate``) binds and listens on the hook
socket and on the http endpoint's loopback port itself, starts the daemon on the first
connection to either, and hands them over by the LISTEN_FDS protocol (sd_listen_fds(3)),
implemented here without libsystemd:

* ``LISTEN_PID`` must be our pid (otherwise the variables were meant for a parent and
  leaked to us: ignored);
* ``LISTEN_FDS`` is how many descriptors were passed, numbered from 3 (SD_LISTEN_FDS_START);
* ``LISTEN_FDNAMES``, optional, names them, colon-separated (FileDescriptorName=).

The variables are removed from the environment whatever they say, so processes we start
later do not take them for their own. The two sockets are told apart by their names
(``FileDescriptorName=mpmd`` and ``mpmd-http``; an unnamed one by its address family).
Each is checked before we serve on it: the hook socket an AF_UNIX stream socket, listening,
bound to the socket path the hook uses; the http one an AF_INET stream socket, listening,
bound to 127.0.0.1 and the port ``http_port`` says. One that is not is refused with a log
line saying why, and closed; the daemon then binds its own as without a service manager.

launchd hands sockets over differently (``launch_activate_socket(3)``, by the name of an
entry of the plist's ``Sockets``): :func:`launchd_sockets` asks it for the http one.

The parsing and the checks are pure (an environment mapping and a socket in, a verdict
out); :func:`take_listeners` (and :func:`launchd_sockets`) have the effects.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from mpmd.errors import ActivationError

log = logging.getLogger("mpmd.ingest.activation")

SD_LISTEN_FDS_START = 3
ENV_NAMES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
FD_NAME = "mpmd"  # FileDescriptorName= in mpmd.socket
HTTP_FD_NAME = "mpmd-http"  # FileDescriptorName= in mpmd-http.socket; the plist's Sockets key
HTTP_HOST = "127.0.0.1"  # the only address the http endpoint may listen on
MAX_FDS = 64  # far more than any unit of ours passes; a bigger count is garbage


@dataclass(frozen=True)
class Passed:
    """One descriptor passed to us, and its name (``unknown`` when none was given, as
    sd_listen_fds_with_names(3) says)."""

    fd: int
    name: str


def parse(environ: MutableMapping[str, str], pid: int,
          first_fd: int = SD_LISTEN_FDS_START) -> list[Passed]:
    """The descriptors the environment passes to process ``pid``, and remove the LISTEN_*
    variables from ``environ`` (always, like sd_listen_fds(unset_environment=1)).

    Returns ``[]`` when there is no activation for us (no variables, or LISTEN_PID names
    another process); raises ActivationError when the variables are for us but malformed.
    ``first_fd`` is 3 by the protocol; tests pass another.
    """
    values = {name: environ.pop(name, None) for name in ENV_NAMES}
    pid_text, count_text, names_text = (values[name] for name in ENV_NAMES)
    if pid_text is None and count_text is None:
        return []
    try:
        listen_pid = int(pid_text or "")
    except ValueError:
        raise ActivationError(f"LISTEN_PID={pid_text!r} is not a pid") from None
    if listen_pid != pid:
        return []  # meant for the process that started us, or leaked from further up
    try:
        count = int(count_text or "")
    except ValueError:
        raise ActivationError(f"LISTEN_FDS={count_text!r} is not a number") from None
    if not 0 <= count <= MAX_FDS:
        raise ActivationError(f"LISTEN_FDS={count} is out of range (0 to {MAX_FDS})")
    names = names_text.split(":") if names_text else []
    if names and len(names) != count:
        # sd_listen_fds_with_names(3) refuses this too: the names cannot be matched up.
        raise ActivationError(f"LISTEN_FDNAMES has {len(names)} names for {count} "
                              "descriptors")
    return [Passed(first_fd + i, names[i] if names else "unknown") for i in range(count)]


def check_listener(sock: socket.socket, expected_path: Path) -> str | None:
    """Why ``sock`` cannot be the daemon's hook socket at ``expected_path``, or None if it
    can: it must be an AF_UNIX stream socket, listening, bound to that path."""
    if sock.family != socket.AF_UNIX:
        return f"it is not a Unix socket (family {sock.family!r})"
    problem = _not_listening_stream(sock)
    if problem:
        return problem
    bound = sock.getsockname()
    if not isinstance(bound, str) or not bound:
        return f"it is not bound to a file path (bound to {bound!r})"
    if not same_path(bound, expected_path):
        return (f"it is bound to {bound}, but this daemon's hook socket is {expected_path} "
                "(the unit and mpmd disagree on the folders: run `mpmd service install` "
                "again)")
    return None


def _not_listening_stream(sock: socket.socket) -> str | None:
    """Why a passed socket is not a listening stream socket, or None."""
    kind = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    if kind != socket.SOCK_STREAM:
        return f"it is not a stream socket (type {kind}; use ListenStream=)"
    acceptconn = getattr(socket, "SO_ACCEPTCONN", None)
    if acceptconn is not None and not sock.getsockopt(socket.SOL_SOCKET, acceptconn):
        return "it is not listening (a connection socket: is Accept=yes set in the unit?)"
    return None


def same_path(bound: str, expected: Path) -> bool:
    if bound == str(expected):
        return True
    # Same file through a symlinked folder (e.g. MPMD_HOME reached through a link).
    return os.path.realpath(bound) == os.path.realpath(expected)


@dataclass
class Listeners:
    """What the service manager passed us, checked: the hook socket and the http endpoint's
    socket, each None when not passed (or refused: bind your own then)."""

    hook: socket.socket | None = None
    http: socket.socket | None = None


def check_http_listener(sock: socket.socket, http_port: int) -> str | None:
    """Why ``sock`` cannot be the http endpoint's socket for ``http_port`` (0: any port),
    or None if it can: an AF_INET stream socket, listening, bound to 127.0.0.1 and that
    port (never another address: the endpoint is for this machine's processes only)."""
    if sock.family != socket.AF_INET:
        return f"it is not an IPv4 socket (family {sock.family!r}; use 127.0.0.1:<port>)"
    problem = _not_listening_stream(sock)
    if problem:
        return problem
    host, port = sock.getsockname()[:2]
    if host != HTTP_HOST:
        return (f"it is bound to {host}:{port}; the http endpoint listens on {HTTP_HOST} "
                "only")
    if http_port < 0:
        return "http_port is off (-1) in mpmd's settings"
    if http_port and port != http_port:
        return (f"it is bound to port {port}, but this daemon's http_port is {http_port} "
                "(the unit and mpmd disagree: run `mpmd service install` again)")
    return None


def _kind(sock: socket.socket, name: str) -> str:
    """Which of ours a passed socket is meant to be: by its name, else by its family."""
    if name == FD_NAME:
        return "hook"
    if name == HTTP_FD_NAME:
        return "http"
    return "http" if sock.family in (socket.AF_INET, socket.AF_INET6) else "hook"


def take_listeners(expected_path: Path, http_port: int | None = None,
                   environ: MutableMapping[str, str] | None = None,
                   first_fd: int = SD_LISTEN_FDS_START) -> Listeners:
    """The listening sockets a service manager passed us, ready to serve (non-blocking,
    close-on-exec, the socket file owner-only): the hook socket for ``expected_path`` and,
    when ``http_port`` is given, the http endpoint's for that port. Removes the LISTEN_*
    variables from the environment in every case; closes the passed descriptors it does
    not use."""
    env = os.environ if environ is None else environ
    out = Listeners()
    try:
        passed = parse(env, os.getpid(), first_fd)
    except ActivationError as exc:
        log.error("socket activation refused: %s; binding our own sockets", exc)
        return out
    if not passed:
        return out
    # Named descriptors first: an unnamed one fills a place only if no named one did.
    for item in sorted(passed, key=lambda p: p.name not in (FD_NAME, HTTP_FD_NAME)):
        try:
            sock = socket.socket(fileno=item.fd)
        except OSError as exc:
            log.error("socket activation: descriptor %d (%s) refused: it is not a socket "
                      "(%s)", item.fd, item.name, exc)
            _close_fd(item.fd)
            continue
        kind = _kind(sock, item.name)
        if getattr(out, kind) is not None:
            log.warning("socket activation: descriptor %d (%s) not used: mpmd serves one "
                        "%s socket", item.fd, item.name, kind)
            sock.close()
            continue
        if kind == "http" and http_port is None:
            reason: str | None = "this daemon takes no http socket"
        elif kind == "http":
            assert http_port is not None
            reason = check_http_listener(sock, http_port)
        else:
            reason = check_listener(sock, expected_path)
        if reason is not None:
            log.error("socket activation: descriptor %d (%s) refused: %s", item.fd,
                      item.name, reason)
            sock.close()
            continue
        sock.set_inheritable(False)  # O_CLOEXEC: the index worker must not hold it
        sock.setblocking(False)
        setattr(out, kind, sock)
    if out.hook is None:
        log.error("socket activation: no usable hook socket among the %d passed; binding "
                  "our own socket at %s", len(passed), expected_path)
    else:
        _owner_only(expected_path)
        log.info("listening on the socket passed by the service manager (descriptor %d, %s)",
                 out.hook.fileno(), expected_path)
    if out.http is not None:
        host, port = out.http.getsockname()[:2]
        log.info("http endpoint on the socket passed by the service manager (descriptor %d, "
                 "%s:%d)", out.http.fileno(), host, port)
    return out


def take_listener(expected_path: Path,
                  environ: MutableMapping[str, str] | None = None,
                  first_fd: int = SD_LISTEN_FDS_START) -> socket.socket | None:
    """The hook socket alone (:func:`take_listeners` without an http port): None when
    there is none usable (bind your own then)."""
    return take_listeners(expected_path, None, environ, first_fd).hook


# ---- launchd ------------------------------------------------------------------------------
def launchd_sockets(name: str, lib: object | None = None) -> list[socket.socket]:
    """The sockets launchd made for the plist's ``Sockets`` entry ``name``
    (launch_activate_socket(3), macOS 10.9 and later), or [] when launchd did not start
    us or has no such entry. ``lib`` stands in for libSystem in tests."""
    import ctypes

    if lib is None:
        if sys.platform != "darwin":
            return []
        try:
            lib = ctypes.CDLL("/usr/lib/libSystem.B.dylib", use_errno=True)
        except OSError as exc:
            log.warning("launchd: cannot load libSystem (%s)", exc)
            return []
    try:
        activate = lib.launch_activate_socket  # type: ignore[attr-defined]
        free = lib.free  # type: ignore[attr-defined]
    except AttributeError:
        return []  # a system without it
    activate.argtypes = (ctypes.c_char_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_int)),
                         ctypes.POINTER(ctypes.c_size_t))
    activate.restype = ctypes.c_int
    free.argtypes = (ctypes.c_void_p,)
    free.restype = None
    fds = ctypes.POINTER(ctypes.c_int)()
    count = ctypes.c_size_t(0)
    err = activate(name.encode(), ctypes.byref(fds), ctypes.byref(count))
    if err != 0:
        # ESRCH: not started by launchd; ENOENT: no such entry (an older plist); EALREADY:
        # taken before. None of them is an error for a daemon that can bind its own.
        if err not in (errno.ESRCH, errno.ENOENT):
            log.warning("launchd: launch_activate_socket(%s) failed: %s", name,
                        os.strerror(err))
        return []
    try:
        numbers = [fds[i] for i in range(count.value)]
    finally:
        free(ctypes.cast(fds, ctypes.c_void_p))
    out = []
    for fd in numbers:
        try:
            out.append(socket.socket(fileno=fd))
        except OSError as exc:
            log.error("launchd: descriptor %d of %s is not a socket (%s)", fd, name, exc)
            _close_fd(fd)
    return out


def take_launchd_http(http_port: int, lib: object | None = None) -> socket.socket | None:
    """The http endpoint's socket from launchd (the plist's ``Sockets`` entry
    ``mpmd-http``), checked as a systemd one is, or None."""
    chosen = None
    for sock in launchd_sockets(HTTP_FD_NAME, lib):
        reason = "mpmd serves one http socket" if chosen is not None else (
            check_http_listener(sock, http_port))
        if reason is not None:
            log.error("launchd: socket %s refused: %s", sock.getsockname(), reason)
            sock.close()
            continue
        sock.set_inheritable(False)
        sock.setblocking(False)
        chosen = sock
    if chosen is not None:
        log.info("http endpoint on the socket passed by launchd (%s:%d)",
                 *chosen.getsockname()[:2])
    return chosen


def _owner_only(path: Path) -> None:
    """The unit says SocketMode=0600; a manager that made it looser (systemd-socket-activate
    follows its umask) gets it tightened: the peer uid is checked anyway, this is the
    first fence."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISSOCK(mode) and mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("the passed socket %s was mode %o: made it 0600", path,
                        stat.S_IMODE(mode))
    except OSError as exc:
        log.warning("could not check the passed socket's mode (%s)", exc)


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
