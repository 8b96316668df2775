"""The broadcaster (mpmd.serve.broadcast) over a real ring and a real journal, its clients served
through a send function that records what a socket would carry, and can stall like one."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpmd.model import record
from mpmd.model.events import EventFrame
from mpmd.serve.broadcast import (
    MESSAGE_BYTES,
    MESSAGE_EVENTS,
    Broadcaster,
    Client,
    Filter,
    _bounded,
)
from mpmd.storage.journal import Journal
from mpmd.storage.ring import HEADER_BYTES, Ring
from tests.utils import fixture_payloads

CAP = 1 << 20
SESSION_A = "aaaaaaaa-0000-0000-0000-000000000000"
SESSION_B = "bbbbbbbb-0000-0000-0000-000000000000"


class Pipeline:
    """Ring -> journal and broadcaster, as the daemon wires them, minus the sockets."""

    def __init__(self, folder: Path, **kw: int) -> None:
        self.ring = Ring.create(bytearray(HEADER_BYTES + CAP), CAP)
        self.ring.add_consumer("journal")
        self.journal = Journal(folder / "journal")
        self.counters: Counter[str] = Counter()
        self.b = Broadcaster(self.ring, self.journal, self.counters, **kw)
        self.seq = itertools.count(1)
        self.payloads = itertools.cycle(fixture_payloads())

    def add(self, n: int, session: str = SESSION_A, journal: bool = True,
            pad: int = 0) -> list[int]:
        """Store ``n`` fixture events for ``session``; returns their seqs."""
        seqs = []
        for _ in range(n):
            obj = msgspec.json.decode(next(self.payloads))
            obj["session_id"] = session
            if pad:
                obj["padding"] = "x" * pad
            seq = next(self.seq)
            data = msgspec.json.encode(obj)
            frame = EventFrame(version=1, id=seq.to_bytes(16, "big"), ts_ns=seq * 10**9,
                               payload=data, original_size=len(data))
            assert self.ring.append(record.build(seq, frame, seq * 10**9))
            seqs.append(seq)
        if journal:
            self.to_journal()
        return seqs

    def to_journal(self) -> None:
        while records := self.ring.read("journal", max_records=1000):
            self.journal.append((msgspec.json.decode(r)["seq"], r) for _p, r in records)
            self.ring.commit("journal", records[-1][0])


class Socket:
    """What one client's socket carried; ``gate`` cleared = a client that stopped reading."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.arrived = asyncio.Event()

    async def send(self, data: bytes) -> None:
        await self.gate.wait()
        self.messages.append(msgspec.json.decode(data))
        self.arrived.set()

    def seqs(self) -> list[int]:
        return [e["seq"] for m in self.messages if m["type"] == "events" for e in m["events"]]

    def types(self) -> list[str]:
        return [m["type"] for m in self.messages]

    async def until(self, what: str, condition) -> None:  # noqa: ANN001
        async def wait() -> None:
            while not condition():
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(wait(), 10)  # a bound on a test, not a pause


async def connect(b: Broadcaster, after: int, f: Filter | None = None) -> tuple[Client, Socket,
                                                                                 asyncio.Task]:
    client, sock = Client(), Socket()
    b.clients.add(client)
    task = asyncio.create_task(b.feed(client, sock.send))
    client.subscribe(f or Filter(), after)
    return client, sock, task


async def close(b: Broadcaster, client: Client, task: asyncio.Task) -> None:
    client.closed = True
    client.wakeup.set()
    b.clients.discard(client)
    await asyncio.wait_for(task, 10)


def test_resume_after_a_seq_then_live(tmp_path: Path) -> None:
    async def main() -> None:
        p = Pipeline(tmp_path)
        p.add(30)
        p.b.pump_all()
        client, sock, task = await connect(p.b, after=12)
        await sock.until("live", lambda: "live" in sock.types())
        assert sock.types()[0] == "sessions"
        assert sock.seqs() == list(range(13, 31))
        p.add(5)
        p.b.pump_all()
        await sock.until("live events", lambda: sock.seqs()[-1:] == [35])
        assert sock.seqs() == list(range(13, 36))
        assert sock.types()[-1] == "sessions"  # the batch changed session A's row
        await close(p.b, client, task)
    asyncio.run(main())


def test_older_events_come_from_the_journal(tmp_path: Path) -> None:
    async def main() -> None:
        p = Pipeline(tmp_path, window_events=10)
        p.add(700)  # more than one message's worth, and far more than the window holds
        p.b.pump_all()
        assert p.b.window[0].seq > 600
        client, sock, task = await connect(p.b, after=3)
        await sock.until("live", lambda: "live" in sock.types())
        assert sock.seqs() == list(range(4, 701))
        await close(p.b, client, task)
    asyncio.run(main())


def test_events_not_yet_journaled_come_from_the_window(tmp_path: Path) -> None:
    async def main() -> None:
        p = Pipeline(tmp_path)
        p.add(10)
        p.add(10, journal=False)  # in the ring and seen by the broadcaster, not on disk yet
        p.b.pump_all()
        client, sock, task = await connect(p.b, after=0)
        await sock.until("live", lambda: "live" in sock.types())
        assert sock.seqs() == list(range(1, 21))
        await close(p.b, client, task)
    asyncio.run(main())


