"""The notifier: follows the journal from its cursor, decides (mpmd.notify.conditions) and
hands messages to the targets (mpmd.notify.deliver). Runs in the notifier process
(mpmd.notify.worker), off the daemon's event loop.

Its state file (``notify.json`` in the state folder, owner-only, replaced whole) holds the
cursor, the conditions' state and every target's outbox, written together: a message is in
an outbox on disk before the cursor passes the event that made it, and leaves it once sent.
So a crash repeats at most the messages sent just before it (at least once) and loses none.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from mpmd.durable import write_atomic
from mpmd.notify import rules as R
from mpmd.notify.conditions import State, Watch
from mpmd.notify.deliver import Target
from mpmd.notify.message import Message, render
from mpmd.storage.journal import Journal, line_seq
from mpmd.storage.journal_tail import Tail

log = logging.getLogger("mpmd.notify")

READ_BATCH = 1000
TICK_S = 1.0  # idle and delays are looked at this often, events or not
SAVE_EVERY_S = 1.0  # the cursor and sent messages are saved at most this often
STOP_TIMEOUT_S = 5.0


class Saved(msgspec.Struct, kw_only=True):
    version: int = 1
    cursor: int = 0
    watch: State = msgspec.field(default_factory=State)
    outboxes: dict[str, list[Message]] = msgspec.field(default_factory=dict)


def load_state(path: Path, start_seq: int) -> Saved:
    """The saved state; with none, or a damaged one (logged), a new one whose cursor is
    ``start_seq``, the journal's end when the daemon started: what happened before is not
    news, and nothing is sent twice."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=Saved)
    except FileNotFoundError:
        pass
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.error("notify state %s unreadable (%s): starting afresh", path.name, exc)
    return Saved(cursor=start_seq)


class Notifier:
    def __init__(self, journal_dir: Path, state_path: Path, tables: Any, base_url: str,
                 links_url: str, key: bytes | None, start_seq: int = 0) -> None:
        self.journal_dir = journal_dir
        self.state_path = state_path
        self.base_url = base_url  # the viewer, for session links
        self.links_url = links_url  # where Approve / Deny links point
        self.key = key
        self.rules, self.invalid = R.parse(tables)
        for bad in self.invalid:
            log.error("notify rule %s not used: %s", bad.name, bad.error)
        saved = load_state(state_path, start_seq)
        self.cursor = saved.cursor
        self.watch = Watch(self.rules, saved.watch)
        self.targets: dict[str, Target] = {}
        for rule in self.rules:
            for name, url in zip(R.target_names(rule), rule.targets, strict=True):
                target = self.targets[name] = Target(name, url, self._changed)
                for m in saved.outboxes.get(name, []):
                    target.put(m)
        self.running = False
        self.last_error = ""
        self._lock = threading.Lock()  # the state file: one writer at a time
        self._dirty = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the process's side -------------------------------------------------------------
    def start(self) -> None:
        for target in self.targets.values():
            target.start()
        self.running = True
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for target in self.targets.values():
            target.stop(max(0.0, deadline - time.monotonic()))
        self._save()

    def status(self) -> dict[str, Any]:
        rules = {r.name: {"state": "ok", "on": list(r.on), "error": None} for r in self.rules}
        rules.update({b.name: {"state": "error", "on": [], "error": b.error}
                      for b in self.invalid})
        return {"cursor_seq": max(0, self.cursor), "running": self.running,
                "last_error": self.last_error or None, "rules": rules,
                "targets": {n: t.status() for n, t in self.targets.items()},
                "counts": dict(self.watch.state.counts)}

    # ---- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        journal = Journal(self.journal_dir, read_only=True)
        if self.cursor > journal.last_seq:
            log.warning("notify: its cursor (%d) is past the journal's end (%d): the journal "
                        "was replaced; going on from its end", self.cursor, journal.last_seq)
            self.cursor = journal.last_seq
        tail = Tail(journal, self.cursor)
        saved_at = 0.0
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    lines = tail.read(READ_BATCH)
                except OSError as exc:
                    self.last_error = f"reading the journal: {exc}"
                    log.error("notify: reading the journal failed (%s)", exc)
                    self._stop.wait(TICK_S)
                    tail.seek(self.cursor)
                    continue
                now = time.time()
                for line in lines:
                    self.watch.feed(line, now)
                if lines:
                    self.cursor = line_seq(lines[-1])
                sent = self._dispatch(now)
                # New messages are saved at once (on disk before the cursor passes what made
                # them); a sent one leaves the file, and the cursor moves, at most every
                # SAVE_EVERY_S: a crash then resends at most that second's messages.
                if sent or ((self._dirty.is_set() or lines) and now - saved_at >= SAVE_EVERY_S):
                    self._save()
                    saved_at = now
                if len(lines) < READ_BATCH:
                    self._wake.wait(TICK_S)
        except Exception:  # a bug: say so; the process exits and the daemon starts it again
            log.exception("the notifier stopped on an error")
            self.last_error = "stopped by an internal error (see the log)"
        finally:
            self.running = False
            tail.close()

    def _dispatch(self, now: float) -> int:
        count = 0
        for rule, notices in self.watch.due(now):
            message = render(rule, notices, now, self.base_url, self.key, self.links_url)
            for name in R.target_names(rule):
                self.targets[name].put(message)
            count += 1
        return count

    def _changed(self) -> None:
        """A target sent a message: its outbox on disk must lose it (at the next save)."""
        self._dirty.set()

    def _save(self) -> None:
        with self._lock:
            self._dirty.clear()
            saved = Saved(cursor=self.cursor, watch=self.watch.dump(),
                          outboxes={n: t.pending() for n, t in self.targets.items()})
            try:
                write_atomic(self.state_path, msgspec.json.encode(saved))
            except OSError as exc:  # a full disk: kept in memory, written at the next pass
                self.last_error = f"cannot write {self.state_path.name}: {exc}"
                log.error("notify: cannot save its state (%s)", exc)
                self._dirty.set()
