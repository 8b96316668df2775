"""A forwarder's cursor: the seq of the last event it delivered, one decimal line in an
owner-only file (``forward/<name>.cursor`` in the state folder).

Written after each delivered batch, atomically (temporary file, fsync, rename, fsync of
the folder), so after a crash it holds either the old or the new seq, never a torn one: at
worst the batch delivered just before the crash is delivered again (at-least-once).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mpmd.durable import write_atomic

log = logging.getLogger("mpmd.forward")


def cursor_path(state_dir: Path, name: str) -> Path:
    return state_dir / "forward" / f"{name}.cursor"


def read_cursor(path: Path) -> int | None:
    """The seq stored, or None if there is no cursor yet. A damaged file counts as none:
    the forwarder starts again from the journal's start (duplicates, never a loss)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.error("forward cursor %s unreadable (%s): starting from the journal's start",
                  path.name, exc)
        return None
    value = text.strip()
    if not value.isdigit():
        log.error("forward cursor %s holds %.40r: starting from the journal's start",
                  path.name, value)
        return None
    return int(value)


def write_cursor(path: Path, seq: int) -> None:
    folder = path.parent
    if not folder.is_dir():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    write_atomic(path, f"{seq}\n".encode())
