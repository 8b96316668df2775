"""The search index: a SQLite read model of the journal (docs/query.md).

It is derived, never the source of truth: every row comes from a journal line, `mpmd
reindex` rebuilds it from the journal, and a missing, damaged or outdated index file is
rebuilt by itself. Its cursor is `meta.last_seq`, written in the same transaction as the
rows, so after a crash it resumes exactly where its last commit left it.

    events      one row per event: the columns queries filter on, and where its journal
                line is kept (block, pos)
    blocks      the journal lines themselves, zlib-compressed 16 at a time, so results
                need no journal access (the journal's segments get gzipped and deleted
                under it). A block is keyed by its first line's seq.
    events_fts  FTS5 over the searchable text (summary, prompt, command, paths, errors,
                messages), contentless (the text is not stored twice); rowid = seq
    sessions    one row per session: the summary the page's past-sessions list shows,
                kept up to date with each batch rather than grouped at query time; with
                its tokens and reconciled cost (docs/transcripts.md)
    usage       one row per ModelUsage event (an API response): its tokens, model, prompt,
                subagent and mpmd's price, for the splits by model, prompt, subagent, time
    prompts     prompt_id -> its session and text (the costliest prompts' names)
    session_models  the models each session used (SessionStart's, its responses'), for
                model: queries
    meta        schema version, last_seq

Why blocks: compressing one line costs ~23 us of zlib set-up, a block of 16 lines ~7 us a
line, and it compresses 2.3x better (measured on the benchmark's journal); reading one
line back costs a 33 us block decompression, a page of 100 results a few ms at most.

Writes happen in one thread (mpmd.history.indexer); readers (the viewer's API, `mpmd query`) open
their own read-only connections, which WAL lets run beside the writer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from mpmd.model.sessions import UsagePayload, reconciled_cost
from mpmd.storage.journal import line_seq

log = logging.getLogger("mpmd.history.index")

SCHEMA_VERSION = 3  # 3: tokens and cost (usage, prompts, session_models)
INDEX_FILE_NAME = "index.sqlite3"
BLOCK_LINES = 16
MAX_FIELD_TEXT = 4096  # per text field; a 1 MB Write's content is not what people search for
# Payload fields whose text is searched (besides the stored event's summary and paths).
TEXT_FIELDS = (
    "prompt", "command", "description", "error", "error_details", "message", "reason",
    "pattern", "url", "query", "title", "last_assistant_message", "task_subject",
    "task_description", "compact_summary", "custom_instructions", "agent_type", "new_cwd",
    "directory", "worktree_path", "mcp_server_name",
)

_DDL = (
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
       WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,             -- when the hook ran, ms since the epoch (UTC)
        session_id TEXT,
        event_type TEXT NOT NULL,
        tool_name TEXT,
        risk TEXT NOT NULL,
        status TEXT NOT NULL,
        operation TEXT NOT NULL,
        file_path TEXT,
        cwd TEXT,
        agent_id TEXT,
        tool_use_id TEXT,
        duration_ms INTEGER,
        summary TEXT NOT NULL,
        block INTEGER NOT NULL,          -- blocks.first_seq of the block holding its line
        pos INTEGER NOT NULL             -- the line's place in that block
    )""",
    """CREATE TABLE IF NOT EXISTS blocks (
        first_seq INTEGER PRIMARY KEY,
        data BLOB NOT NULL               -- zlib of the lines joined by newlines
    )""",
    """CREATE TABLE IF NOT EXISTS sessions (
        session_id TEXT PRIMARY KEY,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        first_ts INTEGER NOT NULL,
        last_ts INTEGER NOT NULL,
        events INTEGER NOT NULL,
        tool_calls INTEGER NOT NULL,     -- finished tool calls (as the live sessions table)
        failures INTEGER NOT NULL,       -- of them, failed
        cwd TEXT,                        -- as first seen
        model TEXT,                      -- from SessionStart
        end_reason TEXT,                 -- from SessionEnd; NULL while not ended
        first_prompt TEXT,               -- the first UserPromptSubmit, cut to 200 chars
        -- What it cost: the sums of its usage rows, and its cost reconciled with Claude
        -- Code's last report (reported_*) as the live sessions table does.
        responses INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        unpriced_responses INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL,                   -- rounded to 9 places; NULL: no response nor report
        cost_source TEXT,                -- "claude-code" or "mpmd"
        reported_usd REAL,               -- the last CostReport's total_cost_usd
        reported_as_of TEXT              -- and its as_of
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS usage (
        seq INTEGER PRIMARY KEY,         -- the ModelUsage event's
        session_id TEXT NOT NULL,
        ts INTEGER NOT NULL,             -- the event's: when Claude Code wrote the response
        at TEXT NOT NULL,                -- the same as written, compared with a report's as_of
        agent_id TEXT,                   -- a subagent's response
        prompt_id TEXT,                  -- the prompt it answers
        model TEXT NOT NULL,             -- "unknown" when it names none
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cache_read_tokens INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        cost_usd REAL                    -- mpmd's price; NULL: its model has no price
    )""",
    "CREATE INDEX IF NOT EXISTS usage_session ON usage(session_id)",
    "CREATE INDEX IF NOT EXISTS usage_ts ON usage(ts)",
    """CREATE TABLE IF NOT EXISTS prompts (
        prompt_id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        seq INTEGER NOT NULL,            -- its first UserPromptSubmit
        text TEXT NOT NULL               -- cut to 200 chars
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS session_models (
        session_id TEXT NOT NULL,
        model TEXT NOT NULL,
        PRIMARY KEY (session_id, model)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS sessions_last_ts ON sessions(last_ts)",
    "CREATE INDEX IF NOT EXISTS events_session ON events(session_id, seq)",
    "CREATE INDEX IF NOT EXISTS events_ts ON events(ts)",
    "CREATE INDEX IF NOT EXISTS events_type ON events(event_type, ts)",
    "CREATE INDEX IF NOT EXISTS events_tool ON events(tool_name, ts)",
    # (x) is (x, seq) to SQLite: newest-first pages of one type or tool stop after the page
    # instead of sorting every match (measured at 1 M events: 1.2 s -> 0.5 ms).
    "CREATE INDEX IF NOT EXISTS events_type_seq ON events(event_type)",
    "CREATE INDEX IF NOT EXISTS events_tool_seq ON events(tool_name)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(
        text, content='', tokenize='unicode61 remove_diacritics 0')""",
)
_COLUMNS = ("seq", "ts", "session_id", "event_type", "tool_name", "risk", "status",
            "operation", "file_path", "cwd", "agent_id", "tool_use_id", "duration_ms",
            "summary", "block", "pos")
