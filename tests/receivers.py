"""Real notification receivers on loopback, for the tests of what mpmd sends to people.

- ``NtfyServer``: an HTTP server speaking ntfy's publish API (JSON to ``/``, as apprise's
  ``ntfy://`` sends it, and the plain ``POST|PUT /<topic>`` form), recording each message.
- ``SlackWebhook``: a Slack-style incoming webhook (``POST /hooks/<token>``); apprise reaches
  it through its Mattermost plugin, since its ``slack://`` host is fixed to hooks.slack.com.
- ``DesktopBus``: a private D-Bus session bus, an Xvfb display and dunst on it, the real
  notification server that apprise's ``dbus://`` talks to.

Each is a context manager. Both HTTP receivers can be told to fail or to stall the next
requests; ``wait_for`` waits (on a condition, or polling an outside process) for what a test
expects and fails naming what did arrive.
"""

from __future__ import annotations

import contextlib
import email.header
import importlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.utils import short_tempdir, wait_until

HOST = "127.0.0.1"
MAX_BODY = 1 << 20  # a request body larger than this is refused unread (413)

R = TypeVar("R")


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass
class Rejected:
    """A request a receiver did not accept: injected failures, stalls and invalid ones."""

    method: str
    path: str
    status: int  # 0: stalled, never answered
    reason: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stalled handler must not hold up the test process's exit
    receiver: _Receiver[Any]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that sends half a request cannot hold a thread for long

    def do_GET(self) -> None:
        self.server.receiver._serve(self)

    do_POST = do_PUT = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the records say what came; stderr stays for the test's own output


