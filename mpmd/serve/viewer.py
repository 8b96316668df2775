"""The viewer's HTTP/WebSocket server: one loopback port, on the `websockets` library.

It serves the static files of webui/ (an explicit table made at start-up: no path from a
request ever reaches the file system), a small GET/HEAD-only JSON API, the WebSocket that
mpmd.serve.broadcast feeds, and the action links of notifications (``/act/<token>``: a GET
shows what the link would answer, only a POST answers). Every request passes
mpmd.serve.access's checks first (docs/viewer.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import errno
import html
import http
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from mpmd import __version__
from mpmd.counters import Count, link_refused
from mpmd.errors import ViewerUnavailable
from mpmd.history import api
from mpmd.model.events import (
    NAMESPACE_OF,
    NAMESPACES,
    NOTIFICATION_TYPES,
    catalogue_json,
    deeper_than,
)
from mpmd.serve import access, links
from mpmd.serve.approvals import Waiting
from mpmd.serve.broadcast import DEFAULT_BACKLOG, Broadcaster, Client, Filter, message
from mpmd.serve.metrics import CONTENT_TYPE
from mpmd.status import Status

log = logging.getLogger("mpmd.serve.viewer")

HOST = "127.0.0.1"
PORT_TRIES = 10  # the configured port, then the next nine
MAX_CLIENT_MESSAGE = 64 * 1024  # past it the library closes the connection (1009)
# A subscribe is two deep (an object holding lists); msgspec must skip a nested value to
# find the tag of a union, and skipping recurses: 5,000 levels ran out of stack (1011).
MAX_CLIENT_DEPTH = 8
METHODS = ("GET", "HEAD")
ACT_PREFIX = "/act/"
ACT_METHODS = ("GET", "HEAD", "POST")  # POST answers; nothing else may
# An action link refused, by reason: 403 for what is no link of ours, 410 Gone for one that
# was and will never work again (ntfy's http action shows only the status).
_LINK_REFUSED_STATUS = {
    "invalid": http.HTTPStatus.FORBIDDEN,
    "expired": http.HTTPStatus.GONE,
    "used": http.HTTPStatus.GONE,
    "gone": http.HTTPStatus.GONE,
}
_ANSWER_WORDS = {"allow": "Approve", "deny": "Deny"}
_USED = "This link was used already: the request has its answer."
_GONE = ("This request is no longer waiting for an answer: it was answered, timed out, or "
         "withdrawn.")
_TEXT = "text/plain; charset=utf-8"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def webui_dir() -> Path:
    """Installed: mpmd/webui inside the package; from a checkout: webui/ at the top."""
    here = Path(__file__).resolve().parent.parent  # the mpmd package
    installed = here / "webui"
    return installed if installed.is_dir() else here.parent / "webui"


def static_table(folder: Path) -> dict[str, tuple[bytes, str]]:
    """URL path -> (body, content type) for every regular file directly in ``folder``
    with a known extension; ``/`` is index.html."""
    table: dict[str, tuple[bytes, str]] = {}
    if not folder.is_dir():
        log.warning("viewer files not found at %s: the page will not load", folder)
        return table
    for path in sorted(folder.iterdir()):
        kind = CONTENT_TYPES.get(path.suffix)
        if kind is not None and path.is_file() and not path.name.startswith("."):
            table["/" + path.name] = (path.read_bytes(), kind)
    if "/index.html" in table:
        table["/"] = table["/index.html"]
    return table


# Reads of the search index, each in a worker thread with its own connection.
_HISTORY_ROUTES = {"/api/events": api.events, "/api/stats": api.stats,
                   "/api/searches": api.saved_searches,
                   "/api/history/sessions": api.history_sessions,
                   "/api/history/session": api.history_session}


class Subscribe(msgspec.Struct, tag_field="type", tag="subscribe", forbid_unknown_fields=True):
    after: int | None = None
    backlog: int = DEFAULT_BACKLOG
    sessions: list[str] | None = None
    event_types: list[str] | None = None
    namespaces: list[str] | None = None


class Answer(msgspec.Struct, tag_field="type", tag="answer", forbid_unknown_fields=True):
    """An answer to a permission request held for the viewer (policy action remote)."""

    seq: int
    behavior: Literal["allow", "deny"]
    always: bool = False  # and add a policy rule allowing this from now on


_message_decoder = msgspec.json.Decoder(Subscribe | Answer)


class ClientStalled(Exception):
    """A client's socket took nothing for send_timeout_s; it was dropped."""


