"""Tokens and cost in the history (mpmd.history: the index, stats, the query language, the
API, exports, `mpmd stats`), on the events the transcript follower makes of the transcripts
the real CLI wrote (tests/fixtures/transcripts) beside a session's hook events: per session
the sum of its responses' tokens and a cost reconciled with Claude Code's own report as the
live sessions table does (docs/transcripts.md)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mpmd.history import api, export, index, stats
from mpmd.history.index import Index, connect_read_only, open_index
from mpmd.history.query import QueryError, compile, parse
from mpmd.model import record
from mpmd.model.events import EventFrame
from mpmd.model.sessions import EventView, Sessions
from mpmd.storage.journal import Journal
from mpmd.transcripts import entries
from mpmd.transcripts.prices import Price, PriceTable, cost
from tests.test_index import WorkerProcess
from tests.utils import mpmd_cli

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts"
SESSION = "00e5ca8a-84c8-4f59-ab6b-27c11f021403"  # the fixtures'
AGENT = "abc5a592f7c7fcd63"
FIRST_PROMPT, SECOND_PROMPT = ("c4dba30d-1af9-46d6-8396-9e0b26ad470b",
                               "89d3cb17-b08f-4421-9d26-43d322b16a44")
CWD = "/home/dev/project"
SHIPPED = PriceTable(None)
# A config.toml price above the shipped one: mpmd's price of a response is no longer what
# Claude Code reports, so which of the two a figure holds shows.
DEARER = PriceTable({"claude-opus-5-5": Price(input=5.0, output=25.0, cache_write_5m=6.25,
                                              cache_write_1h=10.0, cache_read=0.5)})
UNPRICED = "mystery-model-1"  # no price, shipped or configured
DAY_MS = 86_400_000


def _fixture(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line]


def fixture_responses() -> dict[str, dict]:
    """Every API response of both transcripts by message id, read from the JSON itself."""
    found: dict[str, dict] = {}
    for name in ("session.jsonl", "subagent.jsonl"):
        for e in _fixture(name):
            message = e.get("message") or {}
            if e.get("type") == "assistant" and message.get("usage"):
                found.setdefault(message["id"], dict(message["usage"], model=message["model"],
                                                     agent_id=e.get("agentId")))
    return found


def prompt_id(fixture_id: str, session_id: str) -> str:
    """A prompt's id in another session made of the fixtures (ids are unique to a prompt)."""
    return fixture_id if session_id == SESSION else session_id[:8] + fixture_id[8:]


def cost_states() -> list[float]:
    return [e["totalCostUSD"] for e in _fixture("session.jsonl") if e["type"] == "cost-state"]


def transcript_events(session_id: str = SESSION, prices: PriceTable = SHIPPED,
                      models: dict[str | None, str] | None = None,
                      reports: int = 2) -> list[tuple[str, str | None, dict]]:
    """(time, agent_id, payload) of the ModelUsage and CostReport events the transcript
    follower makes of the fixture transcripts (its shapes, mpmd.transcripts.follower):
    one per message id, priced by ``prices``; the first ``reports`` cost-states. ``models``
    replaces the model of the session's (None) or the subagent's responses."""
    out = []
    for name, agent in (("session.jsonl", None), ("subagent.jsonl", AGENT)):
        seen: set[str] = set()
        answered, last_at, written = None, "", 0
        for line in (FIXTURES / name).read_bytes().splitlines():
            for fact in entries.parse(line):
                last_at = max(last_at, getattr(fact, "timestamp", ""))
                if isinstance(fact, entries.Prompt | entries.ToolResult) and \
                        fact.prompt_id and fact.agent_id is None:
                    answered = prompt_id(fact.prompt_id, session_id)
                if isinstance(fact, entries.Usage) and fact.message_id not in seen:
                    seen.add(fact.message_id or "")
                    model = (models or {}).get(agent, fact.model or "")
                    price = prices.price(model)
                    usd = None if price is None else round(cost(
                        price, fact.input_tokens, fact.output_tokens,
                        fact.cache_read_input_tokens,
                        fact.cache_creation_input_tokens - fact.cache_creation_1h,
                        fact.cache_creation_1h), 9)
                    out.append((fact.timestamp, fact.agent_id or agent, {
                        "hook_event_name": "ModelUsage", "session_id": session_id,
                        "agent_id": fact.agent_id or agent, "prompt_id": answered,
                        "message_id": fact.message_id, "model": model,
                        "input_tokens": fact.input_tokens, "output_tokens": fact.output_tokens,
                        "cache_read_input_tokens": fact.cache_read_input_tokens,
                        "cache_creation_input_tokens": fact.cache_creation_input_tokens,
                        "cache_creation_5m_tokens": fact.cache_creation_5m,
                        "cache_creation_1h_tokens": fact.cache_creation_1h,
                        "cost_usd": usd, "at": fact.timestamp}))
                if isinstance(fact, entries.CostState) and written < reports:
                    written += 1
                    out.append((last_at, None, {
                        "hook_event_name": "CostReport", "session_id": session_id,
                        "total_cost_usd": fact.total_cost_usd,
                        "model_usage": {m: msgspec.structs.asdict(u)
                                        for m, u in fact.model_usage.items()},
                        "lines_added": fact.lines_added, "lines_removed": fact.lines_removed,
                        "duration_ms": fact.total_duration_ms,
                        "api_duration_ms": fact.api_duration_ms,
                        "has_unknown_model_cost": fact.has_unknown_model_cost,
                        "as_of": last_at}))
    return out


