"""``python -P -m mpm_hook.start RUNTIME STATE``: the daemon a SessionStart hook starts
(mpm_hook.hook.start_daemon, docs/service.md "Without a service").

Run by the installation's interpreter with its site-packages (not by the hook's copy under
``-I -S``): it checks that the daemon resolves the folders the hook was given (they are
one folder, passed as MPMD_HOME, or found the way `mpmd install-hooks` found them), then
runs as ``mpmd start --foreground --log-file``; a daemon already running (another hook was
first) makes it stop at once, by the daemon's own lock.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    from mpmd.config import default_dirs

    want = tuple(os.path.normpath(p) for p in argv[:2])
    got = tuple(os.path.normpath(p) for p in default_dirs())
    if len(want) != 2 or got != want:
        print(f"mpm-hook: not starting mpmd: it would use the folders {got}, the hook "
              f"{want}", file=sys.stderr)
        return 3
    from mpmd.cli.main import main as mpmd_main

    sys.argv = ["mpmd", "start", "--foreground", "--log-file"]
    mpmd_main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
