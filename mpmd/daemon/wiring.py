"""The one place that wires the daemon: start-up, the main loop, signals, shutdown.

Start-up order is what makes "nothing acked is lost, nothing is stored twice" hold:
  1. take the lock (one daemon per folder), create owner-only folders
  2. open the ring and recover it (records past the journal's cursor survive a kill -9)
  3. open the journal (a torn last line is cut), catch the journal up from the ring
     (records it already has are skipped by seq), continue seq after the highest seen
  4. seed the duplicate window, and the viewer's sessions table and recent window, from
     the journal's tail and the ring records it has not taken yet; drain the spool
  5. listen (hooks: our own socket, or the one systemd passes with LISTEN_FDS; control;
     viewer), start the index worker, write the pid file, report ready
Shutdown (SIGTERM/SIGINT or `mpmd stop`) is start-up reversed, by construction (each step
registers its undo on an exit stack as it succeeds): stop the background tasks, close the
viewer and the control socket, answer the hooks waiting for the viewer ("no decision"),
stop listening and let open connections finish (bounded), drain the ring into the journal,
stop the forwarders and the index worker (after the last drain: they take that too), close
the journal (fsync) and the ring, remove the pid file and the sockets we made (not one a
socket unit owns), release the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from mpm_hook import hook, wire
from mpmd import __version__
from mpmd.config import HTTP_OFF, Settings, owner_only_dir
from mpmd.control.server import Followers, serve_control
from mpmd.counters import Count
from mpmd.durable import load_or_create_token, write_atomic
from mpmd.errors import AlreadyRunning
from mpmd.forward.runner import Forwarders  # forwarders (docs/scaling.md)
from mpmd.history.indexer import Indexer
from mpmd.ingest import activation
from mpmd.ingest.hook_socket import IngestServer, Rejects
from mpmd.ingest.http_endpoint import HttpIngest, publish_port
from mpmd.ingest.spool import SpoolDrainer
from mpmd.ingest.spool import pending as spool_pending
from mpmd.model.events import EventFrame, StoredEventView
from mpmd.ops import policy
from mpmd.ops.policy import describe as describe_policy
from mpmd.ops.service import http_loss_risk
from mpmd.serve import access, metrics
from mpmd.serve.approvals import Approvals, RemoteHolder, Waiting
from mpmd.serve.broadcast import Broadcaster
from mpmd.serve.viewer import Viewer, ViewerUnavailable
from mpmd.status import ForwarderState, PolicyState, Status, TaskFailure
from mpmd.storage.dedup import RecentIds
from mpmd.storage.journal import Journal, line_seq
from mpmd.storage.ring import PageReleaser, open_ring_file
from mpmd.storage.store import Store
from mpmd.transcripts.prompt_watch import PromptWatch

log = logging.getLogger("mpmd")

JOURNAL_CONSUMER = "journal"
READ_BATCH = 4096
JOURNAL_GATHER_S = 0.002
SHUTDOWN_GRACE_S = 5.0
MAINTENANCE_INTERVAL_S = 60.0
# How often the transcripts of sessions waiting for a permission are read
# (mpmd.transcripts.prompt_watch):
# a "no" in the terminal clears the session's needs-you within this.
PROMPT_WATCH_INTERVAL_S = 0.25
# A background task that fails is started again after this delay, doubling up to the
# maximum while it keeps failing; one that ran this long before failing starts at the
# minimum again.
TASK_RESTART_S = (0.1, 30.0)
TASK_HEALTHY_S = 60.0
M_ARENA_MAX = -8  # glibc's mallopt parameter number
_received_decoder = msgspec.json.Decoder(dict[str, object])


def take_lock(path: Path) -> int:
    """An exclusive flock held for the daemon's life; the kernel drops it when we die, so a
    stale pid file or socket after a crash is recognised by the lock being free."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(f"another mpmd holds {path}") from None
    return fd


def _received_ns(line: bytes) -> int:
    try:
        stamp = _received_decoder.decode(line).get("received_at")
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1e9)
    except (msgspec.DecodeError, ValueError, TypeError):
        return 0