class _Receiver(Generic[R]):
    """A threaded HTTP server on 127.0.0.1 and a free port that records what it accepts."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._records: list[R] = []
        self._rejected: list[Rejected] = []
        self._failures: list[int] = []  # the statuses the next requests get
        self._stalls = 0
        self._release = threading.Event()  # set at stop: stalled requests end unanswered
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- the subclass's part

    def _handle(self, method: str, path: str, query: dict[str, list[str]],
                headers: dict[str, str], body: bytes) -> tuple[Response, R | None, str]:
        """The answer to one request; the record to keep, or None and why it was refused."""
        raise NotImplementedError

    def _error(self, status: int, reason: str) -> Response:
        raise NotImplementedError

    # ---- life

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    def start(self) -> Self:
        self._server = _Server((HOST, 0), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={
            "poll_interval": 0.05}, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what a test tells it and asks it

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """Answer the next ``n`` requests with ``status`` (and the service's error body)."""
        with self._cond:
            self._failures.extend([status] * n)

    def stall_next(self, n: int = 1) -> None:
        """Read the next ``n`` requests and never answer them (until the receiver stops)."""
        with self._cond:
            self._stalls += n

    @property
    def received(self) -> list[R]:
        with self._cond:
            return list(self._records)

    @property
    def rejected(self) -> list[Rejected]:
        with self._cond:
            return list(self._rejected)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[R]:
        """Every record so far, once there are at least ``count``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._records) >= count, timeout):
                raise AssertionError(
                    f"{type(self).__name__}: waited {timeout} s for {count} message(s), "
                    f"received {len(self._records)}: {self._records!r}; "
                    f"rejected: {self._rejected!r}")
            return list(self._records)

    def wait_for_rejected(self, count: int, timeout: float = 10.0) -> list[Rejected]:
        """Every refused request so far, once there are at least ``count`` (for a sender in
        another process, whose outcome the test does not see)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._rejected) >= count, timeout):
                raise AssertionError(
                    f"{type(self).__name__}: waited {timeout} s for {count} rejected "
                    f"request(s), got {self._rejected!r}")
            return list(self._rejected)

    # ---- one request (on the server's handler thread)

    def _serve(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        method, path = h.command, split.path

        def reject(status: int, reason: str, response: Response | None = None) -> None:
            with self._cond:  # kept before the answer: a client that has it finds the record
                self._rejected.append(Rejected(method, path, status, reason))
                self._cond.notify_all()
            if response is not None:
                self._send(h, response)

        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            return reject(411, "chunked body", self._error(411, "length required"))
        try:
            length = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            return reject(400, "bad Content-Length", self._error(400, "bad Content-Length"))
        if length > MAX_BODY or length < 0:
            h.close_connection = True  # the body stays unread
            return reject(413, f"body of {length} bytes",
                          self._error(413, "request entity too large"))
        try:
            body = h.rfile.read(length)
        except OSError:
            body = b""
        if len(body) < length:
            return reject(400, "body cut short or not received in time")
        with self._cond:
            stall = self._stalls > 0
            self._stalls -= stall
            failure = None if stall or not self._failures else self._failures.pop(0)
        if stall:
            reject(0, "stalled")
            self._release.wait()
            h.close_connection = True
            return None
        if failure is not None:
            return reject(failure, "injected failure", self._error(failure, "injected failure"))
        headers = {k.lower(): _header_text(v) for k, v in h.headers.items()}
        query = parse_qs(split.query, keep_blank_values=True)
        response, record, reason = self._handle(method, path, query, headers, body)
        if record is None:
            return reject(response.status, reason, response)
        with self._cond:
            self._records.append(record)
            self._cond.notify_all()
        self._send(h, response)
        return None

    @staticmethod
    def _send(h: _Handler, response: Response) -> None:
        with contextlib.suppress(OSError):  # the client may have given up
            h.send_response(response.status)
            h.send_header("Content-Type", response.content_type)
            h.send_header("Content-Length", str(len(response.body)))
            h.end_headers()
            h.wfile.write(response.body)


def _header_text(value: str) -> str:
    """A header's text as a Go server (ntfy) reads it: the raw bytes as UTF-8 (http.server
    decoded them as Latin-1), RFC 2047 encoded words decoded."""
    raw = value.encode("latin-1", "replace").decode("utf-8", "replace")
    if "=?" in raw:
        with contextlib.suppress(ValueError, LookupError):
            return str(email.header.make_header(email.header.decode_header(raw)))
    return raw


# ---- ntfy

TOPIC = re.compile(r"^[-_A-Za-z0-9]{1,64}$")
PRIORITIES = {"": 3, "1": 1, "min": 1, "2": 2, "low": 2, "3": 3, "default": 3,
              "4": 4, "high": 4, "5": 5, "max": 5, "urgent": 5}
_PUBLISH_SUFFIX = re.compile(r"^/([^/]+)(?:/(?:publish|send|trigger))?$")


@dataclass
class Published:
    """One message as ntfy would store it (``priority``: 1–5, 3 when none was given)."""

    topic: str
    message: str
    title: str | None = None
    tags: list[str] = field(default_factory=list)
    priority: int = 3
    click: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    markdown: bool = False
    icon: str | None = None
    filename: str | None = None  # a file sent as the body (apprise's overflow of a long one)
    attachment: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)  # as sent, names in lower case
    id: str = ""


class ActionsInvalid(ValueError):
    pass


_ACTION_KEY = re.compile(r"([-.\w]+)\s*=\s*", re.ASCII)  # matched at a position: no ^


def parse_actions(text: str) -> list[dict[str, Any]]:
    """ntfy's ``X-Actions``: a JSON array, or its simple format, parsed and checked as
    ntfy does (server/actions.go); values stay the strings sent, ``headers.X`` and
    ``extras.X`` keys go into ``headers`` and ``extras`` dicts."""
    text = text.strip()
    if text.startswith("["):
        try:
            actions = json.loads(text)
        except ValueError as e:
            raise ActionsInvalid(f"JSON error: {e}") from None
        if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
            raise ActionsInvalid("JSON error: not an array of objects")
    else:
        actions = _SimpleActions(text).parse()
    for a in actions:
        a["action"] = str(a.get("action", "")).lower()
        if "method" in a:
            a["method"] = str(a["method"]).upper()
    if len(actions) > 3:
        raise ActionsInvalid("only 3 actions allowed")
    for a in actions:
        if a["action"] not in ("view", "broadcast", "http"):
            raise ActionsInvalid(f"parameter 'action' cannot be {a['action']!r}")
        if not a.get("label"):
            raise ActionsInvalid("parameter 'label' is required")
        if a["action"] in ("view", "http") and not a.get("url"):
            raise ActionsInvalid(f"parameter 'url' is required for action {a['action']!r}")
        if a["action"] == "http" and a.get("method") in ("GET", "HEAD") and a.get("body"):
            raise ActionsInvalid(f"parameter 'body' cannot be set if method is {a['method']}")
    return actions


