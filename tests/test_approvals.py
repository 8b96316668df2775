"""mpmd.serve.approvals: permission requests held open for the viewer, over real socket pairs."""

from __future__ import annotations

import asyncio
import functools
import socket
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from mpm_hook import remote
from mpmd.serve.approvals import Approvals, Waiting, expires_at_ms


def in_a_loop(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test in a fresh event loop (the daemon's code runs in one)."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


class Harness:
    def __init__(self, viewers: int = 1, grace_s: float = 5.0) -> None:
        self.viewers = viewers
        self.counters: Counter[str] = Counter()
        self.journaled: list[tuple[int, str, str, str]] = []
        self.changes = 0
        self.change = asyncio.Event()
        self.approvals = Approvals(self.counters, self.journal, self.changed,
                                   lambda: self.viewers, grace_s)
        self.hooks: dict[int, socket.socket] = {}

    def journal(self, w: Waiting, behavior: str, _message: str, by: str, who: str) -> None:
        self.journaled.append((w.seq, behavior, by, who))

    def changed(self) -> None:
        self.changes += 1
        self.change.set()

    def hold(self, seq: int, timeout_s: float = 60.0) -> None:
        hook_side, daemon_side = socket.socketpair()
        self.hooks[seq] = hook_side
        self.approvals.hold(Waiting(seq, bytes([seq]) * 16, "s1", "Bash", "rm -rf build",
                                    "remote-bash", expires_at_ms(timeout_s), daemon_side),
                            timeout_s)

    async def answer_of(self, seq: int) -> tuple[int, str]:
        """What the hook of request ``seq`` reads (its own blocking read, in a thread)."""
        sock = self.hooks[seq]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: remote.read_answer(
            sock, bytes([seq]) * 16, loop.time() + 30, loop.time))


@in_a_loop
async def test_the_first_answer_wins() -> None:
    h = Harness()
    h.hold(7)
    assert [a["seq"] for a in h.approvals.all()] == [7] and h.changes == 1
    assert h.approvals.answer(7, "deny", "viewer client 1") is None
    assert "no longer waiting" in (h.approvals.answer(7, "allow", "viewer client 2") or "")
    assert await h.answer_of(7) == (remote.DENY, "denied from the mpmd viewer")
    assert h.journaled == [(7, "deny", "viewer", "viewer client 1")]
    assert h.approvals.all() == [] and h.changes == 2
    assert h.counters["remote_answers_refused"] == 1


@in_a_loop
async def test_no_viewer_open_means_asking_in_the_terminal_at_once() -> None:
    h = Harness(viewers=0)
    h.hold(3)
    assert await h.answer_of(3) == (remote.NONE,
                                    "no viewer is open: asked in the terminal")
    assert h.journaled == [(3, "none", "no-viewer", "")] and h.approvals.all() == []


@in_a_loop
async def test_the_time_limit() -> None:
    h = Harness()
    h.hold(4, timeout_s=0.05)
    behavior, message = await h.answer_of(4)
    assert behavior == remote.NONE and "no answer in time" in message
    assert h.journaled == [(4, "none", "timeout", "")]


@in_a_loop
async def test_a_hook_that_gives_up_withdraws_its_request() -> None:
    h = Harness()
    h.hold(5)
    h.change.clear()
    h.hooks[5].close()
    await asyncio.wait_for(h.change.wait(), 30)  # the loop saw the end of the hook's socket
    assert h.approvals.all() == [] and h.counters["remote_withdrawn"] == 1
    assert h.journaled == []  # nobody was answered


@in_a_loop
async def test_the_last_viewer_leaving_lets_hooks_go_after_a_grace() -> None:
    h = Harness(grace_s=0.05)
    h.hold(8)
    h.viewers = 0
    h.approvals.viewers_changed()
    assert (await h.answer_of(8))[0] == remote.NONE
    assert h.journaled == [(8, "none", "no-viewer", "")]
    h.viewers = 1
    h.hold(9)
    h.viewers = 0
    h.approvals.viewers_changed()
    h.viewers = 1  # a reload comes back within the grace
    h.approvals.viewers_changed()
    assert h.approvals.answer(9, "allow", "viewer client 3") is None
    assert await h.answer_of(9) == (remote.ALLOW, "approved from the mpmd viewer")


@in_a_loop
async def test_stopping_the_daemon_answers_everyone() -> None:
    h = Harness()
    h.hold(1)
    h.hold(2)
    h.approvals.close_all()
    for seq in (1, 2):
        behavior, message = await h.answer_of(seq)
        assert behavior == remote.NONE and "stopping" in message
    assert sorted(h.journaled) == [(1, "none", "daemon-stopping", ""),
                                   (2, "none", "daemon-stopping", "")]





@in_a_loop
async def test_what_viewers_see_of_a_request_is_redacted_before_it_is_cut() -> None:
    import json

    from mpmd.model.events import EventFrame
    from mpmd.model.sessions import MAX_DETAIL
    from mpmd.serve.approvals import RemoteHolder

    h = Harness()
    token = "ghp_" + "A1b2C3d4E5" * 4
    # The token straddles where the detail is cut: cut first, its head would pass as text.
    command = "x" * (MAX_DETAIL - 10) + " " + token
    payload = json.dumps({"hook_event_name": "PermissionRequest", "session_id": token,
                          "tool_name": "Bash", "tool_input": {"command": command}}).encode()
    frame = EventFrame(version=1, id=b"r" * 16, ts_ns=1, payload=payload,
                       original_size=len(payload),
                       decision={"action": "remote", "timeout_s": 30.0})
    hook_side, daemon_side = socket.socketpair()
    RemoteHolder(h.approvals).take(frame, 9, daemon_side)
    (shown,) = h.approvals.all()
    assert token[:8] not in json.dumps(shown)
    assert shown["detail"].startswith("x" * 10)
    h.approvals.close_all()
    hook_side.close()
