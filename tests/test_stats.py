"""Analytics over the index (mpmd.history.stats), checked against counts made from the events."""

from __future__ import annotations

import statistics
from pathlib import Path

import msgspec

from mpmd.history import stats
from mpmd.history.index import Index, connect_read_only
from tests.test_index import make_lines


def test_stats_match_the_events(tmp_path: Path) -> None:
    lines = make_lines(400)  # 1 s apart, from t = 1 s
    events = [msgspec.json.decode(line) for line in lines]
    index = Index(tmp_path / "i.sqlite3")
    index.add(lines)
    index.close()
    conn = connect_read_only(tmp_path / "i.sqlite3")
    result = stats.compute(conn, 0, 10**12)
    assert result["events"] == 400 and result["sessions"] == 1
    assert sum(b["events"] for b in result["over_time"]) == 400

    ends = [e for e in events if e["event_type"] in ("PostToolUse", "PostToolUseFailure")]
    by_tool = {t["tool"]: t for t in result["tools"]}
    for name in {e["tool_name"] for e in ends}:
        mine = [e for e in ends if e["tool_name"] == name]
        failed = sum(e["event_type"] == "PostToolUseFailure" for e in mine)
        assert by_tool[name]["calls"] == len(mine)
        assert by_tool[name]["failures"] == failed
        assert by_tool[name]["success_rate"] == round((len(mine) - failed) / len(mine), 4)
        durations = [e["payload"]["duration_ms"] for e in mine if "duration_ms" in e["payload"]]
        assert by_tool[name]["median_ms"] == (statistics.median(durations) if durations
                                              else None)
    failures = [e for e in events if e["event_type"] in ("PostToolUseFailure", "StopFailure")]
    assert sum(p["count"] for p in result["error_patterns"]) == len(failures)
    assert {p["source"] for p in result["error_patterns"]} == {"Bash", "StopFailure"}
    assert result["projects"] == [{"cwd": "/home/dev/shop", "sessions": 1, "events": 400}]
    # hook events only: no response read off a transcript (tests/test_history_cost.py)
    assert result["cost"] == stats.empty_cost()["cost"]
    assert all(result[key] == [] for key in ("cost_over_time", "cost_by_project",
                                             "cost_by_model", "costliest_prompts",
                                             "costliest_sessions"))

    later = stats.compute(conn, 201_000, 10**12)  # the time range applies to everything
    assert later["events"] == 200
    conn.close()


def test_error_patterns_fold_numbers_and_keep_the_first_line() -> None:
    assert stats.error_pattern("Exit code 1\nlots of output") == "Exit code N"
    assert stats.error_pattern("timeout after 30000 ms") == stats.error_pattern(
        "timeout after 5 ms")
    assert stats.error_pattern("   ") == ""