class _SimpleActions:
    """ntfy's parser of ``action, label, url, key=value, ...; action, ...``: a value may be
    quoted ('...' or "...", a backslash escaping the quote) to hold , and ;."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> list[dict[str, Any]]:
        actions = []
        while self.pos < len(self.text):
            action: dict[str, Any] = {}
            section, last = 0, False
            while not last:
                key, value, last = self._section()
                self._populate(action, section, key, value)
                self._spaces()
                section += 1
            actions.append(action)
        return actions

    def _populate(self, action: dict[str, Any], section: int, key: str, value: str) -> None:
        if not key:
            key = {0: "action", 1: "label"}.get(section, "")
            if section == 2 and action.get("action") in ("view", "http"):
                key = "url"
        if not key:
            raise ActionsInvalid(f"term {value!r} unknown")
        for group in ("headers", "extras"):
            if key.startswith(group + "."):
                action.setdefault(group, {})[key[len(group) + 1:]] = value
                return
        key = key.lower()
        if key not in ("action", "label", "clear", "url", "method", "body", "intent"):
            raise ActionsInvalid(f"key {key!r} unknown")
        if key == "clear" and value.lower() not in ("true", "yes", "1", "false", "no", "0"):
            raise ActionsInvalid(f"parameter 'clear' cannot be {value!r}")
        action[key] = value

    def _section(self) -> tuple[str, str, bool]:
        self._spaces()
        key = ""
        match = _ACTION_KEY.match(self.text, self.pos)
        if match:
            key, self.pos = match.group(1), match.end()
        char = self._peek()
        if char in ("", ";", ","):
            self.pos += len(char)
            return key, "", char != ","
        if char in ("'", '"'):
            return (key, *self._quoted(char))
        start = self.pos
        while self._peek() not in ("", ";", ","):
            self.pos += 1
        char = self._peek()
        value = self.text[start:self.pos].strip()
        self.pos += len(char)
        return key, value, char != ","

    def _quoted(self, quote_char: str) -> tuple[str, bool]:
        self.pos += 1
        start, prev = self.pos, ""
        while True:
            char = self._peek()
            if not char:
                raise ActionsInvalid(f"unexpected end of input, quote started at {start}")
            if char == quote_char and prev != "\\":
                value = self.text[start:self.pos].replace("\\" + quote_char, quote_char)
                self.pos += 1
                self._spaces()
                end = self._peek()
                if end not in ("", ";", ","):
                    raise ActionsInvalid(f"unexpected character {end!r} at {self.pos}")
                self.pos += len(end)
                return value, end != ","
            prev = char
            self.pos += 1

    def _peek(self) -> str:
        return self.text[self.pos:self.pos + 1]

    def _spaces(self) -> None:
        while self._peek() in (" ", "\t", "\r", "\n"):
            self.pos += 1


class NtfyServer(_Receiver[Published]):
    """ntfy's publish API: ``POST|PUT /`` with a JSON message (its fields win over the
    headers, which fill in the rest, as in ntfy), ``POST|PUT /<topic>`` with the message as
    the body and the rest in headers (``X-Title``, ``Title``, ``t``, ...) or query
    parameters. Answers 200 with the message's JSON, or ntfy's error JSON."""

    def url(self, topic: str, **params: str) -> str:
        """apprise's URL for ``topic`` here (plain http: ntfy:// with a host is ntfy's
        private mode), with query parameters (click, actions, tags, priority, rto...).
        apprise splits its query on ``&`` and ``;`` and then unquotes each value twice, so
        each is percent-encoded twice: ``&``, ``;``, ``#`` and ``%`` arrive as given."""
        query = "&".join(f"{k}={quote(quote(v, safe=''), safe='')}" for k, v in params.items())
        return f"ntfy://{HOST}:{self.port}/{topic}" + (f"?{query}" if query else "")

    def _error(self, status: int, reason: str) -> Response:
        return Response(status, json.dumps({
            "code": status * 100, "http": status, "error": reason,
            "link": "https://ntfy.sh/docs/publish/"}).encode() + b"\n")

    def _handle(self, method: str, path: str, query: dict[str, list[str]],
                headers: dict[str, str], body: bytes) -> tuple[Response, Published | None, str]:
        def refuse(status: int, reason: str) -> tuple[Response, None, str]:
            return self._error(status, reason), None, reason

        def param(*names: str) -> str:
            for name in names:  # a header first, then a query parameter, as ntfy reads them
                if headers.get(name, "").strip():
                    return headers[name].strip()
            for name in names:
                if query.get(name) and query[name][0].strip():
                    return query[name][0].strip()
            return ""

        fields: dict[str, Any] = {}
        publish = _PUBLISH_SUFFIX.match(path)
        if method in ("POST", "PUT") and path == "/":
            try:
                fields = json.loads(body)
            except ValueError:
                return refuse(400, "invalid request: request body must be message JSON")
            if not isinstance(fields, dict):
                return refuse(400, "invalid request: request body must be message JSON")
            topic = fields.get("topic")
            message = fields.get("message")
            if message is not None and not isinstance(message, str):
                return refuse(400, "invalid request: message must be a string")
        elif publish and (method in ("POST", "PUT") or path.count("/") == 2):
            topic = publish.group(1)
            message = param("x-message", "message", "m") or body.decode("utf-8", "replace")
        else:
            return refuse(404 if method == "GET" else 405, "not a publish request")
        if not isinstance(topic, str) or not TOPIC.match(topic):
            return refuse(400, "invalid request: topic invalid")

        def text(key: str, *names: str) -> str | None:
            value = fields.get(key)
            return value if isinstance(value, str) and value else (param(*names) or None)

        title = text("title", "x-title", "title", "ti", "t")
        click = text("click", "x-click", "click")
        icon = text("icon", "x-icon", "icon")
        filename = text("filename", "x-filename", "filename", "file", "f")
        tags = fields.get("tags")
        if not (isinstance(tags, list) and tags):
            tags = [t.strip() for t in param("x-tags", "tags", "tag", "ta").split(",")
                    if t.strip()]
        priority = fields.get("priority") or 0
        if not isinstance(priority, int) or not 0 <= priority <= 5:
            return refuse(400, "invalid request: priority invalid")
        if not priority:
            raw = param("x-priority", "priority", "prio", "p").lower()
            if raw not in PRIORITIES:
                return refuse(400, "invalid request: priority invalid")
            priority = PRIORITIES[raw]
        actions_json = fields.get("actions")
        try:
            actions = (parse_actions(json.dumps(actions_json)) if actions_json
                       else parse_actions(param("x-actions", "actions", "action")))
        except ActionsInvalid as e:
            return refuse(400, f"invalid request: actions invalid, {e}")
        markdown = (fields.get("markdown") is True
                    or param("x-markdown", "markdown", "md").lower() in ("1", "yes", "true")
                    or headers.get("content-type", "").startswith("text/markdown"))
        attachment = None
        if not fields and filename:  # the body is a file: ntfy says so as the message
            attachment = body
            message = param("x-message", "message", "m") or f"You received a file: {filename}"
        published = Published(
            topic=topic, message=message or "triggered", title=title, tags=tags,
            priority=priority, click=click, actions=actions, markdown=markdown, icon=icon,
            filename=filename, attachment=attachment, headers=headers,
            id=secrets.token_urlsafe(9))
        now = int(time.time())
        answer: dict[str, Any] = {"id": published.id, "time": now, "expires": now + 43200,
                                  "event": "message", "topic": topic,
                                  "message": published.message}
        for key in ("title", "tags", "click", "actions", "icon"):
            if getattr(published, key):
                answer[key] = getattr(published, key)
        if priority != 3:
            answer["priority"] = priority
        return Response(200, json.dumps(answer).encode() + b"\n"), published, ""


