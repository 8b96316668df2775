"""The daemon's control socket: a second owner-only Unix socket (``control.sock``) that takes
one request a connection (mpmd.control.protocol: status, stop, follow, reindex, replay) and
answers in JSON lines. The other end is mpmd.control.client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Protocol

import msgspec

from mpmd.config import Settings
from mpmd.control import protocol
from mpmd.control.protocol import (
    FollowRequest,
    ReindexRequest,
    ReplayRequest,
    StatusRequest,
    StopRequest,
)
from mpmd.counters import Count
from mpmd.history.indexer import Indexer
from mpmd.ingest import peercred
from mpmd.serve.broadcast import Broadcaster
from mpmd.status import Status
from mpmd.storage.journal import Journal

FOLLOWER_MAX_BUFFER = 16 * 1024 * 1024


class Controlled(Protocol):
    """What the control socket needs of the daemon (mpmd.daemon.wiring.Daemon is one): its
    status, the event that stops it, and the parts that follow, reindex and replay use."""

    settings: Settings
    counters: Counter[str]
    stopping: asyncio.Event
    journal: Journal
    followers: Followers
    indexer: Indexer
    broadcaster: Broadcaster

    def status(self) -> Status: ...


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


async def _reindex(daemon: Controlled, writer: asyncio.StreamWriter) -> None:
    """Rebuild the search index in the index worker, streaming its progress."""
    first = daemon.journal.first_seq or 1
    total = max(0, daemon.journal.last_seq - first + 1)
    writer.write(json.dumps({"total": total}).encode() + b"\n")
    shown = 0

    def progress(done: int) -> None:  # cumulative from the worker; steps to the client
        nonlocal shown
        writer.write(json.dumps({"indexed": done - shown}).encode() + b"\n")
        shown = done

    try:
        last_seq = await daemon.indexer.rebuild(progress)
    except Exception as exc:  # the worker's own words: a busy or failed rebuild, or its end
        writer.write(json.dumps({"error": f"rebuild failed: {exc}"}).encode() + b"\n")
        return
    writer.write(json.dumps({"done": True, "last_seq": last_seq}).encode() + b"\n")


async def _replay(daemon: Controlled, writer: asyncio.StreamWriter,
                  request: ReplayRequest) -> None:
    """Replay one session to the connected viewers (mpmd.serve.replay), streaming progress."""
    from mpmd.history import index
    from mpmd.serve import replay

    speed = request.speed
    if not speed > 0:
        raise ValueError("speed must be above 0")
    path = daemon.settings.index_path

    def read() -> list[bytes]:
        conn = index.connect_read_only(path)
        try:
            return index.session_lines(conn, request.session)
        finally:
            conn.close()

    if not path.exists():
        writer.write(b'{"error": "no search index yet"}\n')
        return
    try:
        lines = await asyncio.to_thread(read)
    except LookupError as exc:
        writer.write(json.dumps({"error": str(exc)}).encode() + b"\n")
        return
    session_id = json.loads(lines[0]).get("session_id")
    writer.write(json.dumps({"total": len(lines), "session_id": session_id}).encode() + b"\n")

    def progress(n: int) -> None:
        writer.write(json.dumps({"sent": n}).encode() + b"\n")

    await replay.to_viewers(daemon.broadcaster, str(session_id), lines, speed, progress)
    writer.write(b'{"done": true}\n')


async def serve_control(path: Path, daemon: Controlled) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        uid = peercred.peer_uid(sock) if sock is not None else None
        if uid is not None and uid != os.getuid():
            daemon.counters[Count.REJECTED_FOREIGN_UID] += 1
            writer.close()
            return
        try:
            line = await asyncio.wait_for(reader.readline(), daemon.settings.idle_timeout_s)
            request = protocol.decode(line)
            if isinstance(request, StatusRequest):
                writer.write(msgspec.json.encode(daemon.status()) + b"\n")
            elif isinstance(request, StopRequest):
                writer.write(b'{"ok": true}\n')
                daemon.stopping.set()
            elif isinstance(request, FollowRequest):
                after = daemon.journal.last_seq if request.after is None else request.after
                for old in daemon.journal.read_from(after + 1):
                    writer.write(old + b"\n")
                    await writer.drain()
                daemon.followers.writers.add(writer)
                await reader.read()  # until the client goes away
                daemon.followers.writers.discard(writer)
            elif isinstance(request, ReindexRequest):
                await _reindex(daemon, writer)
            else:
                await _replay(daemon, writer, request)
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError) as exc:
            with contextlib.suppress(ConnectionError):
                writer.write(json.dumps({"error": str(exc) or type(exc).__name__}).encode()
                             + b"\n")
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

