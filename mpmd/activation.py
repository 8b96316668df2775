"""Socket activation: take over the listening socket a service manager made for us.

systemd (a ``.socket`` unit, or ``systemd-socket-activate``) binds and listens on the hook
socket itself, starts the daemon on the first connection, and hands the socket over by the
LISTEN_FDS protocol (sd_listen_fds(3)), implemented here without libsystemd:

* ``LISTEN_PID`` must be our pid (otherwise the variables were meant for a parent and
  leaked to us: ignored);
* ``LISTEN_FDS`` is how many descriptors were passed, numbered from 3 (SD_LISTEN_FDS_START);
* ``LISTEN_FDNAMES``, optional, names them, colon-separated (FileDescriptorName=).

The variables are removed from the environment whatever they say, so processes we start
later do not take them for their own. Each passed descriptor is checked before we serve on
it: an AF_UNIX stream socket, listening, bound to the socket path the hook uses. One that
is not is refused with a log line saying why, and closed; the daemon then binds its own
socket as without a service manager.

The parsing and the checks are pure (an environment mapping and a socket in, a verdict
out); :func:`take_listener` is the one function with effects.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("mpmd.activation")

SD_LISTEN_FDS_START = 3
ENV_NAMES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
FD_NAME = "mpmd"  # FileDescriptorName= in mpmd.socket
MAX_FDS = 64  # far more than any unit of ours passes; a bigger count is garbage


@dataclass(frozen=True)
class Passed:
    """One descriptor passed to us, and its name (``unknown`` when none was given, as
    sd_listen_fds_with_names(3) says)."""

    fd: int
    name: str


class ActivationError(ValueError):
    """The LISTEN_* variables are meant for us but make no sense; the message says why."""


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
    kind = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    if kind != socket.SOCK_STREAM:
        return f"it is not a stream socket (type {kind}; use ListenStream=)"
    acceptconn = getattr(socket, "SO_ACCEPTCONN", None)
    if acceptconn is not None and not sock.getsockopt(socket.SOL_SOCKET, acceptconn):
        return "it is not listening (a connection socket: is Accept=yes set in the unit?)"
    bound = sock.getsockname()
    if not isinstance(bound, str) or not bound:
        return f"it is not bound to a file path (bound to {bound!r})"
    if not same_path(bound, expected_path):
        return (f"it is bound to {bound}, but this daemon's hook socket is {expected_path} "
                "(the unit and mpmd disagree on the folders: run `mpmd service install` "
                "again)")
    return None


def same_path(bound: str, expected: Path) -> bool:
    if bound == str(expected):
        return True
    # Same file through a symlinked folder (e.g. MPMD_HOME reached through a link).
    return os.path.realpath(bound) == os.path.realpath(expected)


def take_listener(expected_path: Path,
                  environ: MutableMapping[str, str] | None = None,
                  first_fd: int = SD_LISTEN_FDS_START) -> socket.socket | None:
    """The listening socket a service manager passed us for ``expected_path``, ready to
    serve (non-blocking, close-on-exec, the file owner-only), or None when there is none
    (or none usable: bind your own then). Removes the LISTEN_* variables from the
    environment in every case; closes the passed descriptors it does not use."""
    env = os.environ if environ is None else environ
    try:
        passed = parse(env, os.getpid(), first_fd)
    except ActivationError as exc:
        log.error("socket activation refused: %s; binding our own socket", exc)
        return None
    if not passed:
        return None
    chosen: socket.socket | None = None
    # The descriptor named "mpmd" is tried first; any other that passes the checks will do.
    for item in sorted(passed, key=lambda p: p.name != FD_NAME):
        try:
            sock = socket.socket(fileno=item.fd)
        except OSError as exc:
            log.error("socket activation: descriptor %d (%s) refused: it is not a socket "
                      "(%s)", item.fd, item.name, exc)
            _close_fd(item.fd)
            continue
        if chosen is not None:
            log.warning("socket activation: descriptor %d (%s) not used: mpmd serves one "
                        "socket", item.fd, item.name)
            sock.close()
            continue
        reason = check_listener(sock, expected_path)
        if reason is not None:
            log.error("socket activation: descriptor %d (%s) refused: %s", item.fd,
                      item.name, reason)
            sock.close()
            continue
        chosen = sock
    if chosen is None:
        log.error("socket activation: no usable socket among the %d passed; binding our "
                  "own socket at %s", len(passed), expected_path)
        return None
    chosen.set_inheritable(False)  # O_CLOEXEC: the index worker must not hold it
    chosen.setblocking(False)
    _owner_only(expected_path)
    log.info("listening on the socket passed by the service manager (descriptor %d, %s)",
             chosen.fileno(), expected_path)
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
