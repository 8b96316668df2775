"""The daemon's control socket: a second owner-only Unix socket (``control.sock``) that takes
one request a connection (mpmd.control.protocol: status, stop, follow, reindex, replay) and
answers in JSON lines. The other end is mpmd.control.client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import msgspec

from mpmd.control import protocol
from mpmd.control.protocol import (
    Answer,
    Done,
    Failed,
    FollowRequest,
    ReindexRequest,
    StatusRequest,
    StopRequest,
)
from mpmd.counters import Count
from mpmd.ingest import peercred
from mpmd.status import Status

FOLLOWER_MAX_BUFFER = 16 * 1024 * 1024

Report = Callable[[Answer], None]  # how a streaming command tells its progress


class Controlled(Protocol):
    """What the control socket asks of the daemon (mpmd.daemon.wiring.Daemon is one): one
    method a command. ``reindex`` and ``replay`` report Started, Progress, then Done or
    Failed as they go."""

    def status(self) -> Status: ...

    def stop(self) -> None: ...

    def journal_after(self, seq: int | None) -> Iterable[bytes]:
        """The journal's lines past ``seq`` (None: none, the journal's newest is the start)."""
        ...

    async def reindex(self, report: Report) -> None: ...

    async def replay(self, session: str, speed: float, report: Report) -> None: ...


class Followers:
    """Live journal lines pushed to `mpmd tail -f` clients. A client that falls more than
    FOLLOWER_MAX_BUFFER behind is told it lagged and dropped; it resumes from the journal."""

    def __init__(self) -> None:
        self.writers: set[asyncio.StreamWriter] = set()

    def publish(self, lines: list[bytes]) -> None:
        if not self.writers:
            return
        data = b"\n".join(lines) + b"\n"
        for writer in list(self.writers):
            transport = writer.transport
            if transport.get_write_buffer_size() > FOLLOWER_MAX_BUFFER:
                writer.write(b'{"lagged": true}\n')
                writer.close()
                self.writers.discard(writer)
            else:
                writer.write(data)


async def serve_control(path: Path, daemon: Controlled, followers: Followers,
                        counters: Counter[str], idle_timeout_s: float,
                        ) -> asyncio.AbstractServer:
    def report_to(writer: asyncio.StreamWriter) -> Report:
        return lambda answer: writer.write(protocol.encode(answer))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        uid = peercred.peer_uid(sock) if sock is not None else None
        if uid is not None and uid != os.getuid():
            counters[Count.REJECTED_FOREIGN_UID] += 1
            writer.close()
            return
        try:
            line = await asyncio.wait_for(reader.readline(), idle_timeout_s)
            request = protocol.decode(line)
            if isinstance(request, StatusRequest):
                writer.write(msgspec.json.encode(daemon.status()) + b"\n")
            elif isinstance(request, StopRequest):
                writer.write(protocol.encode(Done()))
                daemon.stop()
            elif isinstance(request, FollowRequest):
                for old in daemon.journal_after(request.after):
                    writer.write(old + b"\n")
                    await writer.drain()
                followers.writers.add(writer)
                await reader.read()  # until the client goes away
                followers.writers.discard(writer)
            elif isinstance(request, ReindexRequest):
                await daemon.reindex(report_to(writer))
            else:
                await daemon.replay(request.session, request.speed, report_to(writer))
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError) as exc:
            with contextlib.suppress(ConnectionError):
                writer.write(protocol.encode(Failed(str(exc) or type(exc).__name__)))
        finally:
            writer.close()

    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(handle, path=str(path))
    finally:
        os.umask(old_umask)
    return server

