"""Durability helpers shared by everything that writes files the user keeps."""

from __future__ import annotations

import os
from pathlib import Path

from mpm_hook.files import write_atomically


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of a crashed daemon that had our pid
    write_atomically(str(tmp), str(path), data)
