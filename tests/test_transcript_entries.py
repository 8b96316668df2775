"""mpmd.transcripts.entries: the facts of real transcripts (Claude Code 2.1.328, in
tests/fixtures/transcripts), each checked against the file read independently with json; and
nothing, never an error, for what is not one."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpmd.transcripts import entries
from mpmd.transcripts.entries import (
    CostState,
    Counts,
    Prompt,
    ToolResult,
    ToolUse,
    Usage,
    parse,
)
from tests.utils import ROOT, examples

FIXTURES = ROOT / "tests" / "fixtures" / "transcripts"
WANTED = {"user", "assistant", "cost-state"}


def lines(name: str) -> list[bytes]:
    return (FIXTURES / f"{name}.jsonl").read_bytes().splitlines()


def objects(name: str) -> list[dict]:
    return [json.loads(line) for line in lines(name)]


def facts(name: str, counts: Counts | None = None) -> list[Any]:
    return [fact for line in lines(name) for fact in parse(line, counts)]


def of(kind: type, found: list[Any]) -> list[Any]:
    return [fact for fact in found if isinstance(fact, kind)]


def line(obj: dict) -> bytes:
    """One entry as the CLI writes it (compact)."""
    return json.dumps(obj, separators=(",", ":")).encode()


def first(name: str, **match: Any) -> dict:
    return next(o for o in objects(name) if all(o.get(k) == v for k, v in match.items()))


# ---- the fixtures


def test_the_prompts_are_the_sessions_two_and_the_subagents_own() -> None:
    main = of(Prompt, facts("session"))
    assert [(p.text, p.agent_id) for p in main] == [("do things", None), ("read a file", None)]
    typed = [o for o in objects("session") if o["type"] == "user"
             and isinstance(o["message"]["content"], str)]
    assert [(p.uuid, p.prompt_id, p.timestamp, p.cwd, p.session_id) for p in main] == \
        [(o["uuid"], o["promptId"], o["timestamp"], o["cwd"], o["sessionId"]) for o in typed]

    (sub,) = of(Prompt, facts("subagent"))
    start = objects("subagent")[0]
    assert start["isSidechain"] is True
    assert (sub.text, sub.agent_id, sub.uuid) == \
        (start["message"]["content"], start["agentId"], start["uuid"])
    # It is the Agent call's prompt, in the turn of the session's first prompt.
    (agent,) = [u for u in of(ToolUse, facts("session")) if u.name == "Agent"]
    assert agent.input["prompt"] == sub.text
    assert sub.prompt_id == main[0].prompt_id


def test_tool_uses_and_results_pair_up_by_id() -> None:
    found = facts("session") + facts("subagent")
    uses = {u.tool_use_id: u for u in of(ToolUse, found)}
    results = {r.tool_use_id: r for r in of(ToolResult, found)}
    assert uses.keys() == results.keys()
    expected = {b["id"]: b for o in objects("session") + objects("subagent")
                if o["type"] == "assistant" for b in o["message"]["content"]
                if b["type"] == "tool_use"}
    assert {i: (u.name, u.input) for i, u in uses.items()} == \
        {i: (b["name"], b["input"]) for i, b in expected.items()}
    assert sorted(u.name for u in uses.values()) == ["Agent", "Bash", "Bash", "Bash"]
    sub_id = objects("subagent")[0]["agentId"]
    assert {u.agent_id for u in of(ToolUse, facts("subagent"))} == {sub_id}
    assert {r.agent_id for r in of(ToolResult, facts("subagent"))} == {sub_id}
    assert {u.agent_id for u in of(ToolUse, facts("session"))} == {None}


def test_the_failing_bash_call_is_an_error_and_the_others_are_not() -> None:
    found = facts("session") + facts("subagent")
    results = {r.tool_use_id: r for r in of(ToolResult, found)}
    by_command = {u.input.get("command"): results[u.tool_use_id] for u in of(ToolUse, found)
                  if u.name == "Bash"}
    failed = by_command["exit 3"]
    (entry,) = [o for o in objects("session") if o["type"] == "user" and
                "toolUseResult" in o and
                o["message"]["content"][0]["tool_use_id"] == failed.tool_use_id]
    block = entry["message"]["content"][0]
    assert failed.is_error is True and block["is_error"] is True
    assert (failed.content, failed.tool_use_result) == (block["content"],
                                                        entry["toolUseResult"])
    assert failed.prompt_id == entry["promptId"]
    ran = by_command["echo hi"]
    assert (ran.is_error, ran.content) == (False, "hi")
    assert ran.tool_use_result == {"stdout": "hi", "stderr": "", "interrupted": False,
                                   "isImage": False, "noOutputExpected": False}
    assert by_command["ls"].is_error is False
    assert by_command["ls"].tool_use_result is None  # the subagent's result has none


def test_the_resumed_prompt_made_no_tool_call_and_a_failed_read_would_be_an_error() -> None:
    # The fixture's second prompt asked for a Read of a missing file; the model answered
    # without calling a tool ("Done."), so the file holds no Read. What one would give:
    # the failing Bash result's entry, as if for a Read that found no file.
    objs = objects("session")
    second = next(i for i, o in enumerate(objs) if o.get("message", {}).get("content")
                  == "read a file")
    assert not [u for line_ in lines("session")[second:] for u in parse(line_)
                if isinstance(u, (ToolUse, ToolResult))]
    entry = first("session", toolUseResult="Error: Exit code 3")
    entry["message"]["content"][0].update(
        tool_use_id="toolu_read", content="<tool_use_error>File does not exist.</tool_use_error>")
    entry["toolUseResult"] = "Error: File does not exist."
    (result,) = parse(line(entry))
    assert isinstance(result, ToolResult)
    assert (result.tool_use_id, result.is_error) == ("toolu_read", True)
    assert result.content == "<tool_use_error>File does not exist.</tool_use_error>"


def usage_by_message(*names: str) -> dict[str, list[tuple[int, ...]]]:
    """Each assistant message's usage, once for each entry written of it (read with json)."""
    found: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    for name in names:
        for o in objects(name):
            if o["type"] == "assistant":
                u = o["message"]["usage"]
                found[o["message"]["id"]].append((
                    u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"],
                    u["cache_creation_input_tokens"],
                    u["cache_creation"]["ephemeral_5m_input_tokens"],
                    u["cache_creation"]["ephemeral_1h_input_tokens"]))
    return found


