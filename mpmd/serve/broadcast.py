"""The broadcaster: a ring consumer that fans stored events out to viewer clients.

It reads the ring at the daemon's pace, whatever the clients do, and never waits on one:
  - each event is decoded once (for filtering and the sessions table) and its journal line
    is sent as is, inside micro-batched `events` messages;
  - each client has a queue bounded in bytes; a client whose queue overflows is marked
    lagged, its queue dropped, and it is then served from the recent window or the journal
    at its own pace (`catch_up`), so a stalled tab costs the daemon at most its bound;
  - subscribing, resuming after a reconnect and recovering from lag are one path: the
    client says (or we remember) the last seq it has, and everything after it comes first:
    from the window, else the journal; an event in neither is on its way to the journal
    (still in the ring), and the client waits for it. Only when the journal cannot be
    written, or no longer holds an event, is the client told `gap`.
The socket side (who may connect, the messages' framing) is mpmd.serve.viewer.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import NamedTuple

import msgspec

from mpmd.counters import Count
from mpmd.model.events import NAMESPACE_OF
from mpmd.model.sessions import EventView, Session, Sessions
from mpmd.storage.journal import Journal, line_seq
from mpmd.storage.journal_tail import Tail
from mpmd.storage.ring import Ring

log = logging.getLogger("mpmd.serve.broadcast")

BROADCAST_CONSUMER = "broadcast"
READ_BATCH = 500
# After a burst went out, wait this long before the next: events arriving meanwhile go
# out together, so under load each client gets a few hundred messages a second at most,
# while the first event after a quiet spell goes out at once.
BATCH_INTERVAL_S = 0.003
WINDOW_EVENTS = 2000  # recent events kept in memory for resumes (older: the journal)
WINDOW_BYTES = 1024 * 1024
CLIENT_QUEUE_BYTES = 2 * 1024 * 1024
MESSAGE_EVENTS = 500
MESSAGE_BYTES = 1024 * 1024
DEFAULT_BACKLOG = 2000
MAX_BACKLOG = 20000

Send = Callable[[bytes], Awaitable[None]]

_view_decoder = msgspec.json.Decoder(EventView)
_encoder = msgspec.json.Encoder()


class Entry(NamedTuple):
    seq: int
    line: bytes  # the journal line: what clients get
    session_id: str | None
    event_type: str


class Filter(msgspec.Struct, frozen=True):
    """A client's server-side filters; None lets everything through."""

    sessions: frozenset[str] | None = None
    event_types: frozenset[str] | None = None
    namespaces: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        return self.sessions is None and self.event_types is None and self.namespaces is None

    def accepts(self, entry: Entry) -> bool:
        if self.sessions is not None and entry.session_id not in self.sessions:
            return False
        if self.event_types is not None and entry.event_type not in self.event_types:
            return False
        return self.namespaces is None or \
            NAMESPACE_OF.get(entry.event_type, "system") in self.namespaces

    def accepts_session(self, session_id: str) -> bool:
        return self.sessions is None or session_id in self.sessions


def events_message(lines: Iterable[bytes]) -> bytes:
    return b'{"type":"events","events":[' + b",".join(lines) + b"]}"


def message(kind: str, **fields: object) -> bytes:
    return _encoder.encode({"type": kind, **fields})


