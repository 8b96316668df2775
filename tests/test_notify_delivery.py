"""A notification target's outbox (mpmd.notify.deliver.Target) against a real socket that
refuses: bounded, retried, and what it says of itself."""

from __future__ import annotations

import socket

import pytest

from mpmd.notify.deliver import MAX_OUTBOX, Target, send
from mpmd.notify.message import Message
from tests.utils import wait_until

pytestmark = pytest.mark.integration


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message(i: int) -> Message:
    return Message(id=str(i), rule="r", title=f"t{i}", body=f"b{i}")


def test_a_target_that_refuses_keeps_a_bounded_outbox_and_says_why() -> None:
    url = f"ntfy://127.0.0.1:{closed_port()}/topic"
    assert send(url, message(0)) is not None  # refused: says why, raises nothing
    changes: list[int] = []
    target = Target("r#1", url, lambda: changes.append(1))
    extra = 5
    for i in range(MAX_OUTBOX + extra):
        target.put(message(i))
    assert len(target.pending()) == MAX_OUTBOX
    assert target.dropped == extra
    assert target.pending()[0].id == str(extra)  # the oldest went first
    target.start()
    try:
        wait_until(lambda: target.failures >= 1, "a failed attempt")
        st = target.status()
        assert st["state"] == "retrying" and st["queued"] == MAX_OUTBOX
        assert st["url"] == f"ntfy://127.0.0.1:{url.split(':')[2].split('/')[0]}/…"
        assert st["last_error"]
        assert changes == []  # nothing sent: nothing to save
    finally:
        target.stop(10)


def test_a_message_never_taken_is_dropped_after_its_attempts_and_the_next_goes_on() -> None:
    url = f"ntfy://127.0.0.1:{closed_port()}/topic"
    changes: list[int] = []
    target = Target("r#1", url, lambda: changes.append(1), backoff_s=0.001, max_attempts=3)
    target.put(message(1))
    target.put(message(2))
    target.start()
    try:
        wait_until(lambda: target.dropped == 2, "both messages dropped, one after the other")
        assert target.pending() == [] and target.sent == 0
        assert target.failures == 6  # three attempts each
        assert len(changes) == 2  # each drop is saved
    finally:
        target.stop(10)