def tokens(u: Usage) -> tuple[int, ...]:
    return (u.input_tokens, u.output_tokens, u.cache_read_input_tokens,
            u.cache_creation_input_tokens, u.cache_creation_5m, u.cache_creation_1h)


def test_usage_is_once_an_entry_and_the_same_for_a_messages_entries() -> None:
    expected = usage_by_message("session", "subagent")
    # What 2.1.328 writes: a message with two tool calls is two entries, the same usage in
    # each (not growing): so a message's usage is taken once.
    assert any(len(each) > 1 for each in expected.values())
    assert all(len(set(each)) == 1 for each in expected.values())
    found = of(Usage, facts("session") + facts("subagent"))
    assert len(found) == sum(len(each) for each in expected.values())
    once = {u.message_id: tokens(u) for u in found}
    assert once == {i: each[0] for i, each in expected.items()}
    assert {u.model for u in found} == {"claude-opus-5-5"}
    assert {(u.agent_id is not None, u.is_sidechain) for u in of(Usage, facts("subagent"))} \
        == {(True, True)}


def test_cost_state_is_as_written_and_counts_each_message_once() -> None:
    states = of(CostState, facts("session"))
    written = [o for o in objects("session") if o["type"] == "cost-state"]
    assert len(states) == len(written) == 2
    for state, o in zip(states, written, strict=True):
        assert state.total_cost_usd == o["totalCostUSD"]
        assert (state.lines_added, state.lines_removed) == \
            (o["totalLinesAdded"], o["totalLinesRemoved"])
        assert (state.total_duration_ms, state.api_duration_ms) == \
            (o["totalDuration"], o["totalAPIDuration"])
        assert state.has_unknown_model_cost is o["hasUnknownModelCost"]
        assert {m: (c.input_tokens, c.output_tokens, c.cache_read_input_tokens,
                    c.cache_creation_input_tokens, c.cache_creation_5m, c.cache_creation_1h,
                    c.cost_usd) for m, c in state.model_usage.items()} == \
            {m: (u["inputTokens"], u["outputTokens"], u["cacheReadInputTokens"],
                 u["cacheCreationInputTokens"], u["cacheCreationEphemeral5mInputTokens"],
                 u["cacheCreationEphemeral1hInputTokens"], u["costUSD"])
             for m, u in o["modelUsage"].items()}
    # The first run's totals: its messages, the subagent's included, each once.
    once = {i: each[0] for i, each in usage_by_message("session", "subagent").items()}
    last_message = [o for o in objects("session")  # the resumed run's one
                    if o["type"] == "assistant"][-1]["message"]["id"]
    first_run = [t for i, t in once.items() if i != last_message]
    (model,) = states[0].model_usage
    assert states[0].model_usage[model].input_tokens == sum(t[0] for t in first_run)
    assert states[0].model_usage[model].output_tokens == sum(t[1] for t in first_run)
    # The resumed run's: cumulative, the first run's included.
    assert states[1].model_usage[model].input_tokens == \
        states[0].model_usage[model].input_tokens + once[last_message][0]
    assert states[1].total_cost_usd > states[0].total_cost_usd


def test_what_the_fixtures_hold_besides_is_passed_over_not_malformed() -> None:
    for name in ("session", "subagent"):
        counts = Counts()
        found = facts(name, counts)
        assert counts.malformed == 0
        assert counts.lines == len(lines(name))
        assert counts.passed_over == sum(o["type"] not in WANTED for o in objects(name))
        assert counts.facts == len(found)


# ---- what is not a person's prompt


def prompt_entry(**changes: Any) -> dict:
    entry = first("session", type="user")
    assert entry["message"]["content"] == "do things"
    entry.update(changes)
    return entry


