"""The viewer's WebSocket end to end: a real daemon, real hook processes, and plain
WebSocket clients (the browser tests drive the page; these check the stream itself)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.utils import Daemon, fixture_payloads, run_hook, status


class Stream:
    """One subscribed client and everything it has received, by type."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict] = []
        self.sessions: dict[str, dict] = {}
        self.kinds: list[str] = []

    async def subscribe(self, **fields: object) -> None:
        await self.ws.send(json.dumps({"type": "subscribe", **fields}))

    async def read_until(self, done, timeout: float = 30) -> None:  # noqa: ANN001
        async def read() -> None:
            while not done():
                message = json.loads(await self.ws.recv())
                self.kinds.append(message["type"])
                if message["type"] == "events":
                    self.events += message["events"]
                elif message["type"] == "sessions":
                    self.sessions.update({s["session_id"]: s for s in message["sessions"]})
        await asyncio.wait_for(read(), timeout)  # bounds the test; nothing is slept

    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hook_events_arrive_live_in_order_with_the_session_table(home: Path) -> None:
    payloads = fixture_payloads()

    async def main() -> None:
        async with connect(status(home)["ws_url"], compression=None) as ws:
            stream = Stream(ws)
            await stream.subscribe()
            await stream.read_until(lambda: "live" in stream.kinds)
            assert stream.kinds[0] == "hello" and stream.events == []
            waits_seen = []
            for payload in payloads:
                assert run_hook(home, payload).returncode == 0
                n = len(stream.events) + 1
                # The batch's events, then the session rows it changed.
                await stream.read_until(lambda n=n: len(stream.events) >= n and any(
                    row["event_count"] >= n for row in stream.sessions.values()))
                (row,) = stream.sessions.values()
                waits_seen.append([p["tool_name"] for p in row["pending"]])
            assert stream.seqs() == list(range(1, len(payloads) + 1))
            kinds = [e["event_type"] for e in stream.events]
            assert kinds == [json.loads(p)["hook_event_name"] for p in payloads]
            # The Bash prompt shows from PermissionRequest until the Bash call failed.
            i = kinds.index("PermissionRequest")
            assert waits_seen[i] == ["Bash"] and waits_seen[i - 1] == []
            assert waits_seen[kinds.index("PostToolUseFailure")] == []
            (row,) = stream.sessions.values()
            assert row["ended_at"] is not None and row["event_count"] == len(payloads)

    with Daemon(home):
        asyncio.run(main())


def test_a_reconnect_after_a_restart_misses_nothing_and_repeats_nothing(home: Path) -> None:
    payloads = fixture_payloads()
    port = free_port()  # a fixed port, as the page expects to find the daemon again
    first, second, third = payloads[:10], payloads[10:25], payloads[25:]

    async def watch(count: int, after: int | None) -> list[int]:
        async with connect(status(home)["ws_url"], compression=None) as ws:
            stream = Stream(ws)
            await stream.subscribe(after=after)
            await stream.read_until(lambda: len(stream.events) >= count and
                                    "live" in stream.kinds)
            return stream.seqs()

    daemon = Daemon(home, MPMD_VIEWER_PORT=str(port)).start()
    try:
        for payload in first:
            run_hook(home, payload)
        seen = asyncio.run(watch(len(first), None))
        daemon.stop()
        for payload in second:  # the daemon is down: these spool
            run_hook(home, payload)
        daemon = Daemon(home, MPMD_VIEWER_PORT=str(port)).start()
        assert status(home)["viewer_port"] == port
        for payload in third:
            run_hook(home, payload)
        seen += asyncio.run(watch(len(second) + len(third), seen[-1]))
    finally:
        daemon.__exit__()
    assert seen == list(range(1, len(payloads) + 1))


def test_filters_and_a_bad_message(home: Path) -> None:
    payloads = fixture_payloads()

    async def main() -> None:
        async with connect(status(home)["ws_url"], compression=None) as ws:
            stream = Stream(ws)
            await ws.send("{not json")
            await ws.send(json.dumps({"type": "subscribe", "namespaces": ["nope"]}))
            await ws.send(json.dumps({"type": "unsubscribe"}))
            await stream.read_until(lambda: stream.kinds.count("error") == 3)
            await stream.subscribe(after=0, namespaces=["notification"])
            await stream.read_until(lambda: "live" in stream.kinds)
            assert {e["event_type"] for e in stream.events} == {
                "Notification", "Elicitation", "ElicitationResult"}

    with Daemon(home):
        for payload in payloads:
            run_hook(home, payload)
        asyncio.run(main())
        assert status(home)["counters"]["viewer_bad_messages"] == 3


