"""The viewer's sessions table, folded from stored events (mpmd.model.sessions)."""

from __future__ import annotations

import itertools

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from mpmd.model import record
from mpmd.model.events import EventFrame
from mpmd.model.sessions import MAX_AGENTS, MAX_PENDING, MAX_RUNNING, EventView, Sessions
from tests.utils import fixture_payloads

_view = msgspec.json.Decoder(EventView)
_seq = itertools.count(1)


def stored(payload: dict | bytes, ts_ns: int = 1_700_000_000_000_000_000) -> EventView:
    """The event as the daemon would store it, read back the way the broadcaster does."""
    data = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    frame = EventFrame(version=1, id=next(_seq).to_bytes(16, "big"), ts_ns=ts_ns,
                       payload=data, original_size=len(data))
    return _view.decode(record.build(next(_seq), frame, ts_ns))


def by_type() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for raw in fixture_payloads():
        obj = msgspec.json.decode(raw)
        out.setdefault(obj["hook_event_name"], []).append(obj)
    return out


FIX = by_type()
SID = FIX["SessionStart"][0]["session_id"]


def test_the_fixture_session_folds_into_one_row():
    table = Sessions()
    for raw in fixture_payloads():
        table.apply(stored(raw))
    (row,) = table.all()
    assert row.session_id == SID
    assert row.project == "shop" and row.cwd == "/home/dev/shop"
    assert row.model == "claude-sonnet-5"
    assert row.event_count == len(fixture_payloads())
    posts = len(FIX["PostToolUse"]) + len(FIX["PostToolUseFailure"])
    assert row.tool_count == posts
    assert row.failure_count == len(FIX["PostToolUseFailure"]) + len(FIX["StopFailure"])
    assert row.ended_at is not None and row.end_reason == FIX["SessionEnd"][0]["reason"]
    assert row.pending == []
    (agent,) = row.agents
    assert agent.agent_id == "agent-abc123" and agent.agent_type == "Explore"
    assert agent.stopped_at is not None


def test_permission_request_waits_until_that_tool_runs():
    table = Sessions()
    request = FIX["PermissionRequest"][0]
    row = table.apply(stored(request))
    assert row is not None
    assert [(p.tool_name, p.detail) for p in row.pending] == [
        ("Bash", request["tool_input"]["command"])]
    # Another tool finishing does not answer the Bash prompt.
    table.apply(stored(FIX["PostToolUse"][0]))  # Read
    assert len(row.pending) == 1
    bash_done = next(p for p in FIX["PostToolUse"] if p["tool_name"] == "Bash")
    table.apply(stored(bash_done))
    assert row.pending == []


def test_the_notification_and_the_request_for_one_prompt_make_one_entry():
    table = Sessions()
    note = FIX["Notification"][0]
    assert note["notification_type"] == "permission_prompt"
    row = table.apply(stored(note))
    assert row is not None
    assert [p.tool_name for p in row.pending] == ["Bash"]
    assert "permission" in row.pending[0].detail
    table.apply(stored(FIX["PermissionRequest"][0]))
    assert [(p.tool_name, p.detail) for p in row.pending] == [
        ("Bash", FIX["PermissionRequest"][0]["tool_input"]["command"])]


def test_a_failure_a_denial_a_prompt_or_the_end_clear_the_wait():
    clearing = [FIX["PostToolUseFailure"][0], FIX["PermissionDenied"][0],
                FIX["UserPromptSubmit"][0], FIX["Stop"][0], FIX["SessionEnd"][0]]
    for event in clearing:
        table = Sessions()
        row = table.apply(stored(FIX["PermissionRequest"][0]))
        assert row is not None and row.pending
        table.apply(stored(event))
        assert row.pending == [], event["hook_event_name"]


def test_a_dialog_notification_needs_you_until_the_session_moves_on():
    idle = next(n for n in FIX["Notification"] if n["notification_type"] == "idle_prompt")
    for mover in (FIX["UserPromptSubmit"][0], FIX["PreToolUse"][0], FIX["SessionEnd"][0]):
        table = Sessions()
        row = table.apply(stored(idle))
        assert row is not None
        (wait,) = row.pending
        assert (wait.kind, wait.tool_name, wait.notification_type) == ("input", None,
                                                                      "idle_prompt")
        assert wait.message == wait.detail == idle["message"]
        table.apply(stored(FIX["InstructionsLoaded"][0]))  # not the person answering
        assert row.pending
        table.apply(stored(mover))
        assert row.pending == [], mover["hook_event_name"]


def test_an_informational_or_unknown_notification_needs_nothing():
    note = FIX["Notification"][0]
    for kind in ("auth_success", "agent_completed", "brand_new_type", None):
        table = Sessions()
        row = table.apply(stored({**note, "notification_type": kind}))
        assert row is not None and row.pending == [], kind


def tool(kind: str, name: str, tid: str | None, **fields: object) -> dict:
    base = {"session_id": SID, "cwd": "/home/dev/shop", "hook_event_name": kind,
            "tool_name": name, **fields}
    return {**base, "tool_use_id": tid} if tid else base