class Daemon:
    def __init__(self, settings: Settings, ready_fd: int | None = None) -> None:
        self.settings = settings
        self.ready_fd = ready_fd
        self.counters: Counter[str] = Counter()
        self.started_at = time.time()
        self.stopping = asyncio.Event()
        self.followers = Followers()
        self.viewer: Viewer | None = None
        self._metrics_registry: CollectorRegistry | None = None
        self.viewer_error: str | None = None  # why there is no viewer, when there is none
        self.http: HttpIngest | None = None  # Claude Code's http hooks (mpmd.ingest.http_endpoint)
        self.http_error: str | None = None  # why there is no http endpoint
        # The endpoint's listening socket a service manager passed (mpmd-http.socket), until
        # _start_http serves on it.
        self.http_passed: socket.socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.socket_inherited = False  # the hook socket is a socket unit's (LISTEN_FDS)
        # Background tasks that failed (and were started again): name -> failures, last
        # error, when. In status, doctor and /metrics: a task never dies silently.
        self.task_failures: dict[str, dict[str, object]] = {}

    # ---- start-up -------------------------------------------------------------------------
    def _open_storage(self) -> None:
        s = self.settings
        self.ring, self._mmap = open_ring_file(s.ring_path, s.ring_bytes)
        note = getattr(self.ring, "note", None)
        if note:
            log.warning("ring: %s", note)
        self.ring.add_consumer(JOURNAL_CONSUMER)
        pending = self.ring.recover()
        self._release_pages = PageReleaser(self.ring, self._mmap)
        self.journal = Journal(
            s.journal_dir,
            segment_max_bytes=s.segment_bytes,
            retention_days=s.retention_days,
            retention_max_bytes=s.retention_bytes,
            fsync_interval_s=s.fsync_interval_s,
        )
        # Highest seq anywhere: the journal's, or a record still in the ring.
        last_seq = self.journal.last_seq
        for _pos, rec in self._all_pending():
            last_seq = max(last_seq, line_seq(rec))
        if pending:
            log.info("recovered %d events from the ring", pending)
        self.recent = RecentIds()
        tail = self.journal.read_last(self.recent.capacity)
        views = msgspec.json.Decoder(StoredEventView)
        for line in tail:
            with contextlib.suppress(msgspec.DecodeError, ValueError):
                view = views.decode(line)
                self.recent.add(bytes.fromhex(view.id), view.seq, 0)
        if len(tail) >= self.recent.capacity:
            self.recent.horizon_ns = _received_ns(tail[0])
        for _pos, rec in self._all_pending():
            with contextlib.suppress(msgspec.DecodeError, ValueError):
                view = views.decode(rec)
                self.recent.add(bytes.fromhex(view.id), view.seq, 0)
        # Permission requests held for a viewer's answer, and the viewers that show them.
        self.approvals = Approvals(self.counters, self._journal_answer,
                                   lambda: self.broadcaster.approvals_changed(),
                                   lambda: len(self.broadcaster.clients))
        self.broadcaster = Broadcaster(self.ring, self.journal, self.counters,
                                       on_commit=self._ring_freed,
                                       client_queue_bytes=s.viewer_queue_bytes,
                                       approvals=self.approvals.all)
        self.store = Store(self.ring, self.recent, last_seq + 1, self.counters,
                           wakeups=[self.broadcaster.wakeup])
        self.prompt_watch = PromptWatch()
        # Its worker process is started once the loop runs; it reads the journal itself.
        self.indexer = Indexer(s.journal_dir, s.index_path, self.counters,
                               lambda: self.journal.last_seq)
        # Forwarders follow the journal too, each a thread from its own cursor.
        self.forwarders = Forwarders(s, lambda: self.journal.last_seq, self.counters)
        # Sessions and the recent window start from the journal's tail and the ring records
        # the journal has not taken yet: the broadcaster's own cursor may be past those (it
        # read them before the journal could), and a window without them would resume
        # viewers past them. Records it has seen already are skipped by seq.
        self.broadcaster.seed(tail)
        self.broadcaster.seed(rec for _pos, rec in self._all_pending())
        self.rejects = Rejects(s.rejected_dir, self.counters)
        self.drainer = SpoolDrainer(
            s.spool_dir, self.store, self.rejects, lambda: self.journal.read_from(0),
            self.counters, s.max_frame_bytes,
        )

    def _all_pending(self) -> list[tuple[int, bytes]]:
        """Every record the journal has not taken yet (start-up only)."""
        return self.ring.read(JOURNAL_CONSUMER, max_records=1 << 30,
                              max_bytes=self.ring.capacity)

    def _listen(self) -> socket.socket:
        path = self.settings.socket_path
        # Socket activation (mpmd.socket, LISTEN_FDS): serve on the socket systemd holds.
        # Its file belongs to the .socket unit, so it is not unlinked at shutdown either.
        # mpmd-http.socket's, when passed too, is kept for the http endpoint (_start_http).
        passed = activation.take_listeners(path, self.settings.http_port)
        self.http_passed = passed.http
        inherited = passed.hook
        if inherited is not None:
            self.socket_inherited = True
            return inherited
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # we hold the lock: any socket file here is stale
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others connect
        try:
            sock.bind(str(path))
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        sock.listen(1024)
        sock.setblocking(False)
        return sock

    # ---- consumers ------------------------------------------------------------------------
    def drain_ring_to_journal(self) -> int:
        """Move every pending ring record into the journal; returns how many were read."""
        total = 0
        while True:
            records = self.ring.read(JOURNAL_CONSUMER, max_records=READ_BATCH)
            if not records:
                return total
            self.journal.append((line_seq(rec), rec) for _pos, rec in records)
            self.counters[Count.JOURNAL_BATCHES] += 1
            self.journal.maybe_sync()
            lines = [rec for _pos, rec in records]
            self.followers.publish(lines)
            self.ring.commit(JOURNAL_CONSUMER, records[-1][0])
            self.broadcaster.journal_advanced()  # viewers waiting for these read on
            self.indexer.wake()
            self.forwarders.wake()
            self._ring_freed()
            total += len(records)

    def _ring_freed(self) -> None:
        """A consumer committed: hand passed pages back, and let spooled events in again
        if the ring had been full."""
        self._release_pages()
        if self.store.full:
            self.store.full = False
            self._spool_wakeup.set()

    def _catch_up(self) -> int:
        """drain_ring_to_journal at start-up, where a full disk must not stop us either: the
        ring keeps the records and the journal consumer retries them once it runs."""
        self.broadcaster.pump_all()  # no client yet: this only folds and frees the ring
        try:
            return self.drain_ring_to_journal()
        except OSError as exc:
            self.counters[Count.JOURNAL_ERRORS] += 1
            self.broadcaster.journal_failed()
            log.error("journal write failed at start (%s); the ring keeps the events, "
                      "retrying in the background", exc)
            self.store.appended.set()
            return 0

    async def _journal_consumer(self) -> None:
        store = self.store
        backoff = 0.1
        failures = 0
        while True:
            await store.appended.wait()
            # A short gathering window: one write and one cursor store for a burst of events
            # instead of one each (hooks have their acks already; this only delays the disk
            # and `mpmd tail -f` by as much).
            await asyncio.sleep(JOURNAL_GATHER_S)
            store.appended.clear()
            try:
                self.drain_ring_to_journal()
            except OSError as exc:  # disk full, I/O error: keep acking while the ring has room
                self.counters[Count.JOURNAL_ERRORS] += 1
                self.broadcaster.journal_failed()
                failures += 1
                log.error("journal write failed (%s); retrying in %.1fs, the ring holds "
                          "events meanwhile (%d bytes used)", exc, backoff, self.ring.used_bytes)
                await asyncio.sleep(backoff)  # retrying a failing disk: nothing to await
                backoff = min(backoff * 2, 5.0)
                store.appended.set()
            else:
                if failures:
                    log.warning("journal writes work again after %d failed attempt(s)", failures)
                    failures = 0
                backoff = 0.1

    async def _spool_loop(self) -> None:
        # Hooks spool when we are busy or unreachable; scanning the folder every few
        # seconds is cheap, and a freed ring wakes us at once.
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._spool_wakeup.wait(),
                                       self.settings.spool_scan_interval_s)
            self._spool_wakeup.clear()
            try:
                self.drainer.drain()
            except OSError as exc:
                log.error("spool drain failed: %s", exc)
            # A policy.toml written or edited by hand is compiled for the hooks within a
            # scan interval, even if nobody runs `mpmd policy check` (two stats if not).
            await asyncio.to_thread(describe_policy, self.settings)

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)  # periodic housekeeping by design
            try:
                await asyncio.to_thread(self.journal.compress_closed)
                if self.journal.enforce_retention():
                    first = self.journal.first_seq
                    if first is not None:  # what the journal forgot, the index forgets
                        self.indexer.delete_before(first)
            except OSError as exc:
                log.error("journal maintenance failed: %s", exc)

    async def _prompt_watch_loop(self) -> None:
        """Permission prompts answered no in the terminal (mpmd.transcripts.prompt_watch):
        Claude Code fires no hook for them, its transcript records them. Polls only while
        some session waits for a permission; a pass reads what the transcripts gained since
        the last."""
        while True:
            await asyncio.sleep(PROMPT_WATCH_INTERVAL_S)  # transcripts give no event to await
            waits = self.prompt_watch.waits(
                r for r in self.broadcaster.sessions.all() if r.pending)
            if not waits:
                continue
            for a in await asyncio.to_thread(self.prompt_watch.scan, waits):
                self._journal_own({
                    "hook_event_name": "PermissionAnswered", "session_id": a.session_id,
                    "tool_name": a.tool_name, "tool_use_id": a.tool_use_id,
                    "answer_to": a.answer_to, "behavior": "deny", "answered_by": "terminal",
                    "message": a.message})

    async def _supervised(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run a background task for the daemon's life. Each of them (journal, spool,
        broadcast, maintenance) is what some promise rests on, so a bug in one is logged,
        counted, shown in status and the task started again, never left dead: a dead
        journal task would leave acked events in the ring, a dead broadcaster freezes
        every viewer."""
        delay = TASK_RESTART_S[0]
        while True:
            started = time.monotonic()
            try:
                await run()
                return
            except Exception as exc:  # noqa: BLE001 - any bug of ours: restart, never die
                if time.monotonic() - started >= TASK_HEALTHY_S:
                    delay = TASK_RESTART_S[0]
                failed = self.task_failures.setdefault(name, {"failures": 0})
                failed["failures"] = int(failed["failures"]) + 1  # type: ignore[call-overload]
                failed["last_error"] = f"{type(exc).__name__}: {exc}"[:500]
                failed["at"] = datetime.now().astimezone().isoformat(timespec="seconds")
                self.counters[Count.TASK_FAILURES] += 1
                log.exception("background task %s failed; starting it again in %.1fs",
                              name, delay)
            await asyncio.sleep(delay)  # a task that fails at once must not spin
            delay = min(delay * 2, TASK_RESTART_S[1])

    # ---- metrics ------------------------------------------------------------------------
    def _metrics(self) -> bytes:
        """/metrics: the Prometheus text format, read from what the daemon counts anyway."""
        if self._metrics_registry is None:
            self._metrics_registry = metrics.registry(metrics.DaemonCollector(
                self.status, self.store.latency, self.broadcaster.event_types))
        return metrics.exposition(self._metrics_registry)

    # ---- remote approval ----------------------------------------------------------------
    def _answer(self, seq: int, behavior: str, always: bool, who: str) -> str | None:
        """A viewer's answer to a held permission request (mpmd.serve.approvals). "Always allow"
        first writes a policy rule allowing exactly this call (mpmd.ops.policy.allow_always)."""
        w = self.approvals.waiting.get(seq)
        if always and behavior == "allow" and w is not None and w.rule_index is not None:
            when = datetime.now().strftime("%Y%m%d-%H%M%S")
            try:
                w.added_rule = policy.allow_always(self.settings, w.rule_index, w.tool_name,
                                                   w.tool_input, w.cwd, f"{when}-{seq}")
            except (policy.PolicyError, OSError) as exc:  # allowed once all the same
                log.error("always allow: could not add a policy rule: %s", exc)
            if w.added_rule:
                log.info("always allow: policy rule %s added", w.added_rule)
        return self.approvals.answer(seq, behavior, who)

    def _journal_answer(self, w: Waiting, behavior: str, message: str, answered_by: str,
                        who: str) -> None:
        """How a held request ended, as a RemoteAnswer event of the daemon's own; spooled
        if the ring is full, like a hook's event."""
        self._journal_own({
            "hook_event_name": "RemoteAnswer", "session_id": w.session_id,
            "tool_name": w.tool_name, "answer_to": w.seq, "behavior": behavior,
            "message": message, "answered_by": answered_by, "answered_from": who or None,
            "rule": w.rule, "added_rule": w.added_rule})

    def _journal_own(self, event: dict[str, object]) -> None:
        """Store an event of the daemon's own (source "daemon"); spooled if the ring is
        full, like a hook's event."""
        payload = msgspec.json.encode(event)
        now = time.time_ns()
        frame = EventFrame(version=1, id=os.urandom(16), ts_ns=now, payload=payload,
                           original_size=len(payload))
        status, _seq = self.store.put(frame, "daemon", now)
        if status != wire.STORED:
            hook.spool(str(self.settings.spool_dir), wire.encode_event(
                frame.id, now, payload, len(payload)), frame.id, now)
            self._spool_wakeup.set()

    # ---- status -------------------------------------------------------------------------
    def status(self) -> Status:
        s = self.settings
        return Status(
            running=True,
            pid=os.getpid(),
            version=__version__,
            socket=str(s.socket_path),
            journal_dir=str(s.journal_dir),
            spool_dir=str(s.spool_dir),
            events_total=self.counters[Count.EVENTS_TOTAL],
            next_seq=self.store.next_seq,
            journal_last_seq=self.journal.last_seq,
            spool_pending=spool_pending(s.spool_dir),
            ring_used_bytes=self.ring.used_bytes,
            ring_capacity_bytes=self.ring.capacity,
            journal_bytes=self.journal.total_bytes,
            journal_segments=len(self.journal.segments()),
            hook_to_ring_ms=self.store.latency.percentiles_ms((50, 99)),
            index_path=str(s.index_path),
            index_last_seq=self.indexer.last_seq,
            index_worker_pid=self.indexer.pid,
            connections_open=len(self.ingest.connections),
            **self._http_status(),
            remote_waiting=len(self.approvals.waiting),
            forward=msgspec.convert(self.forwarders.status(), dict[str, ForwarderState]),
            policy=msgspec.convert(describe_policy(s), PolicyState),
            **self._viewer_status(),
            task_failures=msgspec.convert(self.task_failures, dict[str, TaskFailure]),
            uptime_s=round(time.time() - self.started_at, 3),
            counters=dict(self.counters),
        )

    def _viewer_status(self) -> dict[str, Any]:
        viewer = self.viewer
        if viewer is None or viewer.server is None:
            return {"viewer_url": None, "ws_url": None, "viewer_error": self.viewer_error}
        return {"viewer_url": viewer.viewer_url, "ws_url": viewer.ws_url,
                "viewer_port": viewer.port, "viewer_clients": len(self.broadcaster.clients),
                "viewer_lagging_clients": sum(
                    not c.live for c in self.broadcaster.clients if c.subscribed)}

    def _http_status(self) -> dict[str, Any]:
        held = self.http is not None and self.http.passed
        risk = http_loss_risk(self.settings, running=True, held=held)
        loss = {"http_port_held": held, "http_loss_risk": risk}
        if self.http is None:
            return {"http_url": None, "http_error": self.http_error, **loss}
        return {**self.http.status(), "http_error": None, **loss}

    async def _start_http(self) -> None:
        """Claude Code's http hooks, on 127.0.0.1:http_port (mpmd.ingest.http_endpoint). Like the
        viewer, the daemon runs without it when it cannot listen, and says why."""
        s = self.settings
        if s.http_port == HTTP_OFF:
            self.http_error = "off (http_port = -1)"
            publish_port(s.http_port_path, None)
            return
        try:
            token = load_or_create_token(s.http_token_path)
        except OSError as exc:
            self._http_unavailable(f"cannot make its token {s.http_token_path}: {exc}")
            return
        http = HttpIngest(
            self.store, self.counters, port=s.http_port, token=token,
            max_frame_bytes=s.max_frame_bytes, idle_timeout_s=s.idle_timeout_s,
            max_connections=s.max_connections, state_dir=s.state_dir, spool_dir=s.spool_dir,
            spool_wakeup=self._spool_wakeup.set, holder=self.ingest.holder)
        # The port a service manager holds for us (mpmd-http.socket, or launchd's Sockets):
        # requests that come while we are down wait in its backlog (docs/service.md).
        passed = self.http_passed or activation.take_launchd_http(s.http_port)
        self.http_passed = None
        try:
            await http.start(sock=passed)
        except OSError as exc:
            self._http_unavailable(
                f"cannot listen on 127.0.0.1:{s.http_port}: {exc.strerror or exc}")
            return
        self.http = http
        publish_port(s.http_port_path, http.port)
        log.info("http hooks on %s", http.url)

    def _http_unavailable(self, why: str) -> None:
        self.http_error = why
        log.error("http hooks endpoint not started: %s", why)
        publish_port(self.settings.http_port_path, None)

    async def _start_viewer(self) -> None:
        """The viewer is a window on the events, not the keeper of them: if it cannot
        listen, the daemon runs without it and says why."""
        s = self.settings
        try:
            viewer = Viewer(s.viewer_port, access.load_or_create_token(s.state_dir),
                            self.broadcaster, self.counters, self.status,
                            send_timeout_s=s.viewer_send_timeout_s, index_path=s.index_path,
                            config_dir=s.config_dir, answer=self._answer,
                            metrics=self._metrics,
                            clients_changed=self.approvals.viewers_changed)
            await viewer.start()
        except (ViewerUnavailable, OSError) as exc:
            self.viewer_error = str(exc)
            log.error("viewer not started: %s", exc)
            return
        self.viewer = viewer
        log.info("viewer on %s", viewer.base_url)

    # ---- lifecycle ----------------------------------------------------------------------
    async def serve(self) -> None:
        """Start, run until stopped, stop. Each start-up step that needs undoing registers
        its undo on the exit stack once it succeeded, so shutdown is start-up reversed by
        construction, however far start-up got (the module's docstring has the order)."""
        s = self.settings
        async with contextlib.AsyncExitStack() as stack:
            for folder in (s.runtime_dir, s.state_dir):
                owner_only_dir(folder)
            stack.callback(os.close, take_lock(s.lock_path))
            stack.callback(self._remove_our_files)
            s.publish_frame_limit()  # before we listen: hooks then cut to fit our limit
            self._open_storage()
            stack.callback(self._close_ring)
            stack.callback(self.journal.close)
            self._spool_wakeup = asyncio.Event()
            caught_up = self._catch_up()
            drained = self.drainer.drain()
            self._catch_up()
            log.info("mpmd %s starting: journal at seq %d, %d ring records journaled, "
                     "%d spooled events taken", __version__, self.journal.last_seq,
                     caught_up, drained)
            loop = asyncio.get_running_loop()
            self.ingest = IngestServer(
                self.store, self.rejects, self.counters,
                max_frame_bytes=s.max_frame_bytes,
                idle_timeout_s=s.idle_timeout_s,
                max_connections=s.max_connections,
                max_partial_bytes=s.max_partial_bytes,
                holder=RemoteHolder(self.approvals),
            )
            # Before the index worker starts: _listen takes (and unsets) LISTEN_FDS, which
            # the worker must not see. Hooks that connect meanwhile wait in the backlog.
            hook_socket = self._listen()
            stack.callback(hook_socket.close)  # the ingest server's once it serves it
            await self.indexer.start()
            stack.push_async_callback(self.indexer.stop)  # after the last drain: it may
            self.forwarders.start()                       # take that too, as forwarders
            stack.push_async_callback(self.forwarders.stop)  # (in flight: sent again)
            stack.callback(self._last_drain)
            self.ingest.start(hook_socket)
            await self._start_http()
            stack.push_async_callback(self._stop_listening)
            stack.callback(self.approvals.close_all)  # the hooks waiting ask in the terminal
            stack.callback((await serve_control(s.control_path, self)).close)
            await self._start_viewer()
            if self.viewer is not None:
                stack.push_async_callback(self.viewer.close)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stopping.set)
            self._tasks = [
                asyncio.create_task(self._supervised(name, run), name=name)
                for name, run in (("journal", self._journal_consumer),
                                  ("spool", self._spool_loop),
                                  ("maintenance", self._maintenance_loop),
                                  ("broadcast", self.broadcaster.run),
                                  ("prompt watch", self._prompt_watch_loop))
            ]
            stack.push_async_callback(self._cancel_tasks)
            write_atomic(s.pid_path, f"{os.getpid()}\n".encode())
            self._report_ready()
            log.info("listening on %s", s.socket_path)
            await self.stopping.wait()
            log.info("stopping")

    def _report_ready(self) -> None:
        """Tell whoever started us that we accept connections (mpmd start waits on it)."""
        if self.ready_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.ready_fd, b"ready\n")
                os.close(self.ready_fd)
            self.ready_fd = None

    # ---- shutdown steps, in the order they run (start-up's, reversed) ---------------------
    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _stop_listening(self) -> None:
        """No new connections; the hooks already connected finish (bounded), then go."""
        http = self.http
        self.ingest.stop_listening()
        if http is not None:
            http.stop_listening()
        self.store.accepting = True  # frames already sent by connected hooks still count
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(
                self.ingest.idle.wait(), *(() if http is None else (http.idle.wait(),))),
                SHUTDOWN_GRACE_S)
        self.store.accepting = False
        self.ingest.abort_all()
        if http is not None:
            http.abort_all()

    def _last_drain(self) -> None:
        try:
            self.drain_ring_to_journal()
        except OSError as exc:
            log.error("could not drain the ring at shutdown (%s): it keeps the events "
                      "for the next start", exc)

    def _close_ring(self) -> None:
        self._mmap.flush()
        self.ring.close()
        self._mmap.close()

    def _remove_our_files(self) -> None:
        """The pid file, the control socket, and the hook socket unless a service manager's
        socket unit owns it."""
        s = self.settings
        ours = () if self.socket_inherited else (s.socket_path,)
        for path in (*ours, s.control_path, s.pid_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed; plain asyncio otherwise (MPMD_LOOP=asyncio forces it)."""
    if os.environ.get("MPMD_LOOP") != "asyncio":
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()


def limit_malloc_arenas() -> None:
    """One glibc malloc arena. The daemon's few worker threads (journal reads for viewers,
    compression) would otherwise each get an arena that keeps what it once held: measured,
    each viewer catch-up from the journal left 3-7 MB more resident. Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(M_ARENA_MAX, 1)


def run(settings: Settings, ready_fd: int | None = None) -> None:
    limit_malloc_arenas()
    owner_only_dir(settings.state_dir)
    loop = new_event_loop()
    try:
        loop.run_until_complete(Daemon(settings, ready_fd).serve())
    finally:
        loop.close()


def configure_logging(settings: Settings, to_file: bool) -> None:
    handlers: list[logging.Handler]
    if to_file:
        owner_only_dir(settings.log_dir)
        fd = os.open(settings.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        handlers = [logging.FileHandler(settings.log_path)]
    else:
        handlers = [logging.StreamHandler()]
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
