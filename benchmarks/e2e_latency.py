"""End-to-end latency: from a hook starting to its event arriving at a WebSocket client.

One real daemon (``MPMD_VIEWER_PORT=0``, journal on, defaults otherwise) in a fresh
MPMD_HOME; ``ws_url`` from ``mpmd status --json``. Every latency is the difference of two
CLOCK_MONOTONIC readings (``time.monotonic_ns``, one clock for every process of the machine):
taken just before ``posix_spawn`` of a hook process (or just before ``connect`` of a direct
send), and in the client process right after ``recvmsg`` returned the bytes that complete
the WebSocket message carrying the event.

    scenario 1  100 hook processes a second (the exact command install-hooks writes, fed the
                PreToolUse Bash fixture, each with a unique tool_use_id), one reading client.
                Target: p99 <= 20 ms. Beside it, alternated with it (``--s1-rounds``
                segments each, ABBA), the same 100 hooks a second as Claude Code's ``http``
                hooks: a POST of the same payload to the daemon's endpoint (127.0.0.1,
                ``http.port`` and ``http.token`` of its state folder; the request head the
                real CLI sends) on one keep-alive connection, each answer awaited as Claude
                Code awaits it, the clock started just before the request is sent (before
                the connect when the connection had been idle long enough for Claude Code to
                drop it). Target: p99 <= 20 ms. Then a reference: the same rate sent straight
                to the socket, no hook processes (what the daemon itself takes, machine idle).
    scenario 2  5,000 events a second with 5 clients connected. A hook process costs ~10 ms
                of CPU, so the load is sent straight to the daemon's socket in the hook's
                own wire format (mpm_hook.wire frames with ids we draw, 34-byte acks whose
                seq identifies the stored event), one connection per event as hooks do
                (``--transport pipelined``: one connection per sender), by ``--senders``
                processes on an open-loop schedule; real hook processes are spawned meanwhile
                (``--hook-rate``, 20/s) for "hook process included" figures. Two modes,
                alternated ``--rounds`` times in ABBA order (drifts of the machine hit both):
                  baseline  5 clients reading
                  stalled   4 clients reading + 1 that stopped reading: it did the handshake,
                            subscribed, went live, and then never reads its socket; its TCP
                            queues (FIONREAD, /proc/net/tcp) are shown before it reads again.
                Target: the stalled client moves no reading client's p99 by more than 10 %:
                p99 (stalled) / p99 (baseline) of the same 4 client connections.

The clients are a minimal WebSocket client on plain sockets (no extension offered, so no
compression), all reading clients in one process with one selectors loop: leaner than
asyncio + websockets, and ``recvmsg`` with SO_TIMESTAMPNS gives the kernel's receive time,
which splits "stored -> in the client's socket" (the daemon: ring, broadcaster, WebSocket,
loopback TCP) from "in the socket -> read by the client" (the client process). With the
stored event's ``timestamp`` (the hook's wall clock when it started running) and
``received_at`` (when the daemon stored it), both converted to the monotonic clock:
    hook:   spawn -> hook running -> stored -> in the client's socket -> read
    http:   POST sent -> request begun in the daemon -> stored -> in the socket -> read
    direct: send -> stored (the ack path) -> in the client's socket -> read

Correctness is checked while measuring: every acked event and every hook event must reach
every reading client exactly once (lost / duplicated / unexpected seqs per client). The
stalled client may lag; after each stalled segment it reads again and must end up with
every seq after its subscription exactly once, in order (no gap), after a ``lagged``
message if the daemon dropped its queue. (The server's WebSocket keepalive never ends such
a stall: its ping waits behind the blocked write, so the pong timeout never starts; a 50 s
stall caught up like a 7 s one.)

    .venv/bin/python benchmarks/e2e_latency.py [--seconds 15] [--rounds 2] [--quick]
        [--s1-rounds 2] [--transport connection|pipelined] [--senders 2] [--profile]
        [--dump CSV]

Default run ~1.5 minutes. The last stdout line is one JSON object with all the figures. Timing
is measured, never asserted.
"""

from __future__ import annotations

import argparse
import array
import base64
import calendar
import collections
import contextlib
import fcntl
import json
import os
import select
import shlex
import socket
import struct
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _common as C
import msgspec
from hook_cost import flag_value, installed_command, resolve
from ingest import Profiler, cpu_seconds

from mpm_hook import wire

MARK = "e2e"  # tool_use_id prefix of the hook processes' events
HTTP_MARK = MARK + "h"  # of the http hooks' events
# Claude Code drops a keep-alive connection idle for the server's Keep-Alive hint less one
# second (checked with 2.1.328); the daemon's hint is 5 s by default.
HTTP_IDLE_DROP_NS = 4_000_000_000
ACK = wire.ACK_FRAME_BYTES
mono = time.monotonic_ns


# ---- what clients decode of a message ----------------------------------------------------------
class Ev(msgspec.Struct):
    seq: int
    timestamp: str = ""
    received_at: str = ""
    tool_use_id: str | None = None


class Msg(msgspec.Struct):
    type: str
    events: list[Ev] | None = None
    after: int | None = None
    last_seq: int | None = None
    next_seq: int | None = None


class Log:
    """What one client received: every event's seq, when recv() returned it, and when its
    last byte reached the client's socket (kernel rx timestamp, wall clock); the hook
    markers; the message kinds."""

    def __init__(self, label: str, keep_received: bool = False) -> None:
        self.label = label
        self.keep_received = keep_received
        self.reset()

    def reset(self) -> None:
        self.seqs = array.array("q")
        self.arrivals = array.array("q")
        self.kernel = array.array("q")  # 0 where the kernel gave no timestamp
        self.received_at: list[str] = []  # parallel to seqs when keep_received
        # marker -> seq, arrival, kernel rx (wall), timestamp, received_at
        self.markers: dict[str, tuple[int, int, int, str, str]] = {}
        self.kinds: collections.Counter[str] = collections.Counter()
        self.lagged: list[int] = []
        self.gaps: list[tuple[int, int]] = []
        self.max_seq = 0
        self.live_after_lag = True  # a `live` came after the last `lagged`

    def take(self, msg: Msg, t: int, kts: int) -> None:
        kind = msg.type
        self.kinds[kind] += 1
        if kind == "events" and msg.events:
            seqs, arrivals, kernel = self.seqs, self.arrivals, self.kernel
            for ev in msg.events:
                seqs.append(ev.seq)
                arrivals.append(t)
                kernel.append(kts)
                tid = ev.tool_use_id
                if tid is not None and tid.startswith(MARK) and tid not in self.markers:
                    self.markers[tid] = (ev.seq, t, kts, ev.timestamp, ev.received_at)
            if self.keep_received:
                self.received_at.extend(ev.received_at for ev in msg.events)
            self.max_seq = max(self.max_seq, msg.events[-1].seq)
        elif kind == "lagged":
            self.lagged.append(msg.after or 0)
            self.live_after_lag = False
        elif kind == "live":
            self.live_after_lag = True
        elif kind == "gap":
            self.gaps.append((msg.after or 0, msg.next_seq or 0))

    def dump(self) -> dict[str, Any]:
        return {"label": self.label, "seqs": self.seqs, "arrivals": self.arrivals,
                "kernel": self.kernel, "received_at": self.received_at,
                "markers": self.markers, "kinds": dict(self.kinds), "lagged": self.lagged,
                "gaps": self.gaps, "max_seq": self.max_seq,
                "live_after_lag": self.live_after_lag}


# ---- a minimal WebSocket client on a plain socket ----------------------------------------------
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; the socket module lacks it
_CMSG_SPACE = socket.CMSG_SPACE(16)
RECV_BYTES = 1 << 18


