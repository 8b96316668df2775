"""The transcript follower: what hooks do not carry (tokens, cost), read off the session
transcripts Claude Code writes (mpmd.transcripts.reader, .entries; docs/transcripts.md).

A thread of its own process (mpmd.transcripts.worker): it follows the journal from its own
cursor, as a forwarder does, to learn which transcripts exist (every hook event names its
session's ``transcript_path``; a subagent's is ``<session>/subagents/agent-<agent_id>.jsonl``
beside it), reads what each one gained, and hands the daemon events of mpmd's own, stored
with source "transcript":

  ModelUsage   one API response's tokens and their price (mpmd.transcripts.prices), once
               per message id (Claude Code writes a message once per content block)
  CostReport   Claude Code's own accounting of the session (a ``cost-state`` entry)

Nothing here runs in the daemon but the store's ``put`` of what a pass found. Reads are
bounded (a pass reads at most READ_BYTES of one file and PASS_BYTES in all; a line longer
than the reader's MAX_LINE is passed over); a file is opened without following links or
blocking (a FIFO is refused), only under the allowed roots (Claude Code's projects folder
unless ``transcript_roots`` names others), and only as long as it is a regular file of
this user's. A missing or unreadable transcript is counted and shown in status, never an
error.

Exactly once: each event's id is derived from what it describes (its session and message
id, or its cost-state's place in the file), and a file's position is saved only once the
events of the lines before it are stored. After a crash the follower reads again from the
saved position and sends those events again; the store's window of recent ids answers
DUPLICATE for the ones it has.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import msgspec

from mpmd.durable import write_atomic
from mpmd.storage.journal import Journal
from mpmd.storage.journal_tail import Tail
from mpmd.transcripts import backfill, entries
from mpmd.transcripts.backfill import HOOK, TRANSCRIPT, Claims, FileBackfill
from mpmd.transcripts.entries import CostState, Prompt, ToolResult, Usage
from mpmd.transcripts.prices import PriceTable, cost
from mpmd.transcripts.reader import Position, TranscriptFile

log = logging.getLogger("mpmd.transcripts")

PASS_S = 1.0  # a pass over every followed transcript at least this often
GATHER_S = 0.05  # after a wake-up: the journal batches of a burst make one pass
READ_BYTES = 1024 * 1024  # the most read of one file in one pass
PASS_BYTES = 16 * 1024 * 1024  # the most read in one pass, all files together
JOURNAL_BATCH = 4096  # journal lines read at a time
MAX_FOLLOWED = 1000  # transcripts followed at once; the least recently active goes first
IDLE_DROP_S = 6 * 3600.0  # a transcript quiet this long is no longer followed
ENDED_DROP_S = 60.0  # nor one whose session ended this long ago (a last read first)
MAX_SEEN = 200_000  # message ids remembered (a message is written once per content block)
MAX_PROBLEMS = 20  # problems shown in status
MAX_REFUSED = 1000  # paths outside the roots remembered (not checked again, counted once)
DISCOVER_BACK = 20_000  # with no saved state: journal lines read back to find sessions
SAVE_EVERY_S = 2.0  # positions are saved at most this often (and at stop)
MAX_MODELS = 50  # models counted apart for /metrics; more are counted as "other"
_MODEL_KEYS = ("responses", "input_tokens", "output_tokens", "cache_read_tokens",
               "cache_write_tokens", "cost_usd")
MAX_FINISHED = 10_000  # files no longer followed whose last position is remembered
# How long a prompt or tool call read off a transcript waits for its hook event before it is
# journaled from the transcript (mpmd.transcripts.backfill): far longer than a hook is late.
BACKFILL_AFTER_S = 60.0
STATE_VERSION = 1


class _Payload(msgspec.Struct):
    transcript_path: str | None = None
    agent_transcript_path: str | None = None
    prompt_id: str | None = None
    message_id: str | None = None  # a ModelUsage's


class _Decision(msgspec.Struct):
    action: str | None = None


class _Line(msgspec.Struct):
    """What the follower reads of a journal line."""

    seq: int
    event_type: str
    timestamp: str = ""
    session_id: str | None = None
    agent_id: str | None = None
    tool_use_id: str | None = None
    source: str = ""
    payload: _Payload | None = None
    decision: _Decision | None = None


_line_decoder = msgspec.json.Decoder(_Line)


class _FileState(msgspec.Struct):
    dev: int
    ino: int
    offset: int
    session_id: str
    agent_id: str | None = None
    prompt_id: str | None = None


class _State(msgspec.Struct):
    version: int = STATE_VERSION
    journal_seq: int = 0
    files: dict[str, _FileState] = msgspec.field(default_factory=dict)
    # Files no longer followed, and where they were left: named again (an old event, a
    # resumed session), they go on from there instead of from their start.
    finished: dict[str, Position] = msgspec.field(default_factory=dict)


class _Followed:
    """One transcript being followed."""

    __slots__ = ("agent_id", "backfill", "ended_at", "file", "last_active", "last_at",
                 "prompt_id", "session_id")

    def __init__(self, path: str, session_id: str, agent_id: str | None, wait_s: float,
                 position: Position | None = None, prompt_id: str | None = None) -> None:
        self.file = TranscriptFile(path, position=position)
        self.backfill = FileBackfill(path, session_id, wait_s)
        self.session_id = session_id
        self.agent_id = agent_id
        self.prompt_id = prompt_id  # the prompt the responses read next answer
        self.last_at = ""  # the newest entry time read (a cost report is as of it)
        self.last_active = time.monotonic()
        self.ended_at: float | None = None


Submit = Callable[[list[tuple[bytes, bytes, int]]], bool]
"""Store these (event id, payload, time in ns) events; True once they are stored (or
spooled). The time is when Claude Code wrote what the event describes: the event's
``timestamp``."""


def _ns(stamp: str | None) -> int:
    """An entry's ISO time in ns; now when it has none (or not one that parses)."""
    if stamp:
        with contextlib.suppress(ValueError):
            return int(datetime.fromisoformat(stamp).timestamp() * 1e9)
    return time.time_ns()


