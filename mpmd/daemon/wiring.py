"""The one place that wires the daemon: start-up, the main loop, signals, shutdown.

``serve`` takes the lock and what is on disk (mpmd.daemon.recovery), then ``Daemon`` builds
every part in its constructor and ``Daemon.run`` starts them. Start-up order is what makes
"nothing acked is lost, nothing is stored twice" hold:
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
stop the forwarders and the index worker (after the last drain: they take that too), remove
the pid file and the sockets we made (not one a socket unit owns), close the journal (fsync)
and the ring, release the lock.
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
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from mpm_hook import hook, wire
from mpmd import __version__
from mpmd.config import HTTP_OFF, Settings, owner_only_dir, public_host
from mpmd.control.protocol import Done, Failed, Progress, Started
from mpmd.control.server import Followers, Report, serve_control
from mpmd.counters import Count
from mpmd.daemon import recovery
from mpmd.daemon.recovery import JOURNAL_CONSUMER
from mpmd.daemon.tasks import Tasks
from mpmd.durable import load_or_create_token, write_atomic
from mpmd.errors import AlreadyRunning, ConfigError
from mpmd.forward.runner import Forwarders  # forwarders (docs/scaling.md)
from mpmd.history.indexer import Indexer
from mpmd.ingest import activation
from mpmd.ingest.hook_socket import IngestServer, Rejects
from mpmd.ingest.http_endpoint import HttpIngest, publish_port
from mpmd.ingest.spool import SpoolDrainer
from mpmd.ingest.spool import pending as spool_pending
from mpmd.model.events import EventFrame
from mpmd.notify import rules
from mpmd.notify.process import NotifyWorker
from mpmd.ops import policy
from mpmd.ops.policy import describe as describe_policy
from mpmd.ops.service import http_loss_risk
from mpmd.serve import access, links, metrics, replay
from mpmd.serve.approvals import Approvals, RemoteHolder, Waiting
from mpmd.serve.broadcast import Broadcaster
from mpmd.serve.viewer import Viewer, ViewerUnavailable
from mpmd.status import ForwarderState, NotifyState, PolicyState, Status, TranscriptsState
from mpmd.storage.journal import line_seq
from mpmd.storage.ring import PageReleaser
from mpmd.storage.store import Store
from mpmd.transcripts import prices
from mpmd.transcripts.prices import Price
from mpmd.transcripts.process import TranscriptWorker
from mpmd.transcripts.prompt_watch import PromptWatch

log = logging.getLogger("mpmd")

READ_BATCH = 4096
JOURNAL_GATHER_S = 0.002
SHUTDOWN_GRACE_S = 5.0
TRANSCRIPTS_STATE = "transcripts.json"  # the follower's positions, in the state folder
MAINTENANCE_INTERVAL_S = 60.0
# How often the transcripts of sessions waiting for a permission are read
# (mpmd.transcripts.prompt_watch):
# a "no" in the terminal clears the session's needs-you within this.
PROMPT_WATCH_INTERVAL_S = 0.25
M_ARENA_MAX = -8  # glibc's mallopt parameter number


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


async def serve(settings: Settings, ready_fd: int | None = None) -> None:
    """Start, run until stopped, stop. Each start-up step that needs undoing registers its
    undo on the exit stack once it succeeded, so shutdown is start-up reversed by
    construction, however far start-up got (the module's docstring has the order)."""
    s = settings
    async with contextlib.AsyncExitStack() as stack:
        for folder in (s.runtime_dir, s.state_dir):
            owner_only_dir(folder)
        stack.callback(os.close, take_lock(s.lock_path))
        s.publish_frame_limit()  # before we listen: hooks then cut to fit our limit
        disk = recovery.recover(s)
        stack.callback(disk.close)
        await Daemon(s, disk, ready_fd).run(stack)


class Daemon:
    """Every part of the daemon, built from the settings and what start-up recovered; ``run``
    starts them in order."""

    def __init__(self, settings: Settings, disk: recovery.Recovered,
                 ready_fd: int | None = None) -> None:
        s = self.settings = settings
        self.ready_fd = ready_fd
        self.counters: Counter[str] = Counter()
        self.started_at = time.time()
        self.stopping = asyncio.Event()
        self.tasks = Tasks(self.counters)
        self.ring = disk.ring
        self.journal = disk.journal
        self._release_pages = PageReleaser(disk.ring, disk.mmap)
        self._spool_wakeup = asyncio.Event()
        self.followers = Followers()  # `mpmd tail -f` clients (mpmd.control.server)
        # Permission requests held for a viewer's answer, and the viewers that show them;
        # held with no viewer open too when notifications carry links that answer them.
        self.approvals = Approvals(self.counters, self._journal_answer,
                                   lambda: self.broadcaster.approvals_changed(),
                                   lambda: len(self.broadcaster.clients),
                                   hold_without_viewer=rules.actions_wanted(s))
        self.broadcaster = Broadcaster(self.ring, self.journal, self.counters,
                                       on_commit=self._ring_freed,
                                       client_queue_bytes=s.viewer_queue_bytes,
                                       approvals=self.approvals.all)
        self.store = Store(self.ring, disk.recent, disk.next_seq, self.counters,
                           wakeups=[self.broadcaster.wakeup])
        # Sessions and the recent window start from the journal's tail and the ring records
        # the journal has not taken yet: the broadcaster's own cursor may be past those (it
        # read them before the journal could), and a window without them would resume
        # viewers past them. Records it has seen already are skipped by seq.
        self.broadcaster.seed(disk.tail)
        self.broadcaster.seed(disk.pending)
        self.prompt_watch = PromptWatch()
        # Its worker process is started once the loop runs; it reads the journal itself.
        self.indexer = Indexer(s.journal_dir, s.index_path, self.counters,
                               lambda: self.journal.last_seq)
        # Forwarders follow the journal too, each a thread from its own cursor.
        self.forwarders = Forwarders(s, lambda: self.journal.last_seq, self.counters)
        # So does the transcript follower, a process that hands back what it read as events.
        self.prices_error: str | None = None
        self.transcripts = TranscriptWorker(
            s.journal_dir, s.state_dir / TRANSCRIPTS_STATE,
            lambda event_id, payload, ts_ns: self._store_own(event_id, payload, ts_ns,
                                                             "transcript"),
            self._price_overrides(), s.transcript_roots, s.transcript_backfill_after_s,
            self.counters)
        # And the notifier, a process too, when config.toml has [[notify]] rules; it learns
        # the viewer's address once the viewer listens.
        self.notifier: NotifyWorker | None = None
        self._start_seq = 0
        self.rejects = Rejects(s.rejected_dir, self.counters)
        self.drainer = SpoolDrainer(
            s.spool_dir, self.store, self.rejects, lambda: self.journal.read_from(0),
            self.counters, s.max_frame_bytes,
        )
        self.ingest = IngestServer(
            self.store, self.rejects, self.counters,
            max_frame_bytes=s.max_frame_bytes,
            idle_timeout_s=s.idle_timeout_s,
            max_connections=s.max_connections,
            max_partial_bytes=s.max_partial_bytes,
            holder=RemoteHolder(self.approvals),
        )
        # The parts that may not start (a port taken, a token that cannot be written): the
        # daemon runs without them and says why.
        self.http: HttpIngest | None = None  # Claude Code's http hooks
        self.http_error: str | None = None
        self.viewer: Viewer | None = None
        self.viewer_error: str | None = None
        self._metrics_registry: CollectorRegistry | None = None
        self.socket_inherited = False  # the hook socket is a socket unit's (LISTEN_FDS)

    def _listen(self, inherited: socket.socket | None) -> socket.socket:
        """The hook socket: the one a socket unit passed (mpmd.socket, LISTEN_FDS; its file
        is the unit's, not unlinked at shutdown either), else ours, born 0600."""
        if inherited is not None:
            self.socket_inherited = True
            return inherited
        path = self.settings.socket_path
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
            self.transcripts.wake()
            if self.notifier is not None:
                self.notifier.wake()
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

    def _act(self, action: links.Action, who: str) -> str | None:
        """An action link's answer (the viewer's /act/): taken by the very request it was
        signed for only, while it waits."""
        w = self.approvals.waiting.get(action.seq)
        if w is None or w.event_id != action.event_id:
            return "gone"
        return self.approvals.answer(action.seq, action.answer, who, answered_by="link")

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
        """Store an event of the daemon's own (source "daemon")."""
        self._store_own(os.urandom(16), msgspec.json.encode(event), time.time_ns(), "daemon")

    def _store_own(self, event_id: bytes, payload: bytes, ts_ns: int, source: str) -> None:
        """Store an event mpmd made, stamped ``ts_ns``; cut to the frame limit as a hook's
        payload is (a tool call read off a transcript can be as large as its line), and
        spooled if the ring is full, like a hook's event."""
        size = len(payload)
        payload = payload[:wire.payload_limit(self.settings.max_frame_bytes)]
        frame = EventFrame(version=1, id=event_id, ts_ns=ts_ns, payload=payload,
                           original_size=size)
        status, _seq = self.store.put(frame, source, time.time_ns())
        if status not in (wire.STORED, wire.DUPLICATE):
            hook.spool(str(self.settings.spool_dir), wire.encode_event(
                event_id, ts_ns, payload, size), event_id, ts_ns)
            self._spool_wakeup.set()

    def _price_overrides(self) -> dict[str, Price]:
        """config.toml's [prices]; a bad table is said in the log and status, and the shipped
        prices are used (the daemon runs all the same)."""
        try:
            return prices.from_config(self.settings.price_tables)
        except ConfigError as exc:
            self.prices_error = str(exc)
            log.error("[prices] in config.toml not used: %s", exc)
            return {}

    # ---- what the control socket asks (mpmd.control.server.Controlled) ---------------------
    def stop(self) -> None:
        self.stopping.set()

    def journal_after(self, seq: int | None) -> Iterable[bytes]:
        return self.journal.read_from((self.journal.last_seq if seq is None else seq) + 1)

    async def reindex(self, report: Report) -> None:
        """Rebuild the search index in the index worker, reporting its progress."""
        first = self.journal.first_seq or 1
        report(Started(total=max(0, self.journal.last_seq - first + 1)))
        try:
            last_seq = await self.indexer.rebuild(lambda done: report(Progress(done)))
        except Exception as exc:  # the worker's own words: a busy or failed rebuild, or its end
            report(Failed(f"rebuild failed: {exc}"))
            return
        report(Done(last_seq=last_seq))

    async def replay(self, session: str, speed: float, report: Report) -> None:
        """Replay one session to the connected viewers (mpmd.serve.replay)."""
        if not speed > 0:
            raise ValueError("speed must be above 0")
        try:
            lines = await asyncio.to_thread(replay.session_lines, self.settings.index_path,
                                            session)
        except LookupError as exc:
            report(Failed(str(exc)))
            return
        session_id = str(msgspec.json.decode(lines[0]).get("session_id"))
        report(Started(total=len(lines), session_id=session_id))
        await replay.to_viewers(self.broadcaster, session_id, lines, speed,
                                lambda n: report(Progress(n)))
        report(Done())

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
            transcripts=msgspec.convert(dict(self.transcripts.status(),
                                             prices_error=self.prices_error),
                                        TranscriptsState),
            notify=self._notify_status(),
            policy=msgspec.convert(describe_policy(s), PolicyState),
            **self._viewer_status(),
            task_failures=dict(self.tasks.failures),
            uptime_s=round(time.time() - self.started_at, 3),
            counters=dict(self.counters),
        )

    def _notify_status(self) -> NotifyState | None:
        if self.notifier is None:
            return None
        state = msgspec.convert(self.notifier.status(), NotifyState)
        state.backlog = max(0, self.journal.last_seq - state.cursor_seq)
        return state

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

    async def _start_http(self, passed: socket.socket | None) -> None:
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
        passed = passed or activation.take_launchd_http(s.http_port)
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
                            clients_changed=self.approvals.viewers_changed,
                            public_host=public_host(s.viewer_public_url)
                            if s.viewer_public_url else None,
                            link_key=links.load_or_create_key(s.state_dir), act=self._act,
                            held=self.approvals.find)
            await viewer.start()
        except (ViewerUnavailable, OSError) as exc:
            self.viewer_error = str(exc)
            log.error("viewer not started: %s", exc)
            return
        self.viewer = viewer
        log.info("viewer on %s", viewer.base_url)

    async def _start_notifier(self, stack: contextlib.AsyncExitStack) -> None:
        """The notifier's process, when there are rules: session links point at the viewer,
        Approve / Deny links through the user's tunnel (viewer_public_url) if there is one."""
        s = self.settings
        if not s.notify_tables:
            return
        base_url = self.viewer.base_url if self.viewer is not None \
            else f"http://127.0.0.1:{s.viewer_port}/"
        links.load_or_create_key(s.state_dir)
        self.notifier = NotifyWorker(s.journal_dir, s.state_dir,
                                     s.state_dir / links.KEY_FILE_NAME, base_url,
                                     s.viewer_public_url or base_url, s.notify_tables,
                                     self._start_seq, self.counters)
        await self.notifier.start()
        stack.push_async_callback(self.notifier.stop)

    # ---- lifecycle ----------------------------------------------------------------------
    async def run(self, stack: contextlib.AsyncExitStack) -> None:
        """Start every part in order, each registering its undo on ``stack`` (serve's), and
        wait to be stopped."""
        s = self.settings
        caught_up = self._catch_up()
        drained = self.drainer.drain()
        self._catch_up()
        self._start_seq = self.journal.last_seq  # before any hook of this run is taken
        log.info("mpmd %s starting: journal at seq %d, %d ring records journaled, "
                 "%d spooled events taken", __version__, self.journal.last_seq,
                 caught_up, drained)
        stack.callback(self._remove_our_files)
        # Before the index worker starts: take_listeners takes (and unsets) LISTEN_FDS,
        # which the worker must not see. Hooks that connect meanwhile wait in the backlog.
        # mpmd-http.socket's listener, when passed too, is the http endpoint's.
        passed = activation.take_listeners(s.socket_path, s.http_port)
        hook_socket = self._listen(passed.hook)
        stack.callback(hook_socket.close)  # the ingest server's once it serves it
        await self.indexer.start()
        stack.push_async_callback(self.indexer.stop)  # after the last drain: it may
        self.forwarders.start()                       # take that too, as forwarders
        stack.push_async_callback(self.forwarders.stop)  # (in flight: sent again)
        await self.transcripts.start()
        stack.push_async_callback(self.transcripts.stop)
        stack.callback(self._last_drain)
        self.ingest.start(hook_socket)
        await self._start_http(passed.http)
        stack.push_async_callback(self._stop_listening)
        stack.callback(self.approvals.close_all)  # the hooks waiting ask in the terminal
        control = await serve_control(s.control_path, self, self.followers, self.counters,
                                      s.idle_timeout_s)
        stack.callback(control.close)
        await self._start_viewer()
        if self.viewer is not None:
            stack.push_async_callback(self.viewer.close)
        await self._start_notifier(stack)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.tasks.start({"journal": self._journal_consumer, "spool": self._spool_loop,
                          "maintenance": self._maintenance_loop,
                          "broadcast": self.broadcaster.run,
                          "prompt watch": self._prompt_watch_loop})
        stack.push_async_callback(self.tasks.cancel)
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
        loop.run_until_complete(serve(settings, ready_fd))
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
