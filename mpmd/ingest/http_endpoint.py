"""Claude Code's `http` hooks, straight into the daemon: `POST /hook` on 127.0.0.1.

A command hook costs Claude Code a process per event; an http hook is one request on a
keep-alive connection (docs/protocol.md, "The http endpoint"). Each request goes the way a
socket frame goes: an EventFrame (a random id, stamped when the request began, the body as
the payload) through ``Store.put`` with source ``http``, and the answer goes out once the
event is in the ring, so a 2xx means "kept" as an ack does. For PreToolUse and
PermissionRequest the compiled policy decides as in the command hook (mpm_hook.policy), the
decision travels in the frame, and the answer's body is what the command hook would print;
a ``remote`` rule holds the request open until a viewer answers (mpmd.serve.approvals).

Who may post (docs/security.md): a connection whose other end is not a process of the
daemon's user is refused (sock_diag, mpmd.ingest.peercred; looked up once per connection), and
every request needs the Host of the endpoint itself, no Origin, and the bearer token kept
owner-only in the state folder. Bad requests are answered with a 4xx and the reason,
counted by reason (``http_refused_<reason>``), and never stop the daemon.

HTTP/1.1 is parsed by httptools (llhttp, the parser of Node.js; uvicorn's): measured
5.7 µs a request where h11 took 169 µs; the endpoint's whole share (parse, checks, answer;
not the store's) measured ~9 µs a request. Requests of one connection are answered one at a
time, in order: pipelined requests wait in a queue while one is held for a viewer.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httptools

from mpm_hook import hook, policy_compile, remote, wire
from mpm_hook import paths as hook_paths
from mpm_hook import policy as hook_policy
from mpmd.counters import HTTP_REFUSED_PREFIX, Count, http_refused
from mpmd.durable import publish
from mpmd.ingest.framing import FrameError, decode_body
from mpmd.ingest.peercred import PeerUnknown, TcpPeers
from mpmd.model.events import EventFrame
from mpmd.storage.store import Store

log = logging.getLogger("mpmd.http")

HOST = "127.0.0.1"
PATH = b"/hook"
# Why a request was refused: reason -> (status, the text sent back). Each reason is also a
# counter, http_refused_<reason>.
REFUSALS: dict[str, tuple[int, str]] = {
    "foreign_uid": (403, "the connection is not from a process of the daemon's user"),
    "peer_unknown": (403, "the owner of the connection cannot be found"),
    "host": (421, "Host must be 127.0.0.1:{port} or localhost:{port}"),
    "method": (405, "only POST is accepted"),
    "path": (404, "not found: hooks post to /hook"),
    "origin": (403, "requests from web pages (with an Origin header) are refused"),
    "token_missing": (401, "no credential: send Authorization: Bearer <the token in "
                           "http.token in the state folder>"),
    "token_wrong": (401, "wrong credential"),
    "content_type": (415, "Content-Type must be application/json"),
    "too_large": (413, "body over max_frame_bytes ({limit} bytes)"),
    "timeout": (408, "request not finished within idle_timeout_s"),
    "malformed": (400, "malformed HTTP request"),
    "too_many_connections": (503, "too many connections (max_connections)"),
    "unavailable": (503, "the event could not be kept"),
}
_PHRASES = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
            413: "Content Too Large", 415: "Unsupported Media Type",
            421: "Misdirected Request", 503: "Service Unavailable"}
# After these the connection is closed (what follows on it cannot be trusted or is unread).
_CLOSING = frozenset(("foreign_uid", "peer_unknown", "too_large", "timeout", "malformed",
                      "too_many_connections"))
# A closing connection still reads (and drops) what the client sends for this long after
# the answer, so that the client reads the answer before the connection goes (closing with
# unread bytes makes the kernel reset it, and a reset can destroy the answer in flight).
LINGER_S = 1.0
# Claude Code (axios) keeps idle connections open and closes them itself after the
# Keep-Alive hint less one second (5 s without one, checked with 2.1.328); the endpoint
# closes idle ones later than that, never first, which would lose a request sent just then.
MIN_KEEP_ALIVE_S = 2
# Completed requests waiting behind one held for a viewer; past it, reading pauses.
MAX_QUEUED = 16
_DECIDED = (b'"PreToolUse"', b'"PermissionRequest"')

# Connection states, for the sweep.
IDLE, READING, HELD, LINGER = range(4)


def publish_port(path: Path, port: int | None) -> None:
    """Tell install-hooks and doctor the port (None: the endpoint is off, the file goes)."""
    try:
        if port is None:
            path.unlink(missing_ok=True)
            return
        publish(path, f"{port}\n".encode())
    except OSError as exc:
        log.warning("could not write the http port to %s: %s", path, exc)


def response(status: int, body: bytes = b"", *, json: bool = False, close: bool = False,
             keep_alive_s: int = 5, extra: str = "") -> bytes:
    head = [f"HTTP/1.1 {status} {_PHRASES.get(status, '')}\r\n"]
    if body:
        head.append("Content-Type: application/json\r\n" if json
                    else "Content-Type: text/plain; charset=utf-8\r\n")
    head.append(f"Content-Length: {len(body)}\r\n")
    head.append(extra)
    head.append("Connection: close\r\n" if close else f"Keep-Alive: timeout={keep_alive_s}\r\n")
    head.append("\r\n")
    return "".join(head).encode() + body


class Request:
    __slots__ = ("url", "host", "origin", "authorization", "content_type", "content_length",
                 "expect", "repeated", "body", "size", "refusal", "ts_ns", "keep_alive")

    def __init__(self, ts_ns: int) -> None:
        self.url = b""
        self.host: bytes | None = None
        self.origin: bytes | None = None
        self.authorization: bytes | None = None
        self.content_type: bytes | None = None
        self.content_length: bytes | None = None
        self.expect = False
        self.repeated: bytes | None = None  # a header that must come once came twice
        self.body: list[bytes] = []
        self.size = 0
        self.refusal: str | None = None
        self.ts_ns = ts_ns
        self.keep_alive = True


class HttpIngest:
    """The endpoint: listens, keeps the connections, decides, stores, answers."""

    def __init__(self, store: Store, counters: Counter[str], *, port: int, token: str,
                 max_frame_bytes: int, idle_timeout_s: float, max_connections: int,
                 state_dir: Path, spool_dir: Path, spool_wakeup: Callable[[], None],
                 holder: Any = None) -> None:
        self.store = store
        self.counters = counters
        self.wanted_port = port
        self.port = 0
        self.token = token.encode()
        self.max_frame_bytes = max_frame_bytes
        self.payload_limit = wire.payload_limit(max_frame_bytes)
        self.idle_timeout_s = idle_timeout_s
        self.keep_alive_hint = max(MIN_KEEP_ALIVE_S, int(idle_timeout_s))
        self.keep_alive_s = max(idle_timeout_s, float(self.keep_alive_hint))
        self.max_connections = max_connections
        self.state_dir = state_dir
        self.spool_dir = spool_dir
        self.spool_wakeup = spool_wakeup
        self.holder = holder  # mpmd.serve.approvals.RemoteHolder
        self.compiled_policy = hook_paths.policy_compiled_path(str(state_dir))
        home = os.environb.get(b"HOME")
        self.policy_environ = {b"HOME": home} if home else {}
        self._last_note: str | None = None
        self.uid = os.getuid()
        self.peers = TcpPeers()
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpConnection] = set()
        self.busy = 0  # connections in the middle of a request or held for a viewer
        self.idle = asyncio.Event()  # set when none is (for shutdown)
        self.idle.set()
        self.server: asyncio.AbstractServer | None = None
        self.passed = False  # serving a socket a service manager holds (start(sock=...))
        self._sweeper: asyncio.TimerHandle | None = None
        self._ok = response(200, keep_alive_s=self.keep_alive_hint)
        self.allowed_hosts: frozenset[bytes] = frozenset()

    # ---- listening --------------------------------------------------------------------
    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen on 127.0.0.1:port (OSError when it cannot: port taken, not allowed), or
        serve on ``sock``, a listening socket a service manager passed (mpmd.ingest.activation)."""
        self.passed = sock is not None
        own = sock is None
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if own:
                # A restart finds the port in TIME_WAIT from the connections it closed.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((HOST, self.wanted_port))
                sock.listen(1024)
            sock.setblocking(False)
            self.server = await self.loop.create_server(lambda: HttpConnection(self),
                                                        sock=sock)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self.allowed_hosts = frozenset(f"{name}:{self.port}".encode()
                                       for name in ("127.0.0.1", "localhost"))
        self.refusal_text = {reason: text.format(port=self.port, limit=self.max_frame_bytes)
                             for reason, (_status, text) in REFUSALS.items()}
        period = min(self.idle_timeout_s, self.keep_alive_s, LINGER_S) / 2
        self._sweeper = self.loop.call_later(period, self._sweep, period)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hook"

    def stop_listening(self) -> None:
        """No new connections; idle ones close, those in a request finish (or abort_all)."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for conn in list(self.connections):
            if conn.state == IDLE and not conn.queue:
                conn.close()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.peers.close()

    def status(self) -> dict[str, object]:
        prefix = HTTP_REFUSED_PREFIX
        return {"http_url": self.url, "http_port": self.port,
                "http_connections_open": len(self.connections),
                "http_refused": {k[len(prefix):]: n for k, n in self.counters.items()
                                 if k.startswith(prefix)}}

    def _sweep(self, period: float) -> None:
        """Close the connections idle past the keep-alive time, answer 408 to requests not
        finished within idle_timeout_s, and end lingering closes. One timer for all."""
        now = self.loop.time()
        for conn in list(self.connections):
            age = now - conn.since
            if conn.state == IDLE and age > self.keep_alive_s:
                self.counters[Count.HTTP_CLOSED_IDLE] += 1
                conn.close()
            elif conn.state == READING and age > self.idle_timeout_s:
                conn.refuse_now("timeout")
            elif conn.state == LINGER and age > LINGER_S:
                conn.close()
        self._sweeper = self.loop.call_later(period, self._sweep, period)

    # ---- one request --------------------------------------------------------------------
    def check(self, conn: HttpConnection, req: Request, method: bytes) -> str | None:
        """The refusal for a request whose headers have come, or None."""
        if conn.peer_refusal is not None:
            return conn.peer_refusal
        if req.host is None or req.host.lower() not in self.allowed_hosts:
            return "host"
        if req.repeated is not None:
            return "malformed"
        if method != b"POST":
            return "method"
        if req.url.partition(b"?")[0] != PATH:
            return "path"
        if req.origin is not None:
            return "origin"
        auth = req.authorization
        if auth is None or auth[:7].lower() != b"bearer ":
            return "token_missing"
        if not hmac.compare_digest(auth[7:].strip(), self.token):
            return "token_wrong"
        ctype = req.content_type
        if ctype is None or ctype.partition(b";")[0].strip().lower() != b"application/json":
            return "content_type"
        length = req.content_length
        if length is not None and (not length.isdigit() or int(length) > self.max_frame_bytes):
            return "too_large" if length.isdigit() else "malformed"
        return None

    def take(self, conn: HttpConnection, req: Request) -> bytes | None:
        """Store one posted event; the answer to send, or None when the request is held
        for a viewer (the connection answers when the viewer does). NotKept when the event
        could not be kept."""
        payload = b"".join(req.body)
        original_size = len(payload)
        if original_size > self.payload_limit:  # as the hook cuts it (docs/protocol.md)
            payload = payload[:self.payload_limit]
        event_id = os.urandom(wire.ID_BYTES)
        decision = None
        if original_size == len(payload) and (_DECIDED[0] in payload or _DECIDED[1] in payload):
            decision = self._decide(payload)
        frame = EventFrame(version=wire.VERSION, id=event_id, ts_ns=req.ts_ns, payload=payload,
                           original_size=original_size)
        if decision is not None:
            try:  # exactly what the hook's frame carries (mpm_hook.hook._decided_frame)
                encoded = wire.encode_event(event_id, req.ts_ns, payload, original_size,
                                            decision.record())
                frame = decode_body(memoryview(encoded)[wire.LENGTH_BYTES:])
            except (ValueError, FrameError) as exc:
                log.error("decision not journaled: %r", exc)
        status, seq = self.store.put(frame, "http", time.time_ns())
        if status not in (wire.STORED, wire.DUPLICATE):  # ring full, shutting down
            try:
                hook.spool(str(self.spool_dir), wire.encode_event(
                    event_id, req.ts_ns, payload, original_size,
                    frame.decision), event_id, req.ts_ns)
            except OSError as exc:
                log.error("an http event could not be kept: the ring is busy and the spool "
                          "write failed (%s)", exc)
                raise NotKept from exc
            self.counters[Count.HTTP_SPOOLED] += 1
            self.spool_wakeup()
            return self.answer(decision.output(None) if decision is not None else None)
        if decision is not None and decision.action == "remote" and status == wire.STORED \
                and self.holder is not None:
            conn.hold(frame, seq, decision)
            return None
        return self.answer(decision.output() if decision is not None else None)

    def answer(self, out: bytes | None) -> bytes:
        if not out:
            return self._ok
        return response(200, out, json=True, keep_alive_s=self.keep_alive_hint)

    def _decide(self, payload: bytes) -> hook_policy.Decision | None:
        """The command hook's decision for this payload (mpm_hook.hook.decide), by the
        compiled policy in the state folder; None without one, or on any error."""
        try:
            fd = os.open(self.compiled_policy, os.O_RDONLY)
        except OSError:
            return None
        note = None
        decision = None
        try:
            decision, note = hook_policy.decide_for_hook(fd, self.compiled_policy, payload,
                                                         self.policy_environ,
                                                         policy_compile.refresh)
        except Exception as exc:  # noqa: BLE001 - a broken policy must never lose the event
            note = f"policy error, observing: {exc!r}"
        finally:
            os.close(fd)
        if note and note != self._last_note:
            log.warning("%s", note)
        self._last_note = note
        return decision  # type: ignore[no-any-return]


class _Stop(Exception):
    """Raised in a parser callback to stop parsing: the connection is being closed."""


class NotKept(Exception):
    """The event could not be kept (ring busy and the spool write failed)."""


class HttpConnection(asyncio.Protocol):
    """One client connection: the parser's callbacks, the queue of complete requests, and
    the one request held for a viewer, if any."""

    def __init__(self, server: HttpIngest) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.req: Request | None = None
        self.queue: deque[Request] = deque()
        self.state = IDLE
        self.since = server.loop.time()
        self.peer_refusal: str | None = None
        # While a request is held for a viewer: our end of the socket pair, the decision,
        # the answer's bytes so far.
        self.held: tuple[socket.socket, hook_policy.Decision, bytearray] | None = None
        self.closed = False
        self.paused = False
        self.counted_busy = False

    # ---- the transport's callbacks --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        try:
            self._admit(transport)
        except Exception as exc:  # noqa: BLE001 - a bug of ours: the daemon goes on
            self._internal_error(exc)

    def _admit(self, transport: asyncio.BaseTransport) -> None:
        server = self.server
        counters = server.counters
        counters[Count.HTTP_CONNECTIONS_TOTAL] += 1
        server.connections.add(self)
        if len(server.connections) > server.max_connections:
            self.refuse("too_many_connections")
            return
        try:
            uid = server.peers.uid(socket.AF_INET, transport.get_extra_info("peername"),
                                   transport.get_extra_info("sockname"))
        except PeerUnknown as exc:
            log.warning("refusing an http connection: %s", exc)
            self.peer_refusal = "peer_unknown"
            return
        if uid is None:
            counters[Count.HTTP_PEER_UID_UNCHECKED] += 1  # not Linux: the token alone
        elif uid != server.uid:
            log.warning("refusing an http connection from uid %d", uid)
            self.peer_refusal = "foreign_uid"

    def data_received(self, data: bytes) -> None:
        if self.state == LINGER or self.closed:
            return  # what a refused client still sends is dropped
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _Stop):  # a bug of ours in a callback
                self._internal_error(exc.__context__ or exc)
        except httptools.HttpParserUpgrade:
            self.refuse_now("malformed")  # no upgrades here: what follows is not HTTP/1.1
        except httptools.HttpParserError as exc:
            log.info("malformed http request: %s", exc)
            self.refuse_now("malformed")
        except Exception as exc:  # noqa: BLE001 - a bug of ours: the daemon goes on
            self._internal_error(exc)

    def _internal_error(self, exc: BaseException) -> None:
        self.server.counters[Count.INTERNAL_ERRORS] += 1
        log.error("internal error while serving an http request", exc_info=exc)
        self.refuse_now("unavailable")

    def eof_received(self) -> bool:
        # Every complete request has been answered, or is held: a client that ends its
        # side has given up on what it waits for (a held request is withdrawn).
        if self.state == READING:
            self.server.counters[Count.HTTP_TRUNCATED] += 1
        self.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()

    def pause_writing(self) -> None:  # the client does not read its answers: stop reading
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and len(self.queue) < MAX_QUEUED and not self.closed:
            self.transport.resume_reading()

    # ---- the parser's callbacks -----------------------------------------------------------
    def on_message_begin(self) -> None:
        self.req = Request(time.time_ns())
        self._set_state(READING)

    def on_url(self, url: bytes) -> None:
        self.req.url += url  # type: ignore[union-attr]  # between begin and complete

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self.req
        assert req is not None
        name = name.lower()
        if name == b"host":
            if req.host is not None:
                req.repeated = name
            req.host = value
        elif name == b"authorization":
            if req.authorization is not None:
                req.repeated = name
            req.authorization = value
        elif name == b"content-type":
            if req.content_type is not None:
                req.repeated = name
            req.content_type = value
        elif name == b"content-length":
            req.content_length = value
        elif name == b"origin":
            req.origin = value
        elif name == b"expect":
            req.expect = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        req = self.req
        assert req is not None
        req.keep_alive = self.parser.should_keep_alive()
        refusal = self.server.check(self, req, self.parser.get_method())
        if refusal == "too_large" or (refusal is not None and req.expect):
            # Now, without reading the body (a client that expects 100-continue has not
            # sent it; one that sent more than the limit gets no further).
            self.refuse_now(refusal)
            raise _Stop
        req.refusal = refusal
        if req.expect and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        req = self.req
        assert req is not None
        if req.refusal is not None:
            return  # a refused request's body is dropped as it comes
        req.size += len(body)
        if req.size > self.server.max_frame_bytes:  # chunked: no length said beforehand
            self.refuse_now("too_large")
            raise _Stop
        req.body.append(body)

    def on_message_complete(self) -> None:
        req = self.req
        assert req is not None
        self.req = None
        self.queue.append(req)
        self._set_state(HELD if self.held is not None else IDLE)
        if len(self.queue) >= MAX_QUEUED and self.transport is not None:
            self.transport.pause_reading()
        self._serve()
        if self.closed or self.state == LINGER:
            raise _Stop  # nothing after this request is read

    # ---- answering ------------------------------------------------------------------------
    def _serve(self) -> None:
        """Answer the complete requests in order, until one is held for a viewer."""
        server = self.server
        while self.queue and self.held is None and not self.closed and self.state != LINGER:
            req = self.queue.popleft()
            server.counters[Count.HTTP_REQUESTS] += 1
            if req.refusal is not None:
                self.refuse(req.refusal, req.keep_alive)
                continue
            try:
                answer = server.take(self, req)
            except NotKept:
                self.refuse("unavailable", req.keep_alive)
                continue
            if answer is None:  # held for a viewer: answered when it answers
                return
            assert self.transport is not None
            self.transport.write(answer)
            if not req.keep_alive:
                self.close()
        if not self.closed and self.state != LINGER and self.transport is not None \
                and not self.paused and len(self.queue) < MAX_QUEUED:
            self.transport.resume_reading()

    def refuse(self, reason: str, keep_alive: bool = True) -> None:
        """Answer a request (or the connection) with a refusal; close after it when the
        reason calls for it."""
        server = self.server
        server.counters[http_refused(reason)] += 1
        if self.transport is None or self.closed or self.state == LINGER:
            return
        status = REFUSALS[reason][0]
        close = reason in _CLOSING or not keep_alive
        extra = ("Allow: POST\r\n" if reason == "method" else
                 "WWW-Authenticate: Bearer\r\n" if status == 401 else "")
        text = (server.refusal_text[reason] + "\n").encode()
        self.transport.write(response(status, text, close=close, extra=extra,
                                      keep_alive_s=server.keep_alive_hint))
        if close:
            self._linger()

    def refuse_now(self, reason: str) -> None:
        """A refusal that ends the connection in the middle of a request (408, 413, 400,
        503): the complete requests before it are answered first; with one of them held
        for a viewer, the connection just closes (no answer may pass the held one's)."""
        if self.state == LINGER or self.closed:
            return
        self.req = None
        self._set_state(IDLE)
        self._serve()
        if self.held is not None:
            self.server.counters[http_refused(reason)] += 1
            self.close()
        else:
            self.refuse(reason, keep_alive=False)

    def _linger(self) -> None:
        """Close after the answer; the client's side is read (and dropped) for LINGER_S."""
        self.queue.clear()
        self._set_state(LINGER)
        transport = self.transport
        if transport is not None and transport.can_write_eof():
            transport.write_eof()
        else:
            self.close()

    # ---- held for a viewer ----------------------------------------------------------------
    def hold(self, frame: EventFrame, seq: int, decision: hook_policy.Decision) -> None:
        """Hand the request to the approvals as the socket path does (RemoteHolder.take):
        they get one end of a socket pair and write the viewer's answer frame to it
        (mpm_hook.remote); this connection reads it from the other end and answers the
        request. Closing our end withdraws the request, as a hook closing its socket does."""
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        self.held = (ours, decision, bytearray())
        self._set_state(HELD)
        self.server.counters[Count.HTTP_HELD] += 1
        self.server.loop.add_reader(ours.fileno(), self._answer_ready)
        self.server.holder.take(frame, seq, theirs)

    def _answer_ready(self) -> None:
        held = self.held
        if held is None:
            return
        ours, decision, data = held
        try:
            chunk = ours.recv(8192)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        data += chunk
        need = (wire.LENGTH_BYTES + int.from_bytes(data[:wire.LENGTH_BYTES], "big")
                if len(data) >= wire.LENGTH_BYTES else None)
        if chunk and (need is None or len(data) < need):
            return  # more to come
        verdict = None
        if need is not None and len(data) >= need:
            try:
                _id, behavior, message = remote.decode_answer(bytes(data[:need]))
            except ValueError:
                behavior, message = remote.NONE, ""
            if behavior == remote.ALLOW:
                verdict = ("allow", message)
            elif behavior == remote.DENY:
                verdict = ("deny", message)
        self._release_held()
        if self.transport is not None and not self.closed:
            self.transport.write(self.server.answer(decision.output(verdict)))
            self._set_state(READING if self.req is not None else IDLE)
            self._serve()

    def _release_held(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            self.server.loop.remove_reader(held[0].fileno())
            held[0].close()  # a request still waiting is withdrawn from the viewers

    # ---- bookkeeping ----------------------------------------------------------------------
    def _set_state(self, state: int) -> None:
        self.state = state
        self.since = self.server.loop.time()
        busy = state in (READING, HELD)
        if busy != self.counted_busy:
            self.counted_busy = busy
            server = self.server
            server.busy += 1 if busy else -1
            if server.busy:
                server.idle.clear()
            else:
                server.idle.set()

    def close(self) -> None:
        if self.closed:
            return
        if self.transport is not None:
            self.transport.close()
        self._forget()

    def _forget(self) -> None:
        if self.held is not None:
            self._release_held()
        self.closed = True
        if self.counted_busy:
            self.counted_busy = False
            self.server.busy -= 1
            if not self.server.busy:
                self.server.idle.set()
        self.server.connections.discard(self)
