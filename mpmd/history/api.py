"""The viewer's history routes: search over the index (docs/viewer.md, docs/query.md).

Each call opens its own read-only connection and runs in a worker thread (the caller's
`asyncio.to_thread`), so a slow query never holds up the daemon's loop.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs

import msgspec

from mpmd.errors import BadRequest, NotFound
from mpmd.history import index, query, searches
from mpmd.history import stats as analytics

MAX_LIMIT = 1000


def _int(args: dict[str, list[str]], name: str, default: int | None,
         low: int = 0, high: int = 2**63 - 1) -> int | None:
    values = args.get(name)
    if not values:
        return default
    try:
        value = int(values[0])
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {values[0]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def events(index_path: Path, raw_query: str, config_dir: Path) -> bytes:
    """``/api/events?q=&limit=&before=&after=&order=asc``: matching events as
    {"events": [...], "next": {"before"|"after": seq} | null}."""
    args = parse_qs(raw_query)
    text = args.get("q", [""])[0]
    limit = _int(args, "limit", 100, 1, MAX_LIMIT)
    before = _int(args, "before", None)
    after = _int(args, "after", None)
    oldest_first = args.get("order", ["desc"])[0] == "asc"
    try:
        where, params = query.compile(searches.expand(text, config_dir), int(time.time() * 1000))
    except searches.SearchError as exc:
        raise BadRequest(str(exc)) from None
    except query.QueryError as exc:
        raise BadRequest(f"bad query: {exc}") from None
    if not index_path.exists():
        return b'{"events":[],"next":null,"indexing":true}'
    conn = index.connect_read_only(index_path)
    try:
        lines = index.search(conn, where, params, limit=limit or 100, before=before,
                             after=after, oldest_first=oldest_first)
    finally:
        conn.close()
    nxt = None
    if lines and len(lines) == limit:
        last = msgspec.json.decode(lines[-1], type=_Seq).seq
        nxt = {"after": last} if oldest_first else {"before": last}
    return (b'{"events":[' + b",".join(lines) + b'],"next":' + msgspec.json.encode(nxt) + b"}")


class _Seq(msgspec.Struct):
    seq: int


def saved_searches(_index_path: Path, _raw_query: str, config_dir: Path) -> bytes:
    """``/api/searches``: {"searches": {name: query}, "presets": [names]}."""
    try:
        found = searches.all_searches(config_dir)
    except searches.SearchError as exc:
        raise BadRequest(str(exc)) from None
    return msgspec.json.encode({"searches": found, "presets": sorted(searches.PRESETS)})


def _range(args: dict[str, list[str]], default_since: str) -> tuple[int, int]:
    """[since, until) in ms from ``since=``/``until=``, which take what the query language's
    since:/until: take."""
    now = int(time.time() * 1000)
    try:
        since = query.time_bound("since", args.get("since", [default_since])[0], now)
        until = query.time_bound("until", args["until"][0], now) if "until" in args else now + 1
    except query.QueryError as exc:
        raise BadRequest(str(exc)) from None
    return since, until


def history_sessions(index_path: Path, raw_query: str, _config_dir: Path) -> bytes:
    """``/api/history/sessions?since=7d&until=&limit=200``: summaries of the sessions with
    events in that range, most recently active first."""
    args = parse_qs(raw_query)
    since, until = _range(args, "7d")
    limit = _int(args, "limit", 200, 1, MAX_LIMIT)
    if not index_path.exists():
        return b'{"sessions":[],"indexing":true}'
    conn = index.connect_read_only(index_path)
    try:
        return msgspec.json.encode(
            {"sessions": index.sessions(conn, since, until, limit or 200)})
    finally:
        conn.close()


def history_session(index_path: Path, raw_query: str, _config_dir: Path) -> bytes:
    """``/api/history/session?id=&after=&limit=1000``: one session's summary, its responses'
    tokens and cost split by model, subagent and prompt, and its events oldest first (its
    timeline), paged by ``next.after``."""
    args = parse_qs(raw_query)
    session = args.get("id", [""])[0]
    if not session:
        raise BadRequest("id= is required: a session id or its first characters")
    limit = _int(args, "limit", MAX_LIMIT, 1, MAX_LIMIT) or MAX_LIMIT
    after = _int(args, "after", None)
    if not index_path.exists():
        raise NotFound("the search index is being built: try again in a moment")
    conn = index.connect_read_only(index_path)
    try:
        try:
            summary = index.find_session(conn, session)
        except LookupError as exc:
            raise (NotFound if str(exc).startswith("no session") else BadRequest)(
                str(exc)) from None
        usage = index.session_usage(conn, summary["session_id"])
        lines = index.search(conn, "session_id = ?", [summary["session_id"]], limit=limit,
                             after=after, oldest_first=True)
    finally:
        conn.close()
    nxt = {"after": msgspec.json.decode(lines[-1], type=_Seq).seq} \
        if len(lines) == limit else None
    return (b'{"session":' + msgspec.json.encode(summary) + b',"usage":'
            + msgspec.json.encode(usage) + b',"events":[' + b",".join(lines)
            + b'],"next":' + msgspec.json.encode(nxt) + b"}")


def stats(index_path: Path, raw_query: str, _config_dir: Path) -> bytes:
    """``/api/stats?since=7d&until=``: mpmd.history.stats over that range."""
    since, until = _range(parse_qs(raw_query), "7d")
    if not index_path.exists():  # the answer's shape, empty
        return msgspec.json.encode({
            "since": since, "until": until, "events": 0, "sessions": 0, "bucket_ms": 60_000,
            "over_time": [], "tools": [], "error_patterns": [], "projects": [],
            **analytics.empty_cost(), "indexing": True})
    conn = index.connect_read_only(index_path)
    try:
        return msgspec.json.encode(analytics.compute(conn, since, until))
    finally:
        conn.close()