def hook_events(session_id: str = SESSION, cwd: str = CWD,
                model: str = "claude-opus-5-5") -> list[tuple[str, str | None, dict]]:
    """(time, agent_id, payload) of the hook events of the fixtures' session: two prompts,
    two Bash calls (one failing) and a subagent's, as Claude Code 2.1.328 sends them."""
    common = {"session_id": session_id, "cwd": cwd, "permission_mode": "default",
              "transcript_path": f"/home/dev/.claude/projects/-home-dev-project/"
                                 f"{session_id}.jsonl"}

    def at(second: str, event: str, agent: str | None = None, **fields: Any) -> tuple:
        payload = {**common, "hook_event_name": event, **fields}
        if agent:
            payload["agent_id"], payload["agent_type"] = agent, "general-purpose"
        return (f"2026-12-03T17:27:{second}Z", agent, payload)

    bash = {"tool_name": "Bash"}
    return [
        at("22.700", "SessionStart", source="startup", model=model),
        at("22.866", "UserPromptSubmit", prompt="do things",
           prompt_id=prompt_id(FIRST_PROMPT, session_id)),
        at("22.983", "PreToolUse", **bash, tool_use_id="toolu_d92e",
           tool_input={"command": "echo hi"}),
        at("23.025", "PreToolUse", **bash, tool_use_id="toolu_963f",
           tool_input={"command": "exit 3"}),
        at("23.084", "PostToolUse", **bash, tool_use_id="toolu_d92e",
           tool_input={"command": "echo hi"}, tool_response={"stdout": "hi"}, duration_ms=60),
        at("23.129", "PostToolUseFailure", **bash, tool_use_id="toolu_963f",
           tool_input={"command": "exit 3"}, error="Exit code 3", duration_ms=90),
        at("23.178", "SubagentStart", AGENT),
        at("23.248", "PreToolUse", AGENT, **bash, tool_use_id="toolu_146f",
           tool_input={"command": "ls"}),
        at("23.297", "PostToolUse", AGENT, **bash, tool_use_id="toolu_146f",
           tool_input={"command": "ls"}, tool_response={"stdout": ""}, duration_ms=40),
        at("23.400", "SubagentStop", AGENT),
        at("23.560", "Stop"),
        at("24.200", "UserPromptSubmit", prompt="read a file",
           prompt_id=prompt_id(SECOND_PROMPT, session_id)),
        at("24.400", "Stop"),
        at("24.700", "SessionEnd", reason="other"),
    ]


def journal(*sessions: list[tuple[str, str | None, dict]]) -> list[bytes]:
    """Journal lines of these events: each session's hook events in time order, its
    transcript's events after them (the follower reads behind the hooks)."""
    lines = []
    for events in sessions:
        for stamp, _agent, payload in events:
            seq = len(lines) + 1
            data = json.dumps(payload).encode()
            ts_ns = int(index.iso_to_ms(stamp) * 1_000_000)
            frame = EventFrame(version=1, id=seq.to_bytes(16, "big"), ts_ns=ts_ns,
                               payload=data, original_size=len(data))
            source = "transcript" if payload["hook_event_name"] in (
                "ModelUsage", "CostReport") else "hook"
            lines.append(record.build(seq, frame, ts_ns + 5_000_000, source))
    return lines


