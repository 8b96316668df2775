"""Sending notifications with apprise, one thread per target, each from its own outbox.

A target that fails is retried with backoff (mpmd.forward.runner.Backoff) and shows why in
the status; it never holds back the others, each having its own thread and queue. An outbox
is bounded (MAX_OUTBOX): past it the oldest message is dropped and counted, so a target
that is down for days does not grow the state without end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from mpmd.config import Settings
from mpmd.forward.runner import Backoff
from mpmd.notify import rules
from mpmd.notify.message import Message, for_target
from mpmd.notify.rules import safe_target

log = logging.getLogger("mpmd.notify")

MAX_OUTBOX = 100
# Attempts at one message before it is dropped (counted), so that a message a target will
# never take (apprise does not tell a refusal from an outage) does not hold back the next
# ones for ever: with the backoff's cap, about two hours of trying.
MAX_ATTEMPTS = 30
BACKOFF_S = 2.0
MAX_BACKOFF_S = 300.0
MAX_ERROR = 300


class _Capture(logging.Handler):
    """What apprise logged, in this thread, while it sent: the reason a send failed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


def send(url: str, message: Message) -> str | None:
    """Send ``message`` to one apprise URL; None when it went, else why not."""
    import apprise  # 0.2 s to import: only where something is sent

    target_url, body = for_target(message, url)
    notifier = apprise.Apprise()  # a new one each time: apprise throttles per instance
    if not notifier.add(target_url):
        return f"apprise does not understand {safe_target(url)}"
    capture = _Capture()
    logger = logging.getLogger("apprise")
    logger.addHandler(capture)
    try:
        ok = notifier.notify(body=body, title=message.title, notify_type=message.kind)
    except Exception as exc:  # a plugin's bug is this target's failure, not the notifier's
        return f"apprise failed: {type(exc).__name__}: {exc}"[:MAX_ERROR]
    finally:
        logger.removeHandler(capture)
    if ok:
        return None
    return ("; ".join(capture.messages[-2:]) or "not delivered")[:MAX_ERROR]


DESKTOP_SCHEMAS = ("dbus", "kde", "qt", "glib", "gnome")


def target_problem(url: str) -> str | None:
    """Why apprise could not send to ``url`` here (a URL it does not understand, a plugin
    whose library is missing), without sending anything; None when it could."""
    import apprise

    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return f"apprise does not understand {safe_target(url)} (see apprise's list of URLs)"
    if not getattr(plugin, "enabled", True):
        schema = url.partition("://")[0].lower()
        extra = " (pip install 'mpmd[desktop]', which needs libdbus-1-dev and " \
                "libglib2.0-dev)" if schema in DESKTOP_SCHEMAS else ""
        return f"{safe_target(url)} cannot be used on this machine{extra}"
    return None


def problems(settings: Settings) -> list[str]:
    """What keeps a [[notify]] rule or target of config.toml from working, without a
    daemon (for ``mpmd doctor``)."""
    good, bad = rules.from_settings(settings)
    found = [item.error for item in bad]
    for rule in good:
        for name, url in zip(rules.target_names(rule), rule.targets, strict=True):
            problem = target_problem(url)
            if problem is not None:
                found.append(f"{name}: {problem}")
    if good and settings.config_path.exists() and \
            settings.config_path.stat().st_mode & 0o077:
        found.append(f"{settings.config_path} holds notification targets (often secrets) and "
                     f"others can read it: chmod 600 it")
    return found


class Target:
    """One target of one rule: its outbox and the thread that empties it."""

    def __init__(self, name: str, url: str, changed: Callable[[], None],
                 sender: Callable[[str, Message], str | None] = send,
                 backoff_s: float = BACKOFF_S, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.name = name
        self.url = url
        self.changed = changed  # the outbox changed: save it
        self.sender = sender
        self.outbox: deque[Message] = deque()
        self.sent = 0
        self.failures = 0
        self.dropped = 0
        self.state = "ok"
        self.last_error = ""
        self.last_sent_at: float | None = None
        self.backoff = Backoff(backoff_s, MAX_BACKOFF_S)
        self.max_attempts = max_attempts
        self._lock = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"notify-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def put(self, message: Message) -> None:
        with self._lock:
            self.outbox.append(message)
            if len(self.outbox) > MAX_OUTBOX:
                self.outbox.popleft()
                self.dropped += 1
                log.error("notify target %s: more than %d messages waiting; the oldest is "
                          "dropped", self.name, MAX_OUTBOX)
            self._lock.notify_all()

    def pending(self) -> list[Message]:
        with self._lock:
            return list(self.outbox)

    def status(self) -> dict[str, Any]:
        return {"url": safe_target(self.url), "state": self.state, "queued": len(self.outbox),
                "sent": self.sent, "failures": self.failures, "dropped": self.dropped,
                "last_error": self.last_error or None, "last_sent_at": self.last_sent_at}

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self.outbox and not self._stop:
                    self._lock.wait()
                if self._stop:
                    return
                message = self.outbox[0]
            try:
                error = self.sender(self.url, message)
            except Exception as exc:  # a bug: say so, keep the target
                log.exception("notify target %s: sending failed", self.name)
                error = f"internal error: {exc}"
            if error is None:
                with self._lock:
                    if self.outbox and self.outbox[0] is message:
                        self.outbox.popleft()
                self.sent += 1
                self.last_sent_at = time.time()
                self.state, self.last_error = "ok", ""
                self.backoff.reset()
                self.changed()
                continue
            self.failures += 1
            if self.backoff.failures + 1 >= self.max_attempts:
                log.error("notify target %s: message %s not taken after %d attempts (%s); "
                          "dropped", self.name, message.id, self.max_attempts, error)
                with self._lock:
                    if self.outbox and self.outbox[0] is message:
                        self.outbox.popleft()
                        self.dropped += 1
                self.backoff.reset()
                self.state, self.last_error = "retrying", error
                self.changed()
                continue  # the next message gets its own attempts
            delay = self.backoff.next_delay()
            if self.last_error != error:
                log.warning("notify target %s: %s; retrying in %.0f s", self.name, error,
                            delay)
            self.state, self.last_error = "retrying", error
            deadline = time.monotonic() + delay
            with self._lock:  # new messages do not cut the delay short
                while not self._stop and (left := deadline - time.monotonic()) > 0:
                    self._lock.wait(left)
