"""Resume completeness: a viewer that resumes by seq gets every event the journal holds
after it, in order, once, and is told `gap` only when the journal cannot be written (or no
longer holds them). End to end with a real daemon (events the journal could not take
before a stop; a slow reader in a burst), the two gap cases on the broadcaster, and as a
property of the broadcaster over a real ring and journal under random interleavings."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from websockets.asyncio.client import ClientConnection, connect

from mpmd.model import record
from mpmd.model.events import EventFrame
from mpmd.serve.broadcast import Broadcaster, Client, Filter
from mpmd.storage.journal import Journal, line_seq
from mpmd.storage.ring import HEADER_BYTES, Ring
from tests.utils import (
    Daemon,
    examples,
    fixture_payloads,
    journal_lines,
    send_events,
    short_tempdir,
    status,
    wait_until,
)


class Stream:
    """One WebSocket client and everything it was sent."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict] = []

    async def subscribe(self, **fields: object) -> None:
        await self.ws.send(json.dumps({"type": "subscribe", **fields}))

    async def read_one(self) -> None:
        self.messages.append(json.loads(await self.ws.recv()))

    async def read_until(self, done, timeout: float = 60) -> None:  # noqa: ANN001
        async def read() -> None:
            while not done():
                await self.read_one()
        await asyncio.wait_for(read(), timeout)  # bounds the test; nothing is slept

    def kinds(self) -> list[str]:
        return [m["type"] for m in self.messages]

    def seqs(self) -> list[int]:
        return [e["seq"] for m in self.messages if m["type"] == "events" for e in m["events"]]

    def gaps(self) -> list[dict]:
        return [m for m in self.messages if m["type"] == "gap"]


def journal_seqs(home: Path) -> list[int]:
    return [line_seq(line) for line in journal_lines(home)]


# ---- end to end ---------------------------------------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prlimit is Linux only")
def test_events_the_journal_took_only_at_restart_reach_viewers(home: Path) -> None:
    """Journal writes fail (a full disk, as tests/test_disk_full.py makes one: a read-only
    folder does not stop root) while events arrive and a viewer watches them live; the
    daemon stops with them in the ring only. The next start journals them, and a viewer
    resuming from 0, or from a seq among them, gets each journaled event once, in order,
    with no gap."""
    from tests.test_disk_full import FileSizeLimit, daemon_status

    payloads = itertools.cycle(fixture_payloads())
    first, stranded, later = 116, 34, 20  # the numbers of the report

    async def watch_until(url: str, seq: int, **subscribe: object) -> Stream:
        async with connect(url, compression=None, max_size=None) as ws:
            stream = Stream(ws)
            await stream.subscribe(**subscribe)
            await stream.read_until(lambda: "live" in stream.kinds()
                                    and stream.seqs()[-1:] == [seq])
            return stream

    with Daemon(home) as daemon:
        send_events(home, [next(payloads) for _ in range(first)])
        wait_until(lambda: daemon_status(home)["journal_last_seq"] == first,
                   "the first events are journaled")
        disk = FileSizeLimit(home)
        disk.fill(daemon)
        send_events(home, [next(payloads) for _ in range(stranded)])
        # A live viewer saw them: the broadcaster's ring cursor is past them.
        seen = asyncio.run(watch_until(status(home)["ws_url"], first + stranded, after=first))
        assert seen.seqs() == list(range(first + 1, first + stranded + 1))
        assert daemon_status(home)["counters"].get("journal_errors", 0) >= 1
        assert daemon.stop() == 0
    assert journal_seqs(home) == list(range(1, first + 1))  # the rest stayed in the ring

    with Daemon(home):  # writes work again: a new process, no file size limit
        send_events(home, [next(payloads) for _ in range(later)])
        total = first + stranded + later
        wait_until(lambda: daemon_status(home)["journal_last_seq"] == total,
                   "every event is journaled")
        assert journal_seqs(home) == list(range(1, total + 1))
        url = status(home)["ws_url"]
        for after in (0, first + 4):
            stream = asyncio.run(watch_until(url, total, after=after))
            assert stream.seqs() == list(range(after + 1, total + 1)), after
            assert stream.gaps() == []