def indexed(path: Path, lines: list[bytes]) -> sqlite3.Connection:
    made = Index(path)
    made.add(lines)
    made.close()
    return connect_read_only(path)


def session_row(conn: sqlite3.Connection, session_id: str) -> dict[str, Any]:
    return index.find_session(conn, session_id)


def live_row(lines: list[bytes], session_id: str) -> Any:
    """The live sessions table's row of the session, folded from the same lines."""
    table = Sessions()
    for line in lines:
        table.apply(msgspec.json.decode(line, type=EventView))
    return table.get(session_id)


def prices_of(events: list[tuple[str, str | None, dict]]) -> list[Any]:
    """mpmd's price of each response (None: no price)."""
    return [p["cost_usd"] for _t, _a, p in events if p["hook_event_name"] == "ModelUsage"]


TOKEN_KINDS = {"input_tokens": "input_tokens", "output_tokens": "output_tokens",
               "cache_read_tokens": "cache_read_input_tokens",
               "cache_write_tokens": "cache_creation_input_tokens"}


# --- the index: a session's tokens and reconciled cost ----------------------------------

def test_tokens_are_the_responses_and_cost_is_claude_codes_last_report(tmp_path: Path) -> None:
    usage = transcript_events(prices=DEARER)
    lines = journal(hook_events() + usage)
    conn = indexed(tmp_path / "i.sqlite3", lines)
    row = session_row(conn, SESSION)
    responses = fixture_responses()
    assert row["responses"] == len(responses) == 6
    for column, key in TOKEN_KINDS.items():
        assert row[column] == sum(u[key] for u in responses.values()), column
    assert row["input_tokens"] == 16_045 and row["output_tokens"] == 72  # as Claude Code said
    # The last report is cumulative and covers every response: it is the cost, not added to
    # mpmd's price of the responses (which differs here: a dearer configured price).
    assert row["cost_usd"] == round(cost_states()[-1], 9) == 0.06562
    assert row["cost_source"] == "claude-code" and row["unpriced_responses"] == 0
    assert sum(prices_of(usage)) == pytest.approx(0.082025)
    # the hook events' own summary is as it was
    assert (row["events"], row["tool_calls"], row["failures"]) == (len(lines), 3, 1)
    assert row["first_prompt"] == "do things" and row["model"] == "claude-opus-5-5"
    # the live table's rule, folded from the same lines
    live = live_row(lines, SESSION)
    assert (live.cost_usd, live.cost_source) == (pytest.approx(row["cost_usd"]), "claude-code")
    assert (live.input_tokens, live.output_tokens) == (row["input_tokens"], row["output_tokens"])


def test_responses_after_the_last_report_add_mpmds_price(tmp_path: Path) -> None:
    usage = transcript_events(prices=DEARER, reports=1)  # the session's first run reported
    conn = indexed(tmp_path / "i.sqlite3", journal(hook_events() + usage))
    row = session_row(conn, SESSION)
    after = [p["cost_usd"] for _t, _a, p in usage if p.get("message_id") ==
             "msg_fae6360111144e86b8d0224b"]  # the second prompt's answer
    assert after == [pytest.approx((3006 * 5 + 12 * 25) / 1e6)]
    assert row["cost_usd"] == pytest.approx(cost_states()[0] + after[0], abs=1e-9)
    assert row["cost_source"] == "claude-code" and row["responses"] == 6


def test_without_a_report_the_responses_are_priced_by_mpmd(tmp_path: Path) -> None:
    usage = transcript_events(prices=DEARER, reports=0)
    conn = indexed(tmp_path / "i.sqlite3", journal(hook_events() + usage))
    row = session_row(conn, SESSION)
    assert row["cost_usd"] == pytest.approx(sum(prices_of(usage)), abs=1e-9)
    assert row["cost_source"] == "mpmd"


def test_an_unpriced_model_has_tokens_and_no_guessed_cost(tmp_path: Path) -> None:
    usage = transcript_events(models={None: UNPRICED, AGENT: UNPRICED}, reports=0)
    assert set(prices_of(usage)) == {None}
    lines = journal(hook_events() + usage)
    conn = indexed(tmp_path / "i.sqlite3", lines)
    row = session_row(conn, SESSION)
    assert (row["input_tokens"], row["output_tokens"]) == (16_045, 72)
    assert row["unpriced_responses"] == 6
    assert (row["cost_usd"], row["cost_source"]) == (0.0, "mpmd")  # as the live table
    live = live_row(lines, SESSION)
    assert (live.cost_usd, live.unpriced_responses) == (0.0, 6)
    split = index.session_usage(conn, SESSION)
    assert split["models"] == [{"model": UNPRICED, "responses": 6, "input_tokens": 16_045,
                                "output_tokens": 72, "cache_read_tokens": 0,
                                "cache_write_tokens": 0, "unpriced_responses": 6,
                                "cost_usd": None}]