class Viewer:
    def __init__(self, port: int, token: str, broadcaster: Broadcaster,
                 counters: Counter[str], status: Callable[[], Status],
                 files: dict[str, tuple[bytes, str]] | None = None,
                 send_timeout_s: float = 30.0, index_path: Path | None = None,
                 config_dir: Path | None = None,
                 answer: Callable[[int, str, bool, str], str | None] | None = None,
                 metrics: Callable[[], bytes] | None = None,
                 clients_changed: Callable[[], None] = lambda: None,
                 public_host: str | None = None, link_key: bytes | None = None,
                 act: Callable[[links.Action, str], str | None] | None = None,
                 held: Callable[[int, bytes], Waiting | None] | None = None) -> None:
        self.answer = answer  # (seq, behavior, always, who) -> why refused, or None
        # Action links: answered with ``act`` (action, who) -> why refused, or None; shown
        # from ``held`` (seq, event id) -> the request if it still waits. Off without all three.
        self.link_key = link_key
        self.act = act
        self.held = held
        self.public_host = public_host or None  # a Host /act/ also answers to (the tunnel's)
        self.used_links = links.Used()
        self.metrics = metrics  # the Prometheus text for /metrics
        self.clients_changed = clients_changed
        self.index_path = index_path
        self.config_dir = config_dir
        self.wanted_port = port
        self.send_timeout_s = send_timeout_s
        self.port = 0
        self.token = token
        self.broadcaster = broadcaster
        self.counters = counters
        self.status = status
        self.files = static_table(webui_dir()) if files is None else files
        self.server: Server | None = None

    # ---- where it is ----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    @property
    def viewer_url(self) -> str:
        return f"{self.base_url}#token={self.token}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws?token={self.token}"

    async def start(self) -> None:
        """Listen on the configured port or one of the next nine (0: any free port);
        ViewerUnavailable when none is free."""
        ports = [0] if self.wanted_port == 0 else \
            [p for p in range(self.wanted_port, self.wanted_port + PORT_TRIES) if p < 65536]
        for port in ports:
            try:
                self.server = await serve(
                    self._serve, HOST, port,
                    process_request=self._check_request,
                    compression=None,  # loopback: deflate would only cost CPU
                    max_size=MAX_CLIENT_MESSAGE,
                    server_header=None,
                )
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise ViewerUnavailable(f"cannot listen on {HOST}:{port}: {exc}") from None
                log.warning("viewer port %d is taken, trying the next", port)
                continue
            self.port = self.server.sockets[0].getsockname()[1]
            if self.wanted_port and self.port != self.wanted_port:
                log.warning("viewer on port %d (port %d was taken)", self.port,
                            self.wanted_port)
            return
        raise ViewerUnavailable(f"ports {ports[0]}-{ports[-1]} are all taken: set viewer_port")

    async def close(self) -> None:
        if self.server is None:
            return
        self.server.close(close_connections=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.server.wait_closed(), 2.0)

    # ---- HTTP -------------------------------------------------------------------------------
    def _respond(self, status: http.HTTPStatus, body: bytes, content_type: str,
                 form_action: str = "'none'") -> Response:
        headers = Headers([
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            *_SECURITY_HEADERS.items(),
        ])
        if content_type.startswith("text/html"):
            origins = " ".join(f"ws://{n}:{self.port}" for n in access.LOOPBACK_NAMES)
            headers["Content-Security-Policy"] = (
                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                f"script-src 'self'; connect-src 'self' {origins}; frame-ancestors 'none'; "
                f"base-uri 'none'; form-action {form_action}"
            )
        return Response(status.value, status.phrase, headers, body)

    def _refuse(self, why: str) -> Response:
        self.counters[why] += 1
        return self._respond(http.HTTPStatus.FORBIDDEN, b"forbidden\n",
                             "text/plain; charset=utf-8")

    async def _check_request(self, _conn: ServerConnection,
                             request: Request) -> Response | None:
        response = await self._route(request)
        if response is not None and request.method == "HEAD":
            # As a GET is answered, its Content-Length included, less the body (RFC 9110).
            return dataclasses.replace(response, body=b"")
        return response

    async def _route(self, request: Request) -> Response | None:
        headers = request.headers
        repeated = next((name for name in ("Host", "Origin", "Authorization")
                         if len(headers.get_all(name)) > 1), None)
        if repeated is not None:
            # Servers, proxies and browsers disagree on which of two counts: take neither.
            self.counters[Count.VIEWER_BAD_REQUESTS] += 1
            return self._respond(http.HTTPStatus.BAD_REQUEST,
                                 f"bad request: more than one {repeated} header\n".encode(),
                                 _TEXT)
        path = urlsplit(request.path).path
        # An action link is its own credential, and alone answers to the tunnel's Host too.
        act = path.startswith(ACT_PREFIX) and self.link_key is not None \
            and self.act is not None and self.held is not None
        refusal = access.check_host_origin(self.port, headers.get("Host"),
                                           headers.get("Origin"),
                                           self.public_host if act else None)
        if refusal is not None:
            return self._refuse(refusal)
        methods = ACT_METHODS if act else METHODS
        if request.method not in methods:
            self.counters[Count.VIEWER_REFUSED_METHOD] += 1
            response = self._respond(
                http.HTTPStatus.METHOD_NOT_ALLOWED,
                f"method not allowed: {', '.join(methods[:-1])} and {methods[-1]} only\n"
                .encode(), _TEXT)
            response.headers["Allow"] = ", ".join(methods)
            return response
        if act:
            return self._action_link(request.method, path[len(ACT_PREFIX):],
                                     headers.get("Host", ""))
        if path == "/ws" or path.startswith("/api/") or path == "/metrics":
            given = access.token_of(request.path, headers.get("Authorization"))
            if not access.token_matches(given, self.token):
                return self._refuse(access.REFUSED_TOKEN)
            if path == "/ws" and request.method == "HEAD":
                # HEAD cannot upgrade: answered as the library answers a GET without Upgrade.
                response = self._respond(http.HTTPStatus.UPGRADE_REQUIRED,
                                         b"a WebSocket opens with GET\n", _TEXT)
                response.headers["Upgrade"] = "websocket"
                return response
            if path == "/ws":
                return None  # go on with the WebSocket handshake
            if path == "/metrics" and self.metrics is not None:
                self.counters[Count.VIEWER_METRICS_SCRAPES] += 1
                return self._respond(http.HTTPStatus.OK, self.metrics(), CONTENT_TYPE)
            return await self._api(path, urlsplit(request.path).query)
        found = self.files.get(path)
        if found is None:
            self.counters[Count.VIEWER_NOT_FOUND] += 1
            return self._respond(http.HTTPStatus.NOT_FOUND, b"not found\n",
                                 "text/plain; charset=utf-8")
        self.counters[Count.VIEWER_FILES_SERVED] += 1
        return self._respond(http.HTTPStatus.OK, *found)

    async def _api(self, path: str, raw_query: str) -> Response:
        if path == "/api/status":
            # Without the URLs: they carry the token, and the page has it already.
            status = msgspec.structs.asdict(self.status())
            del status["viewer_url"], status["ws_url"]
            body = msgspec.json.encode(status)
        elif path == "/api/sessions":
            body = msgspec.json.encode({"sessions": self.broadcaster.sessions.all()})
        elif path in _HISTORY_ROUTES and self.index_path and self.config_dir:
            try:
                body = await asyncio.to_thread(_HISTORY_ROUTES[path], self.index_path,
                                               raw_query, self.config_dir)
            except api.BadRequest as exc:
                self.counters[Count.VIEWER_BAD_REQUESTS] += 1
                return self._respond(http.HTTPStatus(exc.status),
                                     msgspec.json.encode({"error": str(exc)}),
                                     "application/json")
            except sqlite3.Error as exc:  # the index being rebuilt or replaced under us
                self.counters[Count.VIEWER_INDEX_ERRORS] += 1
                return self._respond(
                    http.HTTPStatus.SERVICE_UNAVAILABLE,
                    msgspec.json.encode({"error": f"the search index is unavailable ({exc}); "
                                                  "try again in a moment"}),
                    "application/json")
        else:
            self.counters[Count.VIEWER_NOT_FOUND] += 1
            return self._respond(http.HTTPStatus.NOT_FOUND, b'{"error":"no such route"}',
                                 "application/json")
        return self._respond(http.HTTPStatus.OK, body, "application/json")

    # ---- action links -----------------------------------------------------------------------
    def _action_link(self, method: str, token: str, host: str) -> Response:
        """``/act/<token>``: GET (and HEAD) shows what the link would answer and a button that
        posts it; only POST answers. Chat apps fetch links to preview them: a GET never
        answers, nor uses the link up."""
        assert self.link_key is not None and self.act is not None and self.held is not None
        try:
            action = links.verify(self.link_key, token, time.time())
        except links.LinkRefused as exc:
            return self._link_refused(exc.reason, str(exc))
        if action in self.used_links:
            return self._link_refused("used", _USED)
        w = self.held(action.seq, action.event_id)
        if w is None:
            return self._link_refused("gone", _GONE)
        if method != "POST":
            return self._action_page(http.HTTPStatus.OK, confirm_page(action, w))
        refused = self.act(action, f"link via {host}")
        if refused is not None:  # act looks again, and has the last word
            log.info("link for request %d not taken: %s", action.seq, refused)
            return self._link_refused("gone", _GONE)
        self.used_links.add(action)
        self.counters[Count.LINK_ACTIONS_TAKEN] += 1
        return self._action_page(http.HTTPStatus.OK, done_page(action, w))

    def _link_refused(self, reason: str, text: str) -> Response:
        self.counters[link_refused(reason)] += 1
        return self._action_page(_LINK_REFUSED_STATUS[reason],
                                 page("Link refused", f"<p>{html.escape(text)}</p>"))

    def _action_page(self, status: http.HTTPStatus, body: bytes) -> Response:
        """An action page: its form may post to itself, and its posts carry their Origin
        (under no-referrer a browser sends ``Origin: null`` with a form's POST)."""
        response = self._respond(status, body, "text/html; charset=utf-8",
                                 form_action="'self'")
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    # ---- WebSocket ------------------------------------------------------------------------
    async def _serve(self, ws: ServerConnection) -> None:
        client = Client()
        broadcaster = self.broadcaster

        async def send(data: bytes) -> None:
            try:
                await asyncio.wait_for(ws.send(data, text=True), self.send_timeout_s)
            except TimeoutError:
                # Lagging already bounds what we keep for it; a socket that takes nothing
                # for this long is a frozen or dead tab, holding kernel buffers: drop it
                # (a live page reconnects and resumes from its last seq).
                self.counters[Count.VIEWER_DROPPED_STALLED] += 1
                log.info("viewer client %d took nothing for %.0fs: dropped", client.id,
                         self.send_timeout_s)
                ws.transport.abort()
                raise ClientStalled from None

        broadcaster.clients.add(client)
        self.clients_changed()
        self.counters[Count.VIEWER_CONNECTIONS] += 1
        feeder = asyncio.create_task(broadcaster.feed(client, send), name=f"viewer-{client.id}")
        feeder.add_done_callback(lambda task: self._feeder_done(task, ws))
        try:
            await send(message("hello", version=__version__, server_time=_now_iso(),
                               last_seq=broadcaster.last_seq, namespaces=NAMESPACE_OF,
                               catalogue=catalogue_json(), notification_types=NOTIFICATION_TYPES))
            async for data in ws:
                error = self._on_message(client, data)
                if error is not None:
                    await send(message("error", message=error))
        except ConnectionClosed:
            pass
        finally:
            client.closed = True
            client.wakeup.set()
            broadcaster.clients.discard(client)
            self.clients_changed()
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, ClientStalled):
                await feeder

    def _feeder_done(self, task: asyncio.Task[None], ws: ServerConnection) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, (ConnectionClosed, ClientStalled)):
            self.counters[Count.INTERNAL_ERRORS] += 1
            log.error("viewer client failed", exc_info=exc)
            task.get_loop().create_task(ws.close(1011, "internal error"))

    def _on_message(self, client: Client, data: str | bytes) -> str | None:
        """Apply one client message; the error text to send back, if any."""
        if deeper_than(data.encode() if isinstance(data, str) else data, MAX_CLIENT_DEPTH):
            self.counters[Count.VIEWER_BAD_MESSAGES] += 1
            return (f"not a subscribe or answer message: nested deeper than "
                    f"{MAX_CLIENT_DEPTH} levels")
        try:
            sub = _message_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.counters[Count.VIEWER_BAD_MESSAGES] += 1
            return f"not a subscribe or answer message: {exc}"
        if isinstance(sub, Answer):
            return self._on_answer(client, sub)
        unknown = set(sub.namespaces or ()) - set(NAMESPACES)
        if unknown:
            self.counters[Count.VIEWER_BAD_MESSAGES] += 1
            return f"unknown namespaces {sorted(unknown)}: use {list(NAMESPACES)}"
        last = self.broadcaster.last_seq
        if sub.after is None or not 0 <= sub.after <= last:
            after = self.broadcaster.backlog_start(sub.backlog)
        else:
            after = sub.after
        client.subscribe(Filter(
            sessions=None if sub.sessions is None else frozenset(sub.sessions),
            event_types=None if sub.event_types is None else frozenset(sub.event_types),
            namespaces=None if sub.namespaces is None else frozenset(sub.namespaces),
        ), after)
        return None


    def _on_answer(self, client: Client, answer: Answer) -> str | None:
        if self.answer is None:
            return "this daemon holds no permission requests"
        refused = self.answer(answer.seq, answer.behavior, answer.always,
                              f"viewer client {client.id}")
        if refused is not None:
            return f"answer to request {answer.seq} not taken: {refused}"
        return None