def test_a_slow_reader_in_a_burst_gets_every_event_once_without_a_gap(home: Path) -> None:
    """A viewer that reads one message while a thousand events arrive falls behind (its
    queue overflows: `lagged`), is served from the journal while the burst goes on, the
    journal rotating under it and trailing the broadcaster by up to a write batch, and
    still gets every event once, in order, with no `gap`: the journal never failed."""
    total, per_round = 30_000, 1_000
    payloads = fixture_payloads()

    async def main() -> Stream:
        url = status(home)["ws_url"]
        async with connect(url, compression=None, max_queue=1, max_size=None) as ws:
            stream = Stream(ws)
            await stream.subscribe(after=0)
            await stream.read_until(lambda: "live" in stream.kinds())
            for start in range(0, total, per_round):  # the client reads nothing meanwhile
                batch = [payloads[i % len(payloads)] for i in range(start, start + per_round)]
                await asyncio.to_thread(send_events, home, batch)
                await stream.read_one()
            await stream.read_until(lambda: stream.seqs()[-1:] == [total] or
                                    bool(stream.gaps()))
            return stream

    # Small segments: the journal rotates every few hundred events, as a 64 MiB one does
    # every ~80,000 of them.
    with Daemon(home, MPMD_VIEWER_QUEUE_BYTES=str(64 * 1024),
                MPMD_SEGMENT_BYTES=str(256 * 1024)):
        stream = asyncio.run(main())
        counters = status(home)["counters"]
    assert stream.gaps() == []
    assert stream.seqs() == list(range(1, total + 1))
    assert "lagged" in stream.kinds()
    assert counters.get("journal_errors", 0) == 0
    assert counters.get("viewer_gaps", 0) == 0


# ---- the property, on the broadcaster ---------------------------------------------------

RING_CAPACITY = 1 << 20
SEGMENT_BYTES = 16 * 1024  # a rotation every dozen or so events
_payloads = fixture_payloads()


class Storage:
    """A real ring and journal, written the way the daemon's store and journal consumer
    write them; the broadcaster is told of each journal batch as the daemon tells it."""

    def __init__(self, folder: Path) -> None:
        self.ring = Ring.create(bytearray(HEADER_BYTES + RING_CAPACITY), RING_CAPACITY)
        self.ring.add_consumer("journal")
        self.journal = Journal(folder / "journal", segment_max_bytes=SEGMENT_BYTES)
        self.payloads = itertools.cycle(_payloads)
        self.next_seq = 1
        self.b: Broadcaster | None = None

    def append(self) -> bool:
        """One event into the ring; False when it is full."""
        seq, data = self.next_seq, next(self.payloads)
        frame = EventFrame(version=1, id=seq.to_bytes(16, "big"), ts_ns=seq * 10**9,
                           payload=data, original_size=len(data))
        if not self.ring.append(record.build(seq, frame, seq * 10**9)):
            return False
        self.next_seq += 1
        return True

    def to_journal(self, n: int = 1 << 20) -> None:
        records = self.ring.read("journal", max_records=n, max_bytes=1 << 30)
        if records:
            self.journal.append((line_seq(r), r) for _p, r in records)
            self.ring.commit("journal", records[-1][0])
            if self.b is not None:
                self.b.journal_advanced()


class GatedSocket:
    """What one client's socket carried, each message with the subscription it was sent
    for; it takes a message only when the test lets it (``permits``), like a tab that
    reads when it likes."""

    def __init__(self, client: Client, permits: int = 0) -> None:
        self.client = client
        self.permits = permits
        self.opened = asyncio.Event()
        self.messages: list[tuple[int, dict]] = []

    async def send(self, data: bytes) -> None:
        generation = self.client.generation
        while self.permits == 0:
            self.opened.clear()
            await self.opened.wait()
        self.permits -= 1
        self.messages.append((generation, msgspec.json.decode(data)))

    def allow(self, n: int) -> None:
        self.permits += n
        self.opened.set()

    def kinds(self) -> list[str]:
        return [m["type"] for _g, m in self.messages]

    def seqs(self) -> list[int]:
        return [e["seq"] for _g, m in self.messages if m["type"] == "events"
                for e in m["events"]]


def single_worker_executor(loop: asyncio.AbstractEventLoop) -> None:
    """One worker: a no-op submitted after the broadcaster's journal reads runs after them,
    which is how settle() knows they are done."""
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(1))