# ---- Slack-style incoming webhook

@dataclass
class Posted:
    token: str
    text: str
    payload: dict[str, Any]  # the whole JSON body
    headers: dict[str, str] = field(default_factory=dict)


class SlackWebhook(_Receiver[Posted]):
    """A Slack-compatible incoming webhook: ``POST /hooks/<token>`` with a JSON body that has
    a ``text`` (or blocks or attachments); answers 200 ``ok``, or Slack's error words."""

    def url(self, token: str) -> str:
        """apprise's URL that posts to ``http://127.0.0.1:PORT/hooks/<token>`` (its
        Mattermost plugin, webhook mode)."""
        return f"mmost://{HOST}:{self.port}/{quote(token, safe='')}"

    def _error(self, status: int, reason: str) -> Response:
        return Response(status, reason.encode(), "text/plain")

    def _handle(self, method: str, path: str, query: dict[str, list[str]],
                headers: dict[str, str], body: bytes) -> tuple[Response, Posted | None, str]:
        parts = path.split("/")
        if method != "POST" or len(parts) != 3 or parts[1] != "hooks" or not parts[2]:
            return self._error(404, "no_service"), None, "not POST /hooks/<token>"
        try:
            payload = json.loads(body)
        except ValueError:
            return self._error(400, "invalid_payload"), None, "not JSON"
        if not isinstance(payload, dict):
            return self._error(400, "invalid_payload"), None, "not a JSON object"
        text = payload.get("text")
        if not (isinstance(text, str) and text) and not payload.get("blocks") \
                and not payload.get("attachments"):
            return self._error(400, "no_text"), None, "no text"
        posted = Posted(parts[2], text if isinstance(text, str) else "", payload, headers)
        return Response(200, b"ok", "text/plain"), posted, ""


