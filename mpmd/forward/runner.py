"""Forwarders at run time: each one a thread of the daemon that follows the journal from
its own cursor (mpmd.storage.journal_tail.Tail, like the index worker) and posts batches.

Why the journal and not the ring: a forwarder whose receiver is down would hold ring space
until the daemon answered BUSY. Following the journal, a forwarder that is down costs the
daemon nothing but a backlog, bounded by the journal's retention.

Delivery is at-least-once: the cursor (the last seq delivered) is written after the
receiver said yes, so a crash or a stop between the two sends that batch again; each event
carries its `id` (and `seq`) for the receiver to recognise it.

The loop of one forwarder:
    wait for a wake-up (the daemon sets it after each journal write) or IDLE_POLL_S
    read up to `batch` lines past the cursor (waiting `linger_s` for more if short)
    post them: 2xx -> write the cursor; retryable -> back off (exponential, capped, with
    jitter, Retry-After honoured) and post the same again; refused (400, 413, ...) -> split
    the batch in two and post each half; one event refused alone is dropped and counted
    (`rejected`); a breaker (webhook by default) stops posting for `breaker_cooldown_s`
    after `breaker_failures` failures in a row, then tries one request.
Nothing here runs on the event loop: `wake` sets a threading.Event, `status` reads a few
attributes, `stop` is awaited in a thread.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from mpmd.config import Settings
from mpmd.counters import Count, forward
from mpmd.forward import config as fconfig
from mpmd.forward.cursor import cursor_path, read_cursor, write_cursor
from mpmd.forward.http import Outcome, Poster, classify, describe
from mpmd.storage.journal import Journal, line_seq
from mpmd.storage.journal_tail import Tail

log = logging.getLogger("mpmd.forward")

IDLE_POLL_S = 5.0  # a wake-up missed costs this much delay at most
STOP_TIMEOUT_S = 5.0


class Sender(Protocol):
    content_type: str

    def encode(self, lines: list[bytes]) -> tuple[bytes, dict[str, str]]: ...

    def accepted(self, body: bytes, count: int) -> Outcome: ...


class Backoff:
    """Exponential delays with "equal jitter": the n-th failure in a row waits between half
    and all of min(cap, base * 2**(n-1)). ``rand`` is injectable for tests."""

    def __init__(self, base_s: float, cap_s: float,
                 rand: Callable[[], float] = random.random) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.rand = rand
        self.failures = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        self.failures += 1
        ceiling = min(self.cap_s, self.base_s * 2 ** min(self.failures - 1, 60))
        delay = ceiling / 2 + ceiling / 2 * self.rand()
        return max(delay, retry_after) if retry_after is not None else delay

    def reset(self) -> None:
        self.failures = 0


class Breaker:
    """closed -> (``threshold`` failures in a row) -> open -> (``cooldown_s`` later) ->
    half_open: one trial; its success closes, its failure opens again. ``threshold`` 0:
    never opens. ``clock`` is injectable (monotonic seconds)."""

    def __init__(self, threshold: int, cooldown_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0

    def allow(self) -> bool:
        """May a request go now? (Moves open to half_open once the cool-down is over.)"""
        if self.state == "open":
            if self.clock() - self.opened_at < self.cooldown_s:
                return False
            self.state = "half_open"
        return True

    def remaining(self) -> float:
        if self.state != "open":
            return 0.0
        return max(0.0, self.opened_at + self.cooldown_s - self.clock())

    def success(self) -> None:
        self.state = "closed"
        self.failures = 0

    def failure(self) -> None:
        self.failures += 1
        if self.state == "half_open" or (self.threshold and self.failures >= self.threshold):
            self.state = "open"
            self.opened_at = self.clock()


def make_sender(cfg: fconfig.ForwardConfig) -> Sender:
    if cfg.kind == "otlp":
        from mpmd.forward.otlp import OtlpSender

        return OtlpSender(cfg)
    from mpmd.forward.webhook import WebhookSender

    return WebhookSender(cfg)


class Forwarder:
    def __init__(self, cfg: fconfig.ForwardConfig, state_dir: Path, journal_dir: Path,
                 journal_last_seq: Callable[[], int], counters: Counter[str]) -> None:
        self.cfg = cfg
        self.journal_dir = journal_dir
        self.journal_last_seq = journal_last_seq
        self.counters = counters
        self.cursor_file = cursor_path(state_dir, cfg.name)
        stored = read_cursor(self.cursor_file)
        self.cursor = stored or 0
        self._had_cursor = stored is not None
        self.delivered = 0
        self.failures = 0  # failed requests since start
        self.skipped = 0  # events retention deleted before they were delivered
        self.rejected = 0  # events the receiver refused for good
        self.state = "ok"
        self.last_error = ""
        self.last_delivery_at: float | None = None
        self.backoff = Backoff(cfg.backoff_s, cfg.max_backoff_s)
        self.breaker = Breaker(cfg.breaker_failures, cfg.breaker_cooldown_s)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poster = Poster(cfg.url, cfg.timeout_s, cfg.ca_file)
        self.sender: Sender | None = None
        for key in ("skipped", "rejected"):
            counters[forward(cfg.name, key)] += 0  # created here, in the loop's thread
        try:
            self.sender = make_sender(cfg)
        except (fconfig.ForwardConfigError, RuntimeError) as exc:
            self.state, self.last_error = "error", str(exc)
            log.error('forward "%s" not started: %s', cfg.name, exc)

    # ---- the daemon's side ----------------------------------------------------------------
    def start(self) -> None:
        if self.sender is None:
            return
        self._thread = threading.Thread(target=self._run, name=f"forward-{self.cfg.name}",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        if not self._wake.is_set():
            self._wake.set()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._poster.abort()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning('forward "%s" did not stop within %.0f s; its batch is sent '
                            "again at the next start", self.cfg.name, timeout)

    def status(self) -> dict[str, object]:
        cfg = self.cfg
        return {"kind": cfg.kind, "url": cfg.safe_url, "cursor_seq": self.cursor,
                "backlog": max(0, self.journal_last_seq() - self.cursor),
                "delivered": self.delivered, "failures": self.failures,
                "skipped": self.skipped, "rejected": self.rejected, "state": self.state,
                "last_error": self.last_error or None,
                "last_delivery_at": self.last_delivery_at}

    # ---- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        journal = Journal(self.journal_dir, read_only=True)
        if self.cursor > journal.last_seq:
            log.warning('forward "%s": its cursor (%d) is past the journal\'s end (%d): the '
                        "journal was replaced; starting from its start", self.cfg.name,
                        self.cursor, journal.last_seq)
            self.cursor, self._had_cursor = 0, False
        tail = Tail(journal, self.cursor)
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    lines = tail.read(self.cfg.batch)
                    if lines and len(lines) < self.cfg.batch and self.cfg.linger_s > 0 and \
                            not self._stop.wait(self.cfg.linger_s):
                        lines += tail.read(self.cfg.batch - len(lines))
                except OSError as exc:  # the journal unreadable for a moment (EMFILE, EIO)
                    self.state, self.last_error = "error", f"reading the journal: {exc}"
                    log.error('forward "%s": reading the journal failed (%s)', self.cfg.name,
                              exc)
                    self._stop.wait(self.backoff.next_delay())
                    tail.seek(self.cursor)
                    continue
                if not lines:
                    self._wake.wait(IDLE_POLL_S)
                    continue
                self._count_gaps(lines)
                if not self._deliver(lines):
                    break  # stopping: the cursor has what was delivered
        except Exception:  # a bug: say so, keep the daemon
            log.exception('forward "%s" stopped by an error', self.cfg.name)
            self.counters[Count.INTERNAL_ERRORS] += 1
            self.state, self.last_error = "error", "stopped by an internal error (see the log)"
        finally:
            tail.close()
            self._poster.close()

    def _count_gaps(self, lines: list[bytes]) -> None:
        """Seqs are gapless: a hole before or inside the batch is events retention deleted
        before they were delivered."""
        prev = self.cursor
        missing = 0
        for line in lines:
            seq = line_seq(line)
            if seq > prev + 1 and (prev or self._had_cursor):
                missing += seq - prev - 1
            prev = seq
        if missing:
            self.skipped += missing
            self.counters[forward(self.cfg.name, "skipped")] += missing
            log.error('forward "%s": %d events were deleted by retention before they could '
                      "be delivered", self.cfg.name, missing)

    def _deliver(self, lines: list[bytes]) -> bool:
        """Deliver a batch (in parts if the receiver refuses it); False if stopping first."""
        parts = [lines]
        while parts:
            part = parts[0]
            outcome = self._attempt(part)
            if outcome is None:
                return False
            if outcome.kind == "refused":
                if len(part) > 1:
                    mid = len(part) // 2
                    parts[0:1] = [part[:mid], part[mid:]]
                    continue
                self.rejected += 1
                self.counters[forward(self.cfg.name, "rejected")] += 1
                log.error('forward "%s": the receiver refused event seq %d for good (%s); '
                          "going on without it", self.cfg.name, line_seq(part[0]),
                          outcome.error)
            else:
                self.delivered += len(part) - outcome.rejected
                if outcome.rejected:
                    self.rejected += outcome.rejected
                    self.counters[forward(self.cfg.name, "rejected")] += outcome.rejected
                    log.error('forward "%s": the receiver rejected %d of %d events: %s',
                              self.cfg.name, outcome.rejected, len(part), outcome.error)
                self.last_delivery_at = time.time()
            self._advance(line_seq(part[-1]))
            parts.pop(0)
        return True

    def _advance(self, seq: int) -> None:
        while True:
            try:
                write_cursor(self.cursor_file, seq)
                break
            except OSError as exc:  # a full disk: delivered already; retry the write
                self.state, self.last_error = "error", f"cannot write the cursor: {exc}"
                log.error('forward "%s": cannot write its cursor (%s)', self.cfg.name, exc)
                if self._stop.wait(self.backoff.next_delay()):
                    break  # this batch goes again at the next start
        self.cursor = seq

    def _attempt(self, part: list[bytes]) -> Outcome | None:
        """Post ``part`` until it is delivered or refused; None when stopping first."""
        assert self.sender is not None
        body, extra = self.sender.encode(part)
        headers = {**self.cfg.headers, **extra, "Content-Type": self.sender.content_type}
        while not self._stop.is_set():
            if not self.breaker.allow():
                self.state = "open"
                self._stop.wait(self.breaker.remaining())
                continue
            try:
                status, reason, resp_headers, resp_body = self._poster.post(body, headers)
            except (OSError, http.client.HTTPException) as exc:
                if self._stop.is_set():
                    return None
                outcome = Outcome("retry", describe(exc))
            else:
                if 200 <= status < 300:
                    outcome = self.sender.accepted(resp_body, len(part))
                else:
                    outcome = classify(status, reason, resp_headers, resp_body)
            if outcome.kind in ("ok", "refused"):
                self.breaker.success()
                self.backoff.reset()
                self.state = "ok"
                if outcome.kind == "ok":
                    self.last_error = ""
                return outcome
            self.failures += 1
            self.breaker.failure()
            delay = self.backoff.next_delay(outcome.retry_after)
            if self.breaker.state == "open":
                self.state = "open"
                delay = max(delay, self.breaker.remaining())
            else:
                self.state = "error" if outcome.kind == "config" else "retrying"
            if self.last_error != outcome.error:
                log.warning('forward "%s": %s; retrying in %.1f s', self.cfg.name,
                            outcome.error, delay)
            self.last_error = outcome.error
            self._stop.wait(delay)
        return None


class Forwarders:
    """Every forwarder config.toml declares; what the daemon holds.

        self.forwarders = Forwarders(settings, lambda: self.journal.last_seq, self.counters)
        self.forwarders.start()        # once the journal has caught up with the ring
        self.forwarders.wake()         # after each journal write
        await self.forwarders.stop()   # at shutdown
        self.forwarders.status()       # {name: {...}} for status(), /metrics, doctor
    """

    def __init__(self, settings: Settings, journal_last_seq: Callable[[], int],
                 counters: Counter[str]) -> None:
        good, bad = fconfig.from_settings(settings)
        self.invalid = bad
        for item in bad:
            log.error("forward %s not started: %s", item.name, item.error)
        self.items = [Forwarder(cfg, settings.state_dir, settings.journal_dir,
                                journal_last_seq, counters) for cfg in good]

    def start(self) -> None:
        for f in self.items:
            f.start()

    def wake(self) -> None:
        for f in self.items:
            f.wake()

    async def stop(self) -> None:
        for f in self.items:
            f.request_stop()
        if self.items:
            await asyncio.to_thread(self._join)

    def _join(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for f in self.items:
            f.join(max(0.0, deadline - time.monotonic()))

    def status(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {f.cfg.name: f.status() for f in self.items}
        for item in self.invalid:
            out[item.name] = {"kind": item.kind, "url": item.url, "cursor_seq": None,
                              "backlog": None, "delivered": 0, "failures": 0, "skipped": 0,
                              "rejected": 0, "state": "error", "last_error": item.error,
                              "last_delivery_at": None}
        return out


def problems(settings: Settings) -> list[str]:
    """What would keep a forwarder of config.toml from running, without a daemon (for
    ``mpmd doctor``): invalid tables, an unreadable secret, the otel extra missing."""
    good, bad = fconfig.from_settings(settings)
    found = [item.error for item in bad]
    for cfg in good:
        try:
            make_sender(cfg)
        except (fconfig.ForwardConfigError, RuntimeError) as exc:
            found.append(f'forward "{cfg.name}": {exc}')
    return found