def test_filters(tmp_path: Path) -> None:
    async def main() -> None:
        p = Pipeline(tmp_path)
        p.add(len(fixture_payloads()), SESSION_A)
        p.add(len(fixture_payloads()), SESSION_B)
        p.b.pump_all()
        cases = {
            "b only": Filter(sessions=frozenset({SESSION_B})),
            "failures": Filter(event_types=frozenset({"PostToolUseFailure", "StopFailure"})),
            "agents of a": Filter(sessions=frozenset({SESSION_A}),
                                  namespaces=frozenset({"agent"})),
        }
        got = {}
        for name, f in cases.items():
            client, sock, task = await connect(p.b, 0, f)
            await sock.until("live", lambda s=sock: "live" in s.types())
            got[name] = [e for m in sock.messages if m["type"] == "events" for e in m["events"]]
            sessions = [s["session_id"] for m in sock.messages if m["type"] == "sessions"
                        for s in m["sessions"]]
            if f.sessions:
                assert set(sessions) == set(f.sessions)
            await close(p.b, client, task)
        assert {e["session_id"] for e in got["b only"]} == {SESSION_B}
        assert len(got["b only"]) == len(fixture_payloads())
        assert sorted({e["event_type"] for e in got["failures"]}) == [
            "PostToolUseFailure", "StopFailure"]
        assert len(got["failures"]) == 4  # one of each per session
        assert {e["event_type"] for e in got["agents of a"]} == {
            "SubagentStart", "SubagentStop", "TaskCreated", "TaskCompleted", "TeammateIdle"}
        assert {e["session_id"] for e in got["agents of a"]} == {SESSION_A}
    asyncio.run(main())


def test_a_stalled_client_lags_alone_and_then_gets_everything_once(tmp_path: Path) -> None:
    async def main() -> None:
        p = Pipeline(tmp_path, client_queue_bytes=64 * 1024)
        p.add(5)
        p.b.pump_all()
        stalled, slow, slow_task = await connect(p.b, 0)
        healthy, fast, fast_task = await connect(p.b, 0)
        await slow.until("live", lambda: "live" in slow.types())
        await fast.until("live", lambda: "live" in fast.types())
        slow.gate.clear()  # stops reading
        for _ in range(20):
            p.add(10, pad=2000)
            p.b.pump_all()
            await fast.until("its batch", lambda: fast.seqs()[-1] == p.b.last_seq)
        assert p.counters["viewer_lagged"] == 1
        assert stalled.queued_bytes == 0 and not stalled.live  # its queue was dropped
        assert fast.seqs() == list(range(1, p.b.last_seq + 1))
        assert "lagged" not in fast.types()
        slow.gate.set()  # reads again: told it lagged, then served from the journal
        await slow.until("live again", lambda: slow.types().count("live") == 2)
        assert "lagged" in slow.types()
        assert slow.seqs() == list(range(1, p.b.last_seq + 1))  # no gap, no duplicate
        p.add(3)
        p.b.pump_all()
        await slow.until("live events", lambda: slow.seqs()[-1] == p.b.last_seq)
        for client, task in ((stalled, slow_task), (healthy, fast_task)):
            await close(p.b, client, task)
    asyncio.run(main())


def test_a_new_subscribe_replaces_a_catch_up_in_progress(tmp_path: Path) -> None:
    async def main() -> None:
        p = Pipeline(tmp_path, window_events=10)
        p.add(1200)
        p.b.pump_all()
        client, sock, task = await connect(p.b, 0)
        await sock.until("first chunk", lambda: bool(sock.seqs()))
        client.subscribe(Filter(sessions=frozenset({SESSION_B})), 1100)
        p.add(2, SESSION_B)
        p.b.pump_all()
        await sock.until("live", lambda: "live" in sock.types())
        seqs = sock.seqs()
        assert seqs[-2:] == [1201, 1202]
        assert len(seqs) == len(set(seqs)) and seqs[-3] < 1100  # the old catch-up stopped
        await close(p.b, client, task)
    asyncio.run(main())


def test_records_seen_at_start_are_not_taken_twice(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    p.add(10)
    lines = list(p.journal.read_from(0))
    p.b.seed(lines)  # the journal's tail at start-up, while the ring still has them too
    p.b.pump_all()
    assert [e.seq for e in p.b.window] == list(range(1, 11))
    (row,) = p.b.sessions.all()
    assert row.event_count == 10


@pytest.mark.parametrize("junk", [b"not json", b'{"seq": "x"}', b"{}"])
def test_an_undecodable_record_is_counted_and_skipped(tmp_path: Path, junk: bytes) -> None:
    p = Pipeline(tmp_path)
    p.add(2, journal=False)
    assert p.ring.append(junk)
    p.add(1, journal=False)
    assert p.b.pump_all() == 4
    assert [e.seq for e in p.b.window] == [1, 2, 3]
    assert p.counters["broadcast_undecodable"] == 1


@given(st.lists(st.integers(min_value=1, max_value=3 * MESSAGE_BYTES // 4), max_size=40))
def test_messages_are_bounded_in_events_and_bytes(sizes: list[int]) -> None:
    lines = [b"x" * n for n in sizes] + [b"y"] * (MESSAGE_EVENTS + 3)
    batches = list(_bounded(lines))
    assert [line for batch in batches for line in batch] == lines
    for batch in batches:
        assert len(batch) <= MESSAGE_EVENTS
        assert len(batch) == 1 or sum(map(len, batch)) <= MESSAGE_BYTES
