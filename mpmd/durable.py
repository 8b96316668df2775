"""Writing files that must survive a crash: the one way mpmd writes a file whole.

Every file mpmd writes in one piece (settings.json, policy.toml, unit files, tokens,
cursors, saved searches, the pid file, the hook's copy) goes through ``write_atomic``. The
hook has its stdlib twin, mpm_hook.files.write_atomically (it must not import mpmd).
Append-only files (the journal, logs) and files built by a library (the search index, a
gzipped segment) keep their own ways, each with its fsyncs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
from pathlib import Path

log = logging.getLogger("mpmd.durable")


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600,
                 owner: tuple[int, int] | None = None, replace: bool = True) -> None:
    """``data`` at ``path``, whole or not at all, and still there after a crash once this
    returns. Written to a new file beside it (a name no other writer picks), every byte
    (short writes go on), fsynced, given ``mode`` whatever the umask (and ``owner``, when
    allowed: a file of another user edited with sudo stays theirs), then renamed over
    ``path`` (``replace=False``: linked to it, FileExistsError when it exists, so nothing is
    overwritten), and the folder fsynced, so that the rename survives too. The new file is
    removed on any failure. OSError when it cannot be written."""
    folder = path.parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)
            if owner is not None and owner != (os.geteuid(), os.getegid()):
                with contextlib.suppress(PermissionError):
                    os.fchown(fd, *owner)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def load_or_create_token(path: Path) -> str:
    """A bearer token kept in ``path``: 256 random bits as 64 hex digits, owner-only, made
    when missing. A file others could read (or that is not such a token) is replaced: a
    token anyone else may have seen protects nothing."""
    try:
        st = path.stat()
        token = path.read_text().strip()
        if st.st_mode & 0o077 == 0 and st.st_uid == os.getuid() and len(token) == 64 \
                and all(c in "0123456789abcdef" for c in token):
            return token
        log.warning("%s was readable by others or damaged: making a new token", path)
    except FileNotFoundError:
        pass
    token = secrets.token_hex(32)
    write_atomic(path, token.encode() + b"\n")
    return token


def fsync_dir(directory: Path) -> None:
    """Make a create, rename or unlink in ``directory`` durable (best effort: some systems
    cannot open or fsync a folder)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_owner_only_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents 0700 whatever the umask (OSError naming
    the folder that could not be made). Existing folders are left as they are: the
    caller decides whether to trust them."""
    missing = []
    at = folder
    while not os.path.lexists(at) and at != at.parent:
        missing.append(at)
        at = at.parent
    for new in reversed(missing):
        try:
            os.mkdir(new, 0o700)
        except FileExistsError:
            continue  # made meanwhile (another start): the caller checks it like any other
        os.chmod(new, 0o700)  # the umask may have taken bits mkdir asked for


def publish(path: Path, data: bytes) -> None:
    """Replace the small file ``path`` with ``data``, whole (a reader never sees half of
    it), unless it holds that already: what the daemon tells hooks and commands (its frame
    limit, its http port). Created 0600. OSError when it cannot be written."""
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    write_atomic(path, data)