def test_the_prompt_is_pinned_to_the_call_that_waits():
    table = Sessions()
    table.apply(stored(tool("PreToolUse", "Read", "t1", tool_input={"file_path": "a.py"})))
    table.apply(stored(tool("PreToolUse", "Bash", "t2", tool_input={"command": "npm test"})))
    row = table.apply(stored(tool("PermissionRequest", "Bash", None,
                                  tool_input={"command": "npm test"})))
    assert row is not None
    assert [r.tool_use_id for r in row.running] == ["t1", "t2"]
    (wait,) = row.pending
    assert (wait.tool_name, wait.detail, wait.tool_use_id) == ("Bash", "npm test", "t2")
    # The notification that follows names no tool: it joins the same wait.
    table.apply(stored({**FIX["Notification"][0], "message": "Claude needs your permission"}))
    (wait,) = row.pending
    assert wait.notification_type == "permission_prompt" and wait.tool_use_id == "t2"
    table.apply(stored(tool("PostToolUse", "Read", "t1")))
    assert [r.tool_use_id for r in row.running] == ["t2"] and row.pending
    table.apply(stored(tool("PermissionAnswered", "Bash", "t2")))  # "no" in the terminal
    assert row.pending == [] and row.running == []


def test_a_permission_notification_alone_names_the_running_call():
    table = Sessions()
    table.apply(stored(tool("PreToolUse", "Bash", "t9", tool_input={"command": "make deploy"})))
    row = table.apply(stored({**FIX["Notification"][0],
                              "message": "Claude needs your permission"}))
    assert row is not None
    (wait,) = row.pending
    assert (wait.kind, wait.tool_name, wait.detail, wait.tool_use_id) == (
        "permission", "Bash", "make deploy", "t9")


def test_running_calls_and_waits_are_bounded():
    table = Sessions()
    for n in range(MAX_RUNNING + 10):
        row = table.apply(stored(tool("PreToolUse", f"mcp__s__t{n}", f"t{n}")))
        table.apply(stored(tool("PermissionRequest", f"mcp__s__t{n}", None)))
    assert row is not None
    assert len(row.running) == MAX_RUNNING and len(row.pending) == MAX_PENDING
    assert row.running[-1].tool_use_id == f"t{MAX_RUNNING + 9}"


def test_events_without_a_session_change_nothing():
    table = Sessions()
    assert table.apply(stored(b"not json at all")) is None
    assert table.apply(stored(b"[1, 2]")) is None
    assert len(table) == 0


def test_the_table_keeps_the_most_recently_active_sessions():
    table = Sessions(max_sessions=3)
    base = FIX["UserPromptSubmit"][0]
    for n in range(5):
        table.apply(stored({**base, "session_id": f"s{n}"}))
    table.apply(stored({**base, "session_id": "s2"}))  # s2 is active again
    assert [r.session_id for r in table.all()] == ["s2", "s4", "s3"]


def test_a_resumed_session_is_live_again_and_keeps_its_start():
    table = Sessions()
    start = FIX["SessionStart"][0]
    table.apply(stored(start, ts_ns=1_700_000_000_000_000_000))
    table.apply(stored(FIX["SessionEnd"][0], ts_ns=1_700_000_060_000_000_000))
    row = table.apply(stored({**start, "source": "resume"}, ts_ns=1_700_000_120_000_000_000))
    assert row is not None and row.ended_at is None
    assert row.started_at.startswith("2023-11-14T22:13:20")
    assert row.last_event_at.startswith("2023-11-14T22:15:20")


def test_subagents_are_bounded():
    table = Sessions()
    start = FIX["SubagentStart"][0]
    for n in range(MAX_AGENTS + 10):
        row = table.apply(stored({**start, "agent_id": f"a{n}"}))
    assert row is not None and len(row.agents) == MAX_AGENTS
    assert row.agents[-1].agent_id == f"a{MAX_AGENTS + 9}"


@given(st.lists(st.sampled_from(fixture_payloads()), max_size=40),
       st.lists(st.binary(max_size=64), max_size=5))
def test_any_mix_of_events_and_junk_folds_without_error(payloads, junk):
    table = Sessions()
    for data in payloads + junk:
        table.apply(stored(data))
    for row in table.all():
        assert row.event_count >= 1
        assert row.tool_count >= row.failure_count - row.event_count  # counts stay sane
        assert all(p.tool_name != "Read" for p in row.pending)


def test_a_model_switch_changes_the_row_s_model():
    table = Sessions()
    table.apply(stored({**FIX["SessionStart"][0], "model": "claude-opus-5-5"}))
    row = table.apply(stored({"session_id": SID, "hook_event_name": "PostModelSwitch",
                              "from_model": "claude-opus-5-5", "to_model": "claude-sonnet-5",
                              "requested_model": "sonnet", "source": "command"}))
    assert row is not None and row.model == "claude-sonnet-5"


def test_an_elicitation_needs_you_at_once_and_its_notification_joins_it():
    table = Sessions()
    asked = {**FIX["Elicitation"][0], "message": "Which name?"}
    row = table.apply(stored(asked))
    assert row is not None
    assert [(w.kind, w.message) for w in row.pending] == [("input", "Which name?")]
    table.apply(stored({**FIX["Notification"][0], "notification_type": "elicitation_dialog",
                        "message": "Claude Code needs your input"}))
    assert [(w.kind, w.message) for w in row.pending] == [("input", "Which name?")]
    table.apply(stored(FIX["ElicitationResult"][0]))
    assert row.pending == []
