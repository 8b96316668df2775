"""Analytics over the search index: what `mpmd stats` prints and `/api/stats` returns.

All of it is SQL over the `events` table for a time range, except error patterns, which
read the failing events' lines (there are few) to group their error texts, and cost, which
is SQL over the `usage` table (one row per API response) and the sessions' reconciled cost.

Cost over a range: a session whose responses all fall in the range counts its reconciled
cost (Claude Code's own report where it made one, docs/transcripts.md); a session partly in
it counts mpmd's price of its responses in the range. Splits by time, model and prompt are
mpmd's price of the responses (a report is per session, not per response), so they add up
to `mpmd_usd`, not always to `cost_usd`.
"""

from __future__ import annotations

import posixpath
import re
import sqlite3
import statistics
from collections import Counter, defaultdict
from typing import Any

import msgspec

from mpmd.history.index import (
    FAILURE_TYPES,
    TOOL_CALL_ENDS,
    USAGE_SUM_KEYS,
    USAGE_SUMS,
    fetch_lines,
    usage_sums,
)

MAX_FAILURES_READ = 20_000  # error patterns look at the newest this many failures
COSTLIEST = 10  # prompts and sessions listed
_TOKENS = "input_tokens + output_tokens + cache_read_tokens + cache_write_tokens"
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
        **cost(conn, since_ms, until_ms, width),
    }


def _usd(value: float) -> float:
    return round(value, 9)


def _tokens(sums: dict[str, Any]) -> int:
    return int(sums["input_tokens"] + sums["output_tokens"] + sums["cache_read_tokens"]
               + sums["cache_write_tokens"])


def _costliest(item: dict[str, Any]) -> tuple[float, int]:
    return item["cost_usd"] or 0.0, _tokens(item)


def project_of(cwd: str) -> str:
    """A folder's last part, as the live sessions table names a project."""
    return posixpath.basename(cwd.rstrip("/")) or cwd


def empty_cost() -> dict[str, Any]:
    """cost()'s keys with nothing in the range."""
    return {"cost": {**usage_sums([0] * len(USAGE_SUM_KEYS)), "cost_usd": 0.0,
                     "mpmd_usd": None, "sessions": 0},
            "cost_over_time": [], "cost_by_project": [], "cost_by_model": [],
            "costliest_prompts": [], "costliest_sessions": []}


def cost(conn: sqlite3.Connection, since_ms: int, until_ms: int,
         width: int) -> dict[str, Any]:
    """Tokens and cost of the API responses in [since, until) (docs/viewer.md, /api/stats)."""
    rng = (since_ms, until_ms)
    in_range = "ts >= ? AND ts < ?"
    out = empty_cost()
    sessions = []
    for row in conn.execute(
            f"""SELECT r.*, s.responses, s.cost_usd, s.cost_source, s.cwd, s.first_prompt
                FROM (SELECT session_id, {USAGE_SUMS} FROM usage WHERE {in_range}
                      GROUP BY session_id) AS r
                JOIN sessions AS s USING (session_id)""", rng):
        sums = usage_sums(row[1:8])
        all_responses, whole_cost, source, cwd, first_prompt = row[8:]
        whole = sums["responses"] == all_responses and whole_cost is not None
        sessions.append({
            "session_id": row[0], "cwd": cwd, "project": project_of(cwd) if cwd else None,
            "first_prompt": first_prompt,
            **sums, "mpmd_usd": sums["cost_usd"],
            "cost_usd": whole_cost if whole else sums["cost_usd"] or 0.0,
            "cost_source": source if whole else "mpmd",
        })
    if not sessions:
        return out
    totals = usage_sums(conn.execute(f"SELECT {USAGE_SUMS} FROM usage WHERE {in_range}",
                                     rng).fetchone())
    out["cost"] = {**totals, "mpmd_usd": totals["cost_usd"],
                   "cost_usd": _usd(sum(s["cost_usd"] for s in sessions)),
                   "sessions": len(sessions)}
    out["cost_over_time"] = [
        {"t": bucket * width, "responses": n, "tokens": tokens,
         "cost_usd": None if usd is None else _usd(usd)}
        for bucket, n, tokens, usd in conn.execute(
            f"""SELECT ts / ? AS bucket, count(*), sum({_TOKENS}), sum(cost_usd) FROM usage
                WHERE {in_range} GROUP BY bucket ORDER BY bucket""", (width, *rng))]
    projects: dict[str, dict[str, Any]] = {}
    for s in sessions:
        if s["cwd"] is None:
            continue
        p = projects.setdefault(s["cwd"], {
            "cwd": s["cwd"], "project": s["project"], "sessions": 0,
            **usage_sums([0] * (len(USAGE_SUM_KEYS) - 1) + [None]),
            "cost_usd": 0.0, "mpmd_usd": None})
        p["sessions"] += 1
        p["cost_usd"] = _usd(p["cost_usd"] + s["cost_usd"])
        if s["mpmd_usd"] is not None:
            p["mpmd_usd"] = _usd((p["mpmd_usd"] or 0.0) + s["mpmd_usd"])
        for key in USAGE_SUM_KEYS[:-1]:
            p[key] += s[key]
    out["cost_by_project"] = sorted(projects.values(), key=_costliest, reverse=True)[:50]
    out["cost_by_model"] = [
        {"model": model, **usage_sums(sums)} for model, *sums in conn.execute(
            f"""SELECT model, {USAGE_SUMS} FROM usage WHERE {in_range} GROUP BY model
                ORDER BY sum(cost_usd) DESC, sum({_TOKENS}) DESC LIMIT 50""", rng)]
    prompts = [
        {"prompt_id": row[0], "session_id": row[1], "prompt": row[-1],
         **usage_sums(row[2:-1])}
        for row in conn.execute(
            f"""SELECT r.*, p.text
                FROM (SELECT prompt_id, session_id, {USAGE_SUMS} FROM usage
                      WHERE {in_range} AND prompt_id IS NOT NULL
                      GROUP BY prompt_id, session_id
                      ORDER BY sum(cost_usd) DESC, sum({_TOKENS}) DESC LIMIT ?) AS r
                LEFT JOIN prompts AS p USING (prompt_id)""", (*rng, COSTLIEST))]
    out["costliest_prompts"] = sorted(prompts, key=_costliest, reverse=True)
    out["costliest_sessions"] = sorted(sessions, key=_costliest, reverse=True)[:COSTLIEST]
    return out
