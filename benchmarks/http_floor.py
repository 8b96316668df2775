"""The http floor that benchmarks/ingest.py measures the daemon's http endpoint against.

The daemon's own endpoint (mpmd.ingest.http_endpoint.HttpIngest: accept, the peer's uid by
sock_diag, httptools, the checks of docs/security.md, the answer) over a store that keeps
nothing (floor_server.NullStore: every event STORED). Whatever CPU the daemon spends per
http event above this one is the price of its per-event work: decode, enrich, redact, ring,
journal, broadcaster.

    python benchmarks/http_floor.py STATE_DIR READY_FD   (SIGTERM stops it)

It listens on a free port of 127.0.0.1, makes its token in STATE_DIR/http.token as the
daemon does, and writes ``ready <port>`` on READY_FD.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # PYTHONSAFEPATH (--source) leaves it out

from floor_server import NullStore  # noqa: E402

from mpm_hook import wire  # noqa: E402
from mpmd.daemon.wiring import new_event_loop  # noqa: E402
from mpmd.durable import load_or_create_token  # noqa: E402
from mpmd.ingest.http_endpoint import HttpIngest  # noqa: E402


async def serve(state_dir: Path, ready_fd: int) -> None:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    spool = state_dir / "floor-spool"
    spool.mkdir(mode=0o700, exist_ok=True)
    token = load_or_create_token(state_dir / "http.token")
    server = HttpIngest(NullStore(), Counter(), port=0,  # type: ignore[arg-type]
                        token=token, max_frame_bytes=wire.MAX_FRAME_BYTES,
                        idle_timeout_s=5.0, max_connections=1024, state_dir=state_dir,
                        spool_dir=spool, spool_wakeup=lambda: None)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    os.write(ready_fd, f"ready {server.port}\n".encode())
    os.close(ready_fd)
    await stop.wait()
    server.stop_listening()
    server.abort_all()


if __name__ == "__main__":
    loop = new_event_loop()
    loop.run_until_complete(serve(Path(sys.argv[1]), int(sys.argv[2])))
    loop.close()