_INSERT = f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_INSERT_FTS = "INSERT INTO events_fts (rowid, text) VALUES (?, ?)"
_INSERT_BLOCK = "INSERT INTO blocks (first_seq, data) VALUES (?, ?)"
_INSERT_USAGE = f"INSERT INTO usage VALUES ({', '.join('?' * 12)})"
# A session's usage rows summed (USAGE_COLUMNS' first six), mpmd's price of them all, and
# of those written after Claude Code's last report (as_of, the first parameter).
_SUM_USAGE = """
    SELECT count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
           coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),
           coalesce(sum(cost_usd IS NULL), 0), total(cost_usd),
           total(CASE WHEN at > ? THEN cost_usd END)
    FROM usage WHERE session_id = ?"""
_SUMMARY_COLUMNS = ("session_id", "first_seq", "last_seq", "first_ts", "last_ts", "events",
                    "tool_calls", "failures", "cwd", "model", "end_reason", "first_prompt")
USAGE_COLUMNS = ("responses", "input_tokens", "output_tokens", "cache_read_tokens",
                 "cache_write_tokens", "unpriced_responses", "cost_usd", "cost_source")
# What the sessions listing shows of a session (reported_* are the ledger behind cost_usd).
SESSION_COLUMNS = (*_SUMMARY_COLUMNS, *USAGE_COLUMNS)
# A batch's summary of a session merged into what the table holds.
_UPSERT_SESSION = f"""
    INSERT INTO sessions ({', '.join(_SUMMARY_COLUMNS)})
    VALUES ({', '.join('?' * len(_SUMMARY_COLUMNS))})
    ON CONFLICT (session_id) DO UPDATE SET
        first_seq = min(first_seq, excluded.first_seq),
        last_seq = max(last_seq, excluded.last_seq),
        first_ts = min(first_ts, excluded.first_ts),
        last_ts = max(last_ts, excluded.last_ts),
        events = events + excluded.events,
        tool_calls = tool_calls + excluded.tool_calls,
        failures = failures + excluded.failures,
        cwd = coalesce(cwd, excluded.cwd),
        model = coalesce(excluded.model, model),
        end_reason = coalesce(excluded.end_reason, end_reason),
        first_prompt = coalesce(first_prompt, excluded.first_prompt)"""