def test_a_session_of_two_models_splits_by_model_prompt_and_subagent(tmp_path: Path) -> None:
    usage = transcript_events(models={AGENT: "claude-sonnet-5"})  # the subagent on Sonnet
    conn = indexed(tmp_path / "i.sqlite3", journal(hook_events() + usage))
    row = session_row(conn, SESSION)
    split = index.session_usage(conn, SESSION)
    responses = fixture_responses()
    for key, column in (("models", "model"), ("agents", "agent_id"), ("prompts", "prompt_id")):
        parts = split[key]
        for kind in (*TOKEN_KINDS, "responses", "unpriced_responses"):
            assert sum(p[kind] for p in parts) == row[kind], (key, kind)
        assert sum(p["cost_usd"] for p in parts) == pytest.approx(
            sum(prices_of(usage)))
        assert len({p[column] for p in parts}) == len(parts)
    sub = [u for u in responses.values() if u["agent_id"] == AGENT]
    by_agent = {a["agent_id"]: a for a in split["agents"]}
    assert by_agent.keys() == {None, AGENT}
    assert by_agent[AGENT]["responses"] == len(sub) == 2
    assert by_agent[AGENT]["input_tokens"] == sum(u["input_tokens"] for u in sub)
    by_model = {m["model"]: m for m in split["models"]}
    assert by_model["claude-sonnet-5"]["cost_usd"] == pytest.approx(
        sum(u["input_tokens"] * 2 + u["output_tokens"] * 10 for u in sub) / 1e6)
    assert by_model["claude-opus-5-5"]["responses"] == 4
    by_prompt = {p["prompt_id"]: p for p in split["prompts"]}
    # the subagent's responses answer no prompt of their own (the follower gives them none)
    assert by_prompt.keys() == {FIRST_PROMPT, SECOND_PROMPT, None}
    assert (by_prompt[FIRST_PROMPT]["prompt"], by_prompt[SECOND_PROMPT]["prompt"]) == (
        "do things", "read a file")
    assert by_prompt[SECOND_PROMPT]["input_tokens"] == 3006
    assert split["prompts"][0]["prompt_id"] == FIRST_PROMPT  # most costly first


@pytest.mark.parametrize("sizes", [(10_000,), (1, 3, 7, 2, 11, 5, 30)])
def test_batches_and_order_do_not_change_the_figures(tmp_path: Path,
                                                     sizes: tuple[int, ...]) -> None:
    """However the worker's batches cut the journal, and whether the follower's events
    come after the hooks' or among them, the figures are the same."""
    usage = transcript_events(prices=DEARER, reports=1)
    behind = journal(hook_events() + usage)
    among = journal(sorted(hook_events() + usage, key=lambda e: e[0]))
    figures = []
    for n, lines in enumerate((behind, among)):
        made = Index(tmp_path / f"{n}.sqlite3")
        start = 0
        for size in sizes:
            made.add(lines[start:start + size])
            start += size
        made.close()
        conn = connect_read_only(tmp_path / f"{n}.sqlite3")
        row = session_row(conn, SESSION)
        figures.append({k: row[k] for k in index.USAGE_COLUMNS})
        conn.close()
    assert figures[0] == figures[1]
    assert figures[0]["cost_source"] == "claude-code" and figures[0]["responses"] == 6


def test_retention_recounts_tokens_and_keeps_the_report(tmp_path: Path) -> None:
    usage = transcript_events(prices=DEARER)
    lines = journal(hook_events() + usage)
    first_usage = next(msgspec.json.decode(x)["seq"] for x in lines
                       if b'"ModelUsage"' in x)
    made = Index(tmp_path / "i.sqlite3")
    made.add(lines)
    made.delete_before(first_usage + 1)  # the first response (and the hooks before it) go
    made.close()
    conn = connect_read_only(tmp_path / "i.sqlite3")
    row = session_row(conn, SESSION)
    assert row["responses"] == 5 and row["input_tokens"] == 16_045 - 2563
    assert row["cost_usd"] == 0.06562  # the report is cumulative: it still holds
    assert conn.execute("SELECT count(*) FROM usage").fetchone()[0] == 5
    made = Index(tmp_path / "i.sqlite3")
    made.delete_before(len(lines) + 1)
    made.close()
    assert conn.execute("SELECT count(*) FROM session_models").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM prompts").fetchone()[0] == 0


