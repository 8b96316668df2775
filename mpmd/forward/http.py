"""One HTTP/1.1 connection per forwarder (kept alive between batches), on http.client:
urllib adds nothing a POST to a fixed URL needs, follows redirects by turning a POST into a
GET, and gives no way to cut a request short. Here `abort` (from another thread) shuts the
socket down, so a daemon that stops never waits for a receiver that does not answer.

No proxy support: a forwarder connects to the URL's host directly.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

MAX_RESPONSE_BYTES = 64 * 1024  # read of an answer's body; more and the connection closes
MAX_RETRY_AFTER_S = 3600.0

# What an answer means for the batch sent (docs/scaling.md, "Delivery"):
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
REFUSED = frozenset({400, 413, 415, 422})  # this request is wrong: split it, drop a lone one


@dataclass(frozen=True)
class Outcome:
    """``ok``: delivered (``rejected`` of its events refused by an OTLP partial success);
    ``retry``: send the same again later; ``config``: the receiver refuses us (auth, wrong
    URL): retried too, shown as ``error``; ``refused``: the receiver refuses this batch."""

    kind: str
    error: str = ""
    retry_after: float | None = None
    rejected: int = 0


class Poster:
    def __init__(self, url: str, timeout_s: float, ca_file: Path | None = None) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout_s = timeout_s
        self.context = ssl.create_default_context(
            cafile=str(ca_file) if ca_file else None) if self.https else None
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._aborted = False

    def _connect(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._aborted:
                raise ConnectionAbortedError("stopping")
            if self._conn is None:
                if self.https:
                    self._conn = http.client.HTTPSConnection(
                        self.host, self.port, timeout=self.timeout_s, context=self.context)
                else:
                    self._conn = http.client.HTTPConnection(self.host, self.port,
                                                            timeout=self.timeout_s)
            return self._conn

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, dict[str, str],
                                                                 bytes]:
        """(status, reason, headers, the first bytes of the body). OSError or
        http.client.HTTPException when no answer came."""
        reused = self._conn is not None
        conn = self._connect()
        try:
            try:
                conn.request("POST", self.target, body=body, headers=headers)
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not reused or self._aborted:
                    raise
                # A kept-alive connection the receiver had closed: once more, afresh.
                self.close()
                conn = self._connect()
                conn.request("POST", self.target, body=body, headers=headers)
                resp = conn.getresponse()
            data = resp.read(MAX_RESPONSE_BYTES)
            if not resp.isclosed():
                self.close()  # an answer longer than we read: do not reuse the connection
            elif resp.will_close:
                self.close()
            return resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()}, \
                data
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def abort(self) -> None:
        """From another thread: cut the request in flight short, refuse new ones."""
        with self._lock:
            self._aborted = True
            sock = self._conn.sock if self._conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return min(max(0.0, when - (time.time() if now is None else now)), MAX_RETRY_AFTER_S)


def classify(status: int, reason: str, headers: dict[str, str], body: bytes) -> Outcome:
    """What a non-2xx answer means (2xx is each sender's own business)."""
    text = body[:200].decode("utf-8", "replace").strip()
    error = f"HTTP {status} {reason}" + (f": {text}" if text and text.isprintable() else "")
    if status in RETRYABLE:
        return Outcome("retry", error, retry_after(headers.get("retry-after")))
    if status in REFUSED:
        return Outcome("refused", error)
    return Outcome("config", error)  # 3xx, 401, 403, 404, 405, ...


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
