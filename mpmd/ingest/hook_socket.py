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
import ctypes
import errno
import logging
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from mpm_hook import wire
from mpmd.counters import Count, rejected
from mpmd.ingest import peercred
from mpmd.ingest.framing import REFUSE_AFTER, FrameDecoder
from mpmd.model.events import EventFrame
from mpmd.model.redact import redact_raw_bytes
from mpmd.storage.store import Store

log = logging.getLogger("mpmd.ingest.hook_socket")

KEEP_REJECTED_BYTES = 64 * 1024
KEEP_REJECTED_FILES = 100


class Rejects:
    """Keeps the first bytes of rejected streams aside, redacted, in a bounded folder."""

    def __init__(self, folder: Path, counters: Counter[str]) -> None:
        self.folder = folder
        self.counters = counters

    def keep(self, reason: str, data: bytes, name: str | None = None) -> None:
        self.counters[rejected(reason)] += 1
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            existing = sorted(self.folder.iterdir())
            for old in existing[: max(0, len(existing) - KEEP_REJECTED_FILES + 1)]:
                old.unlink(missing_ok=True)
            target = self.folder / (name or f"{time.time_ns():020d}-{reason}.bin")
            # Not durable.write_atomic: a diagnostic copy, written on the loop, where an
            # fsync for every broken frame would let a broken client stall ingestion.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                # Cut first: the cut can end the kept bytes in the middle of a secret.
                f.write(self.redacted(data[:KEEP_REJECTED_BYTES]))
        except OSError as exc:
            log.warning("could not keep a rejected %s frame aside: %s", reason, exc)

    @staticmethod
    def redacted(data: bytes) -> bytes:
        """The bytes of a rejected stream with the secrets in their text redacted, framing
        kept for diagnosis (a length no longer matches its body once a secret is replaced).

        A rejected frame is most often a good frame cut short (a hook killed while sending),
        its payload JSON: each payload the hook's frame layout leads to is redacted alone,
        since redaction reads JSON strings from their opening quote and a quote byte in an id
        or a length before it would turn them inside out. The rest, framing and whatever does
        not follow the layout, is redacted as text too.
        """
        out: list[bytes] = []
        done = 0
        for start, end in Rejects._payloads(data):
            out += (redact_raw_bytes(data[done:start])[0], redact_raw_bytes(data[start:end])[0])
            done = end
        out.append(redact_raw_bytes(data[done:])[0])
        return b"".join(out)

    @staticmethod
    def _payloads(data: bytes) -> list[tuple[int, int]]:
        """(start, end) of each event payload in ``data``, as far as it is there, while the
        frames follow the hook's layout (mpm_hook.wire.encode_event, bin 8/16/32 payloads)."""
        spans: list[tuple[int, int]] = []
        at = 0
        while len(data) - at >= wire.LENGTH_BYTES:
            body = at + wire.LENGTH_BYTES
            if data[body : body + 4] not in (b"\x95\x01\xc4\x10", b"\x96\x01\xc4\x10"):
                break
            ts = body + 4 + wire.ID_BYTES
            if data[ts : ts + 1] != b"\xcf":
                break
            head = ts + 9
            width = {b"\xc4": 1, b"\xc5": 2, b"\xc6": 4}.get(data[head : head + 1])
            start = head + 1 + (width or 0)
            if width is None or start > len(data):
                break
            spans.append((start, min(start + int.from_bytes(data[head + 1 : start]), len(data))))
            at = body + int.from_bytes(data[at:body])
        return spans


# Bytes asked of one recv: many pipelined frames at once, still a bounded copy.
RECV_BYTES = 256 * 1024
# Reads of one connection per wake-up before the others get their turn.
READS_PER_WAKE = 4
# Frames (and bytes of frames, at least one frame) stored for one connection per turn: a
# client that pipelines gets a turn like any other and then waits for the next, so a hook's
# ack waits for about one turn of each busy connection (~2 ms), not for a whole read of
# theirs (~700 fixture frames a read, up to four reads a wake-up: 100-350 ms measured).
# 64 rather than 32: with 32 a hook's ack under a burst took 1.0-1.5 ms at the median
# instead of ~2, but a pipelined event cost 5-11% more daemon CPU (more turns, more loop
# iterations); docs/benchmarks.md, "Fairness".
FRAMES_PER_TURN = 64
BYTES_PER_TURN = 256 * 1024
# Acks of a connection served over several turns are held back up to this and sent
# together, as when a whole read was served at once: an ack send each turn woke the peer
# each turn, which on two cores then took the CPU from the daemon (py-spy: 40% of the time
# serving connections was in send; 4% with the acks gathered).
ACKS_GATHER_BYTES = 16 * 1024
# Warn about the partial-frame budget being full at most this often.
BUDGET_WARN_INTERVAL_S = 60.0
# What makes a burst after which freed memory is handed back to the system (_after_burst):
# this many events stored, or an unfinished frame this big.
TRIM_AFTER_EVENTS = 1000
TRIM_AFTER_BYTES = 1024 * 1024