class WsClient:
    """Handshake (no extension offered: no compression), subscribe, then frames read with
    recvmsg, which also gives the kernel's receive timestamp of the data (SO_TIMESTAMPNS),
    so a latency splits into "reached the client's socket" and "read by the client".

    The reading clients are these, served by one selectors loop (leaner than asyncio and
    the websockets library, and the same code as the stalled client): a ping is answered
    with a pong as any client does. The stalled client is one that is simply not read."""

    def __init__(self, ws_url: str, label: str, keep_received: bool = False) -> None:
        u = urlsplit(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=30)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path}?{u.query} HTTP/1.1\r\nHost: {u.hostname}:{u.port}"
                           f"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the WebSocket handshake")
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"handshake refused: {head[:200]!r}")
        self.sock.setblocking(False)
        self.buf = bytearray(rest)
        self.fragments: list[bytes] = []
        self.log = Log(label, keep_received)
        self.closed_by_server: int | None = None
        self.decode = msgspec.json.Decoder(Msg).decode
        self.local_port = self.sock.getsockname()[1]
        self.server_port = u.port

    def fileno(self) -> int:
        return self.sock.fileno()

    def send_frame(self, opcode: int, data: bytes) -> None:
        """A masked frame (small ones only: the mask is applied in Python)."""
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.setblocking(True)
        try:
            self.sock.sendall(head + mask + masked)
        finally:
            self.sock.setblocking(False)

    def subscribe(self, after: int) -> None:
        self.send_frame(0x1, json.dumps({"type": "subscribe", "after": after}).encode())

    def pump(self) -> bool:
        """One recvmsg and every message it completes; False once the connection is over."""
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(RECV_BYTES, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            self.closed_by_server = self.closed_by_server or 1006
            return False
        t = mono()
        if not data:
            self.closed_by_server = self.closed_by_server or 1006
            return False
        kts = 0
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                sec, nsec = struct.unpack_from("qq", value)
                kts = sec * 1_000_000_000 + nsec
        self.buf += data
        return self._parse(t, kts)

    def _parse(self, t: int, kts: int) -> bool:
        buf = self.buf
        pos = 0
        size = len(buf)
        try:
            while size - pos >= 2:
                b0, b1 = buf[pos], buf[pos + 1]
                n = b1 & 0x7F
                at = pos + 2
                if n == 126:
                    if size - at < 2:
                        break
                    n = struct.unpack_from("!H", buf, at)[0]
                    at += 2
                elif n == 127:
                    if size - at < 8:
                        break
                    n = struct.unpack_from("!Q", buf, at)[0]
                    at += 8
                if size - at < n:
                    break
                payload = bytes(buf[at:at + n])
                pos = at + n
                opcode = b0 & 0x0F
                if opcode == 0 or not b0 & 0x80:  # fragmented: keep until the final one
                    self.fragments.append(payload)
                    if not b0 & 0x80:
                        continue
                    payload, opcode, self.fragments = b"".join(self.fragments), 0x1, []
                if opcode == 0x1:
                    self.log.take(self.decode(payload), t, kts)
                elif opcode == 0x9:  # ping: answer it
                    self.send_frame(0xA, payload)
                elif opcode == 0x8:
                    self.closed_by_server = (struct.unpack("!H", payload[:2])[0]
                                             if len(payload) >= 2 else 1005)
                    return False
        finally:
            del buf[:pos]
        return True

    def read_until(self, done, timeout: float) -> bool:  # noqa: ANN001
        """Read (blocking) until ``done(log)``; False on timeout or when the server closed."""
        deadline = time.monotonic() + timeout
        while not done(self.log):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self.sock], [], [], min(left, 0.5))
            if ready and not self.pump():
                return done(self.log)
        return True

    def unread_bytes(self) -> int:
        """Bytes sitting in this socket's receive buffer, unread (FIONREAD)."""
        return struct.unpack("i", fcntl.ioctl(self.sock, termios.FIONREAD, b"\0" * 4))[0]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send_frame(0x8, struct.pack("!H", 1000))
        self.sock.close()


# ---- the reading clients: one process, one selectors loop, driven over a pipe ------------------
def client_main(conn, ws_url: str) -> None:  # noqa: ANN001 - a multiprocessing Connection
    """All reading clients, in a process of their own so that the load generator cannot
    starve their receive loop. Commands come from the parent over ``conn``; "open" and
    "collect" are answered once their condition holds, while the clients go on reading."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(conn.fileno(), selectors.EVENT_READ, None)
    clients: dict[str, WsClient] = {}
    waiting: tuple[Any, float, Any] | None = None  # (condition, deadline, answer)

    def reply(value: Any) -> None:
        conn.send(("ok", value))

    def collect(labels: list[str]) -> list[dict[str, Any]]:
        out = []
        for lb in labels:
            out.append(clients[lb].log.dump())
            clients[lb].log.reset()
        return out

    while True:
        for key, _ in sel.select(0.05 if waiting else None):
            client = key.data
            if client is not None:
                if not client.pump():
                    sel.unregister(client)
                continue
            cmd, *rest = conn.recv()
            try:
                if cmd == "open":
                    labels, after, keep = rest
                    for lb in labels:
                        c = clients[lb] = WsClient(ws_url, lb, lb in keep)
                        c.subscribe(after)
                        sel.register(c, selectors.EVENT_READ, c)
                    waiting = (lambda labels=labels: all(
                        clients[lb].log.kinds["live"] for lb in labels),
                        time.monotonic() + 30, lambda: None)
                elif cmd == "collect":  # once each has `upto`: its log, then reset
                    labels, upto, timeout = rest
                    waiting = (lambda labels=labels, upto=upto: all(
                        clients[lb].log.max_seq >= upto for lb in labels),
                        time.monotonic() + timeout, lambda labels=labels: collect(labels))
                elif cmd == "close":
                    for lb in rest[0]:
                        c = clients.pop(lb)
                        with contextlib.suppress(KeyError, ValueError):
                            sel.unregister(c)
                        c.close()
                    reply(None)
                elif cmd == "cpu":
                    t = os.times()
                    reply(t.user + t.system)
                elif cmd == "quit":
                    for c in clients.values():
                        c.close()
                    reply(None)
                    return
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops
                conn.send(("error", repr(exc)))
        if waiting is not None:
            condition, deadline, answer = waiting
            if condition() or time.monotonic() > deadline:
                waiting = None
                reply(answer())


class Clients:
    """The parent's handle on the client process."""

    def __init__(self, ws_url: str) -> None:
        ctx = C.mp_context()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=client_main, args=(child, ws_url), daemon=True)
        self.proc.start()
        child.close()

    def call(self, *cmd: Any, timeout: float = 120) -> Any:
        self.conn.send(cmd)
        if not self.conn.poll(timeout):
            raise TimeoutError(f"client process did not answer {cmd[0]}")
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"client process: {value}")
        return value

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call("quit", timeout=10)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