# ---- the desktop: D-Bus session bus, X display, dunst

DESKTOP_COMMANDS = ("dbus-daemon", "dbus-send", "Xvfb", "dunst", "dunstctl", "busctl")
DESKTOP_FIX = ("apt-get install dbus dunst xvfb libdbus-1-dev libglib2.0-dev pkg-config "
               "(busctl: systemd), then pip install dbus-python (the desktop extra: "
               "pip install -e '.[desktop]')")
NOTIFICATIONS = "org.freedesktop.Notifications"

# A session bus of its own: no service folders, so nothing is ever started by activation
# (Debian's dunst registers one for org.freedesktop.Notifications, with the user's config).
_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

# Everything kept in the history (closed ones go there), nothing expiring on its own.
_DUNST_CONFIG = """[global]
    history_length = 1000
    notification_limit = 0
    idle_threshold = 0
    sticky_history = yes
[urgency_low]
    timeout = 0
[urgency_normal]
    timeout = 0
[urgency_critical]
    timeout = 0
"""


def desktop_missing() -> str | None:
    """Why the desktop path cannot run here, or None when it can."""
    missing = [c for c in DESKTOP_COMMANDS if shutil.which(c) is None]
    if missing:
        return f"{', '.join(missing)} not found"
    try:  # apprise's dbus:// needs dbus-python with its GLib main loop
        importlib.import_module("dbus")
        importlib.import_module("dbus.mainloop.glib")
    except ImportError as e:
        return f"the Python module dbus (dbus-python) cannot be imported: {e}"
    return None


def require_desktop() -> None:
    """The test fails (under CI) or skips (locally) when the desktop path cannot run,
    naming the fix."""
    why = desktop_missing()
    if why is None:
        return
    what = f"desktop notifications cannot be tested: {why}; {DESKTOP_FIX}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(what)
    pytest.skip(what)