class Client:
    """One viewer connection's state; its socket is served by Broadcaster.feed."""

    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.id = next(self._ids)
        self.filter = Filter()
        self.sent_seq = 0  # the last seq this client has been sent (or already had)
        self.live = False  # False: it is catching up and gets nothing from dispatch
        self.lagged = False
        self.subscribed = False
        self.generation = 0  # bumped by every subscribe; a catch-up of an older one stops
        self.queue: deque[Entry | bytes] = deque()  # events, or encoded sessions messages
        self.queued_bytes = 0
        self.wakeup = asyncio.Event()
        self.closed = False

    def subscribe(self, filter_: Filter, after: int) -> None:
        self.filter = filter_
        self.sent_seq = after
        self.live = False
        self.lagged = False
        self.subscribed = True
        self.generation += 1
        self._drop_queue()
        self.wakeup.set()

    def _drop_queue(self) -> None:
        self.queue.clear()
        self.queued_bytes = 0

    def push(self, entries: list[Entry], extra_msg: bytes | None, limit: int) -> bool:
        """Queue live data; False (and the client is now lagged) when it overflows. A
        client that has taken everything so far gets this batch whatever its size."""
        had_some = bool(self.queue)
        self.queue.extend(entries)
        self.queued_bytes += sum(len(e.line) for e in entries)
        if extra_msg is not None:  # an encoded message sent as it is (sessions, replays)
            self.queue.append(extra_msg)
            self.queued_bytes += len(extra_msg)
        if had_some and self.queued_bytes > limit:
            self._drop_queue()
            self.live = False
            self.lagged = True
            self.wakeup.set()
            return False
        self.wakeup.set()
        return True