# --- the query language -------------------------------------------------------------

SESSIONS = {  # four sessions of the same work, differently paid for
    "reported": "aaaa0000-0000-4000-8000-00000000000a",  # Claude Code's report: 0.06562
    "dearer": "bbbb0000-0000-4000-8000-00000000000b",  # no report, mpmd's price: 0.082025
    "unpriced": "cccc0000-0000-4000-8000-00000000000c",  # a model with no price: 0, tokens
    "hooks": "dddd0000-0000-4000-8000-00000000000d",  # no transcript read: no cost known
}


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[sqlite3.Connection, list[bytes]]]:
    s = SESSIONS
    lines = journal(
        hook_events(s["reported"]) + transcript_events(s["reported"]),
        hook_events(s["dearer"], cwd="/home/dev/shop")
        + transcript_events(s["dearer"], prices=DEARER, reports=0),
        hook_events(s["unpriced"], cwd="/home/dev/shop", model=UNPRICED)
        + transcript_events(s["unpriced"], models={None: UNPRICED, AGENT: UNPRICED},
                            reports=0),
        hook_events(s["hooks"], model="claude-sonnet-5"),
        [("2026-12-03T17:28:00.000Z", None, {"hook_event_name": "Notification",
                                             "message": "no session here"})],
    )
    conn = indexed(tmp_path_factory.mktemp("four") / "i.sqlite3", lines)
    yield conn, lines
    conn.close()


def sessions_matched(conn: sqlite3.Connection, text: str) -> set[str | None]:
    """The sessions (by name) whose events the query matches; every event of a matched
    session is matched."""
    where, params = compile(text, 0)
    found = [row for row in conn.execute(
        f"SELECT session_id, count(*) FROM events WHERE {where} GROUP BY session_id", params)]
    names = {v: k for k, v in SESSIONS.items()}
    totals = dict(conn.execute("SELECT session_id, count(*) FROM events GROUP BY session_id"))
    for sid, n in found:
        assert n == totals[sid], (text, sid)
    return {names.get(sid) for sid, _n in found}


@pytest.mark.parametrize(("text", "matched"), [
    ("cost>0.06", {"reported", "dearer"}),
    ("cost>0.07", {"dearer"}),
    ("cost>=0.06562", {"reported", "dearer"}),
    ("cost=0.06562", {"reported"}),  # stored to 9 places: the report as written
    ("cost<=$0.06562", {"reported", "unpriced"}),
    ("cost<0.01", {"unpriced"}),
    ("cost=0", {"unpriced"}),
    ("COST>.5", set()),
    ("-cost>0.07", {"reported", "unpriced", "hooks", None}),  # no cost known: not over
    ("tokens>16000", {"reported", "dearer", "unpriced"}),
    ("tokens=16117", {"reported", "dearer", "unpriced"}),  # 16,045 in + 72 out
    ("tokens>=17k", set()),
    ("tokens<1m", {"reported", "dearer", "unpriced"}),
    ("model:opus", {"reported", "dearer"}),
    ("model:OPUS-5", {"reported", "dearer"}),
    ("model:claude-*-5", {"reported", "dearer", "hooks"}),  # a glob over the whole id
    ("model:sonnet", {"hooks"}),  # SessionStart's model, no response read
    ("model:mystery", {"unpriced"}),
    ("-model:claude*", {"unpriced", None}),
    ("model:opus cost<0.07", {"reported"}),
    ("model:opus OR cost=0", {"reported", "dearer", "unpriced"}),
])
def test_cost_tokens_and_model_select_sessions(four: tuple[sqlite3.Connection, list[bytes]],
                                               text: str, matched: set[str | None]) -> None:
    conn, _lines = four
    assert sessions_matched(conn, text) == matched