FAILURE_TYPES = ("PostToolUseFailure", "StopFailure")
TOOL_CALL_ENDS = ("PostToolUse", "PostToolUseFailure")


class IndexDamaged(Exception):
    """The index file cannot be used as it is; it is set aside and rebuilt."""


class IndexOutdated(IndexDamaged):
    """The index was written by another version of mpmd: deleted and rebuilt (nothing in
    it is worth a post-mortem, and it can be as big as the journal)."""


class _Stored(msgspec.Struct, kw_only=True):
    """What the index reads of a stored event (docs/events.md)."""

    seq: int
    event_type: str
    session_id: str | None = None
    timestamp: str = ""
    status: str = "ok"
    cwd: str | None = None
    agent_id: str | None = None
    tool_name: str | None = None
    tool_use_id: str | None = None
    operation: str = "metadata"
    risk: str = "low"
    file_path: str | None = None
    summary: str = ""
    payload: msgspec.Raw = msgspec.Raw(b"null")
    raw: str | None = None


_USAGE_EVENTS = ("ModelUsage", "CostReport")
_stored_decoder = msgspec.json.Decoder(_Stored)
_usage_decoder = msgspec.json.Decoder(UsagePayload)
_payload_decoder = msgspec.json.Decoder(dict[str, Any])


def iso_to_ms(stamp: str) -> int:
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1000)
    except ValueError:
        return 0


def _payload(ev: _Stored) -> dict[str, Any]:
    try:
        payload = _payload_decoder.decode(ev.payload)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return {}
    return payload


def _texts(ev: _Stored, payload: dict[str, Any]) -> Iterator[str]:
    yield ev.summary
    for value in (ev.file_path, ev.tool_name, ev.event_type, ev.raw):
        if value:
            yield value
    sources = [payload]
    tool_input = payload.get("tool_input")
    if isinstance(tool_input, dict):
        sources.append(tool_input)
        for key in ("file_path", "path", "notebook_path"):
            value = tool_input.get(key)
            if isinstance(value, str):
                yield value[:MAX_FIELD_TEXT]
    for source in sources:
        for key in TEXT_FIELDS:
            value = source.get(key)
            if isinstance(value, str) and value:
                yield value[:MAX_FIELD_TEXT]


def search_text(ev: _Stored, payload: dict[str, Any]) -> str:
    """The text of an event that free-text queries match (docs/query.md)."""
    seen: list[str] = []
    for text in _texts(ev, payload):
        if text not in seen:
            seen.append(text)
    return "\n".join(seen)


class Made(NamedTuple):
    """What one journal line gives the index."""

    row: tuple[Any, ...]  # the events row, without its block and pos
    text: str  # what free text matches
    model: str | None  # these three only for the session summary
    end_reason: str | None
    prompt: str | None
    prompt_id: str | None = None  # a UserPromptSubmit's, for the prompts table
    usage: tuple[Any, ...] | None = None  # a ModelUsage's usage row, without its seq
    report: tuple[float, str] | None = None  # a CostReport's (total_cost_usd, as_of)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def row_of(line: bytes) -> Made | None:
    """What the index keeps of one journal line; None if it is not an event."""
    try:
        ev = _stored_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    payload = _payload(ev)
    duration = payload.get("duration_ms")
    row = (
        ev.seq, iso_to_ms(ev.timestamp), ev.session_id, ev.event_type, ev.tool_name, ev.risk,
        ev.status, ev.operation, ev.file_path, ev.cwd, ev.agent_id, ev.tool_use_id,
        duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
        ev.summary,
    )
    kind = ev.event_type
    prompt = _str(payload.get("prompt")) if kind == "UserPromptSubmit" else None
    usage, report = _usage_of(ev, row[1]) if kind in _USAGE_EVENTS else (None, None)
    return Made(row, search_text(ev, payload),
                _str(payload.get("model")) if kind == "SessionStart" else None,
                _str(payload.get("reason")) if kind == "SessionEnd" else None,
                prompt[:200] if prompt else None,
                _str(payload.get("prompt_id")) if prompt else None,
                usage, report)


