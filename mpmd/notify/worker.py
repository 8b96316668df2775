"""The notifier's process: ``python -m mpmd.notify.worker`` runs mpmd.notify.notifier in a
process of its own, started by the daemon (mpmd.notify.process), so that apprise (its
import, its plugins, its blocking requests) and the conditions' folding never compete with
the daemon's event loop.

It talks JSON lines with the daemon:

    stdin  {"wake": true}      the journal grew
           end of file         stop: save the state, exit
    stdout {"status": {...}}   mpmd.notify.notifier.Notifier.status, when it changed, at
                               most once a second
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import msgspec

from mpmd.notify.notifier import Notifier
from mpmd.workers import child_loop


def main(argv: list[str]) -> int:
    journal_dir, state_path, key_path, base_url, links_url, tables, start_seq = argv
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apprise").setLevel(logging.WARNING)
    # Below the daemon: on a busy machine its hooks go first (a notification can wait a
    # few milliseconds; benchmarks/notify.py).
    os.nice(10)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but messages on the channel
    key = Path(key_path).read_bytes().strip() if key_path else None
    notifier = Notifier(Path(journal_dir), Path(state_path), msgspec.json.decode(tables),
                        base_url, links_url, key, int(start_seq))
    notifier.start()

    def say(message: object) -> None:
        out.write(msgspec.json.encode(message) + b"\n")
        out.flush()

    try:
        # A wake-up is the only command there is.
        code = child_loop(lambda _line: notifier.wake(), notifier.status, say,
                          lambda: notifier.running)
    finally:
        notifier.stop()
    return code


if __name__ == "__main__":  # pragma: no cover - run by the daemon
    sys.exit(main(sys.argv[1:]))