async def settle(state: Callable[[], object]) -> None:
    """Let the clients' feeds run until they can go no further without the test: every
    journal read they started has ended, and ``state`` stays the same over a few turns."""
    loop = asyncio.get_running_loop()
    last, still = None, 0
    while still < 3:
        await loop.run_in_executor(None, lambda: None)
        for _ in range(20):
            await asyncio.sleep(0)  # a turn of the loop, not a pause
        now = state()
        still = still + 1 if now == last else 0
        last = now


@pytest.mark.parametrize("journal", ["works", "fails"])
def test_a_client_past_the_window_waits_for_the_journal_unless_it_fails(
        tmp_path: Path, journal: str) -> None:
    """Events 11-40 are in the ring and folded (the window holds the last few), not yet in
    the journal. A client resuming from 0 gets 1-10 from the journal, then waits: those
    events are on their way. The journal's next write brings them all; a failed write
    instead is the one case for `gap`, from 10 to the window's first event."""
    async def main() -> None:
        single_worker_executor(asyncio.get_running_loop())
        storage = Storage(tmp_path)
        b = storage.b = Broadcaster(storage.ring, storage.journal, Counter(), window_events=8)
        for _ in range(40):
            assert storage.append()
        storage.to_journal(10)
        b.pump_all()
        client = Client()
        sock = GatedSocket(client, permits=1 << 30)
        b.clients.add(client)
        task = asyncio.create_task(b.feed(client, sock.send))
        client.subscribe(Filter(), 0)

        def state() -> object:
            return len(sock.messages), client.sent_seq, client.live

        await settle(state)
        assert sock.seqs() == list(range(1, 11))
        assert not client.live and "gap" not in sock.kinds()
        if journal == "works":
            storage.to_journal()
            await settle(state)
            assert sock.seqs() == list(range(1, 41))
            assert "gap" not in sock.kinds()
        else:
            b.journal_failed()
            await settle(state)
            first = b.window[0].seq
            assert [m for _g, m in sock.messages if m["type"] == "gap"] == [
                {"type": "gap", "after": 10, "next_seq": first}]
            assert sock.seqs() == list(range(1, 11)) + list(range(first, 41))
            assert b.counters["viewer_gaps"] == 1
        assert client.live and sock.kinds()[-2:] == ["live", "approvals"]
        client.closed = True
        client.wakeup.set()
        await asyncio.wait_for(task, 10)
        storage.journal.close()
    asyncio.run(main())


def test_events_retention_deleted_are_a_gap(tmp_path: Path) -> None:
    """A client resuming from before the journal's oldest event is told which it missed."""
    async def main() -> None:
        single_worker_executor(asyncio.get_running_loop())
        storage = Storage(tmp_path)
        b = storage.b = Broadcaster(storage.ring, storage.journal, Counter(), window_events=4)
        for _ in range(60):
            assert storage.append()
        storage.to_journal()
        b.pump_all()
        oldest, second = storage.journal.segments()[:2]
        oldest.path.unlink()  # as retention does
        client = Client()
        sock = GatedSocket(client, permits=1 << 30)
        b.clients.add(client)
        task = asyncio.create_task(b.feed(client, sock.send))
        client.subscribe(Filter(), 0)
        await settle(lambda: (len(sock.messages), client.sent_seq, client.live))
        assert [m for _g, m in sock.messages if m["type"] == "gap"] == [
            {"type": "gap", "after": 0, "next_seq": second.first_seq}]
        assert sock.seqs() == list(range(second.first_seq, 61))
        assert client.live
        client.closed = True
        client.wakeup.set()
        await asyncio.wait_for(task, 10)
        storage.journal.close()
    asyncio.run(main())