def _usage_of(ev: _Stored, ts: int) -> tuple[tuple[Any, ...] | None, tuple[float, str] | None]:
    """The usage row of a ModelUsage event, or the (total, as_of) of a CostReport; read
    as fold_usage reads them (what it passes over, this passes over too)."""
    if not ev.session_id:
        return None, None
    try:
        u = _usage_decoder.decode(ev.payload)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None, None
    if u.hook_event_name == "CostReport":
        if u.total_cost_usd is None or not u.total_cost_usd >= 0:
            return None, None
        return None, (u.total_cost_usd, u.as_of or "")
    usd = u.cost_usd if u.cost_usd is not None and u.cost_usd >= 0 else None
    return (ev.session_id, ts, u.at or "", ev.agent_id, _str(u.prompt_id),
            (u.model or "unknown")[:100], max(0, u.input_tokens), max(0, u.output_tokens),
            max(0, u.cache_read_input_tokens), max(0, u.cache_creation_input_tokens),
            usd), None


def _session_rows(made: list[Made]) -> list[tuple[Any, ...]]:
    """One sessions row per session in a batch (merged into the table by _UPSERT_SESSION)."""
    rows: dict[str, list[Any]] = {}
    for m in made:
        seq, ts, session, kind = m.row[0], m.row[1], m.row[2], m.row[3]
        if session is None:
            continue
        r = rows.get(session)
        if r is None:
            r = rows[session] = [session, seq, seq, ts, ts, 0, 0, 0, None, None, None, None]
        r[2], r[3], r[4] = seq, min(r[3], ts), max(r[4], ts)
        r[5] += 1
        r[6] += kind in TOOL_CALL_ENDS
        r[7] += kind == "PostToolUseFailure"
        r[8] = r[8] or m.row[9]
        r[9] = m.model or r[9]
        r[10] = m.end_reason or r[10]
        r[11] = r[11] or m.prompt
    return [tuple(r) for r in rows.values()]


def fetch_lines(conn: sqlite3.Connection, seqs: list[int]) -> list[bytes]:
    """The journal lines of these events, in the order given (unknown seqs are left out)."""
    where: dict[int, tuple[int, int]] = {}
    for start in range(0, len(seqs), 500):  # SQLite's bound-parameter limit
        part = seqs[start:start + 500]
        where.update((seq, (block, pos)) for seq, block, pos in conn.execute(
            f"SELECT seq, block, pos FROM events WHERE seq IN ({','.join('?' * len(part))})",
            part))
    blocks: dict[int, list[bytes]] = {}
    wanted = sorted({block for block, _ in where.values()})
    for start in range(0, len(wanted), 500):
        part = wanted[start:start + 500]
        for first, data in conn.execute(
                f"SELECT first_seq, data FROM blocks WHERE first_seq IN "
                f"({','.join('?' * len(part))})", part):
            blocks[first] = zlib.decompress(data).split(b"\n")
    return [blocks[where[seq][0]][where[seq][1]] for seq in seqs if seq in where]


