"""History through the CLI and the viewer's API: a real daemon, real events, the index."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tests.utils import (
    Daemon,
    fixture_payloads,
    journal_events,
    mpmd_cli,
    send_events,
    status,
    wait_until,
)


def indexed_daemon(home: Path) -> Daemon:
    daemon = Daemon(home).start()
    send_events(home, fixture_payloads() * 3)
    total = 3 * len(fixture_payloads())
    wait_until(lambda: status(home)["index_last_seq"] == total, "everything indexed")
    return daemon


def api(home: Path, route: str) -> tuple[int, dict]:
    info = status(home)
    token = info["viewer_url"].split("#token=")[1]
    request = urllib.request.Request(
        f"http://127.0.0.1:{info['viewer_port']}{route}",
        headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_mpmd_query_finds_what_the_journal_holds(home: Path) -> None:
    daemon = indexed_daemon(home)
    try:
        result = mpmd_cli(home, "query", "tool:Bash", "-type:PreToolUse", "--jsonl",
                          "--limit", "1000")
        assert result.returncode == 0, result.stderr
        found = [json.loads(line)["seq"] for line in result.stdout.splitlines()]
        expected = [e["seq"] for e in journal_events(home)
                    if e.get("tool_name") == "Bash" and e["event_type"] != "PreToolUse"]
        assert found == sorted(expected, reverse=True)  # newest first

        table = mpmd_cli(home, "query", '"npm test"', "--limit", "2")
        assert table.returncode == 0 and len(table.stdout.splitlines()) == 2
        assert all("npm test" in line for line in table.stdout.splitlines())

        bad = mpmd_cli(home, "query", "tool:Bash (risk:high")
        assert bad.returncode == 1
        assert "bad query: unclosed '(' at column 11" in bad.stderr
    finally:
        daemon.__exit__()


def test_api_events_pages_through_everything_once(home: Path) -> None:
    daemon = indexed_daemon(home)
    try:
        seen: list[int] = []
        route = "/api/events?q=&limit=25"
        while True:
            code, page = api(home, route)
            assert code == 200
            seen += [e["seq"] for e in page["events"]]
            if page["next"] is None:
                break
            route = f"/api/events?q=&limit=25&before={page['next']['before']}"
        assert seen == list(range(len(journal_events(home)), 0, -1))

        code, oldest = api(home, "/api/events?q=type:SessionStart&order=asc&limit=2")
        assert code == 200 and [e["seq"] for e in oldest["events"]] == [1, 39]
        code, error = api(home, "/api/events?q=tool:")
        assert code == 400 and "tool:" in error["error"]
        code, error = api(home, "/api/events?limit=many")
        assert code == 400 and "limit" in error["error"]
        code, error = api(home, f"/api/events?before={10**30}")
        assert code == 400 and "before" in error["error"]
    finally:
        daemon.__exit__()


def test_stats_from_the_cli_and_the_api_agree(home: Path) -> None:
    daemon = indexed_daemon(home)
    try:
        cli = mpmd_cli(home, "stats", "--since", "1d", "--json")
        assert cli.returncode == 0, cli.stderr
        from_cli = json.loads(cli.stdout)
        code, from_api = api(home, "/api/stats?since=1d")
        assert code == 200
        for key in ("events", "sessions", "tools", "error_patterns", "projects", "cost",
                    "cost_over_time", "cost_by_model", "cost_by_project", "costliest_prompts",
                    "costliest_sessions"):
            assert from_cli[key] == from_api[key], key
        assert from_cli["cost"]["responses"] == 0  # hooks only: no transcript read
        assert from_cli["costliest_sessions"] == []
        assert from_cli["events"] == 3 * len(fixture_payloads())
        bash = next(t for t in from_cli["tools"] if t["tool"] == "Bash")
        assert bash["calls"] == 6 and bash["failures"] == 3
        bad = mpmd_cli(home, "stats", "--since", "yesterday")
        assert bad.returncode == 1 and "since:" in bad.stderr
    finally:
        daemon.__exit__()


def test_saved_searches_from_the_cli_and_the_api(home: Path) -> None:
    daemon = indexed_daemon(home)
    try:
        listed = mpmd_cli(home, "searches")
        assert "@failures" in listed.stdout and "preset" in listed.stdout
        failures = mpmd_cli(home, "query", "@failures", "--jsonl", "--limit", "1000")
        assert failures.returncode == 0, failures.stderr
        assert {json.loads(x)["event_type"] for x in failures.stdout.splitlines()} == {
            "PostToolUseFailure", "StopFailure"}

        saved = mpmd_cli(home, "searches", "save", "my-bash", "tool:Bash", "-type:PreToolUse")
        assert saved.returncode == 0, saved.stderr
        assert (home / "searches.toml").stat().st_mode & 0o077 == 0
        mine = mpmd_cli(home, "query", "@my-bash", "--jsonl", "--limit", "1000")
        direct = mpmd_cli(home, "query", "tool:Bash", "-type:PreToolUse", "--jsonl",
                          "--limit", "1000")
        assert mine.stdout == direct.stdout and mine.stdout
        code, body = api(home, "/api/searches")
        assert code == 200 and body["searches"]["my-bash"] == "tool:Bash -type:PreToolUse"
        code, page = api(home, "/api/events?q=@my-bash&limit=1000")
        assert code == 200
        assert [e["seq"] for e in page["events"]] == [
            json.loads(x)["seq"] for x in direct.stdout.splitlines()]

        bad = mpmd_cli(home, "searches", "save", "broken", "tool:Bash (")
        assert bad.returncode == 1 and "bad query" in bad.stderr
        unknown = mpmd_cli(home, "query", "@nope")
        assert unknown.returncode == 1 and "no saved search 'nope'" in unknown.stderr
        assert mpmd_cli(home, "searches", "delete", "my-bash").returncode == 0
        assert mpmd_cli(home, "query", "@my-bash").returncode == 1
    finally:
        daemon.__exit__()


def test_export_a_session_in_every_format(home: Path, tmp_path: Path) -> None:
    import html.parser

    daemon = indexed_daemon(home)
    try:
        evil = {**json.loads(fixture_payloads()[2]), "session_id": "e" * 8 + "-other",
                "prompt": "<script>alert(1)</script> | pipes"}
        send_events(home, [json.dumps(evil).encode()])
        wait_until(lambda: status(home)["index_last_seq"] == 3 * len(fixture_payloads()) + 1,
                   "indexed")
        sid = json.loads(fixture_payloads()[0])["session_id"]
        mine = [e for e in journal_events(home) if e.get("session_id") == sid]

        jsonl = mpmd_cli(home, "export", sid[:8], "--format", "jsonl")
        assert jsonl.returncode == 0, jsonl.stderr
        assert [json.loads(x) for x in jsonl.stdout.splitlines()] == mine  # in seq order
        as_json = mpmd_cli(home, "export", sid, "--format", "json")
        assert json.loads(as_json.stdout) == mine

        md = mpmd_cli(home, "export", sid[:8], "--format", "md")
        assert md.stdout.startswith("# Session shop")
        assert md.stdout.count("\n| ") >= len(mine)  # one table row an event
        assert "Exit code 1" in md.stdout and "## Prompts" in md.stdout

        out = tmp_path / "report.html"
        page = mpmd_cli(home, "export", "eeee", "--format", "html", "-o", str(out))
        assert page.returncode == 0, page.stderr
        text = out.read_text()
        assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        html.parser.HTMLParser().feed(text)  # well-formed enough to parse

        assert "no session starts with" in mpmd_cli(home, "export", "0000").stderr
        # The argument is a session id, nothing else: not a query that reaches other sessions.
        widened = mpmd_cli(home, "export", "0000 OR risk:high", "--format", "jsonl")
        assert widened.returncode == 1 and "no session starts with" in widened.stderr
    finally:
        daemon.__exit__()


def test_api_past_sessions_and_one_sessions_timeline(home: Path) -> None:
    payloads = []
    for sid in ("aaaa1111-0000-4000-8000-000000000001", "aaaa2222-0000-4000-8000-000000000002"):
        for payload in fixture_payloads():
            data = json.loads(payload)
            data["session_id"] = sid
            payloads.append(json.dumps(data).encode())
    daemon = Daemon(home).start()
    try:
        send_events(home, payloads)
        wait_until(lambda: status(home)["index_last_seq"] == len(payloads), "indexed")
        events = journal_events(home)
        code, listing = api(home, "/api/history/sessions?since=1d")
        assert code == 200
        by_id = {s["session_id"]: s for s in listing["sessions"]}
        assert set(by_id) == {e["session_id"] for e in events}
        first = by_id["aaaa1111-0000-4000-8000-000000000001"]
        mine = [e for e in events if e["session_id"] == first["session_id"]]
        assert (first["events"], first["first_seq"], first["last_seq"]) == (
            len(mine), mine[0]["seq"], mine[-1]["seq"])
        assert first["end_reason"] == "prompt_input_exit" and first["cwd"] == mine[0]["cwd"]
        assert first["tool_calls"] == sum(
            e["event_type"] in ("PostToolUse", "PostToolUseFailure") for e in mine)
        # nothing read of its transcript: no tokens, no cost known
        assert (first["responses"], first["cost_usd"], first["cost_source"]) == (0, None, None)
        # Most recently active first.
        assert [s["session_id"][:8] for s in listing["sessions"]] == ["aaaa2222", "aaaa1111"]

        seen, route = [], "/api/history/session?id=aaaa1111&limit=10"
        while True:
            code, page = api(home, route)
            assert code == 200 and page["session"] == first
            seen += [e["seq"] for e in page["events"]]
            if page["next"] is None:
                break
            route = f"/api/history/session?id=aaaa1111&limit=10&after={page['next']['after']}"
        assert seen == [e["seq"] for e in mine]

        code, error = api(home, "/api/history/session?id=aaaa")
        assert code == 400 and "several sessions" in error["error"]
        code, error = api(home, "/api/history/session?id=bbbb")
        assert code == 404 and "no session" in error["error"]
        code, error = api(home, "/api/history/sessions?since=soon")
        assert code == 400 and "since:" in error["error"]
        code, empty = api(home, "/api/history/sessions?since=2020-01-01&until=2020-01-02")
        assert code == 200 and empty["sessions"] == []
    finally:
        daemon.__exit__()


def test_a_transcripts_cost_reaches_the_history(home: Path, tmp_path: Path) -> None:
    """The daemon's transcript follower reads the session's transcript (the real CLI's,
    tests/fixtures/transcripts), the index worker indexes what it journals, and the history
    shows the session's tokens and Claude Code's own cost."""
    from tests.test_history_cost import AGENT, FIXTURES, SESSION, cost_states, hook_events

    folder = tmp_path / "projects" / "-home-dev-project"
    (folder / SESSION / "subagents").mkdir(parents=True)
    shutil.copy(FIXTURES / "session.jsonl", folder / f"{SESSION}.jsonl")
    shutil.copy(FIXTURES / "subagent.jsonl", folder / SESSION / "subagents" /
                f"agent-{AGENT}.jsonl")
    hooks = [dict(p, transcript_path=str(folder / f"{SESSION}.jsonl"))
             for _t, _a, p in hook_events()]
    with Daemon(home, MPMD_TRANSCRIPT_ROOTS=str(tmp_path / "projects")):
        send_events(home, [json.dumps(p).encode() for p in hooks])

        def session() -> dict:
            code, page = api(home, f"/api/history/session?id={SESSION[:8]}&limit=1")
            return page["session"] if code == 200 else {}

        wait_until(lambda: session().get("responses") == 6
                   and session().get("cost_usd") == round(cost_states()[-1], 9),
                   "the session's responses and Claude Code's report indexed", timeout=60)
        row = session()
        assert (row["input_tokens"], row["output_tokens"]) == (16_045, 72)
        assert row["cost_source"] == "claude-code"
        code, page = api(home, "/api/stats?since=2026-12-03&until=2026-12-04")
        assert code == 200 and page["cost"]["responses"] == 6
        assert page["costliest_sessions"][0]["session_id"] == SESSION
        assert page["cost_by_model"][0]["model"] == "claude-opus-5-5"
        code, found = api(home, "/api/events?q=cost>0.06%20type:PostToolUseFailure")
        assert code == 200 and [e["session_id"] for e in found["events"]] == [SESSION]
        code, found = api(home, "/api/events?q=cost>0.07")
        assert code == 200 and found["events"] == []
        code, error = api(home, "/api/events?q=cost>lots")
        assert code == 400 and error["error"] == (
            "bad query: cost: wants US dollars like 0.5 or $2, not 'lots' (column 1)")
        shown = mpmd_cli(home, "stats", "--since", "2026-12-03", "--until", "2026-12-04")
        assert "cost $0.0656 in 1 sessions, 6 responses" in shown.stdout, shown.stdout


def test_before_the_index_exists_the_api_says_so(tmp_path: Path) -> None:
    """The first minutes after an upgrade: the worker is still building the index."""
    import pytest

    from mpmd.history import api

    missing = tmp_path / "index.sqlite3"
    events = json.loads(api.events(missing, "q=tool:Bash", tmp_path))
    assert events == {"events": [], "next": None, "indexing": True}
    stats = json.loads(api.stats(missing, "since=1d", tmp_path))
    assert stats["indexing"] and stats["events"] == 0 and stats["tools"] == []
    assert stats["until"] - stats["since"] >= 86_400_000  # the same shape as with an index
    sessions = json.loads(api.history_sessions(missing, "", tmp_path))
    assert sessions == {"sessions": [], "indexing": True}
    with pytest.raises(api.NotFound, match="being built"):
        api.history_session(missing, "id=abc", tmp_path)
    with pytest.raises(api.BadRequest, match="bad query"):
        api.events(missing, "q=tool:", tmp_path)  # the query is checked first