def test_comparisons_combine_with_the_rest_of_the_language(
        four: tuple[sqlite3.Connection, list[bytes]]) -> None:
    conn, _lines = four
    where, params = compile("cost>0.07 tool:Bash type:PostToolUseFailure", 0)
    rows = conn.execute(f"SELECT session_id, event_type FROM events WHERE {where}",
                        params).fetchall()
    assert rows == [(SESSIONS["dearer"], "PostToolUseFailure")]
    where, params = compile('"cost>0.07"', 0)  # quoted: text, as before
    assert conn.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchone()[0] == 0


@pytest.mark.parametrize(("text", "message", "position", "token"), [
    ("cost>abc", "cost: wants US dollars like 0.5 or $2, not 'abc' (column 1)", 0,
     "cost>abc"),
    ("tool:Bash cost>1,5", "cost: wants US dollars like 0.5 or $2, not '1,5' (column 11)", 10,
     "cost>1,5"),
    ("cost>-1", "cost: wants US dollars like 0.5 or $2, not '-1' (column 1)", 0, "cost>-1"),
    ("cost=>1", "cost: wants US dollars like 0.5 or $2, not '>1' (column 1)", 0, "cost=>1"),
    ("cost>1e3", "cost: wants US dollars like 0.5 or $2, not '1e3' (column 1)", 0, "cost>1e3"),
    ("a cost>", "cost: needs a number after > (column 3)", 2, "cost>"),
    ("tokens>1.5", "tokens: wants a whole number like 5000 or 100k, not '1.5' (column 1)", 0,
     "tokens>1.5"),
    ("Tokens<=10g", "tokens: wants a whole number like 5000 or 100k, not '10g' (column 1)", 0,
     "Tokens<=10g"),
    ("cost:0.5", "cost: wants a comparison like cost>0.5, not 'cost:0.5' (column 1)", 0,
     "cost:0.5"),
    ("tokens:", "tokens: wants a comparison like tokens>5000, not 'tokens:' (column 1)", 0,
     "tokens:"),
    ("model:", "model: needs a value (column 1)", 0, "model:"),
    ("modle:opus", "unknown field 'modle' at column 1: did you mean 'model'?", 0,
     "modle:opus"),
])
def test_bad_numbers_give_the_languages_error(text: str, message: str, position: int,
                                              token: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(text)
    assert str(caught.value).startswith(message)
    assert (caught.value.position, caught.value.token) == (position, token)


# --- stats, the API, exports, the CLI --------------------------------------------------

def test_stats_count_tokens_and_cost_over_the_range(
        four: tuple[sqlite3.Connection, list[bytes]]) -> None:
    conn, _lines = four
    everything = stats.compute(conn, 0, 2**62)
    for key in ("events", "sessions", "bucket_ms", "over_time", "tools", "error_patterns",
                "projects"):  # what there was stays
        assert key in everything
    total = everything["cost"]
    assert total["responses"] == 18 and total["sessions"] == 3
    assert (total["input_tokens"], total["output_tokens"]) == (3 * 16_045, 3 * 72)
    assert total["unpriced_responses"] == 6
    dearer = round(sum(prices_of(transcript_events(prices=DEARER, reports=0))), 9)
    shipped = round(sum(prices_of(transcript_events(reports=0))), 9)
    # whole sessions: their reconciled cost; the splits: mpmd's price of the responses
    assert total["cost_usd"] == pytest.approx(0.06562 + dearer + 0.0)
    assert total["mpmd_usd"] == pytest.approx(shipped + dearer)
    assert sum(b["responses"] for b in everything["cost_over_time"]) == 18
    assert sum(b["cost_usd"] or 0 for b in everything["cost_over_time"]) == pytest.approx(
        total["mpmd_usd"])
    assert sum(b["tokens"] for b in everything["cost_over_time"]) == 3 * (16_045 + 72)
    assert all(b["t"] % everything["bucket_ms"] == 0 for b in everything["cost_over_time"])
    models = {m["model"]: m for m in everything["cost_by_model"]}
    assert models.keys() == {"claude-opus-5-5", UNPRICED}
    assert (models[UNPRICED]["cost_usd"], models[UNPRICED]["unpriced_responses"]) == (None, 6)
    assert models["claude-opus-5-5"]["cost_usd"] == pytest.approx(shipped + dearer)
    assert everything["cost_by_model"][0]["model"] == "claude-opus-5-5"
    projects = {p["cwd"]: p for p in everything["cost_by_project"]}
    assert projects[CWD]["project"] == "project" and projects[CWD]["sessions"] == 1
    assert projects["/home/dev/shop"]["sessions"] == 2
    assert projects["/home/dev/shop"]["cost_usd"] == pytest.approx(dearer)
    assert projects["/home/dev/shop"]["responses"] == 12
    top = everything["costliest_sessions"]
    assert [s["session_id"] for s in top] == [SESSIONS["dearer"], SESSIONS["reported"],
                                              SESSIONS["unpriced"]]
    assert [s["cost_source"] for s in top] == ["mpmd", "claude-code", "mpmd"]
    assert top[1]["cost_usd"] == 0.06562 and top[1]["first_prompt"] == "do things"
    prompts = everything["costliest_prompts"]
    assert prompts[0] == {
        "prompt_id": prompt_id(FIRST_PROMPT, SESSIONS["dearer"]),
        "session_id": SESSIONS["dearer"], "prompt": "do things", "responses": 3,
        "input_tokens": 2563 + 2697 + 2969, "output_tokens": 36, "cache_read_tokens": 0,
        "cache_write_tokens": 0, "unpriced_responses": 0,
        "cost_usd": round(((2563 + 2697 + 2969) * 5 + 36 * 25) / 1e6, 9)}
    assert {p["session_id"] for p in prompts} == set(SESSIONS.values()) - {SESSIONS["hooks"]}

    # A range that cuts a session: mpmd's price of its responses in the range only.
    cut = index.iso_to_ms("2026-12-03T17:27:24.000Z")
    late = stats.compute(conn, cut, 2**62)
    assert late["cost"]["responses"] == 3  # each session's answer to its second prompt
    assert {s["cost_source"] for s in late["costliest_sessions"]} == {"mpmd"}
    reported = next(s for s in late["costliest_sessions"]
                    if s["session_id"] == SESSIONS["reported"])
    assert reported["cost_usd"] == pytest.approx((3006 * 4 + 12 * 20) / 1e6)
    assert [(p["session_id"], p["prompt"]) for p in late["costliest_prompts"]] == [
        (SESSIONS[name], "read a file") for name in ("dearer", "reported", "unpriced")]

    nothing = stats.compute(conn, 0, 1000)
    assert nothing["cost"]["responses"] == 0 and nothing["cost"]["cost_usd"] == 0.0
    assert nothing["costliest_sessions"] == [] and nothing["cost_by_model"] == []


def test_the_api_gives_sessions_their_cost_and_one_session_its_splits(
        tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    indexed(path, journal(hook_events() + transcript_events(reports=1))).close()
    listing = json.loads(api.history_sessions(path, "since=2026-12-01&until=2026-12-04",
                                              tmp_path))
    [row] = listing["sessions"]
    assert row["session_id"] == SESSION and row["responses"] == 6
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"],
            row["cache_write_tokens"]) == (16_045, 72, 0, 0)
    assert row["cost_source"] == "claude-code" and row["unpriced_responses"] == 0
    assert row["cost_usd"] == pytest.approx(0.06562)  # the first run's report + the answer after
    one = json.loads(api.history_session(path, f"id={SESSION[:8]}", tmp_path))
    assert one["session"] == row
    assert [m["model"] for m in one["usage"]["models"]] == ["claude-opus-5-5"]
    assert {a["agent_id"] for a in one["usage"]["agents"]} == {None, AGENT}
    answer = json.loads(api.stats(path, "since=2026-12-01&until=2026-12-04", tmp_path))
    assert answer["cost"]["responses"] == 6 and answer["costliest_sessions"][0]["session_id"] \
        == SESSION
    missing = json.loads(api.stats(tmp_path / "none.sqlite3", "since=1d", tmp_path))
    assert set(answer) == set(missing) - {"indexing"}  # the same shape before the index
    assert missing["cost"] == {
        "responses": 0, "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0,
        "cache_write_tokens": 0, "unpriced_responses": 0, "cost_usd": 0.0, "mpmd_usd": None,
        "sessions": 0}
    assert missing["cost"].keys() == answer["cost"].keys()


def test_the_export_report_has_tokens_and_cost_per_model() -> None:
    lines = journal(hook_events() + transcript_events(models={AGENT: "claude-sonnet-5"}))
    md = export.render(lines, "md").decode()
    assert ("- tokens and cost: 16,045 in, 72 out, 0 cache read, 0 cache write tokens in 6 "
            "responses; cost $0.0656 (Claude Code's own report)") in md
    assert "| claude-opus-5-5 | 4 | 11,235 | 48 | 0 | 0 | $0.0459 |" in md
    assert "| claude-sonnet-5 | 2 | 4,810 | 24 | 0 | 0 | $0.0099 |" in md
    page = export.render(lines, "html").decode()
    assert "tokens and cost: 16,045 in" in page and "<td>claude-sonnet-5<td>2<td>4,810" in page

    unpriced = export.render(journal(hook_events() + transcript_events(
        models={None: UNPRICED, AGENT: UNPRICED}, reports=0)), "md").decode()
    assert "cost $0.0000 (mpmd's price), 6 responses of a model with no price not in it" \
        in unpriced
    assert f"| {UNPRICED} | 6 | 16,045 | 72 | 0 | 0 | no price |" in unpriced
    assert "tokens and cost" not in export.render(journal(hook_events()), "md").decode()


def test_mpmd_stats_shows_cost_by_model_and_the_costliest_sessions(
        home: Path, four: tuple[sqlite3.Connection, list[bytes]]) -> None:
    _conn, lines = four
    indexed(home / "index.sqlite3", lines).close()
    shown = mpmd_cli(home, "stats", "--since", "2026-12-01", "--until", "2026-12-04")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    dearer = sum(prices_of(transcript_events(prices=DEARER, reports=0)))
    shown_cost = re.search(r"^cost \$(\d+\.\d{4}) in 3 sessions, 18 responses", out, re.M)
    assert shown_cost is not None, out
    assert float(shown_cost.group(1)) == pytest.approx(0.06562 + dearer, abs=0.0001)
    assert "tokens 48,135 in, 216 out, 0 cache read, 0 cache write" in out
    assert "6 responses of a model with no price" in out
    model_line = next(x for x in out.splitlines() if x.startswith(UNPRICED))
    assert model_line.split() == [UNPRICED, "6", "16,117", "no", "price"]
    session_lines = out[out.index("costliest sessions"):].splitlines()[1:4]
    assert session_lines[0].startswith("shop bbbb0000 do things")
    assert session_lines[1].startswith("project aaaa0000 do things")
    assert session_lines[1].endswith("$0.0656")
    as_json = json.loads(mpmd_cli(home, "stats", "--since", "2026-12-01", "--until",
                                  "2026-12-04", "--json").stdout)
    assert as_json["cost"]["responses"] == 18
    assert [s["session_id"] for s in as_json["costliest_sessions"]] == [
        SESSIONS["dearer"], SESSIONS["reported"], SESSIONS["unpriced"]]
    exported = mpmd_cli(home, "export", "aaaa0000")
    assert exported.returncode == 0, exported.stderr
    assert "cost $0.0656 (Claude Code's own report)" in exported.stdout


# --- an index of the schema before cost is rebuilt ---------------------------------------

def test_an_index_of_the_older_schema_is_rebuilt_from_the_journal(tmp_path: Path) -> None:
    lines = journal(hook_events() + transcript_events())
    path = tmp_path / "i.sqlite3"
    old = sqlite3.connect(path)  # what mpmd wrote before: schema 2, no cost in it
    old.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        INSERT INTO meta VALUES ('schema_version', '2'), ('last_seq', '999');
        CREATE TABLE sessions (session_id TEXT PRIMARY KEY, first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL, first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL,
            events INTEGER NOT NULL, tool_calls INTEGER NOT NULL, failures INTEGER NOT NULL,
            cwd TEXT, model TEXT, end_reason TEXT, first_prompt TEXT) WITHOUT ROWID;""")
    old.close()
    journal_dir = tmp_path / "journal"
    store = Journal(journal_dir)
    store.append((i + 1, line) for i, line in enumerate(lines))
    worker = WorkerProcess(journal_dir, path)
    try:
        # an index of another schema is made anew: from the journal's start, not seq 999
        assert worker.positions(2) == [(0, 0), (len(lines), len(lines))]
    finally:
        assert worker.end() == 0
        store.close()
    assert not (tmp_path / "i.sqlite3.damaged").exists()
    conn = connect_read_only(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
        str(index.SCHEMA_VERSION),)
    row = session_row(conn, SESSION)
    assert (row["responses"], row["cost_usd"], row["cost_source"]) == (6, 0.06562,
                                                                      "claude-code")
    conn.close()
    reopened = open_index(path)
    assert reopened.last_seq == len(lines)  # this schema: kept as it is
    reopened.close()