def tcp_queues(local_port: int, remote_port: int) -> tuple[int, int] | None:
    """(tx_queue, rx_queue) of the loopback TCP socket local_port -> remote_port, from
    /proc/net/tcp (tx: written by the app, not yet acked by the peer)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        f = line.split()
        local, remote, queues = f[1], f[2], f[4]
        if int(local.split(":")[1], 16) == local_port and \
                int(remote.split(":")[1], 16) == remote_port:
            tx, rx = queues.split(":")
            return int(tx, 16), int(rx, 16)
    return None


# ---- direct senders (scenario 2's load) --------------------------------------------------------
def sender_main(k: int, senders: int, path: str, payloads: list[bytes], rate: float,
                start_ns: int, end_ns: int, transport: str, out) -> None:  # noqa: ANN001
    """Events k, k+senders, k+2*senders, ... of an open-loop schedule at ``rate`` a second
    in all. Late (the previous send took too long) means: send at once, no sleep; the
    lateness is recorded. Each event: (seq acked, t just before connect/send, due time)."""
    period = 1e9 / rate
    seqs, sent_at, dues = array.array("q"), array.array("q"), array.array("q")
    tally = collections.Counter()
    ids = os.urandom(16 * 65536)
    cpu0 = os.times()
    j = 0
    n_pay = len(payloads)
    encode = wire.encode_event

    def due_of(i: int) -> int:
        return start_ns + int((i * senders + k) * period)

    def next_id(i: int) -> bytes:
        nonlocal ids
        at = 16 * (i % 65536)
        if at == 0 and i:
            ids = os.urandom(16 * 65536)
        return ids[at:at + 16]

    if transport == "connection":
        while True:
            due = due_of(j)
            if due >= end_ns:
                break
            now = mono()
            if now < due:
                time.sleep((due - now) / 1e9)
            payload = payloads[(j * senders + k) % n_pay]
            event_id = next_id(j)
            frame = encode(event_id, time.time_ns(), payload, len(payload))
            t = mono()
            ack = b""
            try:
                ack = C.send_like_the_hook(path, frame, ACK)
            except OSError:
                tally["errors"] += 1
            j += 1
            _take_ack(ack, event_id, t, due, seqs, sent_at, dues, tally)
    else:  # pipelined: one connection, frames sent on schedule, acks read as they come
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        pending: collections.deque[tuple[bytes, int, int]] = collections.deque()
        buf = b""

        def read_acks(timeout: float) -> bool:
            nonlocal buf
            ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
            if not ready:
                return True
            data = sock.recv(1 << 16)
            if not data:
                return False
            buf += data
            while len(buf) >= ACK and pending:
                event_id, t, due = pending.popleft()
                _take_ack(buf[:ACK], event_id, t, due, seqs, sent_at, dues, tally)
                buf = buf[ACK:]
            return True

        while True:
            due = due_of(j)
            if due >= end_ns:
                break
            while (now := mono()) < due:
                read_acks((due - now) / 1e9)
            payload = payloads[(j * senders + k) % n_pay]
            event_id = next_id(j)
            frame = encode(event_id, time.time_ns(), payload, len(payload))
            t = mono()
            sock.sendall(frame)
            pending.append((event_id, t, due))
            j += 1
            read_acks(0)
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline and read_acks(0.5):
            pass
        tally["errors"] += len(pending)
        sock.close()
    cpu1 = os.times()
    out.put({"k": k, "seqs": seqs, "sent_at": sent_at, "dues": dues, "tally": dict(tally),
             "cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), "events": j})


def _take_ack(ack: bytes, event_id: bytes, t: int, due: int, seqs: array.array,
              sent_at: array.array, dues: array.array, tally: collections.Counter) -> None:
    try:
        acked_id, status, seq = wire.decode_ack(ack)
    except ValueError:
        tally["bad_acks"] += 1
        return
    if acked_id != event_id:
        tally["bad_acks"] += 1
    elif status == wire.STORED:
        tally["stored"] += 1
        seqs.append(seq)
        sent_at.append(t)
        dues.append(due)
    else:
        tally[{wire.DUPLICATE: "duplicate", wire.BUSY: "busy",
               wire.REJECTED: "rejected"}.get(status, "bad_acks")] += 1


# ---- real hook processes -----------------------------------------------------------------------
def open_loop(rate: float, start_ns: int, end_ns: int) -> Iterator[int]:
    """The due times of ``rate`` a second from start_ns to end_ns, each given when it is due
    (a late one at once, without waiting for the ones before it to finish): an open loop."""
    period = 1e9 / rate
    i = 0
    while (due := start_ns + int(i * period)) < end_ns:
        now = mono()
        if now < due:
            time.sleep((due - now) / 1e9)
        yield due
        i += 1


class Hooks:
    """Spawns the installed hook command (posix_spawn, stdin a pre-filled pipe), without
    waiting; each run's payload carries a unique tool_use_id (``e2e...``, the fixture's
    length). The clock starts just before posix_spawn."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self.env = env
        self.template = C.fixture_payload("PreToolUse", "Bash")
        self.original = json.loads(self.template)["tool_use_id"].encode()
        self.n = 0
        self.running: dict[int, str] = {}
        self.spawned: dict[str, tuple[int, bool, str]] = {}  # marker -> t0, measured, group
        self.failures = 0

    def spawn(self, measured: bool, group: str) -> None:
        self.n += 1
        marker = f"{MARK}{self.n:0{len(self.original) - len(MARK)}d}"
        payload = self.template.replace(self.original, marker.encode(), 1)
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, payload)
        finally:
            os.close(write_fd)
        actions = [(os.POSIX_SPAWN_DUP2, read_fd, 0),
                   (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
        try:
            t0 = mono()
            pid = os.posix_spawn(self.argv[0], self.argv, self.env, file_actions=actions)
        finally:
            os.close(read_fd)
        self.running[pid] = marker
        self.spawned[marker] = (t0, measured, group)

    def reap(self, block: bool = False) -> None:
        for pid in list(self.running):
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
            if done:
                del self.running[pid]
                self.failures += os.waitstatus_to_exitcode(status) != 0

    def run(self, rate: float, start_ns: int, warm_ns: int, end_ns: int, group: str) -> int:
        """Spawn on an open-loop schedule from start_ns to end_ns; those due before warm_ns
        are warm-up (not measured). Returns how many were spawned."""
        n = 0
        for due in open_loop(rate, start_ns, end_ns):
            self.spawn(due >= warm_ns, group)
            n += 1
            self.reap()
        self.reap(block=True)
        return n


class HttpHooks:
    """Claude Code's http hooks: each a POST of the PreToolUse Bash fixture with a unique
    tool_use_id (``e2eh...``, the fixture's length) to the daemon's endpoint, on one
    keep-alive connection, its answer awaited before the next (as Claude Code waits for a
    hook). The clock starts just before the request is sent, or before the connect when
    the connection was idle long enough for Claude Code to have dropped it."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.template = C.fixture_payload("PreToolUse", "Bash")
        self.original = json.loads(self.template)["tool_use_id"].encode()
        self.n = 0
        self.spawned: dict[str, tuple[int, bool, str]] = {}  # marker -> t0, measured, group
        self.answers: dict[str, list[int]] = {}  # group -> POST -> answer, ns (measured)
        self.failures = 0  # no answer, or not a 200
        self.connections = 0
        self.client: C.HttpHookClient | None = None
        self.last_answer = 0

    def post(self, measured: bool, group: str) -> None:
        self.n += 1
        marker = f"{HTTP_MARK}{self.n:0{len(self.original) - len(HTTP_MARK)}d}"
        request = C.http_hook_request(
            self.port, self.token, self.template.replace(self.original, marker.encode(), 1))
        t0 = mono()
        self.spawned[marker] = (t0, measured, group)
        try:
            if self.client is not None and t0 - self.last_answer > HTTP_IDLE_DROP_NS:
                self.client.close()
                self.client = None
            if self.client is None:
                self.client = C.HttpHookClient(self.port)
                self.connections += 1
            status, _body = self.client.post(request)
        except OSError:
            self.failures += 1
            if self.client is not None:
                self.client.close()
            self.client = None
            return
        self.last_answer = t1 = mono()
        if status != 200:
            self.failures += 1
        elif measured:
            self.answers.setdefault(group, []).append(t1 - t0)

    def run(self, rate: float, start_ns: int, warm_ns: int, end_ns: int, group: str) -> int:
        """POST on an open-loop schedule from start_ns to end_ns; those due before warm_ns
        are warm-up (not measured). Returns how many were sent."""
        n = 0
        for due in open_loop(rate, start_ns, end_ns):
            self.post(due >= warm_ns, group)
            n += 1
        return n

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


# ---- figures -----------------------------------------------------------------------------------
def stats_ms(samples_ns: list[int]) -> dict[str, float]:
    if not samples_ns:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "p99": float("nan"),
                "max": float("nan")}
    ms = sorted(s / 1e6 for s in samples_ns)
    return {"n": len(ms), "p50": C.percentile(ms, 50), "p95": C.percentile(ms, 95),
            "p99": C.percentile(ms, 99), "max": ms[-1]}


_SECONDS: dict[str, int] = {}


def iso_ns(stamp: str) -> int:
    """'2026-11-21T10:00:00.123456Z' -> ns since the epoch (exact, no float)."""
    date, _, frac = stamp.rstrip("Z").partition(".")
    secs = _SECONDS.get(date)
    if secs is None:
        secs = _SECONDS[date] = calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int((frac + "000000000")[:9])


def clock_offset() -> int:
    """time.time_ns() - time.monotonic_ns(), the tightest of a few readings."""
    best = None
    for _ in range(20):
        a = mono()
        w = time.time_ns()
        b = mono()
        if best is None or b - a < best[0]:
            best = (b - a, w - (a + b) // 2)
    assert best is not None
    return best[1]


class Control:
    """{"cmd": "status"} on the daemon's control socket: what `mpmd status --json` asks,
    without spawning a process for it between segments."""

    def __init__(self, home: Path) -> None:
        self.path = str(home / "control.sock")

    def status(self) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(self.path)
            sock.sendall(b'{"cmd": "status"}\n')
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def last_seq(self) -> int:
        return int(self.status()["next_seq"]) - 1


def sched_stat(pid: int) -> tuple[int, int, int]:
    """(ns on a CPU, ns waiting on a run queue, times scheduled) of a process, all threads
    (/proc/<pid>/task/*/schedstat); zeros where there is none."""
    total = [0, 0, 0]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError):
                fields = Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()
                for i in range(3):
                    total[i] += int(fields[i])
    return total[0], total[1], total[2]


def check_log(log: dict[str, Any], expected: set[int]) -> dict[str, int]:
    got = log["seqs"]
    seen = set(got)
    return {"received": len(got), "lost": len(expected - seen),
            "duplicated": len(got) - len(seen), "unexpected": len(seen - expected)}


# ---- the benchmark -----------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, home: Path, daemon: C.Daemon) -> None:
        self.args = args
        self.home = home
        self.daemon = daemon
        st = json.loads(C.mpmd_cli(home, "status", "--json", timeout=120).stdout)
        self.ws_url = st["ws_url"]
        if not self.ws_url:
            raise RuntimeError(f"the daemon runs without its viewer: {st.get('viewer_error')}")
        self.api = Control(home)
        command = installed_command(home)
        argv = shlex.split(command)
        argv[0] = resolve(argv[0])
        baked = (flag_value(argv, "--runtime"), flag_value(argv, "--state"))
        env = C.clean_env() if baked == (str(home), str(home)) else C.env_for(home)
        self.hook_command = command
        self.hooks = Hooks(argv, env)
        self.http_port, token = C.http_endpoint(home)
        self.http_hooks = HttpHooks(self.http_port, token)
        self.clients = Clients(self.ws_url)
        self.rss_start_kb = C.rss_kb(daemon.daemon_pid()).get("VmRSS", 0)
        self.offset = clock_offset()
        self.payloads = C.fixture_payloads()
        self.path = str(home / "mpmd.sock")

    def wall_to_mono(self, stamp: str) -> int:
        return iso_ns(stamp) - self.offset

    # -- shared bookkeeping around a timed stretch
    def snapshot(self) -> dict[str, Any]:
        return {"wall": time.monotonic(), "busy": C.machine_busy_s(),
                "own": C.own_tree_cpu_s(), "daemon": sum(cpu_seconds(self.daemon.pid)),
                "client": self.clients.call("cpu"),
                "daemon_sched": sched_stat(self.daemon.daemon_pid()),
                "client_sched": sched_stat(self.clients.proc.pid)}

    @staticmethod
    def usage(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
        wall = b["wall"] - a["wall"]
        daemon = b["daemon"] - a["daemon"]
        client = b["client"] - a["client"]
        ours = (b["own"] - a["own"]) + daemon + client
        other = None
        if a["busy"] is not None and b["busy"] is not None:
            other = max(0.0, (b["busy"] - a["busy"]) - ours) / wall
        dw = b["daemon_sched"][1] - a["daemon_sched"][1]
        dn = max(1, b["daemon_sched"][2] - a["daemon_sched"][2])
        cw = b["client_sched"][1] - a["client_sched"][1]
        cn = max(1, b["client_sched"][2] - a["client_sched"][2])
        return {"wall_s": wall, "daemon_cores": daemon / wall, "client_cores": client / wall,
                # run-queue waits: how long a runnable process waited for a CPU
                "daemon_wait_ms_per_s": dw / 1e6 / wall, "daemon_wait_us_per_run": dw / dn / 1e3,
                "client_wait_ms_per_s": cw / 1e6 / wall, "client_wait_us_per_run": cw / cn / 1e3,
                "load_gen_cores": (b["own"] - a["own"]) / wall,
                "other_cores": other if other is not None else float("nan")}

    def hook_latencies(self, logs: list[dict[str, Any]], group: str
                       ) -> tuple[dict[str, list[int]], dict[str, list[int]], set[int], int]:
        """Per client: spawn -> arrival of the measured hook runs of ``group``; breakdown
        samples (from the first client); the hook events' seqs; hooks never seen."""
        spawned = {m: v for source in (self.hooks.spawned, self.http_hooks.spawned)
                   for m, v in source.items() if v[2] == group}
        per_client: dict[str, list[int]] = {}
        parts: dict[str, list[int]] = {k: [] for k in (
            "spawn_to_hook", "hook_to_stored", "stored_to_socket", "socket_to_read")}
        seqs: set[int] = set()
        for i, log in enumerate(logs):
            lat = per_client.setdefault(log["label"], [])
            for marker, (seq, t, kts, ts, recv) in log["markers"].items():
                if marker not in spawned:
                    continue
                seqs.add(seq)
                t0, measured, _g = spawned[marker]
                if not measured:
                    continue
                lat.append(t - t0)
                if i == 0:
                    t_hook = self.wall_to_mono(ts)
                    t_stored = self.wall_to_mono(recv)
                    parts["spawn_to_hook"].append(t_hook - t0)
                    parts["hook_to_stored"].append(t_stored - t_hook)
                    if kts:
                        parts["stored_to_socket"].append(kts - self.offset - t_stored)
                        parts["socket_to_read"].append(t - (kts - self.offset))
        seen = set().union(*(log["markers"].keys() for log in logs)) if logs else set()
        missing = sum(1 for m in spawned if m not in seen)
        return per_client, parts, seqs, missing

    def profiler(self, name: str) -> Profiler | None:
        if not self.args.profile:
            return None
        return Profiler(self.daemon.daemon_pid(), self.home / f"profile-{name}.txt",
                        self.args.profile_rate, self.args.profile_native)

    # -- one timed stretch of load -----------------------------------------------------------
    def run_load(self, *, rate: float, senders: int, hook_rate: float, group: str,
                 seconds: float, http: bool = False) -> dict[str, Any]:
        """``rate`` direct events/s from ``senders`` processes and ``hook_rate`` hook
        processes/s (spawned here; with ``http``, http hooks posted from here instead),
        open-loop, for warm-up + ``seconds``; then the sends' records and the last seq
        stored."""
        a = self.args
        ctx = C.mp_context()
        out = ctx.Queue()
        start = mono() + (300_000_000 if rate else 50_000_000)  # senders: time to fork
        warm = start + int(a.warmup * 1e9)
        end = warm + int(seconds * 1e9)
        procs = [ctx.Process(target=sender_main, daemon=True,
                             args=(k, senders, self.path, self.payloads, rate, start, end,
                                   a.transport, out))
                 for k in range(senders if rate else 0)]
        for p in procs:
            p.start()
        if hook_rate:
            hooks_n = (self.http_hooks if http else self.hooks).run(hook_rate, start, warm,
                                                                    end, group)
        else:
            hooks_n = 0
            time.sleep(max(0.0, (end - mono()) / 1e9))
        spawn_s = (mono() - start) / 1e9
        sent = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
        return {"sent": sent, "warm": warm, "hooks_n": hooks_n, "spawn_s": spawn_s,
                "last": self.api.last_seq()}

    def latencies(self, load: dict[str, Any], logs: list[dict[str, Any]], group: str
                  ) -> dict[str, Any]:
        """Transport latencies (direct sends) and hook latencies per client, the breakdowns
        (from the client that kept received_at / the first client), and the exactly-once
        check of every client against every acked event and every hook event seen."""
        send_at: dict[int, int] = {}
        lateness: list[int] = []
        sent_ts: list[int] = []
        tally: collections.Counter[str] = collections.Counter()
        warm = load["warm"]
        for s in load["sent"]:
            tally.update(s["tally"])
            for seq, t, due in zip(s["seqs"], s["sent_at"], s["dues"], strict=True):
                send_at[seq] = t if due >= warm else -t  # warm-up: negative, not measured
                if due >= warm:
                    lateness.append(t - due)
                    sent_ts.append(t)
        hooks, hook_parts, hook_seqs, hooks_missing = self.hook_latencies(logs, group)
        expected = set(send_at) | hook_seqs
        transport: dict[str, list[int]] = {}
        parts: dict[str, list[int]] = {"send_to_stored": [], "stored_to_socket": [],
                                       "socket_to_read": []}
        rows: list[tuple[int, int, int, int, int]] = []  # for --dump
        unread: dict[str, list[int]] = {}  # per client: in its socket -> read
        checks = {}
        offset = self.offset
        for log in logs:
            lat = transport.setdefault(log["label"], [])
            waits = unread.setdefault(log["label"], [])
            first: set[int] = set()
            recv = log["received_at"]
            for i, (seq, t, kts) in enumerate(zip(log["seqs"], log["arrivals"], log["kernel"],
                                                  strict=True)):
                t0 = send_at.get(seq)
                if t0 is None or t0 < 0 or seq in first:
                    continue
                first.add(seq)
                lat.append(t - t0)
                if kts:
                    waits.append(t - (kts - offset))
                if recv:
                    t_stored = self.wall_to_mono(recv[i])
                    parts["send_to_stored"].append(t_stored - t0)
                    if kts:
                        parts["stored_to_socket"].append(kts - offset - t_stored)
                        parts["socket_to_read"].append(t - (kts - offset))
                    rows.append((seq, t0, t_stored, kts - offset if kts else 0, t))
            checks[log["label"]] = {**check_log(log, expected), "lagged": len(log["lagged"]),
                                    "gaps": len(log["gaps"])}
        window_s = (max(sent_ts) - min(sent_ts)) / 1e9 if len(sent_ts) > 1 else float("nan")
        if self.args.dump:
            with open(self.args.dump, "a") as f:
                f.writelines(f"{group},{seq},{t0},{ts},{tk},{t}\n" for seq, t0, ts, tk, t in rows)
        return {"transport": transport, "hooks": hooks, "parts": parts, "unread": unread,
                "hook_parts": hook_parts, "checks": checks, "tally": dict(tally),
                "measured_sends": len(sent_ts), "window_s": window_s, "lateness": lateness,
                "hooks_missing": hooks_missing, "acked": len(send_at),
                "hooks_spawned": load["hooks_n"]}

    # -- scenario 1 ------------------------------------------------------------------------
    def s1_segment(self, kind: str, index: int, seconds: float) -> dict[str, Any]:
        """One segment of scenario 1: ``low_rate`` hooks/s of one kind (command: hook
        processes; http: POSTs to the endpoint), one reading client of its own."""
        a = self.args
        group = f"s1-{index}-{kind}"
        self.clients.call("open", [group], self.api.last_seq(), [group])
        snap0 = self.snapshot()
        load = self.run_load(rate=0, senders=0, hook_rate=a.low_rate, group=group,
                             seconds=seconds, http=kind == "http")
        (log,) = self.clients.call("collect", [group], load["last"], 30)
        snap1 = self.snapshot()
        self.clients.call("close", [group])
        res = self.latencies(load, [log], group)
        spawned = self.http_hooks.spawned if kind == "http" else self.hooks.spawned
        measured = sum(1 for v in spawned.values() if v[2] == group and v[1])
        return {"kind": kind, "hooks": res["hooks"][group], "parts": res["hook_parts"],
                "n": load["hooks_n"], "spawn_s": load["spawn_s"], "measured": measured,
                "missing": res["hooks_missing"], "check": res["checks"][group],
                "usage": self.usage(snap0, snap1),
                "answers": self.http_hooks.answers.get(group, [])}

    def scenario1(self) -> dict[str, Any]:
        a = self.args
        seg_s = a.seconds / a.s1_rounds
        print(f"\n[1] {a.low_rate:g} hooks/s for {a.seconds:g} s each way, hook processes "
              f"and http hooks, in {a.s1_rounds} segments of {seg_s:g} s each (+{a.warmup:g} s "
              "warm-up), alternated ABBA; 1 reading client")
        order: list[str] = []
        for r in range(a.s1_rounds):
            order += ["command", "http"] if r % 2 == 0 else ["http", "command"]
        profiler = self.profiler("s1")
        segments = []
        for i, kind in enumerate(order):
            seg = self.s1_segment(kind, i, seg_s)
            segments.append(seg)
            st = stats_ms(seg["hooks"])
            print(f"  segment {i + 1} {kind:7} {seg['n']} sent ({seg['n'] / seg['spawn_s']:.1f}/s"
                  f" achieved), measured {seg['measured']}; p50 {st['p50']:.2f} p99 "
                  f"{st['p99']:.2f} ms", flush=True)
        hot = profiler.stop() if profiler else None

        def pooled(kind: str) -> dict[str, Any]:
            segs = [seg for seg in segments if seg["kind"] == kind]
            wall = sum(seg["usage"]["wall_s"] for seg in segs)
            check: collections.Counter[str] = collections.Counter()
            for seg in segs:
                check.update(seg["check"])
            return {
                "stats": stats_ms([x for seg in segs for x in seg["hooks"]]),
                "parts": {k: stats_ms([x for seg in segs for x in seg["parts"][k]])
                          for k in HOOK_PARTS},
                "p99_rounds": [stats_ms(seg["hooks"])["p99"] for seg in segs],
                "spawned": sum(seg["n"] for seg in segs),
                "measured": sum(seg["measured"] for seg in segs),
                "rate": sum(seg["n"] for seg in segs) / sum(seg["spawn_s"] for seg in segs),
                "missing": sum(seg["missing"] for seg in segs), "check": dict(check),
                "usage": {k: sum(seg["usage"][k] * seg["usage"]["wall_s"] for seg in segs)
                          / wall for k in segs[0]["usage"]} | {"wall_s": wall},
                "answer": stats_ms([x for seg in segs for x in seg["answers"]]),
            }

        out = pooled("command")
        out["http"] = pooled("http")
        out["http"]["failures"] = self.http_hooks.failures
        out["http"]["connections"] = self.http_hooks.connections
        self.http_hooks.close()
        # The same rate sent straight to the socket, without hook processes taking most of
        # the CPU: the daemon's own part when the machine is otherwise idle.
        print(f"  reference: {a.low_rate:g} direct sends/s for {a.reference_seconds:g} s, "
              "no hook processes, 1 reading client")
        self.clients.call("open", ["ref"], self.api.last_seq(), ["ref"])
        ref_load = self.run_load(rate=a.low_rate, senders=1, hook_rate=0, group="ref",
                                 seconds=a.reference_seconds)
        (ref_log,) = self.clients.call("collect", ["ref"], ref_load["last"], 30)
        self.clients.call("close", ["ref"])
        ref = self.latencies(ref_load, [ref_log], "ref")
        out["profile"] = hot
        out["ref"] = {"stats": stats_ms(ref["transport"]["ref"]),
                      "parts": {k: stats_ms(v) for k, v in ref["parts"].items()},
                      "check": ref["checks"]["ref"], "tally": ref["tally"],
                      "rate": ref["measured_sends"] / ref["window_s"]}
        return out

    # -- scenario 2 ------------------------------------------------------------------------
    def segment(self, mode: str, index: int) -> dict[str, Any]:
        a = self.args
        group = f"s2-{index}-{mode}"
        measured_labels = [f"r{i}" for i in range(a.clients - 1)]
        last0 = self.api.last_seq()
        stalled: WsClient | None = None
        if mode == "baseline":
            self.clients.call("open", ["extra"], last0, [])
            labels = [*measured_labels, "extra"]
        else:
            stalled = WsClient(self.ws_url, "stalled")
            stalled.subscribe(last0)
            if not stalled.read_until(lambda log: log.kinds["live"] > 0, 30):
                raise RuntimeError("the stalled client never went live")
            stalled.log.reset()
            labels = measured_labels
        snap0 = self.snapshot()
        counters0 = self.api.status()["counters"]
        load = self.run_load(rate=a.high_rate, senders=a.senders, hook_rate=a.hook_rate,
                             group=group, seconds=a.segment_s)
        last = load["last"]
        info: dict[str, Any] = {}
        if stalled is not None:  # before it may read again: is it really stalled?
            info["unread_client_bytes"] = stalled.unread_bytes()
            q = tcp_queues(stalled.server_port, stalled.local_port)
            info["daemon_send_queue_bytes"] = q[0] if q else None
            info["daemon_rss_kb"] = C.rss_kb(self.daemon.daemon_pid()).get("VmRSS")
        status1 = self.api.status()
        counters = {k: v - counters0.get(k, 0) for k, v in status1["counters"].items()
                    if isinstance(v, int) and v - counters0.get(k, 0)}
        logs = self.clients.call("collect", labels, last, 60)
        snap1 = self.snapshot()
        if stalled is not None:
            t0 = time.monotonic()
            ok = stalled.read_until(
                lambda log: log.max_seq >= last and log.live_after_lag, a.catch_up_timeout)
            info["catch_up_s"] = time.monotonic() - t0
            info["daemon_rss_kb_after"] = C.rss_kb(self.daemon.daemon_pid()).get("VmRSS")
            info["caught_up"] = ok
            info["closed_by_server"] = stalled.closed_by_server
            slog = stalled.log
            seqs = slog.seqs
            info["stalled_lagged"] = len(slog.lagged)
            info["stalled_gap_msgs"] = len(slog.gaps)
            info["stalled_received"] = len(seqs)
            info["stalled_duplicated"] = len(seqs) - len(set(seqs))
            info["stalled_missing"] = len(set(range(last0 + 1, last + 1)) - set(seqs))
            info["stalled_in_order"] = all(x < y for x, y in zip(seqs, seqs[1:], strict=False))
            stalled.close()
        else:
            self.clients.call("close", ["extra"])
        res = self.latencies(load, logs, group)
        return {**res, "mode": mode, "index": index, "info": info, "counters": counters,
                "usage": self.usage(snap0, snap1)}

    def scenario2(self) -> dict[str, Any]:
        a = self.args
        print(f"\n[2] {a.high_rate:,.0f} events/s direct to the socket ({a.transport}, "
              f"{a.senders} sender processes) + {a.hook_rate:g} hook processes/s, "
              f"{a.clients} clients; {a.rounds} x (baseline, stalled) segments of "
              f"{a.segment_s:g} s (+{a.warmup:g} s warm-up each)")
        measured_labels = [f"r{i}" for i in range(a.clients - 1)]
        self.clients.call("open", measured_labels, self.api.last_seq(), ["r0"])
        profiler = self.profiler("s2")
        order: list[str] = []
        for r in range(a.rounds):
            order += ["baseline", "stalled"] if r % 2 == 0 else ["stalled", "baseline"]
        segments = []
        for i, mode in enumerate(order):
            seg = self.segment(mode, i)
            segments.append(seg)
            rate = seg["measured_sends"] / seg["window_s"] if seg["window_s"] else 0
            pooled = [x for lb in measured_labels for x in seg["transport"][lb]]
            s = stats_ms(pooled)
            extra = ""
            if mode == "stalled":
                inf = seg["info"]
                extra = (f"; stalled client: lagged {inf['stalled_lagged']}, daemon send "
                         f"queue {inf['daemon_send_queue_bytes']} B, unread "
                         f"{inf['unread_client_bytes']} B, caught up "
                         f"{inf['caught_up']} in {inf['catch_up_s']:.1f} s")
            print(f"  segment {i + 1} {mode:8} {rate:7,.0f} events/s; transport p50 "
                  f"{s['p50']:.2f} p99 {s['p99']:.2f} ms{extra}", flush=True)
        self.clients.call("close", measured_labels)
        hot = profiler.stop() if profiler else None
        return {"segments": segments, "profile": hot, "labels": measured_labels}


# ---- report ------------------------------------------------------------------------------------
STORED_TO_SOCKET = "  stored -> in the client's socket (daemon)"
SOCKET_TO_READ = "  in the socket -> read by the client"
HOOK_PARTS = {"spawn_to_hook": "  spawn -> hook running (start-up)",
              "hook_to_stored": "  hook running -> stored by the daemon",
              "stored_to_socket": STORED_TO_SOCKET, "socket_to_read": SOCKET_TO_READ}
# The same parts of an http hook: the event's timestamp is when its request began to arrive
HTTP_PARTS = {"spawn_to_hook": "  POST sent -> its request begun in the daemon",
              "hook_to_stored": "  request begun -> stored by the daemon",
              "stored_to_socket": STORED_TO_SOCKET, "socket_to_read": SOCKET_TO_READ}


def fmt_row(name: str, s: dict[str, float], extra: str = "") -> str:
    return (f"  {name:44} {s['p50']:7.2f} {s['p95']:7.2f} {s['p99']:7.2f} {s['max']:8.2f} "
            f"{s['n']:8,d}  {extra}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15,
                    help="measured seconds of scenario 1 and of each scenario-2 mode "
                         "(split over --rounds segments); default 15")
    ap.add_argument("--rounds", type=int, default=2,
                    help="scenario 2: (baseline, stalled) pairs, ABBA order (default 2)")
    ap.add_argument("--warmup", type=float, default=0.5,
                    help="unmeasured seconds at the start of every run (default 0.5)")
    ap.add_argument("--quick", action="store_true",
                    help="--seconds 4 --rounds 1 --reference-seconds 2: a smoke run of ~30 s")
    ap.add_argument("--s1-rounds", type=int, default=2,
                    help="scenario 1: segments of each kind (command hook processes, http "
                         "hooks), alternated ABBA, --seconds split over them (default 2)")
    ap.add_argument("--reference-seconds", type=float, default=5,
                    help="scenario 1's reference run: direct sends, no hook processes (5)")
    ap.add_argument("--low-rate", type=float, default=100, help="scenario 1 hooks/s (100)")
    ap.add_argument("--high-rate", type=float, default=5000,
                    help="scenario 2 events/s (5000)")
    ap.add_argument("--hook-rate", type=float, default=20,
                    help="scenario 2: hook processes/s on top of the direct load (20)")
    ap.add_argument("--clients", type=int, default=5, help="scenario 2 clients (5)")
    ap.add_argument("--senders", type=int, default=2, help="scenario 2 sender processes (2)")
    ap.add_argument("--transport", choices=("connection", "pipelined"), default="connection",
                    help="scenario 2 direct sends: one connection per event as hooks do "
                         "(default), or one connection per sender")
    ap.add_argument("--catch-up-timeout", type=float, default=60,
                    help="seconds the stalled client may take to catch up once it reads")
    ap.add_argument("--profile", action="store_true", help="sample the daemon with py-spy")
    ap.add_argument("--profile-rate", type=int, default=200)
    ap.add_argument("--profile-native", action="store_true",
                    help="py-spy --native: C frames too (uvloop, msgspec, GC, system calls)")
    ap.add_argument("--dump", metavar="CSV",
                    help="append every direct send seen by the client that keeps received_at "
                         "(ref, r0) as run,seq,sent,stored,in_socket,read (monotonic ns)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary MPMD_HOME")
    args = ap.parse_args()
    if args.clients < 2 or args.rounds < 1 or args.senders < 1 or args.s1_rounds < 1:
        ap.error("--clients must be at least 2, --rounds, --s1-rounds and --senders at "
                 "least 1")
    if args.quick:
        args.seconds, args.rounds, args.reference_seconds = 4.0, 1, 2.0
    args.segment_s = args.seconds / args.rounds

    home = C.short_tempdir("mpme-")
    daemon = C.Daemon(home, log_name="daemon-bench.log", MPMD_VIEWER_PORT="0")
    bench: Bench | None = None
    try:
        daemon.start(timeout=60)
        bench = Bench(args, home, daemon)
        cpus, capacity = C.parallel_capacity()
        print("e2e_latency: hook process start -> event at a WebSocket client "
              "(CLOCK_MONOTONIC on both ends)")
        print(f"  hook command: {bench.hook_command}")
        print(f"  http hooks: POST http://127.0.0.1:{bench.http_port}/hook, the request head "
              "Claude Code 2.1.328 sends")
        print(f"  viewer: {bench.ws_url.split('?')[0]}; daemon pid {daemon.pid}; machine: "
              f"{cpus} CPUs shown, {cpus} busy processes got {capacity:.2f} cores just now "
              f"(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
        s1 = bench.scenario1()
        s2 = bench.scenario2()
        result = report(args, bench, s1, s2, cpus, capacity)
        rss = C.rss_kb(daemon.daemon_pid())
        result["daemon_rss_mb_end"] = round(rss.get("VmRSS", 0) / 1024, 1)
        result["daemon_rss_mb_start"] = round(bench.rss_start_kb / 1024, 1)
        code = daemon.stop(timeout=120)
        result["daemon_exit_code"] = code
        warnings = [ln for ln in daemon.read_log().splitlines()
                    if " WARNING " in ln or " ERROR " in ln]
        log_path = home / "log" / "mpmd.log"
        if log_path.exists():
            warnings += [ln for ln in log_path.read_text(errors="replace").splitlines()
                         if " WARNING " in ln or " ERROR " in ln]
        print(f"  daemon RSS {result['daemon_rss_mb_start']} MB at start, "
              f"{result['daemon_rss_mb_end']} MB at the end (peak "
              f"{rss.get('VmHWM', 0) / 1024:.1f} MB); exit code after SIGTERM {code}; "
              f"{len(warnings)} warnings/errors in its log")
        for ln in warnings[:5]:
            print("    " + ln[:200])
        result["daemon_log_warnings"] = len(warnings)
        C.emit_json(result)
        return 0
    finally:
        if bench is not None:
            bench.clients.stop()
            with contextlib.suppress(ChildProcessError):
                bench.hooks.reap(block=True)
        C.finish(daemon, home, args.keep)


def report(args: argparse.Namespace, bench: Bench, s1: dict[str, Any], s2: dict[str, Any],
           cpus: int, capacity: float) -> dict[str, Any]:
    segs = s2["segments"]
    labels = s2["labels"]

    def pooled(mode: str, key: str, only: list[str] | None = None) -> list[int]:
        return [x for seg in segs if seg["mode"] == mode for lb, v in seg[key].items()
                if only is None or lb in only for x in v]

    def per_label(mode: str, key: str, label: str) -> list[int]:
        return [x for seg in segs if seg["mode"] == mode for x in seg[key].get(label, [])]

    def total(mode: str, name: str) -> int:
        return sum(c[name] for seg in segs if seg["mode"] == mode
                   for c in seg["checks"].values())

    def rate(mode: str) -> float:
        n = sum(seg["measured_sends"] for seg in segs if seg["mode"] == mode)
        w = sum(seg["window_s"] for seg in segs if seg["mode"] == mode)
        return n / w if w else 0.0

    def usage(mode: str, key: str) -> float:
        us = [seg["usage"] for seg in segs if seg["mode"] == mode]
        wall = sum(u["wall_s"] for u in us)
        return sum(u[key] * u["wall_s"] for u in us) / wall if wall else float("nan")

    stat = {}
    for mode in ("baseline", "stalled"):
        stat[mode] = {
            "transport": stats_ms(pooled(mode, "transport", labels)),
            "hook": stats_ms(pooled(mode, "hooks", labels)),
            "per_client": {lb: stats_ms(per_label(mode, "transport", lb)) for lb in labels},
            "per_client_hook": {lb: stats_ms(per_label(mode, "hooks", lb)) for lb in labels},
            "send_to_stored": stats_ms([x for seg in segs if seg["mode"] == mode
                                        for x in seg["parts"]["send_to_stored"]]),
            "stored_to_socket": stats_ms([x for seg in segs if seg["mode"] == mode
                                          for x in seg["parts"]["stored_to_socket"]]),
            "socket_to_read": stats_ms([x for seg in segs if seg["mode"] == mode
                                        for x in seg["parts"]["socket_to_read"]]),
            "unread": stats_ms(pooled(mode, "unread", labels)),
            "hook_parts": {k: stats_ms([x for seg in segs if seg["mode"] == mode
                                        for x in seg["hook_parts"][k]])
                           for k in HOOK_PARTS},
            "lateness": stats_ms([x for seg in segs if seg["mode"] == mode
                                  for x in seg["lateness"]]),
        }
    extra_base = stats_ms(pooled("baseline", "transport", ["extra"]))
    ratio = stat["stalled"]["transport"]["p99"] / stat["baseline"]["transport"]["p99"]
    hook_ratio = stat["stalled"]["hook"]["p99"] / stat["baseline"]["hook"]["p99"]
    client_ratios = {lb: stat["stalled"]["per_client"][lb]["p99"]
                     / stat["baseline"]["per_client"][lb]["p99"] for lb in labels}
    worst = max(client_ratios.values())
    rates = {m: rate(m) for m in ("baseline", "stalled")}
    reached = {m: rates[m] >= 0.98 * args.high_rate for m in rates}

    print("\n  latency, ms: start of the hook process (or of the direct send) -> the event's "
          "message returned by recv() in the client")
    print(f"  {'':44} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>8} {'count':>8}")
    print(f"  [1] {args.low_rate:g} hooks/s, 1 client "
          f"({s1['rate']:.1f}/s achieved)")
    t1 = s1["stats"]
    print(fmt_row("hook process included", t1,
                  f"target p99 <= 20 ms: {'met' if t1['p99'] <= 20 else 'NOT met'}"))
    for key, name in HOOK_PARTS.items():
        print(fmt_row(name, s1["parts"][key]))
    h1 = s1["http"]
    print(f"  [1] {args.low_rate:g} http hooks/s, 1 client ({h1['rate']:.1f}/s achieved)")
    print(fmt_row("http hook (POST sent -> read by the client)", h1["stats"],
                  f"target p99 <= 20 ms: {'met' if h1['stats']['p99'] <= 20 else 'NOT met'}"))
    for key, name in HTTP_PARTS.items():
        print(fmt_row(name, h1["parts"][key]))
    print(fmt_row("  (POST sent -> answer: Claude Code's wait)", h1["answer"]))
    print("  p99 of each segment, ms: hook processes "
          + ", ".join(f"{x:.2f}" for x in s1["p99_rounds"]) + "; http hooks "
          + ", ".join(f"{x:.2f}" for x in h1["p99_rounds"]))
    ref = s1["ref"]
    print(fmt_row("reference: direct sends, no hook processes", ref["stats"],
                  f"({ref['rate']:.1f}/s)"))
    print(fmt_row("  send -> stored (ack path)", ref["parts"]["send_to_stored"]))
    print(fmt_row(STORED_TO_SOCKET, ref["parts"]["stored_to_socket"]))
    print(fmt_row(SOCKET_TO_READ, ref["parts"]["socket_to_read"]))
    for mode in ("baseline", "stalled"):
        st = stat[mode]
        who = (f"{args.clients} reading" if mode == "baseline"
               else f"{args.clients - 1} reading + 1 stalled")
        print(f"  [2] {mode}: {args.high_rate:,.0f}/s target, {rates[mode]:,.0f}/s achieved "
              f"({'reached' if reached[mode] else 'NOT reached'}), {who}; measured: "
              f"{', '.join(labels)}")
        print(fmt_row("transport only (direct send)", st["transport"]))
        print(fmt_row("  send -> stored (ack path)", st["send_to_stored"]))
        print(fmt_row(STORED_TO_SOCKET, st["stored_to_socket"]))
        print(fmt_row(SOCKET_TO_READ, st["socket_to_read"]))
        print(fmt_row("    (the same, all measured clients)", st["unread"]))
        print(fmt_row(f"hook process included ({args.hook_rate:g}/s)", st["hook"]))
        for key, name in HOOK_PARTS.items():
            print(fmt_row(name, st["hook_parts"][key]))
        print(fmt_row("  (send lateness vs the open-loop schedule)", st["lateness"]))
        if mode == "baseline":
            print(fmt_row("  (5th client, not in the comparison)", extra_base))
    print("\n  per client p99 (ms), transport only / hook process included:")
    print(f"  {'client':8} {'baseline':>9} {'stalled':>9} {'ratio':>6}   {'baseline':>9} "
          f"{'stalled':>9}")
    for lb in labels:
        b, s = stat["baseline"]["per_client"][lb], stat["stalled"]["per_client"][lb]
        hb, hs = stat["baseline"]["per_client_hook"][lb], stat["stalled"]["per_client_hook"][lb]
        print(f"  {lb:8} {b['p99']:9.2f} {s['p99']:9.2f} {s['p99'] / b['p99']:6.2f}   "
              f"{hb['p99']:9.2f} {hs['p99']:9.2f}")
    print(f"  p99 ratio stalled / baseline, 4 reading clients pooled: transport {ratio:.2f}, "
          f"hook process included {hook_ratio:.2f}; worst single client {worst:.2f} "
          f"(target <= 1.10: {'met' if worst <= 1.10 else 'NOT met'})")

    # ---- correctness
    print("\n  correctness:")
    c1 = s1["check"]
    print(f"  [1] client: {c1['received']} events, lost {c1['lost']}, duplicated "
          f"{c1['duplicated']}, unexpected {c1['unexpected']}; hook runs never seen "
          f"{s1['missing']}; lagged {c1['lagged']}, gaps {c1['gaps']}")
    ch = h1["check"]
    print(f"  [1] http hooks' client: {ch['received']} events, lost {ch['lost']}, duplicated "
          f"{ch['duplicated']}, unexpected {ch['unexpected']}; http hooks never seen "
          f"{h1['missing']}; POSTs without a 200 {h1['failures']}; connections "
          f"{h1['connections']}")
    c1r = ref["check"]
    print(f"  [1] reference client: {c1r['received']} events, lost {c1r['lost']}, duplicated "
          f"{c1r['duplicated']}, unexpected {c1r['unexpected']}; sends: "
          f"{ref['tally'].get('stored', 0)} stored, busy {ref['tally'].get('busy', 0)}, "
          f"errors {ref['tally'].get('errors', 0)}")
    for mode in ("baseline", "stalled"):
        ms = [seg for seg in segs if seg["mode"] == mode]
        tally: collections.Counter[str] = collections.Counter()
        for seg in ms:
            tally.update(seg["tally"])
        print(f"  [2] {mode}: acked {sum(seg['acked'] for seg in ms):,} direct + "
              f"{sum(seg['hooks_spawned'] for seg in ms)} hook runs; every reading client: "
              f"lost {total(mode, 'lost')}, duplicated {total(mode, 'duplicated')}, "
              f"unexpected {total(mode, 'unexpected')}, lagged {total(mode, 'lagged')}, "
              f"gaps {total(mode, 'gaps')}; hook runs never seen "
              f"{sum(seg['hooks_missing'] for seg in ms)}; sends: busy {tally['busy']}, "
              f"errors {tally['errors']}, bad acks {tally['bad_acks']}")
    stalled_segs = [seg for seg in segs if seg["mode"] == "stalled"]
    for seg in stalled_segs:
        inf = seg["info"]
        print(f"  stalled client, segment {seg['index'] + 1}: before reading again, "
              f"{inf['daemon_send_queue_bytes']} B in the daemon's TCP send queue to it, "
              f"{inf['unread_client_bytes']} B unread in its receive buffer; daemon RSS "
              f"{(inf['daemon_rss_kb'] or 0) / 1024:.1f} MB "
              f"({(inf['daemon_rss_kb_after'] or 0) / 1024:.1f} MB after the catch-up); lagged "
              "messages "
              f"{inf['stalled_lagged']}, daemon viewer_lagged +"
              f"{seg['counters'].get('viewer_lagged', 0)}; then caught up "
              f"{'yes' if inf['caught_up'] else 'NO'} in {inf['catch_up_s']:.1f} s: "
              f"{inf['stalled_received']:,} events, missing {inf['stalled_missing']}, "
              f"duplicated {inf['stalled_duplicated']}, in order {inf['stalled_in_order']}, "
              f"gap messages {inf['stalled_gap_msgs']}"
              + (f", closed by the server ({inf['closed_by_server']})"
                 if inf["closed_by_server"] else ""))
    spool = bench.api.status()["counters"].get("events_spool", 0)
    print(f"  hook runs: {bench.hooks.n}, exit codes not 0: {bench.hooks.failures}; events "
          f"that came through the spool (a hook got no ack within 1 s): {spool}")

    # ---- machine
    print("\n  CPU, in cores (other = processes not ours: noise for the figures); run-queue "
          "wait = time a runnable process waited for a CPU (ms per s, and per wake-up):")
    for what, u1 in (("hook processes", s1["usage"]), ("http hooks", h1["usage"])):
        print(f"  [1] {what}: daemon {u1['daemon_cores']:.2f}, client process "
              f"{u1['client_cores']:.2f}, hooks + this process {u1['load_gen_cores']:.2f}, "
              f"other {u1['other_cores']:.2f}; run-queue wait: daemon "
              f"{u1['daemon_wait_ms_per_s']:.1f} ms/s ({u1['daemon_wait_us_per_run']:.0f} us "
              f"a run), client process {u1['client_wait_ms_per_s']:.1f} ms/s "
              f"({u1['client_wait_us_per_run']:.0f} us)")
    for mode in ("baseline", "stalled"):
        print(f"  [2] {mode}: daemon {usage(mode, 'daemon_cores'):.2f}, client process "
              f"{usage(mode, 'client_cores'):.2f}, senders + hooks + this process "
              f"{usage(mode, 'load_gen_cores'):.2f}, other {usage(mode, 'other_cores'):.2f}; "
              f"run-queue wait: daemon {usage(mode, 'daemon_wait_ms_per_s'):.1f} ms/s "
              f"({usage(mode, 'daemon_wait_us_per_run'):.0f} us a run), client process "
              f"{usage(mode, 'client_wait_ms_per_s'):.1f} ms/s "
              f"({usage(mode, 'client_wait_us_per_run'):.0f} us)")
    for name, hot in (("scenario 1", s1["profile"]), ("scenario 2", s2["profile"])):
        if hot:
            print(f"\n  py-spy profile of the daemon, {name}:")
            for ln in hot:
                print("    " + ln)

    def r3(x: float) -> float | None:
        return None if x != x else round(x, 3)  # NaN -> null

    def flat(prefix: str, s: dict[str, float]) -> dict[str, Any]:
        return {f"{prefix}_{k}_ms": r3(s[k]) for k in ("p50", "p95", "p99", "max")} | \
            {f"{prefix}_count": s["n"]}

    all_other = [s1["usage"]["other_cores"], h1["usage"]["other_cores"]] + [
        seg["usage"]["other_cores"] for seg in segs]
    return {
        "bench": "e2e_latency",
        "seconds": args.seconds,
        "rounds": args.rounds,
        "transport": args.transport,
        "senders": args.senders,
        "s1_target_rate": args.low_rate,
        "s1_rate": round(s1["rate"], 1),
        **flat("s1_hook", t1),
        "s1_p99_target_met": t1["p99"] <= 20,
        **flat("s1_spawn_to_hook", s1["parts"]["spawn_to_hook"]),
        **flat("s1_hook_to_stored", s1["parts"]["hook_to_stored"]),
        **flat("s1_stored_to_socket", s1["parts"]["stored_to_socket"]),
        **flat("s1_socket_to_read", s1["parts"]["socket_to_read"]),
        "s1_rounds": args.s1_rounds,
        "s1_hook_p99_rounds": [r3(x) for x in s1["p99_rounds"]],
        "s1_http_rate": round(h1["rate"], 1),
        **flat("s1_http", h1["stats"]),
        "s1_http_p99_target_met": h1["stats"]["p99"] <= 20,
        "s1_http_p99_rounds": [r3(x) for x in h1["p99_rounds"]],
        **flat("s1_http_post_to_begun", h1["parts"]["spawn_to_hook"]),
        **flat("s1_http_begun_to_stored", h1["parts"]["hook_to_stored"]),
        **flat("s1_http_stored_to_socket", h1["parts"]["stored_to_socket"]),
        **flat("s1_http_socket_to_read", h1["parts"]["socket_to_read"]),
        **flat("s1_http_answer", h1["answer"]),
        "s1_http_lost": ch["lost"],
        "s1_http_duplicated": ch["duplicated"],
        "s1_http_missing": h1["missing"],
        "s1_http_failures": h1["failures"],
        "s1_http_connections": h1["connections"],
        **flat("s1_reference_transport", ref["stats"]),
        **flat("s1_reference_stored_to_socket", ref["parts"]["stored_to_socket"]),
        "s2_target_rate": args.high_rate,
        "s2_baseline_rate": round(rates["baseline"]),
        "s2_stalled_rate": round(rates["stalled"]),
        "s2_rate_reached": reached["baseline"] and reached["stalled"],
        **flat("s2_baseline_transport", stat["baseline"]["transport"]),
        **flat("s2_stalled_transport", stat["stalled"]["transport"]),
        **flat("s2_baseline_hook", stat["baseline"]["hook"]),
        **flat("s2_stalled_hook", stat["stalled"]["hook"]),
        **flat("s2_baseline_stored_to_socket", stat["baseline"]["stored_to_socket"]),
        **flat("s2_stalled_stored_to_socket", stat["stalled"]["stored_to_socket"]),
        **flat("s2_baseline_socket_to_read", stat["baseline"]["unread"]),
        **flat("s2_stalled_socket_to_read", stat["stalled"]["unread"]),
        "s2_p99_ratio_transport": r3(ratio),
        "s2_p99_ratio_hook": r3(hook_ratio),
        "s2_p99_ratio_worst_client": r3(worst),
        "s2_p99_ratio_target_met": worst <= 1.10,
        "s1_lost": c1["lost"] + c1r["lost"],
        "s1_duplicated": c1["duplicated"] + c1r["duplicated"],
        "s2_lost": total("baseline", "lost") + total("stalled", "lost"),
        "s2_duplicated": total("baseline", "duplicated") + total("stalled", "duplicated"),
        "s2_unexpected": total("baseline", "unexpected") + total("stalled", "unexpected"),
        "s2_reading_clients_lagged": total("baseline", "lagged") + total("stalled", "lagged"),
        "hooks_missing": s1["missing"] + sum(seg["hooks_missing"] for seg in segs),
        "stalled_lagged": all(seg["info"]["stalled_lagged"] > 0 for seg in stalled_segs),
        "stalled_caught_up": all(seg["info"]["caught_up"] for seg in stalled_segs),
        "stalled_missing": sum(seg["info"]["stalled_missing"] for seg in stalled_segs),
        "stalled_duplicated": sum(seg["info"]["stalled_duplicated"] for seg in stalled_segs),
        "stalled_daemon_send_queue_bytes": [seg["info"]["daemon_send_queue_bytes"]
                                            for seg in stalled_segs],
        "events_via_spool": spool,
        "cpus": cpus,
        "parallel_capacity_cores": round(capacity, 2),
        "other_load_cores_max": r3(max(all_other)),
    }


if __name__ == "__main__":
    sys.exit(main())