def test_only_a_persons_words_are_a_prompt() -> None:
    assert len(parse(line(prompt_entry()))) == 1
    blocks = [{"type": "text", "text": "look at"}, {"type": "image", "source": {}},
              {"type": "text", "text": "this"}]
    (p,) = parse(line(prompt_entry(message={"role": "user", "content": blocks})))
    assert p.text == "look at\nthis"
    for changes in ({"isMeta": True}, {"isCompactSummary": True},
                    {"isVisibleInTranscriptOnly": True}, {"promptSource": "system"},
                    {"origin": {"kind": "task-notification"}}):
        assert parse(line(prompt_entry(**changes))) == [], changes
    for text in ("<local-command-stdout>ok</local-command-stdout>",
                 "<local-command-caveat>Caveat: ...</local-command-caveat>",
                 "<bash-stdout>x</bash-stdout>", "  <system-reminder>x</system-reminder>",
                 "[Request interrupted by user]", "", "   "):
        entry = prompt_entry(message={"role": "user", "content": text})
        assert parse(line(entry)) == [], text
    entry = prompt_entry(message={"role": "user", "content": [{"type": "image"}]})
    assert parse(line(entry)) == []


def test_results_are_bounded() -> None:
    entry = first("session", toolUseResult="Error: Exit code 3")
    entry["message"]["content"][0]["content"] = [{"type": "text", "text": "a" * 100_000}]
    entry["toolUseResult"] = {"stdout": "b" * (entries.MAX_TOOL_USE_RESULT + 1)}
    (result,) = parse(line(entry))
    assert result.content == "a" * entries.MAX_RESULT_TEXT
    assert result.tool_use_result is None


# ---- anything else: nothing, never an error


def test_malformed_and_unknown_lines_give_nothing_and_are_counted() -> None:
    counts = Counts()
    malformed = [b"", b"not json", b"[1, 2]", b'"user"', b'{"type": "user"',
                 b'{"type": "user", "message": {"content": 5}}',
                 b'{"type": "assistant", "message": {"usage": {"input_tokens": "x"}}}',
                 b'{"message": {"content": [{"type": "tool_result", "is_error": "no"}]},'
                 b' "type": "user"}',
                 b'{"type":"cost-state","totalCostUSD":"free"}',
                 b'{"type":"user","message":{"content":"' + b"a" * entries.MAX_LINE + b'"}}',
                 b"[" * 100_000]
    for bad in malformed:
        assert parse(bad, counts) == [], bad[:80]
    assert (counts.malformed, counts.passed_over) == (len(malformed), 0)
    unknown = [b'{"type":"brand-new","message":"another shape"}',
               b'{"message": {"content": 5}, "type": "brand-new"}',
               b'{"type":"attachment","attachment":{}}', b'{"type":"api-request", garbage']
    for other in unknown:
        assert parse(other, counts) == [], other
    assert (counts.malformed, counts.passed_over) == (len(malformed), len(unknown))


def test_a_type_written_escaped_is_still_read() -> None:
    state = first("session", type="cost-state")
    escaped = line(state).replace(b'"cost-state"', b'"cost\\u002dstate"')
    assert escaped.startswith(b'{"type":"cost\\u002dstate"')
    assert parse(escaped) == parse(line(state))
    assert len(parse(escaped)) == 1


@settings(max_examples=examples(1000))
@given(st.binary(max_size=500))
def test_any_bytes_give_a_list_never_an_error(data: bytes) -> None:
    counts = Counts()
    assert isinstance(parse(data, counts), list)
    assert counts.lines == 1


FIELDS = st.sampled_from(["type", "text", "content", "id", "name", "input", "tool_use_id",
                          "is_error", "usage", "message", "input_tokens", "x"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        FIELDS | st.text(max_size=5), inner, max_size=4),
    max_leaves=15)
KEYS = st.sampled_from(["type", "message", "sessionId", "uuid", "timestamp", "agentId",
                        "isSidechain", "isMeta", "promptSource", "origin", "toolUseResult",
                        "modelUsage", "totalCostUSD", "totalDuration", "x"])


@settings(max_examples=examples(1000))
@given(st.sampled_from(["user", "assistant", "cost-state", "attachment", "new"]),
       st.dictionaries(KEYS, JSON, max_size=6))
def test_any_json_object_gives_facts_or_nothing_never_an_error(kind: str,
                                                                obj: dict) -> None:
    for data in (line({"type": kind, **obj}), line({**obj, "type": kind}), line(obj)):
        for fact in parse(data):
            assert isinstance(fact, (Prompt, ToolUse, ToolResult, Usage, CostState))


def paths(value: Any, at: tuple = ()) -> list[tuple]:
    found = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*at, i))
    return found


REAL = [o for name in ("session", "subagent") for o in objects(name) if o["type"] in WANTED]


@settings(max_examples=examples(1000), suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(REAL), st.data())
def test_real_entries_with_any_value_changed_never_raise(entry: dict,
                                                         data: st.DataObject) -> None:
    changed = json.loads(json.dumps(entry))
    where = data.draw(st.sampled_from(paths(changed)[1:]))
    target = changed
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = data.draw(JSON)
    for fact in parse(line(changed)):
        msgspec.json.encode(fact)  # plain data a caller can store
