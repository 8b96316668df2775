"""The search index: a SQLite read model of the journal (docs/query.md).

It is derived, never the source of truth: every row comes from a journal line, `mpmd
reindex` rebuilds it from the journal, and a missing, damaged or outdated index file is
rebuilt by itself. Its cursor is `meta.last_seq`, written in the same transaction as the
rows, so after a crash it resumes exactly where its last commit left it.

    events      one row per event: the columns queries filter on, and the journal line
                itself (zlib-compressed) so results need no journal access
    events_fts  FTS5 over the searchable text (summary, prompt, command, paths, errors,
                messages), contentless (the text is not stored twice); rowid = seq
    meta        schema version, last_seq

Writes happen in one thread (mpmd.indexer); readers (the viewer's API, `mpmd query`) open
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
from typing import Any

import msgspec

from mpmd.journal import line_seq

log = logging.getLogger("mpmd.index")

SCHEMA_VERSION = 1
INDEX_FILE_NAME = "index.sqlite3"
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
        line BLOB NOT NULL               -- the journal line, zlib-compressed
    )""",
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
            "summary", "line")
_INSERT = f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_INSERT_FTS = "INSERT INTO events_fts (rowid, text) VALUES (?, ?)"


class IndexDamaged(Exception):
    """The index file cannot be used as it is; it is set aside and rebuilt."""


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


_stored_decoder = msgspec.json.Decoder(_Stored)
_payload_decoder = msgspec.json.Decoder(dict[str, Any])


def iso_to_ms(stamp: str) -> int:
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1000)
    except ValueError:
        return 0


def _payload(ev: _Stored) -> dict[str, Any]:
    try:
        payload = _payload_decoder.decode(ev.payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
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


def row_of(line: bytes) -> tuple[tuple[Any, ...], str] | None:
    """(events row, searchable text) for one journal line; None if it is not an event."""
    try:
        ev = _stored_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    payload = _payload(ev)
    duration = payload.get("duration_ms")
    row = (
        ev.seq, iso_to_ms(ev.timestamp), ev.session_id, ev.event_type, ev.tool_name, ev.risk,
        ev.status, ev.operation, ev.file_path, ev.cwd, ev.agent_id, ev.tool_use_id,
        duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
        ev.summary, zlib.compress(line, 1),
    )
    return row, search_text(ev, payload)


def line_of(blob: bytes) -> bytes:
    return zlib.decompress(blob)


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
    """Journal lines of the events matching ``where`` (from mpmd.query), newest first (or
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
    # Page by seq first, then read the page's lines: sorting seqs is cheap, sorting rows
    # with their line blobs is not.
    sql = (f"SELECT line FROM events WHERE seq IN ({inner} ORDER BY seq {order} LIMIT ?) "
           f"ORDER BY seq {order}")
    args.append(limit)
    return [line_of(blob) for (blob,) in conn.execute(sql, args)]


def pages(conn: sqlite3.Connection, where: str, params: list[object],
          size: int = 5000) -> Iterator[list[bytes]]:
    """Every matching line, oldest first, a page at a time (exports, replays)."""
    after = None
    while page := search(conn, where, params, limit=size, after=after, oldest_first=True):
        yield page
        after = line_seq(page[-1])


def session_lines(conn: sqlite3.Connection, session: str,
                  progress: Callable[[int, int], object] | None = None) -> list[bytes]:
    """Every line of the one session whose id starts with ``session``, oldest first
    (exports, replays); LookupError, saying why, for no such session or several.
    ``progress(read so far, total)`` after each page."""
    from mpmd import query  # the session: field's prefix rules live there

    quoted = '"' + session.replace('"', '""') + '"'  # the whole argument is the id
    try:
        where, params = query.compile(f"session:{quoted}", 0)
    except query.QueryError as exc:
        raise LookupError(f"bad session id: {exc}") from None
    (count, ids), = conn.execute(
        f"SELECT count(*), count(DISTINCT session_id) FROM events WHERE {where}", params)
    if count == 0:
        raise LookupError(f"no session starts with {session!r}")
    if ids > 1:
        raise LookupError(f"{ids} sessions start with {session!r}: give more of the id")
    lines: list[bytes] = []
    for page in pages(conn, where, params):
        lines += page
        if progress is not None:
            progress(len(lines), count)
    return lines


class Index:
    """The writer's side: one connection, used from one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _owner_only_file(path)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._setup()
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
            raise IndexDamaged(f"schema version {version}, this mpmd writes {SCHEMA_VERSION}")
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
        rows, texts = [], []
        last = self.last_seq
        for line in lines:
            try:
                if line_seq(line) <= last:
                    continue  # indexed already: skip before the costly part
            except ValueError:
                continue
            made = row_of(line)
            if made is None or made[0][0] <= last:
                continue
            rows.append(made[0])
            texts.append((made[0][0], made[1]))
            last = made[0][0]
        if not rows:
            return 0
        with self.transaction():
            self.conn.executemany(_INSERT, rows)
            self.conn.executemany(_INSERT_FTS, texts)
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (str(last),))
        self.last_seq = last
        return len(rows)

    def delete_before(self, seq: int, batch: int = 5000) -> int:
        """Remove events with a seq below ``seq`` (the journal's retention removed them). A
        contentless FTS table forgets a row only when given its text again, which is made
        anew from the stored line."""
        deleted = 0
        while True:
            found = self.conn.execute(
                "SELECT seq, line FROM events WHERE seq < ? ORDER BY seq LIMIT ?",
                (seq, batch)).fetchall()
            if not found:
                return deleted
            with self.transaction():
                for row_seq, blob in found:
                    made = row_of(line_of(blob))
                    text = made[1] if made is not None else ""
                    self.conn.execute(
                        "INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', ?, ?)",
                        (row_seq, text))
                self.conn.execute("DELETE FROM events WHERE seq <= ?", (found[-1][0],))
            deleted += len(found)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA optimize")
        self.conn.close()


def set_aside(path: Path, why: str) -> None:
    """Move a damaged index (and its WAL) out of the way, kept for a post-mortem."""
    log.warning("search index %s is unusable (%s): rebuilding it from the journal", path, why)
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{path}.damaged{suffix}")


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
        set_aside(path, str(exc))
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
