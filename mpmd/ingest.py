"""The socket side of ingestion: an asyncio Protocol per connection, a thin shell around
the sans-I/O FrameDecoder and the Store.

Bad peers cost little and never stop the daemon: another user's connection is closed at
once, a connection that sends nothing is closed after ``idle_timeout_s``, past
``max_connections`` new ones are closed, and a stream that breaks the wire contract is
counted, its first bytes kept aside in the rejected folder, and closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from pathlib import Path

from mpm_hook import wire
from mpmd import peercred
from mpmd.framing import FrameDecoder, FrameError
from mpmd.store import Store

log = logging.getLogger("mpmd.ingest")

KEEP_REJECTED_BYTES = 64 * 1024
KEEP_REJECTED_FILES = 100


class Rejects:
    """Keeps the first bytes of rejected streams aside, in a bounded folder."""

    def __init__(self, folder: Path, counters: Counter[str]) -> None:
        self.folder = folder
        self.counters = counters

    def keep(self, reason: str, data: bytes, name: str | None = None) -> None:
        self.counters["rejected_" + reason] += 1
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            existing = sorted(self.folder.iterdir())
            for old in existing[: max(0, len(existing) - KEEP_REJECTED_FILES + 1)]:
                old.unlink(missing_ok=True)
            import time

            target = self.folder / (name or f"{time.time_ns():020d}-{reason}.bin")
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data[:KEEP_REJECTED_BYTES])
        except OSError as exc:
            log.warning("could not keep a rejected %s frame aside: %s", reason, exc)


class IngestProtocol(asyncio.Protocol):
    def __init__(self, server: IngestServer) -> None:
        self.server = server
        self.decoder = FrameDecoder(server.max_frame_bytes)
        self.transport: asyncio.Transport | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._head = b""  # the first bytes seen, kept aside if the stream is rejected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        server = self.server
        counters = server.counters
        if len(server.connections) >= server.max_connections:
            counters["rejected_too_many_connections"] += 1
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        uid = peercred.peer_uid(sock) if sock is not None else None
        if uid is not None and uid != server.uid:
            counters["rejected_foreign_uid"] += 1
            log.warning("refused a connection from uid %d", uid)
            transport.abort()
            return
        server.connections.add(self)
        server.idle.clear()
        counters["connections_total"] += 1
        self._idle = server.loop.call_later(server.idle_timeout_s, self._on_idle)

    def _on_idle(self) -> None:
        self.server.counters["closed_idle"] += 1
        if self.decoder.buffered:
            self.server.rejects.keep("truncated", self._head)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if len(self._head) < KEEP_REJECTED_BYTES:
            self._head += data[: KEEP_REJECTED_BYTES - len(self._head)]
        if self._idle is not None:
            self._idle.cancel()
            self._idle = self.server.loop.call_later(self.server.idle_timeout_s, self._on_idle)
        frames, error = self.decoder.feed(data)
        if frames:
            put = self.server.store.put
            acks = []
            for frame in frames:
                status, seq = put(frame)
                acks.append(wire.encode_ack(frame.id, status, seq))
            assert self.transport is not None
            self.transport.write(b"".join(acks))
            self._head = b""
        if error is not None:
            self._reject(error)

    def _reject(self, error: FrameError) -> None:
        log.info("closing a connection that broke the wire contract: %s", error)
        self.server.rejects.keep(error.reason, self._head)
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool | None:
        if self.decoder.buffered:
            self.server.rejects.keep("truncated", self._head)
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self.server.connections.discard(self)
        if not self.server.connections:
            self.server.idle.set()


class IngestServer:
    """Owns the listening socket's protocol factory and per-connection limits."""

    def __init__(
        self,
        store: Store,
        rejects: Rejects,
        counters: Counter[str],
        *,
        max_frame_bytes: int,
        idle_timeout_s: float,
        max_connections: int,
    ) -> None:
        self.store = store
        self.rejects = rejects
        self.counters = counters
        self.max_frame_bytes = max_frame_bytes
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.uid = os.getuid()
        self.connections: set[IngestProtocol] = set()
        self.idle = asyncio.Event()  # set when no connection is open (for shutdown)
        self.idle.set()
        self.loop = asyncio.get_running_loop()

    def protocol(self) -> IngestProtocol:
        return IngestProtocol(self)