def default_roots() -> list[Path]:
    """Where Claude Code keeps transcripts: $CLAUDE_CONFIG_DIR/projects, else
    ~/.claude/projects."""
    base = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"),
                                                               ".claude")
    return [Path(base, "projects")]


def event_id(*parts: str) -> bytes:
    """A stable 16-byte id for the event that describes ``parts``: sent again, it is the same
    id, and the store answers DUPLICATE."""
    return hashlib.blake2b("\0".join(parts).encode("utf-8", "surrogatepass"),
                           digest_size=16, person=b"mpmd-transcript").digest()


class Follower:
    def __init__(self, journal_dir: Path, state_path: Path, submit: Submit,
                 prices: PriceTable, roots: list[Path] | None = None,
                 backfill_after_s: float = BACKFILL_AFTER_S) -> None:
        self.journal_dir = journal_dir
        self.wait_s = backfill_after_s
        self.state_path = state_path
        self.submit = submit
        self.prices = prices
        self.roots = [os.path.realpath(r) for r in (roots or default_roots())]
        self.followed: OrderedDict[str, _Followed] = OrderedDict()
        self.seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.finished: OrderedDict[str, Position] = OrderedDict()
        self.refused: OrderedDict[str, None] = OrderedDict()  # outside the roots
        self._named: set[str] = set()  # paths the journal named since the last pass
        self.claims = Claims()
        self.journal_seq = 0
        self.problems: dict[str, str] = {}  # path -> why it is not read
        self.counts = {"lines": 0, "bytes": 0, "usage": 0, "cost_reports": 0,
                       "backfilled": 0, "malformed": 0, "outside_roots": 0, "restarts": 0,
                       "dropped": 0}
        # by model: responses, input, output, cache read, cache write tokens, cost (USD)
        self.models: dict[str, list[float]] = {}
        self.counts_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dirty = False
        self._saved_at = 0.0
        self._load()

    # ---- the daemon's side ----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="transcripts", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """The journal grew: its events may name a transcript that grew too."""
        if not self._wake.is_set():
            self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the transcript follower did not stop within %.0f s; it reads "
                            "again from its saved positions at the next start", timeout)

    def status(self) -> dict[str, object]:
        with self.counts_lock:
            counts = dict(self.counts)
            models = {m: dict(zip(_MODEL_KEYS, t, strict=True)) for m, t in self.models.items()}
        return {"models": models, "followed": len(self.followed), "journal_seq": self.journal_seq,
                "problems": dict(list(self.problems.items())[:MAX_PROBLEMS]),
                "roots": list(self.roots), "late_hooks": self.claims.late_hooks, **counts}

    # ---- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            journal = Journal(self.journal_dir, read_only=True)
            after = self.journal_seq
            if after > journal.last_seq:  # the journal was replaced
                after = journal.last_seq
            # Back far enough that the claims of the keys still waiting (their files are
            # read again from the oldest) are known again: the journal is where they are.
            tail = Tail(journal, max(0, after - DISCOVER_BACK))
            last_full = 0.0
            try:
                while not self._stop.is_set():
                    self._wake.clear()
                    self._discover(tail)
                    now = time.monotonic()
                    full = now - last_full >= PASS_S
                    if full:
                        last_full = now
                    more = self._pass(full)
                    self._save(force=False)
                    if more:
                        continue
                    if self._wake.wait(max(0.0, last_full + PASS_S - time.monotonic())):
                        # the journal grew: let a burst of batches make one pass
                        self._stop.wait(GATHER_S)
            finally:
                tail.close()
                self._save(force=True)
        except Exception:  # a bug: say so, keep the daemon (status shows it stopped)
            log.exception("the transcript follower stopped by an error")
            self.problems["(follower)"] = "stopped by an internal error (see the log)"

    def _discover(self, tail: Tail) -> None:
        """New journal lines: the transcripts they name, and which sessions ended."""
        while True:
            try:
                lines = tail.read(JOURNAL_BATCH)
            except OSError as exc:
                log.error("transcripts: reading the journal failed (%s)", exc)
                tail.seek(self.journal_seq)
                return
            if not lines:
                return
            for line in lines:
                with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                    self._saw(_line_decoder.decode(line))
            self.journal_seq = tail.after
            self._dirty = True

    def _saw(self, line: _Line) -> None:
        if line.session_id is None:
            return
        payload = line.payload
        self.claims.saw(line.event_type, line.session_id, line.tool_use_id,
                        payload.prompt_id if payload else None,
                        TRANSCRIPT if line.source == "transcript" else HOOK, line.timestamp,
                        denied=line.decision is not None and line.decision.action == "deny")
        if line.source in ("transcript", "daemon"):
            if line.event_type == "ModelUsage" and payload and payload.message_id:
                # read back at start, the responses already journaled are not sent again,
                # however old (the store's window of recent ids is bounded)
                self.seen[(line.session_id, payload.message_id)] = None
                if len(self.seen) > MAX_SEEN:
                    self.seen.popitem(last=False)
            return
        path = payload.transcript_path if payload else None
        if not path:
            return
        self._follow(path, line.session_id, None)
        if line.agent_id:  # a subagent's transcript lives beside its session's
            sub = (payload.agent_transcript_path if payload else None) or os.path.join(
                path[:-len(".jsonl")] if path.endswith(".jsonl") else path, "subagents",
                f"agent-{line.agent_id}.jsonl")
            self._follow(sub, line.session_id, line.agent_id)
            if line.event_type == "SubagentStop" and sub in self.followed:
                self.followed[sub].ended_at = time.monotonic()  # read to its end, then let go
        if line.event_type == "SessionEnd":
            now = time.monotonic()
            for f in self.followed.values():
                if f.session_id == line.session_id:
                    f.ended_at = now

    def _follow(self, path: str, session_id: str, agent_id: str | None) -> None:
        f = self.followed.get(path)
        self._named.add(path)
        if f is not None:
            f.last_active = time.monotonic()
            f.ended_at = None
            self.followed.move_to_end(path)
            return
        if path in self.refused:
            return
        if not self._allowed(path):
            self.refused[path] = None
            while len(self.refused) > MAX_REFUSED:
                self.refused.popitem(last=False)
            self._count("outside_roots")
            self._problem(path, "outside the transcript folders (transcript_roots)")
            return
        self.followed[path] = _Followed(path, session_id, agent_id, self.wait_s,
                                        self.finished.pop(path, None))
        self._dirty = True
        while len(self.followed) > MAX_FOLLOWED:
            old, gone = self.followed.popitem(last=False)
            self._finish(old, gone)
            self._count("dropped")
            log.info("transcripts: following too many; %s is no longer followed", old)

    def _finish(self, path: str, f: _Followed) -> None:
        """``f`` is no longer followed: remember where it was left."""
        where = self._resume_at(f)
        if where is not None:
            self.finished[path] = where
            while len(self.finished) > MAX_FINISHED:
                self.finished.popitem(last=False)

    def _allowed(self, path: str) -> bool:
        if not path.endswith(".jsonl") or not os.path.isabs(path) or "\0" in path:
            return False
        real = os.path.realpath(os.path.dirname(path))
        return any(real == root or real.startswith(root + os.sep) for root in self.roots)

    def _pass(self, full: bool) -> bool:
        """Read what the transcripts gained: every one (``full``), or those the journal
        named since the last pass and those left with more to read (a session's transcript
        grows as its hooks fire: visiting all of them at each of ~100 wake-ups a second
        cost a quarter of a core, mostly opening files that had not grown). Waiting keys
        are decided and quiet files let go in full passes. True when some file has more to
        read than this pass's budget allowed."""
        budget = PASS_BYTES
        more = False
        now = time.monotonic()
        if full:
            visit = list(self.followed.items())
        else:
            visit = [(p, f) for p, f in self.followed.items() if p in self._named or f.file.more]
        for path, f in visit:
            if budget <= 0:
                return True
            self._named.discard(path)
            before = f.file.offset + f.file.pending
            restarts = f.file.restarts
            start = f.file.position()
            lines = f.file.read(min(READ_BYTES, budget))
            if f.file.restarts != restarts or start is None:
                # read from the file's start (first seen, replaced or truncated)
                now_at = f.file.position()
                start = None if now_at is None else Position(now_at.dev, now_at.ino, 0)
            read = max(0, f.file.offset + f.file.pending - before)
            budget -= read
            if f.file.problem:
                self._problem(path, f.file.problem)
            else:
                self.problems.pop(path, None)
            if f.file.restarts != restarts:
                self._count("restarts")
            if lines:
                f.last_active = now
                if not self._take(f, lines, start, now):
                    # The daemon did not store them (stopping, or stuck): read them again
                    # next time, from where this read started.
                    f.file = TranscriptFile(path, position=start)
                    return False
                self._dirty = True
            if full and not self._backfill(f, now):
                return False
            more = more or f.file.more
            if full and not f.backfill.waiting and (
                    (f.ended_at is not None and now - f.ended_at > ENDED_DROP_S)
                    or now - f.last_active > IDLE_DROP_S):
                del self.followed[path]
                self._finish(path, f)
                self.problems.pop(path, None)
                self._dirty = True
        if full:
            self._named.clear()  # named but not followed (refused): nothing to read
        return more

    def _backfill(self, f: _Followed, now: float) -> bool:
        """Journal what no hook delivered of ``f``'s keys whose wait is over (backfill.py);
        False when the daemon did not store them (they wait on)."""
        due = f.backfill.due(now, self.claims)
        if not due:
            return True
        if not self.submit([(event_id(*d.key), backfill.encode(d.payload), _ns(d.timestamp))
                            for d in due]):
            return False
        f.backfill.done({d.key for d in due}, self.claims)
        self._count("backfilled", len(due))
        self._dirty = True
        return True

    def _take(self, f: _Followed, lines: list[bytes], start: Position | None,
              now: float) -> bool:
        """Turn ``lines`` into events and hand them to the daemon; True once stored."""
        counts = entries.Counts()
        events: list[tuple[bytes, bytes, int]] = []
        # message ids, remembered (and counted by model) once stored
        sent: dict[tuple[str, str], tuple[str, tuple[int, int, int, int], float | None]] = {}
        for line in lines:
            for fact in entries.parse(line, counts):
                at = getattr(fact, "timestamp", "")
                if at > f.last_at:
                    f.last_at = at
                if isinstance(fact, Usage):
                    event = self._usage(f, fact, sent)
                elif isinstance(fact, CostState):
                    event = self._cost_report(f, fact)
                else:
                    # the responses read next answer this prompt
                    if isinstance(fact, Prompt | ToolResult) and fact.prompt_id and \
                            fact.agent_id is None:
                        f.prompt_id = fact.prompt_id
                    f.backfill.take(fact, now, start, f.prompt_id)
                    event = None
                if event is not None:
                    events.append(event)
        with self.counts_lock:
            self.counts["lines"] += counts.lines
            self.counts["malformed"] += counts.malformed
            self.counts["bytes"] += sum(len(x) + 1 for x in lines)
        if events and not self.submit(events):
            return False
        for key in sent:
            self.seen[key] = None
        while len(self.seen) > MAX_SEEN:
            self.seen.popitem(last=False)
        with self.counts_lock:
            self.counts["usage"] += len(sent)
            self.counts["cost_reports"] += len(events) - len(sent)
            for model, tokens, usd in sent.values():
                self._add_to_model(model, tokens, usd)
        return True

    def _add_to_model(self, model: str, tokens: tuple[int, int, int, int],
                      usd: float | None) -> None:
        """Totals by model since start, for /metrics (under counts_lock)."""
        if model not in self.models and len(self.models) >= MAX_MODELS:
            model = "other"
        totals = self.models.setdefault(model, [0, 0, 0, 0, 0, 0.0])
        totals[0] += 1
        for k, n in enumerate(tokens, 1):
            totals[k] += n
        if usd is not None:
            totals[5] += usd

    def _usage(self, f: _Followed, u: Usage,
               sent: dict[tuple[str, str], tuple[str, tuple[int, int, int, int], float | None]],
               ) -> tuple[bytes, bytes, int] | None:
        if not u.message_id:
            return None
        key = (u.session_id or f.session_id, u.message_id)
        if key in self.seen or key in sent:
            return None
        price = self.prices.price(u.model) if u.model else None
        # What is not written for 1 hour is for 5 minutes (a transcript without the split
        # has only the total).
        five_minutes = max(0, u.cache_creation_input_tokens - u.cache_creation_1h)
        usd = None if price is None else round(cost(
            price, u.input_tokens, u.output_tokens, u.cache_read_input_tokens,
            five_minutes, u.cache_creation_1h), 9)
        sent[key] = ((u.model or "unknown")[:100], (
            u.input_tokens, u.output_tokens, u.cache_read_input_tokens,
            u.cache_creation_input_tokens), usd)
        return event_id(key[0], "usage", u.message_id), msgspec.json.encode({
            "hook_event_name": "ModelUsage", "session_id": key[0],
            "transcript_path": f.file.path, "agent_id": u.agent_id or f.agent_id,
            "prompt_id": f.prompt_id, "message_id": u.message_id, "model": u.model,
            "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
            "cache_creation_5m_tokens": u.cache_creation_5m,
            "cache_creation_1h_tokens": u.cache_creation_1h,
            "cost_usd": usd, "at": u.timestamp}), _ns(u.timestamp)

    def _cost_report(self, f: _Followed, c: CostState) -> tuple[bytes, bytes, int]:
        session_id = c.session_id or f.session_id
        # A cost-state has no id of its own; its totals are one (the same totals written
        # twice are the same report).
        totals = f"{c.total_cost_usd!r}:{c.total_duration_ms}:{c.api_duration_ms}"
        return event_id(session_id, "cost", totals), msgspec.json.encode({
            "hook_event_name": "CostReport", "session_id": session_id,
            "transcript_path": f.file.path, "agent_id": f.agent_id,
            "total_cost_usd": c.total_cost_usd,
            "model_usage": {m: msgspec.structs.asdict(u) for m, u in c.model_usage.items()},
            "lines_added": c.lines_added, "lines_removed": c.lines_removed,
            "duration_ms": c.total_duration_ms, "api_duration_ms": c.api_duration_ms,
            "has_unknown_model_cost": c.has_unknown_model_cost,
            # Claude Code writes its report after the responses it counts, subagents'
            # included: the newest entry read before it is what it covers.
            "as_of": f.last_at or None}), _ns(f.last_at)

    def _count(self, name: str, n: int = 1) -> None:
        with self.counts_lock:
            self.counts[name] += n

    def _problem(self, path: str, why: str) -> None:
        if path in self.problems or len(self.problems) < 4 * MAX_PROBLEMS:
            self.problems[path] = why

    # ---- saved state ----------------------------------------------------------------------
    @staticmethod
    def _resume_at(f: _Followed) -> Position | None:
        """Where to read ``f`` again from after a restart: before the oldest key still
        waiting (it is read again, and waits again), else where the reading is."""
        where = f.file.position()
        oldest = f.backfill.oldest_position()
        if oldest is not None and where is not None and oldest[:2] == where[:2]:
            return Position(*oldest)
        return where

    def _load(self) -> None:
        try:
            state = msgspec.json.decode(self.state_path.read_bytes(), type=_State)
        except FileNotFoundError:
            return
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("transcripts: %s unreadable (%s); following from the journal's recent "
                      "events", self.state_path, exc)
            return
        if state.version != STATE_VERSION:
            return
        self.journal_seq = state.journal_seq
        for path, fs in list(state.files.items())[-MAX_FOLLOWED:]:
            if self._allowed(path):
                self.followed[path] = _Followed(path, fs.session_id, fs.agent_id, self.wait_s,
                                                Position(fs.dev, fs.ino, fs.offset),
                                                fs.prompt_id)
        self.finished.update(list(state.finished.items())[-MAX_FINISHED:])

    def _save(self, force: bool) -> None:
        now = time.monotonic()
        if not self._dirty or (not force and now - self._saved_at < SAVE_EVERY_S):
            return
        files = {}
        for path, f in self.followed.items():
            where = self._resume_at(f)
            if where is not None:
                files[path] = _FileState(where.dev, where.ino, where.offset, f.session_id,
                                         f.agent_id, f.prompt_id)
        try:
            write_atomic(self.state_path, msgspec.json.encode(
                _State(journal_seq=self.journal_seq, files=files,
                       finished=dict(self.finished))))
        except OSError as exc:
            log.error("transcripts: could not save positions to %s (%s)", self.state_path, exc)
            return
        self._dirty = False
        self._saved_at = now
