"""The transcript follower's process: ``python -m mpmd.transcripts.worker`` runs
mpmd.transcripts.follower.Follower in a process of its own, started by the daemon
(mpmd.transcripts.process), so that reading the journal and the transcripts never competes
with the daemon's event loop for the interpreter. As a thread of the daemon it did: at full
load the hook socket took a fifth fewer events a second (docs/benchmarks.md).

It talks JSON lines with the daemon:

    stdin  {"wake": true}      the journal grew
           {"stored": n}       batch n is stored (or spooled): the follower goes on
           end of file         stop: save the positions, exit
    stdout {"batch": n, "events": [[id hex, payload, ts_ns], ...]}
           {"status": {...}}   what mpmd.transcripts.follower.Follower.status says, when it
                               changed, at most once a second
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import BinaryIO

import msgspec

from mpmd.transcripts.follower import Follower
from mpmd.transcripts.prices import Price, PriceTable
from mpmd.workers import child_loop

# A batch's payloads, at most: a line of the channel stays far below the 64 MiB the daemon
# reads (a payload is at most about a transcript line, 4 MiB).
BATCH_BYTES = 8 * 1024 * 1024


def batches(events: list[tuple[bytes, bytes, int]],
            most: int) -> list[list[tuple[bytes, bytes, int]]]:
    """``events`` in order, in parts whose payloads add up to at most ``most`` bytes (an event
    larger than that alone in its part)."""
    parts: list[list[tuple[bytes, bytes, int]]] = []
    size = most
    for event in events:
        if size + len(event[1]) > most or not parts:
            parts.append([])
            size = 0
        parts[-1].append(event)
        size += len(event[1])
    return parts


class Channel:
    """The worker's end of the pipes: one batch in flight, the follower's thread waiting
    for its answer."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.write_lock = threading.Lock()
        self.answered = threading.Condition()
        self.batch = 0
        self.stored = 0
        self.closed = False

    def say(self, message: object) -> None:
        line = msgspec.json.encode(message) + b"\n"
        with self.write_lock:
            self.out.write(line)
            self.out.flush()

    def submit(self, events: list[tuple[bytes, bytes, int]]) -> bool:
        """The follower's ``submit``: send the events in batches of at most BATCH_BYTES of
        payload (the daemon reads a line of at most 64 MiB), each once the daemon stored
        the one before."""
        return all(self._send_batch(part) for part in batches(events, BATCH_BYTES))

    def _send_batch(self, events: list[tuple[bytes, bytes, int]]) -> bool:
        with self.answered:
            if self.closed:
                return False
            self.batch += 1
            batch = self.batch
        try:
            self.say({"batch": batch, "events": [(eid.hex(), msgspec.Raw(payload), ts)
                                                 for eid, payload, ts in events]})
        except (OSError, ValueError):  # the daemon went away
            return False
        with self.answered:
            self.answered.wait_for(lambda: self.stored >= batch or self.closed)
            return self.stored >= batch

    def take(self, line: bytes, follower: Follower) -> None:
        try:
            command = msgspec.json.decode(line)
        except msgspec.DecodeError:
            return
        if not isinstance(command, dict):
            return
        if command.get("wake"):
            follower.wake()
        stored = command.get("stored")
        if isinstance(stored, int):
            with self.answered:
                self.stored = max(self.stored, stored)
                self.answered.notify_all()

    def close(self) -> None:
        with self.answered:
            self.closed = True
            self.answered.notify_all()


def main(argv: list[str]) -> int:
    journal_dir, state_path, roots, wait_s, prices = argv
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but messages on the channel
    channel = Channel(out)
    follower = Follower(
        Path(journal_dir), Path(state_path), channel.submit,
        PriceTable(msgspec.json.decode(prices, type=dict[str, Price])),
        [Path(r) for r in roots.split(os.pathsep) if r] or None, float(wait_s))
    follower.start()
    try:
        code = child_loop(lambda line: channel.take(line, follower), follower.status,
                          channel.say, lambda: follower.running)
    finally:
        channel.close()
        follower.stop()
    return code


if __name__ == "__main__":  # pragma: no cover - run by the daemon
    sys.exit(main(sys.argv[1:]))