def _owner_only_file(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it (its -wal and -shm files take
    the same mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect_read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only = 1")
    return conn


def search(conn: sqlite3.Connection, where: str, params: list[object], limit: int = 100,
           before: int | None = None, after: int | None = None,
           oldest_first: bool = False) -> list[bytes]:
    """Journal lines of the events matching ``where`` (from mpmd.history.query), newest first (or
    oldest first), only those with a seq below ``before`` / above ``after`` (paging)."""
    order = "ASC" if oldest_first else "DESC"
    inner = f"SELECT seq FROM events WHERE ({where})"
    args = list(params)
    if before is not None:
        inner += " AND seq < ?"
        args.append(before)
    if after is not None:
        inner += " AND seq > ?"
        args.append(after)
    # Page by seq first, then read the page's lines: sorting seqs is cheap, reading lines
    # is not.
    args.append(limit)
    seqs = [seq for (seq,) in conn.execute(f"{inner} ORDER BY seq {order} LIMIT ?", args)]
    return fetch_lines(conn, seqs)


def pages(conn: sqlite3.Connection, where: str, params: list[object],
          size: int = 5000) -> Iterator[list[bytes]]:
    """Every matching line, oldest first, a page at a time (exports, replays)."""
    after = None
    while page := search(conn, where, params, limit=size, after=after, oldest_first=True):
        yield page
        after = line_seq(page[-1])


def _session_where(session: str) -> tuple[str, list[object]]:
    """SQL matching the session ids that start with ``session`` (the session: field's
    prefix rules), for the events or the sessions table."""
    from mpmd.history import query  # imported here: query imports this module's names

    quoted = '"' + session.replace('"', '""') + '"'  # the whole argument is the id
    try:
        return query.compile(f"session:{quoted}", 0)
    except query.QueryError as exc:
        raise LookupError(f"bad session id: {exc}") from None


def find_session(conn: sqlite3.Connection, session: str) -> dict[str, Any]:
    """The summary of the one session whose id starts with ``session``; LookupError, saying
    why, for no such session or several."""
    where, params = _session_where(session)
    found = conn.execute(
        f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions WHERE {where} LIMIT 2",
        params).fetchall()
    if not found:
        raise LookupError(f"no session starts with {session!r}")
    if len(found) > 1:
        raise LookupError(f"several sessions start with {session!r}: give more of the id")
    return dict(zip(SESSION_COLUMNS, found[0], strict=True))


def sessions(conn: sqlite3.Connection, since_ms: int, until_ms: int,
             limit: int = 200) -> list[dict[str, Any]]:
    """Summaries of the sessions with events in [since, until), most recently active
    first."""
    return [dict(zip(SESSION_COLUMNS, row, strict=True)) for row in conn.execute(
        f"""SELECT {', '.join(SESSION_COLUMNS)} FROM sessions
            WHERE last_ts >= ? AND first_ts < ? ORDER BY last_ts DESC LIMIT ?""",
        (since_ms, until_ms, limit))]


# Usage rows summed, for any grouping: as USAGE_SUM_KEYS name them. cost_usd is mpmd's
# price of the priced ones (NULL when none has a price).
USAGE_SUMS = ("count(*), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
              "sum(cache_write_tokens), sum(cost_usd IS NULL), sum(cost_usd)")
USAGE_SUM_KEYS = ("responses", "input_tokens", "output_tokens", "cache_read_tokens",
                  "cache_write_tokens", "unpriced_responses", "cost_usd")


def usage_sums(values: Iterable[Any]) -> dict[str, Any]:
    """A USAGE_SUMS row as a dict: counts 0 over no rows, cost rounded to 9 places (as
    sessions' cost_usd)."""
    *counts, cost = values
    out: dict[str, Any] = {key: n or 0
                           for key, n in zip(USAGE_SUM_KEYS[:-1], counts, strict=True)}
    out["cost_usd"] = None if cost is None else round(cost, 9)
    return out


def session_usage(conn: sqlite3.Connection, session_id: str) -> dict[str, list[dict[str, Any]]]:
    """One session's responses split by model, by subagent (agent_id null: the session's
    own) and by prompt (with its text where the index has it), each most costly first:
    tokens and mpmd's price. The splits of each add up to the session's tokens."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key, column in (("models", "model"), ("agents", "agent_id"), ("prompts", "prompt_id")):
        out[key] = [
            {column: row[0], **usage_sums(row[1:])} for row in conn.execute(
                f"""SELECT {column}, {USAGE_SUMS} FROM usage WHERE session_id = ?
                    GROUP BY {column} ORDER BY sum(cost_usd) DESC, count(*) DESC""",
                (session_id,))]
    texts = dict(conn.execute("SELECT prompt_id, text FROM prompts WHERE session_id = ?",
                              (session_id,)).fetchall())
    for prompt in out["prompts"]:
        prompt["prompt"] = texts.get(prompt["prompt_id"])
    return out


def session_lines(conn: sqlite3.Connection, session: str,
                  progress: Callable[[int, int], object] | None = None) -> list[bytes]:
    """Every line of the one session whose id starts with ``session``, oldest first
    (exports, replays); LookupError, saying why, for no such session or several.
    ``progress(read so far, total)`` after each page."""
    summary = find_session(conn, session)
    where, params = "session_id = ?", [summary["session_id"]]
    lines: list[bytes] = []
    for page in pages(conn, where, params):
        lines += page
        if progress is not None:
            progress(len(lines), summary["events"])
    return lines


class Index:
    """The writer's side: one connection, used from one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _owner_only_file(path)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._setup()
        except IndexDamaged:
            self.conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise IndexDamaged(f"{path}: {exc}") from exc

    def _setup(self) -> None:
        conn = self.conn
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # derived data: a power cut costs a rebuild
        conn.execute("PRAGMA temp_store = MEMORY")
        version = self._meta("schema_version")
        if version is not None and version != str(SCHEMA_VERSION):
            raise IndexOutdated(f"schema version {version}, this mpmd writes {SCHEMA_VERSION}")
        with self.transaction():
            for statement in _DDL:
                conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('last_seq', '0')")
        self.last_seq = int(self._meta("last_seq") or 0)

    def _meta(self, key: str) -> str | None:
        try:
            found = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        return None if found is None else str(found[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def check(self) -> None:
        """IndexDamaged unless SQLite's quick check passes."""
        try:
            result = self.conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise IndexDamaged(str(exc)) from exc
        if result != "ok":
            raise IndexDamaged(f"quick_check: {result}")

    def add(self, lines: Iterable[bytes]) -> int:
        """Index the lines with seq past last_seq, in one transaction; how many."""
        kept: list[tuple[bytes, Made]] = []
        last = self.last_seq
        for line in lines:
            try:
                if line_seq(line) <= last:
                    continue  # indexed already: skip before the costly part
            except ValueError:
                continue
            made = row_of(line)
            if made is None or made.row[0] <= last:
                continue
            kept.append((line, made))
            last = made.row[0]
        if not kept:
            return 0
        rows, blocks = [], []
        for start in range(0, len(kept), BLOCK_LINES):
            chunk = kept[start:start + BLOCK_LINES]
            first = chunk[0][1].row[0]
            blocks.append((first, zlib.compress(b"\n".join(line for line, _ in chunk), 1)))
            rows += [(*made.row, first, pos) for pos, (_, made) in enumerate(chunk)]
        made_all = [made for _, made in kept]
        with self.transaction():
            self.conn.executemany(_INSERT_BLOCK, blocks)
            self.conn.executemany(_INSERT, rows)
            self.conn.executemany(_INSERT_FTS, [(m.row[0], m.text) for m in made_all])
            self.conn.executemany(_UPSERT_SESSION, _session_rows(made_all))
            self._add_usage(made_all)
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (str(last),))
        self.last_seq = last
        return len(kept)

    def _add_usage(self, made: list[Made]) -> None:
        """A batch's responses, cost reports, prompts and models, and the cost of the
        sessions they touched worked out again."""
        conn = self.conn
        usage = [(m.row[0], *m.usage) for m in made if m.usage is not None]
        conn.executemany(_INSERT_USAGE, usage)
        conn.executemany(
            "INSERT OR IGNORE INTO prompts VALUES (?, ?, ?, ?)",
            [(m.prompt_id, m.row[2], m.row[0], m.prompt) for m in made
             if m.prompt_id and m.prompt and m.row[2]])
        conn.executemany("INSERT OR IGNORE INTO session_models VALUES (?, ?)", {
            (m.row[2], model) for m in made if m.row[2]
            for model in (m.model, m.usage[5] if m.usage else None) if model})
        reports = [(*m.report, m.row[2]) for m in made if m.report is not None]
        # In seq order: a later report replaces an earlier one (each is cumulative).
        conn.executemany(
            "UPDATE sessions SET reported_usd = ?, reported_as_of = ? WHERE session_id = ?",
            reports)
        self._reprice({u[1] for u in usage} | {r[2] for r in reports})

    def _reprice(self, session_ids: Iterable[str]) -> None:
        """Sum the sessions' usage rows again and reconcile their cost (the live table's
        rule, mpmd.model.sessions.reconciled_cost)."""
        for session_id in session_ids:
            found = self.conn.execute(
                "SELECT reported_usd, coalesce(reported_as_of, '') FROM sessions "
                "WHERE session_id = ?", (session_id,)).fetchone()
            if found is None:
                continue
            reported, as_of = found
            *sums, estimated, after = self.conn.execute(_SUM_USAGE, (as_of, session_id)).fetchone()
            cost, source = reconciled_cost(reported, after, estimated, sums[0])
            self.conn.execute(
                f"UPDATE sessions SET ({', '.join(USAGE_COLUMNS)}) = "
                f"({', '.join('?' * len(USAGE_COLUMNS))}) WHERE session_id = ?",
                (*sums, None if cost is None else round(cost, 9), source, session_id))

    def delete_before(self, seq: int, batch: int = 5000) -> int:
        """Remove events with a seq below ``seq`` (the journal's retention removed them),
        their blocks, and what the sessions table counted of them. A contentless FTS table
        forgets a row only when given its text again, which is made anew from the line."""
        deleted = 0
        while True:
            seqs = [s for (s,) in self.conn.execute(
                "SELECT seq FROM events WHERE seq < ? ORDER BY seq LIMIT ?", (seq, batch))]
            if not seqs:
                break
            with self.transaction():
                for row_seq, line in zip(seqs, fetch_lines(self.conn, seqs), strict=True):
                    made = row_of(line)
                    self.conn.execute(
                        "INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', ?, ?)",
                        (row_seq, made.text if made is not None else ""))
                self.conn.execute("DELETE FROM events WHERE seq <= ?", (seqs[-1],))
                self.conn.execute("DELETE FROM usage WHERE seq <= ?", (seqs[-1],))
                self.conn.execute("DELETE FROM prompts WHERE seq <= ?", (seqs[-1],))
                # A block goes with the last of its events (the first left may share one).
                self.conn.execute(
                    "DELETE FROM blocks WHERE first_seq < coalesce("
                    "(SELECT block FROM events ORDER BY seq LIMIT 1), 1 << 62)")
            deleted += len(seqs)
        if deleted:
            self._recount_sessions(seq)
        return deleted

    def _recount_sessions(self, seq: int) -> None:
        """Sessions that lost events to retention: gone if all went, recounted otherwise
        (cwd, model, end and first prompt stay as first seen; tokens are summed from the
        responses left, and Claude Code's last report, cumulative, still holds)."""
        with self.transaction():
            self.conn.execute("DELETE FROM sessions WHERE last_seq < ?", (seq,))
            self.conn.execute("DELETE FROM session_models WHERE session_id NOT IN "
                              "(SELECT session_id FROM sessions)")
            shrunk = [sid for (sid,) in self.conn.execute(
                "SELECT session_id FROM sessions WHERE first_seq < ?", (seq,))]
            self.conn.execute(f"""
                UPDATE sessions SET (first_seq, first_ts, events, tool_calls, failures) = (
                    SELECT min(seq), min(ts), count(*), sum(event_type IN {TOOL_CALL_ENDS}),
                           sum(event_type = 'PostToolUseFailure')
                    FROM events WHERE events.session_id = sessions.session_id)
                WHERE first_seq < ?""", (seq,))
            self._reprice(shrunk)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA optimize")
        self.conn.close()


def set_aside(path: Path, why: str, keep: bool = True) -> None:
    """Move a damaged index (and its WAL) out of the way, kept for a post-mortem unless
    ``keep`` is false."""
    log.warning("search index %s is unusable (%s): rebuilding it from the journal", path, why)
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            if keep:
                os.replace(f"{path}{suffix}", f"{path}.damaged{suffix}")
            else:
                os.unlink(f"{path}{suffix}")


def open_index(path: Path) -> Index:
    """The index at ``path``, made anew if it is missing, damaged or of another schema."""
    index = None
    try:
        index = Index(path)
        index.check()
        return index
    except IndexDamaged as exc:
        if index is not None:
            index.conn.close()
        set_aside(path, str(exc), keep=not isinstance(exc, IndexOutdated))
    return Index(path)


def rebuild(path: Path, lines: Iterable[bytes], batch: int = 5000,
            progress: Callable[[int], object] | None = None) -> Index:
    """A new index of ``lines`` (the whole journal), built beside the old one and moved in
    place when complete, so a reader never sees a half-built index."""
    tmp = path.with_name(path.name + ".rebuild")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{tmp}{suffix}")
    index = Index(tmp)
    index.conn.execute("PRAGMA synchronous = OFF")  # a crash mid-rebuild leaves only tmp
    pending: list[bytes] = []
    for line in lines:
        pending.append(line)
        if len(pending) >= batch:
            n = index.add(pending)
            pending.clear()
            if progress is not None:
                progress(n)
    n = index.add(pending)
    if progress is not None:
        progress(n)
    index.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    index.close()
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
    os.replace(tmp, path)
    return Index(path)