class ResumeCompleteness(RuleBasedStateMachine):
    """Appends to the ring, journal batches (of any size, rotating often), broadcaster
    pumps, a client that reads when it likes, subscribes again at any seq, or reconnects.
    Whatever the interleaving, the events each subscription is sent are exactly the seqs
    after its resume point, in order, with no gap; and once the client reads freely, every
    one of them arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = short_tempdir()
        self.loop = asyncio.new_event_loop()
        single_worker_executor(self.loop)
        self.storage = Storage(self.folder)
        self.counters: Counter[str] = Counter()
        self.client: Client | None = None
        self.task: asyncio.Task | None = None
        self.sock: GatedSocket | None = None
        self.starts: dict[tuple[int, int], int] = {}  # (client id, generation) -> after
        self.sockets: list[GatedSocket] = []

    @initialize(window=st.integers(1, 20), queue_kib=st.integers(1, 8))
    def start(self, window: int, queue_kib: int) -> None:
        self.b = self.storage.b = Broadcaster(
            self.storage.ring, self.storage.journal, self.counters,
            client_queue_bytes=queue_kib * 1024, window_events=window)
        self.connect(0)

    def run(self, coro) -> None:  # noqa: ANN001
        self.loop.run_until_complete(coro)

    def connect(self, after: int) -> None:
        client = Client()
        self.client, self.sock = client, GatedSocket(client)
        self.sockets.append(self.sock)
        self.b.clients.add(client)

        async def start() -> asyncio.Task:
            return asyncio.create_task(self.b.feed(client, self.sock.send))
        self.task = self.loop.run_until_complete(start())
        self.subscribe_at(after)

    def subscribe_at(self, after: int) -> None:
        assert self.client is not None
        self.client.subscribe(Filter(), after)
        self.starts[(self.client.id, self.client.generation)] = after
        self.run(self.settle())

    async def settle(self) -> None:
        def state() -> object:
            c = self.client
            assert c is not None and self.sock is not None
            return (len(self.sock.messages), c.sent_seq, c.live, c.generation, len(c.queue),
                    self.sock.permits, self.b.last_seq)
        await settle(state)

    # ---- rules --------------------------------------------------------------------------
    @rule(n=st.integers(1, 60))
    def append(self, n: int) -> None:
        for _ in range(n):
            if not self.storage.append():  # full: the consumers take what they have first
                self.storage.to_journal()
                self.b.pump_all()
                assert self.storage.append()
        self.run(self.settle())

    @rule(n=st.integers(1, 200))
    def journal_batch(self, n: int) -> None:
        self.storage.to_journal(n)
        self.run(self.settle())

    @rule()
    def pump(self) -> None:
        self.b.pump_all()
        self.run(self.settle())

    @rule(n=st.integers(1, 6))
    def client_reads(self, n: int) -> None:
        assert self.sock is not None
        self.sock.allow(n)
        self.run(self.settle())

    @rule(data=st.data())
    def resubscribe(self, data: st.DataObject) -> None:
        self.subscribe_at(data.draw(st.integers(0, self.b.last_seq), label="after"))

    @rule(data=st.data())
    def reconnect(self, data: st.DataObject) -> None:
        after = data.draw(st.integers(0, self.b.last_seq), label="after")
        self._close()
        self.connect(after)

    def _close(self) -> None:
        assert self.client is not None and self.task is not None
        self.client.closed = True
        self.client.wakeup.set()
        self.b.clients.discard(self.client)
        self.task.cancel()
        self.run(asyncio.gather(self.task, return_exceptions=True))

    # ---- what must hold -----------------------------------------------------------------
    def _sent(self) -> dict[tuple[int, int], list[int]]:
        sent: dict[tuple[int, int], list[int]] = {}
        for sock in self.sockets:
            for generation, m in sock.messages:
                assert m["type"] != "gap", m
                if m["type"] == "events":
                    sent.setdefault((sock.client.id, generation), []).extend(
                        e["seq"] for e in m["events"])
        return sent

    @invariant()
    def each_subscription_gets_the_seqs_after_its_start_in_order(self) -> None:
        for key, seqs in self._sent().items():
            after = self.starts[key]
            assert seqs == list(range(after + 1, after + 1 + len(seqs))), (key, after, seqs)

    def teardown(self) -> None:
        try:
            if getattr(self, "b", None) is not None and self.client is not None:
                self._complete()
        finally:
            if self.task is not None:
                self._close()
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()
            self.storage.journal.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def _complete(self) -> None:
        """Everything journaled and folded, and the client reading freely: the current
        subscription ends up with every seq after its start, and live."""
        assert self.client is not None and self.sock is not None
        self.storage.to_journal()
        self.b.pump_all()
        self.sock.allow(1 << 30)

        async def until_live() -> None:
            while not (self.client.live and self.client.sent_seq == self.b.last_seq
                       and not self.client.queue):
                await self.settle()
        self.run(asyncio.wait_for(until_live(), 30))  # bounds the test; nothing is slept
        key = (self.client.id, self.client.generation)
        after = self.starts[key]
        assert self._sent().get(key, []) == list(range(after + 1, self.b.last_seq + 1))


ResumeCompleteness.TestCase.settings = settings(
    max_examples=examples(100), stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_resume_completeness = ResumeCompleteness.TestCase