def test_a_client_that_stops_reading_lags_alone_and_catches_up(home: Path) -> None:
    """It stops reading at the TCP level (its library stops too once one message is queued),
    so the daemon's queue for it overflows; the other client gets every event as it comes."""
    big = json.loads(next(p for p in fixture_payloads() if b'"UserPromptSubmit"' in p))
    count = 40

    async def main() -> None:
        url = status(home)["ws_url"]
        async with connect(url, compression=None, max_queue=1, max_size=None) as stalled_ws, \
                connect(url, compression=None, max_size=None) as reading_ws:
            stalled, reading = Stream(stalled_ws), Stream(reading_ws)
            await stalled.subscribe(after=0)
            await reading.subscribe(after=0)
            await stalled.read_until(lambda: "live" in stalled.kinds)
            await reading.read_until(lambda: "live" in reading.kinds)
            for n in range(count):  # ~20 MB in all, far past the queue and socket buffers
                payload = {**big, "prompt": f"{n} " + "lorem ipsum " * 40_000}
                assert run_hook(home, msgspec.json.encode(payload)).returncode == 0
                await reading.read_until(lambda n=n: len(reading.events) > n)
            assert reading.seqs() == list(range(1, count + 1))
            assert "lagged" not in reading.kinds
            assert status(home)["counters"].get("viewer_lagged", 0) >= 1
            # Reading again: told it lagged, then served from the journal, no gap.
            await stalled.read_until(lambda: stalled.seqs()[-1:] == [count], timeout=60)
            assert "lagged" in stalled.kinds
            assert stalled.seqs() == list(range(1, count + 1))

    with Daemon(home, MPMD_VIEWER_QUEUE_BYTES=str(256 * 1024)):
        asyncio.run(main())


@pytest.mark.parametrize("after", [None, 5])
def test_backlog_and_resume_point(home: Path, after: int | None) -> None:
    payloads = fixture_payloads()

    async def main() -> list[int]:
        async with connect(status(home)["ws_url"], compression=None) as ws:
            stream = Stream(ws)
            await stream.subscribe(after=after, backlog=10)
            await stream.read_until(lambda: "live" in stream.kinds)
            return stream.seqs()

    with Daemon(home):
        for payload in payloads:
            run_hook(home, payload)
        seqs = asyncio.run(main())
    last = len(payloads)
    assert seqs == (list(range(last - 9, last + 1)) if after is None
                    else list(range(after + 1, last + 1)))


def test_a_socket_that_takes_nothing_for_long_is_dropped_and_the_client_resumes(
        home: Path) -> None:
    """A frozen tab: lagging bounds the daemon's memory, and after viewer_send_timeout_s
    of a blocked socket the connection goes too; reconnecting resumes with no gap."""
    from websockets.exceptions import ConnectionClosed

    from tests.utils import wait_until

    big = json.loads(next(p for p in fixture_payloads() if b'"UserPromptSubmit"' in p))
    count = 30

    async def main() -> None:
        url = status(home)["ws_url"]
        async with connect(url, compression=None, max_queue=1, max_size=None) as ws:
            frozen = Stream(ws)
            await frozen.subscribe(after=0)
            await frozen.read_until(lambda: "live" in frozen.kinds)
            for n in range(count):
                payload = {**big, "prompt": f"{n} " + "lorem ipsum " * 40_000}
                assert run_hook(home, msgspec.json.encode(payload)).returncode == 0
            wait_until(lambda: status(home)["counters"].get("viewer_dropped_stalled"),
                       "the daemon dropped the frozen client")
            with pytest.raises(ConnectionClosed):
                await frozen.read_until(lambda: False)
        async with connect(url, compression=None, max_size=None) as ws:
            again = Stream(ws)
            after = frozen.seqs()[-1] if frozen.events else 0
            await again.subscribe(after=after)
            await again.read_until(lambda: "live" in again.kinds)
            assert frozen.seqs() + again.seqs() == list(range(1, count + 1))

    with Daemon(home, MPMD_VIEWER_QUEUE_BYTES=str(256 * 1024),
                MPMD_VIEWER_SEND_TIMEOUT_S="1"):
        asyncio.run(main())
