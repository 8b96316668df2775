"""The socket side of ingestion: reader callbacks on raw sockets, a thin shell around the
sans-I/O FrameDecoder and the Store.

Bad peers cost little and never stop the daemon: another user's connection is closed at
once, a connection that sends nothing is closed after ``idle_timeout_s``, past
``max_connections`` new ones are closed, and a stream that breaks the wire contract is
counted, its first bytes kept aside in the rejected folder, and closed.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import logging
import os
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Protocol

from mpm_hook import wire
from mpmd import peercred
from mpmd.framing import EventFrame, FrameDecoder
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
            target = self.folder / (name or f"{time.time_ns():020d}-{reason}.bin")
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data[:KEEP_REJECTED_BYTES])
        except OSError as exc:
            log.warning("could not keep a rejected %s frame aside: %s", reason, exc)


# Bytes asked of one recv: many pipelined frames at once, still a bounded copy.
RECV_BYTES = 256 * 1024
# Reads of one connection per wake-up before the others get their turn.
READS_PER_WAKE = 4
# Per call instead of setting the socket non-blocking: one system call less a connection.
_DONTWAIT = getattr(_socket, "MSG_DONTWAIT", 0)
# Connections taken per wake-up of the listening socket, so that a flood of connects cannot
# starve the connections already open.
ACCEPT_BATCH = 64
# After EMFILE/ENFILE the listening socket stays readable; stop accepting for this long
# instead of spinning on it.
ACCEPT_PAUSE_S = 0.1


class Connection:
    """One peer: its socket, its decoder, the first bytes it sent, acks waiting to go out."""

    __slots__ = ("sock", "fd", "decoder", "head", "tick", "out")

    def __init__(self, sock: _socket.socket, max_frame_bytes: int, tick: int) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.decoder = FrameDecoder(max_frame_bytes)
        self.head = b""  # the first bytes since the last stored frame, kept if rejected
        self.tick = tick  # the idle sweep's tick when this peer last sent something
        self.out = b""  # acks the socket could not take yet


class Holder(Protocol):
    """Takes over connections whose hook waits for more than its ack (mpmd.approvals)."""

    def wants(self, frame: EventFrame) -> bool: ...

    def take(self, frame: EventFrame, seq: int, sock: _socket.socket) -> None: ...


class IngestServer:
    """Accepts hook connections on the listening socket and serves them, frame in, ack out.

    This is the daemon's hottest path after the per-event work: a hook makes one connection
    per event. Instead of an asyncio Protocol and Transport per connection, it accepts on the
    raw listening socket and reads and writes the sockets itself from reader callbacks.
    Usually the frame, and the end of the stream (the hook half-closes after its frame), are
    already there when the connection is accepted: it is read, stored, acked and closed at
    once, never registered with the event loop. Together: 4,448 -> 8,990 connections a
    second in benchmarks/ingest.py.

    A peer that stops reading its acks is not buffered for without bound: while acks wait to
    go out, its socket is not read.
    """

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
        self.connections: dict[int, Connection] = {}  # by fd
        self.idle = asyncio.Event()  # set when no connection is open (for shutdown)
        self.idle.set()
        self.loop = asyncio.get_running_loop()
        self._listener: socket.socket | None = None
        self._tick = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self.holder: Holder | None = None

    # ---- listening --------------------------------------------------------------------
    def start(self, listener: socket.socket) -> None:
        """Serve connections made to ``listener`` (bound, listening, non-blocking)."""
        self._listener = listener
        self.loop.add_reader(listener.fileno(), self._accept_ready)
        self._sweeper = self.loop.call_later(self.idle_timeout_s / 2, self._sweep)

    def stop_listening(self) -> None:
        """No new connections; the open ones go on until they close (or ``abort_all``)."""
        if self._listener is not None:
            self.loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None

    def abort_all(self) -> None:
        for conn in list(self.connections.values()):
            self._close(conn)
        if self._sweeper is not None:
            self._sweeper.cancel()

    def _accept_ready(self) -> None:
        listener = self._listener
        if listener is None:
            return
        counters = self.counters
        for _ in range(ACCEPT_BATCH):
            try:
                fd, _addr = listener._accept()  # type: ignore[attr-defined]  # no socket.socket
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    counters["accept_errors"] += 1
                    log.error("cannot accept connections (%s): pausing %.1fs", exc,
                              ACCEPT_PAUSE_S)
                    self.loop.remove_reader(listener.fileno())
                    self.loop.call_later(ACCEPT_PAUSE_S, self._resume_accepting)
                return  # ECONNABORTED and the like: that peer is gone, the next will come
            # The C-level socket type: the socket.socket wrapper's __init__ cost 5% here.
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
            if len(self.connections) >= self.max_connections:
                counters["rejected_too_many_connections"] += 1
                sock.close()
                continue
            uid = peercred.peer_uid(sock)  # type: ignore[arg-type]
            if uid is not None and uid != self.uid:
                counters["rejected_foreign_uid"] += 1
                log.warning("refused a connection from uid %d", uid)
                sock.close()
                continue
            if not _DONTWAIT:
                sock.setblocking(False)
            conn = Connection(sock, self.max_frame_bytes, self._tick)
            self.connections[conn.fd] = conn
            self.idle.clear()
            counters["connections_total"] += 1
            self._read(conn)
            if conn.fd in self.connections and not conn.out:
                self.loop.add_reader(conn.fd, self._read, conn)

    def _resume_accepting(self) -> None:
        if self._listener is not None:
            self.loop.add_reader(self._listener.fileno(), self._accept_ready)

    # ---- one connection ---------------------------------------------------------------
    def _read(self, conn: Connection) -> None:
        try:
            self._serve(conn)
        except Exception:  # a bug of ours: the peer gets no ack (a hook then spools), we go on
            self.counters["internal_errors"] += 1
            log.exception("internal error while serving a connection; closed it")
            self._close(conn)

    def _serve(self, conn: Connection) -> None:
        # A few reads a wake-up: a hook sends its frame and then shuts down its side, so the
        # second read usually sees the end and the connection closes without ever being
        # watched by the loop (the watch costs two epoll_ctl calls and a wake-up).
        for _ in range(READS_PER_WAKE):
            try:
                data = conn.sock.recv(RECV_BYTES, _DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._close(conn)
                return
            if not data:  # the peer closed its side
                if conn.decoder.buffered:
                    self.rejects.keep("truncated", conn.head)
                self._close(conn)
                return
            conn.tick = self._tick
            head = conn.head
            if len(head) < KEEP_REJECTED_BYTES:
                conn.head = head + data[: KEEP_REJECTED_BYTES - len(head)]
            frames, error = conn.decoder.feed(data)
            if frames:
                put = self.store.put
                encode_ack = wire.encode_ack
                received_ns = time.time_ns()
                acks = []
                for frame in frames:
                    status, seq = put(frame, "hook", received_ns)
                    acks.append(encode_ack(frame.id, status, seq))
                conn.head = b""
                self._send(conn, b"".join(acks))
                holder = self.holder
                if holder is not None and status == wire.STORED and error is None \
                        and holder.wants(frames[-1]) and not conn.out \
                        and conn.fd in self.connections:
                    self._hand_over(conn, holder, frames[-1], seq)
                    return
            if error is not None:
                log.info("closing a connection that broke the wire contract: %s", error)
                self.rejects.keep(error.reason, conn.head)
                self._close(conn)
                return
            if conn.out or conn.fd not in self.connections:
                return

    def _send(self, conn: Connection, data: bytes) -> None:
        if conn.out:  # already waiting for room: keep the order
            conn.out += data
            return
        try:
            sent = conn.sock.send(data, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the peer went away; what it sent is stored all the same
            self._close(conn)
            return
        if sent < len(data):
            self.counters["paused_for_unread_acks"] += 1
            conn.out = data[sent:]
            if conn.fd in self.connections:
                self.loop.remove_reader(conn.fd)
                self.loop.add_writer(conn.fd, self._flush, conn)

    def _flush(self, conn: Connection) -> None:
        try:
            sent = conn.sock.send(conn.out, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        conn.tick = self._tick
        if not conn.out:
            self.loop.remove_writer(conn.fd)
            self.loop.add_reader(conn.fd, self._read, conn)

    def _hand_over(self, conn: Connection, holder: Holder, frame: EventFrame,
                   seq: int) -> None:
        """The hook waits for an answer after its ack: the socket is the holder's now."""
        del self.connections[conn.fd]
        self.loop.remove_reader(conn.fd)
        if not self.connections:
            self.idle.set()
        holder.take(frame, seq, conn.sock)

    def _close(self, conn: Connection) -> None:
        if self.connections.pop(conn.fd, None) is None:
            return
        self.loop.remove_reader(conn.fd)
        if conn.out:
            self.loop.remove_writer(conn.fd)
        conn.sock.close()
        if not self.connections:
            self.idle.set()

    # ---- idle peers -------------------------------------------------------------------
    def _sweep(self) -> None:
        """Close connections that made no progress (sent nothing, took none of their acks)
        for between one and 1.5 idle timeouts.

        One timer for all connections, ticking every half timeout, instead of a timer per
        connection re-armed on every read.
        """
        self._tick += 1
        stale = self._tick - 2
        for conn in [c for c in self.connections.values() if c.tick <= stale]:
            self.counters["closed_idle"] += 1
            if conn.decoder.buffered:
                self.rejects.keep("truncated", conn.head)
            self._close(conn)
        self._sweeper = self.loop.call_later(self.idle_timeout_s / 2, self._sweep)
