"""The transport floor that benchmarks/ingest.py measures mpmd against, in the same run.

The daemon's own socket server (mpmd.ingest.hook_socket: raw accept, peer check, frame
decoding, acks)
over a store that keeps nothing and acks every frame STORED. Whatever rate mpmd reaches
below this one is the price of its per-event work: dedup, parse, enrich, redact, ring,
journal.

    python benchmarks/floor_server.py SOCKET_PATH READY_FD   (SIGTERM stops it)
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections import Counter
from pathlib import Path

from mpm_hook import wire
from mpmd.daemon.wiring import new_event_loop
from mpmd.ingest.hook_socket import IngestServer, Rejects
from mpmd.model.events import EventFrame


class NullStore:
    def __init__(self) -> None:
        self.seq = 0

    def put(self, frame: EventFrame, source: str = "hook",
            received_ns: int | None = None) -> tuple[int, int]:
        self.seq += 1
        return wire.STORED, self.seq


async def serve(path: str, ready_fd: int) -> None:
    counters: Counter[str] = Counter()
    rejects = Rejects(Path(path).parent / "floor-rejected", counters)
    server = IngestServer(NullStore(), rejects, counters,  # type: ignore[arg-type]
                          max_frame_bytes=wire.MAX_FRAME_BYTES, idle_timeout_s=30.0,
                          max_connections=1024)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1024)
    listener.setblocking(False)
    server.start(listener)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    await stop.wait()
    server.stop_listening()
    server.abort_all()
    os.unlink(path)


if __name__ == "__main__":
    loop = new_event_loop()
    loop.run_until_complete(serve(sys.argv[1], int(sys.argv[2])))
    loop.close()
