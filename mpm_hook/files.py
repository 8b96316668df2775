"""Writing a file so that no reader ever sees half of it: a temporary name, fsync, rename.
Builtins only (``posix``), like the rest of mpm_hook."""

import posix


def write_atomically(tmp: str, final: str, data: bytes) -> None:
    """``data`` at ``final``, owner-only, whole or not at all; ``tmp`` must not exist (it
    is removed again if anything fails)."""
    fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[posix.write(fd, view):]
            posix.fsync(fd)
        finally:
            posix.close(fd)
        posix.rename(tmp, final)
    except BaseException:
        try:  # noqa: SIM105 - contextlib is not loaded under -I -S
            posix.unlink(tmp)
        except OSError:
            pass
        raise