def page(title: str, body_html: str) -> bytes:
    """A small page of its own: no script, no style sheet, readable on a phone."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>mpmd: {html.escape(title)}</title></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{body_html}\n</body></html>\n"
    ).encode()


def _request_html(w: Waiting, waiting: bool) -> str:
    e = html.escape
    text = (f"<p>Claude Code asks to use <strong>{e(w.tool_name or 'a tool')}</strong>:</p>\n"
            f"<pre>{e(w.detail)}</pre>\n<p>Session <code>{e(w.session_id or '?')}</code>")
    if w.rule:
        text += f", policy rule <code>{e(w.rule)}</code>"
    if waiting:
        left = max(0, round(w.expires_at_ms / 1000 - time.time()))
        text += f". It waits about {left} s more for an answer"
    return text + ".</p>"


def confirm_page(action: links.Action, w: Waiting) -> bytes:
    """What a GET of a good link shows: the request, and the one button that answers it."""
    word = _ANSWER_WORDS[action.answer]
    return page(f"{word} this request?", _request_html(w, waiting=True) + (
        f'\n<form method="post"><button type="submit">{word}</button></form>\n'
        "<p>Nothing is answered until you press the button.</p>"))


def done_page(action: links.Action, w: Waiting) -> bytes:
    title = "Approved: Claude Code goes on" if action.answer == "allow" else "Denied"
    return page(title, _request_html(w, waiting=False))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
