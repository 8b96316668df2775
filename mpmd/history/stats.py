"""Analytics over the search index: what `mpmd stats` prints and `/api/stats` returns.

All of it is SQL over the `events` table for a time range, except error patterns, which
read the failing events' lines (there are few) to group their error texts.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
from collections import Counter, defaultdict
from typing import Any

import msgspec

from mpmd.history.index import FAILURE_TYPES, TOOL_CALL_ENDS, fetch_lines

MAX_FAILURES_READ = 20_000  # error patterns look at the newest this many failures
_NUMBERS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


class _Failure(msgspec.Struct):
    tool_name: str | None = None
    event_type: str = ""
    payload: dict[str, Any] | None = None


_failure_decoder = msgspec.json.Decoder(_Failure)


def error_pattern(text: str) -> str:
    """An error's shape: its first line, numbers as N, spaces folded, at most 120 chars."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return _SPACES.sub(" ", _NUMBERS.sub("N", first))[:120]


def _bucket_ms(since_ms: int, until_ms: int) -> int:
    """A bucket width that gives at most ~240 points over the range."""
    span = max(until_ms - since_ms, 60_000)
    for width in (60_000, 300_000, 900_000, 3_600_000, 6 * 3_600_000, 86_400_000):
        if span / width <= 240:
            return width
    return 7 * 86_400_000


def compute(conn: sqlite3.Connection, since_ms: int, until_ms: int) -> dict[str, Any]:
    rng = (since_ms, until_ms)
    in_range = "ts >= ? AND ts < ?"
    total, sessions = conn.execute(
        f"SELECT count(*), count(DISTINCT session_id) FROM events WHERE {in_range}",
        rng).fetchone()
    width = _bucket_ms(since_ms, until_ms)
    over_time = [
        {"t": bucket * width, "events": n, "failures": failed}
        for bucket, n, failed in conn.execute(
            f"""SELECT ts / ? AS bucket, count(*),
                       sum(event_type IN {FAILURE_TYPES})
                FROM events WHERE {in_range} GROUP BY bucket ORDER BY bucket""",
            (width, *rng))
    ]
    durations: dict[str, list[int]] = defaultdict(list)
    calls: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for tool, kind, duration in conn.execute(
            f"""SELECT tool_name, event_type, duration_ms FROM events
                WHERE event_type IN {TOOL_CALL_ENDS} AND {in_range}""", rng):
        name = tool or "?"
        calls[name] += 1
        if kind == "PostToolUseFailure":
            failures[name] += 1
        if duration is not None:
            durations[name].append(duration)
    tools = [
        {"tool": name, "calls": n, "failures": failures[name],
         "success_rate": round((n - failures[name]) / n, 4),
         "median_ms": statistics.median(durations[name]) if durations[name] else None}
        for name, n in calls.most_common()
    ]
    patterns: Counter[tuple[str, str]] = Counter()
    failing = [seq for (seq,) in conn.execute(
        f"""SELECT seq FROM events WHERE event_type IN {FAILURE_TYPES}
            AND {in_range} ORDER BY seq DESC LIMIT ?""", (*rng, MAX_FAILURES_READ))]
    for line in fetch_lines(conn, failing):
        try:
            failure = _failure_decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            continue
        payload = failure.payload or {}
        text = payload.get("error") or payload.get("error_details") or ""
        patterns[(failure.tool_name or failure.event_type, error_pattern(str(text)))] += 1
    projects = [
        {"cwd": cwd, "sessions": n_sessions, "events": n_events}
        for cwd, n_sessions, n_events in conn.execute(
            f"""SELECT cwd, count(DISTINCT session_id), count(*) FROM events
                WHERE {in_range} AND cwd IS NOT NULL GROUP BY cwd
                ORDER BY count(DISTINCT session_id) DESC, cwd LIMIT 50""", rng)
    ]
    return {
        "since": since_ms, "until": until_ms, "events": total, "sessions": sessions,
        "bucket_ms": width, "over_time": over_time, "tools": tools,
        "error_patterns": [{"source": src, "pattern": pat, "count": n}
                           for (src, pat), n in patterns.most_common(20)],
        "projects": projects,
    }