def _find_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (musl has none)
        return None


_malloc_trim = _find_malloc_trim()


def release_free_memory() -> bool:
    """Hand the memory glibc keeps after it was freed back to the system: it keeps freed
    heap pages for reuse, so the daemon's RSS stayed near its peak after a burst (measured:
    198 MB idle after draining 200,000 spooled events, 137 MB with this; docs/benchmarks.md).
    Well under a millisecond to a few, once after a burst. False where there is none."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
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

    __slots__ = ("sock", "fd", "decoder", "head", "tick", "acks", "out", "held", "watched",
                 "later")

    def __init__(self, sock: _socket.socket, max_frame_bytes: int, tick: int) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.decoder = FrameDecoder(max_frame_bytes)
        self.head = b""  # the first bytes since the last stored frame, kept if rejected
        self.tick = tick  # the idle sweep's tick when this peer last sent something
        self.acks = b""  # acks held back while its frames are served over several turns
        self.out = b""  # acks the socket could not take yet
        self.held = 0  # bytes charged to the server's partial-frame budget
        self.watched = False  # the loop watches the socket for reading
        self.later = False  # frames read but not yet stored wait for its next turn


class Holder(Protocol):
    """Takes over connections whose hook waits for more than its ack (mpmd.serve.approvals)."""

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

    Fairness: a connection is served a turn of at most FRAMES_PER_TURN frames; frames it
    sent beyond that wait in its decoder for its next turn, after every other connection
    ready meanwhile (and the loop's other callbacks) had theirs.

    Memory: what connections hold between turns (unfinished frames, counted whole at their
    announced size as soon as their id has come, and frames waiting for their turn) is
    bounded by ``max_partial_bytes`` across all of them, not only by each one's frame limit
    (100 connections each holding most of an 8 MiB frame took the daemon to 844 MB). An
    unfinished frame that would pass the budget is refused: answered BUSY at once (the hook
    spools it, and the spool drain brings it in later), the rest of it read and dropped as
    it comes, the connection kept.
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
        max_partial_bytes: int = 64 * 1024 * 1024,
        holder: Holder | None = None,
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
        self.holder = holder  # takes the connections of hooks that wait for a viewer
        self.max_partial_bytes = max_partial_bytes
        self.held = 0  # bytes charged by all connections (Connection.held)
        self._budget_warned = -BUDGET_WARN_INTERVAL_S
        # Events stored at the last sweep and at the last trim (_after_burst).
        self._stored_at_sweep = 0
        self._stored_at_trim = 0
        self._trim_due = False

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
                    counters[Count.ACCEPT_ERRORS] += 1
                    log.error("cannot accept connections (%s): pausing %.1fs", exc,
                              ACCEPT_PAUSE_S)
                    self.loop.remove_reader(listener.fileno())
                    self.loop.call_later(ACCEPT_PAUSE_S, self._resume_accepting)
                return  # ECONNABORTED and the like: that peer is gone, the next will come
            # The C-level socket type: the socket.socket wrapper's __init__ cost 5% here.
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
            if len(self.connections) >= self.max_connections:
                counters[Count.REJECTED_TOO_MANY_CONNECTIONS] += 1
                sock.close()
                continue
            uid = peercred.peer_uid(sock)  # type: ignore[arg-type]
            if uid is not None and uid != self.uid:
                counters[Count.REJECTED_FOREIGN_UID] += 1
                log.warning("refused a connection from uid %d", uid)
                sock.close()
                continue
            if not _DONTWAIT:
                sock.setblocking(False)
            conn = Connection(sock, self.max_frame_bytes, self._tick)
            self.connections[conn.fd] = conn
            self.idle.clear()
            counters[Count.CONNECTIONS_TOTAL] += 1
            self._read(conn)
            if not (conn.out or conn.later or conn.watched) \
                    and self.connections.get(conn.fd) is conn:
                conn.watched = True
                self.loop.add_reader(conn.fd, self._read, conn)

    def _resume_accepting(self) -> None:
        if self._listener is not None:
            self.loop.add_reader(self._listener.fileno(), self._accept_ready)

    # ---- one connection ---------------------------------------------------------------
    def _read(self, conn: Connection) -> None:
        try:
            self._serve(conn)
        except Exception:  # a bug of ours: the peer gets no ack (a hook then spools), we go on
            self.counters[Count.INTERNAL_ERRORS] += 1
            log.exception("internal error while serving a connection; closed it")
            self._close(conn)

    def _serve(self, conn: Connection) -> None:
        # A few reads a wake-up: a hook sends its frame and then shuts down its side, so the
        # second read usually sees the end and the connection closes without ever being
        # watched by the loop (the watch costs two epoll_ctl calls and a wake-up).
        decoder = conn.decoder
        frames_left = FRAMES_PER_TURN
        bytes_left = BYTES_PER_TURN
        reads = 0
        while True:
            if decoder.ready:  # frames read before come first, without reading more
                data = b""
            elif reads == READS_PER_WAKE:
                return
            else:
                reads += 1
                try:
                    data = conn.sock.recv(RECV_BYTES, _DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    self._close(conn)
                    return
                if not data:  # the peer closed its side
                    if decoder.buffered:
                        self.rejects.keep("truncated", conn.head)
                    self._close(conn)
                    return
                conn.tick = self._tick
                head = conn.head
                if len(head) < KEEP_REJECTED_BYTES:
                    conn.head = head + data[: KEEP_REJECTED_BYTES - len(head)]
            frames, error = decoder.feed(data, frames_left, bytes_left)
            if frames:
                put = self.store.put
                encode_ack = wire.encode_ack
                received_ns = time.time_ns()
                acks = []
                for frame in frames:
                    status, seq = put(frame, "hook", received_ns)
                    acks.append(encode_ack(frame.id, status, seq))
                conn.head = b""
                if conn.acks:
                    acks.insert(0, conn.acks)
                    conn.acks = b""
                answer = b"".join(acks)
                if decoder.ready and len(answer) < ACKS_GATHER_BYTES:
                    conn.acks = answer  # goes out with those of its next turn
                else:
                    self._send(conn, answer)
                holder = self.holder
                if holder is not None and status == wire.STORED and error is None \
                        and not decoder.buffered and holder.wants(frames[-1]) \
                        and not conn.out and self.connections.get(conn.fd) is conn:
                    self._hand_over(conn, holder, frames[-1], seq)
                    return
                frames_left -= len(frames)
                bytes_left -= decoder.taken
            if error is not None:
                if conn.acks:  # of the frames before the broken one
                    self._send(conn, conn.acks)
                log.info("closing a connection that broke the wire contract: %s", error)
                self.rejects.keep(error.reason, conn.head)
                self._close(conn)
                return
            if self.connections.get(conn.fd) is not conn:
                return
            if decoder.buffered:
                want = self._holds(conn)
            else:  # a hook's connection, its frame stored: it holds nothing
                conn.head = b""  # (or a refused frame's rest: nothing to keep aside)
                want = 0
            if decoder.ready and self.held + want - conn.held > self.max_partial_bytes:
                # No room to keep what it sent waiting for its turn: stored now instead,
                # its turn runs longer.
                frames_left = bytes_left = 1 << 62
                continue
            if want != conn.held and not self._charge(conn, want):
                return
            if conn.out:
                return
            if decoder.ready:  # its turn is over (a limit stopped the decoder)
                self._later(conn)
                return

    def _later(self, conn: Connection) -> None:
        """Frames of ``conn`` wait in its decoder: its next turn comes after the callbacks
        ready now (other connections' turns among them), whether its socket has more or not."""
        if conn.watched:
            conn.watched = False
            self.loop.remove_reader(conn.fd)
        conn.later = True
        self.counters[Count.TURNS_YIELDED] += 1
        self.loop.call_soon(self._next_turn, conn)

    def _next_turn(self, conn: Connection) -> None:
        conn.later = False
        if self.connections.get(conn.fd) is not conn:
            return  # closed meanwhile (its fd may be another connection's by now)
        self._read(conn)
        if not (conn.out or conn.later or conn.watched) \
                and self.connections.get(conn.fd) is conn:
            conn.watched = True
            self.loop.add_reader(conn.fd, self._read, conn)

    # ---- the partial-frame budget -----------------------------------------------------
    @staticmethod
    def _holds(conn: Connection) -> int:
        """What ``conn`` holds between turns, for the budget: its decoder's (an unfinished
        frame at its announced size, frames waiting for their turn), the bytes kept in case
        it is rejected, the acks held back. Nothing for the first bytes of a frame, before
        its id: a few bytes a connection, which could not be refused (no id to answer BUSY
        for)."""
        decoder = conn.decoder
        if not decoder.ready and decoder.buffered < REFUSE_AFTER:
            return 0
        return decoder.holding + len(conn.head) + len(conn.acks)

    def _charge(self, conn: Connection, want: int) -> bool:
        """Charge ``want`` for ``conn`` to the budget, or refuse its unfinished frame if
        that would pass it. False when the connection was closed."""
        more = want - conn.held
        if more > 0 and self.held + more > self.max_partial_bytes and not conn.decoder.ready:
            return self._refuse(conn)
        self.held += more
        conn.held = want
        counters = self.counters
        counters[Count.PARTIAL_BYTES_HELD] = self.held
        if self.held > counters[Count.PARTIAL_BYTES_PEAK]:
            counters[Count.PARTIAL_BYTES_PEAK] = self.held
        if more >= TRIM_AFTER_BYTES:
            self._trim_due = True
        return True

    def _release(self, conn: Connection) -> None:
        if conn.held:
            self.held -= conn.held
            conn.held = 0
            self.counters[Count.PARTIAL_BYTES_HELD] = self.held

    def _refuse(self, conn: Connection) -> bool:
        """BUSY for the unfinished frame that does not fit: the hook spools it (the spool
        drain takes it in, one frame at a time), nothing it sent before is affected, and
        what the connection sends after it is served as usual."""
        event_id = conn.decoder.refuse()
        conn.head = b""
        self._release(conn)
        counters = self.counters
        counters[Count.BUSY_PARTIAL_BUDGET] += 1
        now = time.monotonic()
        if now - self._budget_warned >= BUDGET_WARN_INTERVAL_S:
            self._budget_warned = now
            log.warning("unfinished frames hold %d bytes (max_partial_bytes %d): answering "
                        "BUSY to frames that do not fit, hooks spool them", self.held,
                        self.max_partial_bytes)
        if event_id is None:  # not the hook's layout: no id to answer for, in order
            counters[Count.CLOSED_PARTIAL_BUDGET] += 1
            self._close(conn)
            return False
        counters[Count.BUSY] += 1
        self._send(conn, wire.encode_ack(event_id, wire.BUSY, 0))
        return self.connections.get(conn.fd) is conn

    # ---- acks ---------------------------------------------------------------------------
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
            self.counters[Count.PAUSED_FOR_UNREAD_ACKS] += 1
            conn.out = data[sent:]
            if self.connections.get(conn.fd) is conn:
                if conn.watched:
                    conn.watched = False
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
            if conn.decoder.ready:
                self._later(conn)
            else:
                conn.watched = True
                self.loop.add_reader(conn.fd, self._read, conn)

    def _hand_over(self, conn: Connection, holder: Holder, frame: EventFrame,
                   seq: int) -> None:
        """The hook waits for an answer after its ack: the socket is the holder's now."""
        del self.connections[conn.fd]
        if conn.watched:
            conn.watched = False
            self.loop.remove_reader(conn.fd)
        self._release(conn)
        if not self.connections:
            self.idle.set()
        holder.take(frame, seq, conn.sock)

    def _close(self, conn: Connection) -> None:
        if self.connections.get(conn.fd) is not conn:
            return
        del self.connections[conn.fd]
        if conn.watched:
            conn.watched = False
            self.loop.remove_reader(conn.fd)
        if conn.out:
            self.loop.remove_writer(conn.fd)
        self._release(conn)
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
            self.counters[Count.CLOSED_IDLE] += 1
            if conn.decoder.buffered and not conn.decoder.ready:
                self.rejects.keep("truncated", conn.head)
            self._close(conn)
        self._after_burst()
        self._sweeper = self.loop.call_later(self.idle_timeout_s / 2, self._sweep)

    def _after_burst(self) -> None:
        """Once nothing was stored for a whole tick after a burst (TRIM_AFTER_EVENTS events
        or big unfinished frames), hand what the C allocator keeps back to the system."""
        stored = self.counters[Count.EVENTS_TOTAL]
        if stored != self._stored_at_sweep:
            self._stored_at_sweep = stored
            if stored - self._stored_at_trim >= TRIM_AFTER_EVENTS:
                self._trim_due = True
        elif self._trim_due:
            self._trim_due = False
            self._stored_at_trim = stored
            if release_free_memory():
                self.counters[Count.MEMORY_TRIMS] += 1