class Broadcaster:
    def __init__(self, ring: Ring, journal: Journal, counters: Counter[str],
                 on_commit: Callable[[], None] = lambda: None,
                 client_queue_bytes: int = CLIENT_QUEUE_BYTES,
                 window_events: int = WINDOW_EVENTS, window_bytes: int = WINDOW_BYTES,
                 approvals: Callable[[], list[dict[str, object]]] = list) -> None:
        self.ring = ring
        self.journal = journal
        self.counters = counters
        self.on_commit = on_commit
        self.client_queue_bytes = client_queue_bytes
        ring.add_consumer(BROADCAST_CONSUMER)
        self.sessions = Sessions()
        self.window: list[Entry] = []
        self._window_bytes = 0
        self.window_events = window_events
        self.window_bytes = window_bytes
        self.last_seq = 0
        self.clients: set[Client] = set()
        self.wakeup = asyncio.Event()
        # Permission requests waiting for a viewer's answer (mpmd.serve.approvals.Approvals.all).
        self.approvals = approvals
        self.event_types: Counter[str] = Counter()  # since start, for /metrics
        # Whether the journal consumer's last attempt failed (the daemon says so through
        # journal_advanced / journal_failed); clients waiting for the journal to take
        # events it has not got yet.
        self.journal_failing = False
        self._journal_waiters: set[Client] = set()

    # ---- taking events in ---------------------------------------------------------------
    def seed(self, lines: Iterable[bytes]) -> None:
        """Fold the journal's recent lines in at start-up (no client is connected yet)."""
        for line in lines:
            self._take(line, None)

    def _take(self, line: bytes, changed: dict[str, Session] | None) -> Entry | None:
        try:
            view = _view_decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            # RecursionError: a line nested ~1,000 deep, which only mpmd before the
            # payload depth bound (events.MAX_DEPTH) could have journaled.
            self.counters[Count.BROADCAST_UNDECODABLE] += 1
            return None
        if view.seq <= self.last_seq:
            return None  # seen already (start-up: in the journal's tail and still in the ring)
        if view.seq != self.last_seq + 1 and self.window:
            # Events we never saw: a resume served from the window would pass over them
            # silently, so the window restarts here and what precedes comes from the journal.
            self.window.clear()
            self._window_bytes = 0
        self.last_seq = view.seq
        self.event_types[view.event_type] += 1
        try:
            session = self.sessions.apply(view)
        except Exception:  # noqa: BLE001 - a bug in the table must not stop the fan-out
            self.counters[Count.INTERNAL_ERRORS] += 1
            log.exception("could not fold event %d into the sessions table", view.seq)
            session = None
        if session is not None and changed is not None:
            changed[session.session_id] = session
        entry = Entry(view.seq, line, view.session_id, view.event_type)
        self.window.append(entry)
        self._window_bytes += len(line)
        if len(self.window) > self.window_events or self._window_bytes > self.window_bytes:
            self._trim_window()
        return entry

    def _trim_window(self) -> None:
        """Down to 7/8 of both bounds, so the list is cut once per many events."""
        window = self.window
        keep_events, keep_bytes = self.window_events * 7 // 8, self.window_bytes * 7 // 8
        drop = max(len(window) - keep_events, 0)
        bytes_left = self._window_bytes - sum(len(e.line) for e in window[:drop])
        while bytes_left > keep_bytes and drop < len(window) - 1:
            bytes_left -= len(window[drop].line)
            drop += 1
        del window[:drop]
        self._window_bytes = bytes_left

    def pump(self) -> int:
        """Take the next batch from the ring, send it to live clients; how many were read."""
        records = self.ring.read(BROADCAST_CONSUMER, max_records=READ_BATCH)
        if not records:
            return 0
        changed: dict[str, Session] = {}
        entries = [e for _pos, rec in records if (e := self._take(rec, changed)) is not None]
        self.ring.commit(BROADCAST_CONSUMER, records[-1][0])
        self.on_commit()
        if self.clients and (entries or changed):
            self._dispatch(entries, changed)
        return len(records)

    def pump_all(self) -> int:
        total = 0
        while n := self.pump():
            total += n
        return total

    async def run(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            self.pump_all()
            await asyncio.sleep(BATCH_INTERVAL_S)  # micro-batching (see BATCH_INTERVAL_S)

    def _dispatch(self, entries: list[Entry], changed: dict[str, Session]) -> None:
        encoded = {sid: _encoder.encode(s) for sid, s in changed.items()}
        everything_msg = _sessions_message(encoded.values()) if encoded else None
        for client in self.clients:
            if not client.live:
                continue
            f = client.filter
            if f.everything:
                picked, sessions_msg = entries, everything_msg
            else:
                picked = [e for e in entries if f.accepts(e)]
                mine = [raw for sid, raw in encoded.items() if f.accepts_session(sid)]
                sessions_msg = _sessions_message(mine) if mine else None
            if (picked or sessions_msg) and not client.push(
                    picked, sessions_msg, self.client_queue_bytes):
                self.counters[Count.VIEWER_LAGGED] += 1
                log.info("viewer client %d fell behind; serving it from the journal",
                         client.id)

    def journal_advanced(self) -> None:
        """The journal consumer wrote a batch: clients waiting for it read on."""
        self.journal_failing = False
        self._wake_journal_waiters()

    def journal_failed(self) -> None:
        """A journal write failed: what the journal has not got and the window no longer
        holds cannot be served until it works again (clients waiting for it get a gap)."""
        self.journal_failing = True
        self._wake_journal_waiters()

    def _wake_journal_waiters(self) -> None:
        for client in self._journal_waiters:
            client.wakeup.set()

    def approvals_message(self) -> bytes:
        return message("approvals", approvals=self.approvals())

    def approvals_changed(self) -> None:
        self.send_to_all(self.approvals_message())

    def send_to_all(self, data: bytes) -> int:
        """Queue one encoded message (a replay's) for every live client; how many took it."""
        taken = 0
        for client in self.clients:
            if client.live and client.push([], data, self.client_queue_bytes):
                taken += 1
        return taken

    # ---- serving one client -------------------------------------------------------------
    def sessions_snapshot(self, f: Filter) -> bytes:
        return _sessions_message(_encoder.encode(s) for s in self.sessions.all()
                                 if f.accepts_session(s.session_id))

    def backlog_start(self, backlog: int) -> int:
        return max(0, self.last_seq - max(0, min(backlog, MAX_BACKLOG)))

    async def feed(self, client: Client, send: Send) -> None:
        """Serve ``client`` until it closes: catch it up whenever it is not live, then
        forward its queue as it fills."""
        while True:
            await client.wakeup.wait()
            client.wakeup.clear()
            if client.closed:
                return
            if not client.subscribed:
                continue
            if not client.live:
                if client.lagged:
                    client.lagged = False
                    await send(message("lagged", after=client.sent_seq))
                generation = client.generation
                await send(self.sessions_snapshot(client.filter))
                if await self._catch_up(client, send, generation):
                    client.live = True
                    await send(message("live", last_seq=self.last_seq))
                    # Changes while it caught up went to live clients only.
                    await send(self.approvals_message())
                continue
            await self._send_queue(client, send)

    async def _send_queue(self, client: Client, send: Send) -> None:
        queue = client.queue
        while queue and client.live:
            item = queue.popleft()
            if isinstance(item, bytes):
                client.queued_bytes -= len(item)
                await send(item)
                continue
            batch = [item]
            size = len(item.line)
            while queue and len(batch) < MESSAGE_EVENTS and size < MESSAGE_BYTES \
                    and not isinstance(queue[0], bytes):
                nxt = queue.popleft()
                assert not isinstance(nxt, bytes)
                batch.append(nxt)
                size += len(nxt.line)
            client.queued_bytes -= size
            generation = client.generation
            await send(events_message(e.line for e in batch))
            if client.generation == generation:  # a subscribe meanwhile set its own start
                client.sent_seq = batch[-1].seq

    async def _catch_up(self, client: Client, send: Send, generation: int) -> bool:
        """Send every event after client.sent_seq that passes its filter, from the window
        or the journal, in order, at the client's pace. True once it has all of them (it is
        then live: no await lies between the last check and the caller's flag); False when
        a new subscribe replaced this one or the client closed."""
        reader: _JournalReader | None = None
        missed = 0  # reads in a row that found nothing though the journal says it has more

        def replaced() -> bool:  # checked after every await: a subscribe may have come
            return client.generation != generation or client.closed

        try:
            while client.sent_seq < self.last_seq:
                if replaced():  # also before the first send: the caller awaited before us
                    return False
                after = client.sent_seq
                chunk = self._window_after(after)
                if chunk is not None:
                    reached = chunk[-1].seq
                else:
                    if reader is None or reader.after != after:
                        if reader is not None:
                            reader.close()
                        reader = _JournalReader(self.journal, after)
                    lines = await reader.read(MESSAGE_EVENTS)
                    if replaced():
                        return False
                    if not lines:
                        # Nothing after `after` in the journal, and the window has moved
                        # past it: which of three cases this is decides what comes next.
                        if self.journal.last_seq > after and missed < 2:
                            # Written since the reader looked: read again (the second
                            # time from a new scan of the folder).
                            missed += 1
                            if missed == 2:
                                reader.close()
                                reader = None
                            continue
                        if self.journal.last_seq <= after and not self.journal_failing:
                            # Still in the ring, on its way to the journal (which gathers
                            # for a moment, then writes in batches): wait for it. Only this
                            # client waits; the ring and the hooks do not.
                            await self._wait_for_journal(client)
                            if replaced():
                                return False
                            continue
                        # The journal cannot be written, or has lost them: the one case
                        # where events are skipped, and the client is told so.
                        first = self.window[0].seq if self.window else self.last_seq + 1
                        if not await self._gap(client, send, after, first, replaced):
                            return False
                        continue
                    missed = 0
                    first = line_seq(lines[0])
                    if first > after + 1 and \
                            not await self._gap(client, send, after, first, replaced):
                        return False  # (the journal's retention deleted them, or damage)
                    chunk, reached = self._journal_entries(client.sent_seq, lines)
                picked = [e.line for e in chunk if client.filter.accepts(e)]
                for batch in _bounded(picked):
                    await send(events_message(batch))
                    if replaced():
                        return False
                client.sent_seq = reached
        finally:
            if reader is not None:
                reader.close()
        client.queue.clear()
        client.queued_bytes = 0
        return True

    async def _gap(self, client: Client, send: Send, after: int, next_seq: int,
                   replaced: Callable[[], bool]) -> bool:
        """Tell the client the events after ``after`` and before ``next_seq`` cannot be
        sent, and go on from ``next_seq``; False when the catch-up was replaced."""
        self.counters[Count.VIEWER_GAPS] += 1
        log.warning("viewer client %d: events %d-%d are in neither the journal nor the "
                    "window (journal failing: %s)", client.id, after + 1, next_seq - 1,
                    self.journal_failing)
        await send(message("gap", after=after, next_seq=next_seq))
        if replaced():
            return False
        client.sent_seq = max(after, next_seq - 1)
        return True

    async def _wait_for_journal(self, client: Client) -> None:
        """Until the journal consumer's next write or failure, a subscribe or a close."""
        # Only a subscribe or a close set it while the client catches up (it is not live,
        # so nothing is pushed to it), and the caller checked for both with no await since.
        client.wakeup.clear()
        self._journal_waiters.add(client)
        try:
            await client.wakeup.wait()
        finally:
            self._journal_waiters.discard(client)

    def _window_after(self, seq: int) -> list[Entry] | None:
        """Up to MESSAGE_EVENTS window entries after ``seq``; None when the window starts
        later than seq + 1 (the journal must serve it)."""
        window = self.window
        if not window or window[0].seq > seq + 1:
            return None
        i = bisect.bisect_right(window, seq, key=lambda e: e.seq)
        return window[i:i + MESSAGE_EVENTS]

    def _journal_entries(self, after: int, lines: list[bytes]) -> tuple[list[Entry], int]:
        """The entries of journal ``lines`` (which follow ``after``), and the seq they
        reach: up to the first hole in seq (the next read reports it as a gap) and up to
        what this broadcaster has folded (later ones reach the client live). A line that
        does not decode is passed over, as when it was folded."""
        entries = []
        reached = after
        for line in lines:
            seq = line_seq(line)
            if seq != reached + 1 or seq > self.last_seq:
                break
            reached = seq
            try:
                view = _view_decoder.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                continue
            entries.append(Entry(view.seq, line, view.session_id, view.event_type))
        return entries, reached


class _JournalReader:
    """The journal after a seq for one catch-up, read in a worker thread: finding a seq in a
    big segment means reading up to it, and the loop has hooks to answer meanwhile. It keeps
    its place (journal_tail.Tail) across rotations and across waits for the journal, so
    following a journal that grows costs no rescan. Its file is closed only once no read
    runs, also when the catch-up is cancelled in the middle of one."""

    def __init__(self, journal: Journal, after: int) -> None:
        self.tail = Tail(journal, after)
        self._reading: asyncio.Future[list[bytes]] | None = None

    @property
    def after(self) -> int:
        """The seq of the last line read."""
        return self.tail.after

    async def read(self, n: int) -> list[bytes]:
        """Up to ``n`` lines after the last one read; [] when the journal has no more yet."""
        self._reading = asyncio.get_running_loop().run_in_executor(None, self.tail.read, n)
        return await asyncio.shield(self._reading)

    def close(self) -> None:
        reading = self._reading
        if reading is not None and not reading.done():
            reading.add_done_callback(self._close_after_read)
        else:
            self.tail.close()

    def _close_after_read(self, reading: asyncio.Future[list[bytes]]) -> None:
        if not reading.cancelled():
            reading.exception()  # nobody waits for it any more: not an unretrieved error
        self.tail.close()


def _bounded(lines: list[bytes]) -> Iterator[list[bytes]]:
    """``lines`` cut into messages of at most MESSAGE_EVENTS events and MESSAGE_BYTES
    (an event larger than that goes alone)."""
    start, size = 0, 0
    for i, line in enumerate(lines):
        if i > start and (size + len(line) > MESSAGE_BYTES or i - start >= MESSAGE_EVENTS):
            yield lines[start:i]
            start, size = i, 0
        size += len(line)
    if start < len(lines):
        yield lines[start:]


def _sessions_message(encoded: Iterable[bytes]) -> bytes:
    return b'{"type":"sessions","sessions":[' + b",".join(encoded) + b"]}"