class DesktopBus:
    """A private session bus, an Xvfb display and dunst (its own config, no user's) owning
    org.freedesktop.Notifications on that bus. ``env`` is what a process that notifies
    needs; ``notifications()`` is everything dunst has received."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.dir: Path | None = None
        self.address = ""
        self.display = ""
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._seen: dict[int, dict[str, Any]] = {}

    @property
    def env(self) -> dict[str, str]:
        return {"DBUS_SESSION_BUS_ADDRESS": self.address, "DISPLAY": self.display}

    def __enter__(self) -> DesktopBus:
        self.dir = short_tempdir("mpmd-desktop-")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        assert self.dir is not None
        (self.dir / "bus.conf").write_text(_BUS_CONFIG.format(socket=self.dir / "bus"))
        self.address = self._spawn_and_read(
            "dbus-daemon", ["dbus-daemon", f"--config-file={self.dir / 'bus.conf'}",
                            "--nofork", "--print-address={fd}"])
        self.display = ":" + self._spawn_and_read(
            "Xvfb", ["Xvfb", "-displayfd", "{fd}", "-nolisten", "tcp",
                     "-screen", "0", "640x480x24"])
        config = self.dir / "config"
        config.mkdir()
        (config / "dunstrc").write_text(_DUNST_CONFIG)
        # Its own config file, and XDG folders that hold nothing else: no user's dunstrc or
        # drop-ins is read.
        dunst = self._spawn("dunst", ["dunst", "-config", str(config / "dunstrc")], env={
            **self._base_env(), "XDG_CONFIG_HOME": str(config), "XDG_CONFIG_DIRS": str(config),
            "HOME": str(self.dir)})

        def owned() -> bool:
            if dunst.poll() is not None:
                raise RuntimeError(f"dunst exited ({dunst.returncode}):\n{self.log('dunst')}")
            out = self._run("dbus-send", "--session", "--print-reply=literal",
                            "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus.NameHasOwner", f"string:{NOTIFICATIONS}")
            return out.split() == ["boolean", "true"]

        wait_until(owned, f"dunst owns {NOTIFICATIONS}", self.timeout)

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")}
        if self.address:
            env.update(self.env)
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None,
               pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
        assert self.dir is not None
        with open(self.dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    env=env or self._base_env(), pass_fds=pass_fds)
        self._procs.append((name, proc))
        return proc

    def _spawn_and_read(self, name: str, argv: list[str]) -> str:
        """Start ``name`` with a pipe's write end in place of ``{fd}``; the first line it
        writes there (its address, its display number), once it is ready."""
        read_fd, write_fd = os.pipe()
        try:
            proc = self._spawn(name, [a.replace("{fd}", str(write_fd)) for a in argv],
                               pass_fds=(write_fd,))
            os.close(write_fd)
            write_fd = -1
            data = b""
            deadline = time.monotonic() + self.timeout
            while b"\n" not in data:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([read_fd], [], [], max(left, 0))
                chunk = os.read(read_fd, 4096) if ready else b""
                if not chunk:
                    state = "timed out" if not ready else f"exited ({proc.wait(5)})"
                    raise RuntimeError(f"{name} {state} before it was ready:\n{self.log(name)}")
                data += chunk
            return data.decode().strip()
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)

    def _run(self, *argv: str) -> str:
        out = subprocess.run(argv, capture_output=True, text=True, env=self._base_env(),
                             timeout=self.timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {out.returncode}: {out.stderr}")
        return out.stdout

    def log(self, name: str) -> str:
        assert self.dir is not None
        try:
            return (self.dir / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def notifications(self) -> list[dict[str, Any]]:
        """Every notification dunst has received (summary, body, appname, id), oldest first:
        those shown are closed, which moves them into the history that is read."""
        self._run("dunstctl", "close-all")
        history = json.loads(self._run("dunstctl", "history"))  # busctl's JSON, type aa{sv}
        for entry in history["data"][0]:
            fields = {k: v["data"] for k, v in entry.items()}
            self._seen[fields["id"]] = {k: fields.get(k) for k in ("id", "appname", "summary",
                                                                  "body")}
        return [self._seen[k] for k in sorted(self._seen)]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every notification so far, once there are at least ``count``."""
        try:
            wait_until(lambda: len(self.notifications()) >= count,
                       f"dunst has {count} notification(s)", timeout)
        except AssertionError:
            raise AssertionError(f"dunst: waited {timeout} s for {count} notification(s), "
                                 f"received {self.notifications()!r}") from None
        return self.notifications()

    def stop(self) -> None:
        """Every process ended (SIGTERM, then SIGKILL), the temporary folder removed."""
        for _name, proc in reversed(self._procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(self._procs):
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._procs.clear()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
