"""Conformance: a session's life with the real Claude Code CLI, end to end.

`mpmd install-hooks`, a real daemon, the pinned Claude Code against the scripted API, its real
hook processes, and a WebSocket client of the viewer reading the sessions table as it changes.
Each test checks that every hook Claude Code reports starting (its ``hook_started`` records)
is journaled exactly once and nothing else is, naming the few hooks it does not report.

What Claude Code 2.1.328 does here, as these tests found it:

* A subagent (the ``Agent`` tool; general-purpose, Explore, Plan, claude, statusline-setup
  and fork all run offline) fires SubagentStart and SubagentStop with its ``agent_id`` and
  ``agent_type``; its own tool calls carry the same ``agent_id``; the ``Agent`` call itself
  (PreToolUse/PostToolUse) carries none. Subagents run in the background by default: the
  main turn ends (Stop) while the subagent still works, and its end comes back to the main
  conversation as a new prompt (a UserPromptSubmit holding a ``<task-notification>``);
  ``run_in_background: false`` makes the Agent call wait for it.
* ``/compact`` (headless: ``claude -p "/compact ..." --resume <id>``) fires PreCompact
  (trigger manual, custom_instructions), a SubagentStop with ``agent_type: ""`` and no
  SubagentStart (the summary is written by a fork), SessionStart with source ``compact`` and
  the model, then PostCompact (trigger manual, compact_summary). No UserPromptSubmit, no Stop.
  Claude Code's stream reports no ``hook_started`` for PreCompact and PostCompact.
* A model switch fires PreModelSwitch and PostModelSwitch (from_model, to_model,
  requested_model, source; also context_tokens, prompt_cache_warm, cache_ttl,
  estimated_cache_write_usd, pricing). ``/model <name>`` gives source ``command``, the
  ``/model`` picker ``picker``; resuming a session that ran on another model fires
  PostModelSwitch alone, source ``resume``. Starting with ``--model`` fires none.
* ``--resume <id>`` keeps the session id (SessionStart source ``resume``). ``--continue`` too
  in every hook payload, but Claude Code's own ``hook_started`` record of that SessionStart
  (and the stream's first messages) name a new id that no hook payload carries.
* SessionEnd fires after the stream has ended (no ``hook_started`` record): reason ``other``
  for a headless session, ``prompt_input_exit`` for ``/exit``, ``clear`` for ``/clear``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.claude.api import COMPACT_SUMMARY, Script, ScriptedAPI, call, say
from tests.claude.client import Gate, Headless, Sandbox, Terminal
from tests.claude.viewer import SessionsFeed
from tests.utils import hook_events, status, wait_until

TOOLS = ["Bash", "Read", "Agent"]


class Life:
    """A sandbox with mpmd's hooks installed, its daemon, and a viewer watching."""

    def __init__(self, sandbox: Sandbox, feed: SessionsFeed) -> None:
        self.sb = sandbox
        self.feed = feed

    @property
    def home(self) -> Path:
        return self.sb.mpmd_home

    def row_at(self, event: dict[str, Any]) -> dict[str, Any]:
        """The session's row once the viewer has received it with ``event`` folded in. The
        tests call it while the session is held at that moment (a gated command, the
        interactive prompt, the session's end), so what it shows is that moment's table."""
        sid, seq = event["session_id"], event["seq"]
        wait_until(lambda: (r := self.feed.row(sid)) is not None and r["last_seq"] >= seq,
                   f"the viewer's row of {sid} holds event {seq} ({event['event_type']})")
        row = self.feed.row(sid)
        assert row is not None
        return row

    def rows(self) -> set[str]:
        """The sessions the viewer's table has listed."""
        return {r["session_id"] for r in list(self.feed.history)}

    def events(self, session_id: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        return [e for e in hook_events(self.home) if e["seq"] > after
                and (session_id is None or e.get("session_id") == session_id)]

    def wait_for(self, match: Callable[[dict[str, Any]], bool], what: str,
                 after: int = 0) -> dict[str, Any]:
        """The first journaled event (past ``after``) that matches, once there is one."""
        found: list[dict[str, Any]] = []

        def there() -> bool:
            found[:] = [e for e in self.events(after=after) if match(e)]
            return bool(found)

        wait_until(there, f"the journal holds {what}")
        return found[0]

    def journaled(self, out: Headless, unreported: dict[str, int], after: int = 0,
                  aliases: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The journal's events past ``after``, once it holds every hook Claude Code reported
        starting in ``out`` and the ``unreported`` ones (hooks Claude Code runs without a
        ``hook_started`` record: SessionEnd, after its stream; PreCompact, PostCompact);
        checked to hold each exactly once and nothing else. ``aliases`` maps a session id
        Claude Code's record names to the one the hook's payload had."""
        aliases = aliases or {}
        started = Counter((h["hook_event"], aliases.get(h["session_id"], h["session_id"]))
                          for h in out.hooks_started)
        events: list[dict[str, Any]] = []

        def compared() -> tuple[Counter[tuple[str, str | None]], Counter[str]]:
            """(reported started, not journaled; journaled beyond those, by type)."""
            events[:] = self.events(after=after)
            journaled = Counter((e["event_type"], e.get("session_id")) for e in events)
            beyond: Counter[str] = Counter()
            for (kind, _sid), n in (journaled - started).items():
                beyond[kind] += n
            return started - journaled, beyond

        def complete() -> bool:
            unjournaled, beyond = compared()
            return not unjournaled and not Counter(unreported) - beyond

        wait_until(complete, "the journal holds every hook that ran")
        unjournaled, beyond = compared()
        assert not unjournaled, f"reported started, not journaled: {dict(unjournaled)}"
        assert beyond == Counter(unreported), (
            f"journaled beyond what Claude Code reported: {dict(beyond)}")
        return events


@pytest.fixture(params=["command", "http"])
def life(request: pytest.FixtureRequest) -> Iterator[Life]:
    sb = Sandbox(request.param)
    try:
        with sb.daemon(), SessionsFeed(status(sb.mpmd_home)["ws_url"]) as feed:
            yield Life(sb, feed)
    finally:
        sb.cleanup()


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events]


def in_order(events: list[dict[str, Any]]) -> list[str]:
    """The events' types in journal order, but for MessageDisplay (checked once each):
    Claude Code does not wait for that hook, so it can arrive after the Stop that follows
    it (seen in interactive sessions)."""
    assert kinds(events).count("MessageDisplay") <= 1
    return [k for k in kinds(events) if k != "MessageDisplay"]


def the(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one event of that type."""
    found = [e for e in events if e["event_type"] == kind]
    assert len(found) == 1, (kind, kinds(events))
    return found[0]


def count_at(row: dict[str, Any], events: list[dict[str, Any]]) -> int:
    """How many of ``events`` the row had folded in when it was sent."""
    return sum(1 for e in events if e["seq"] <= row["last_seq"])


def described(event: dict[str, Any]) -> tuple[str, str, str]:
    return event["summary"], event["operation"], event["risk"]


# ---- a subagent with tool calls of its own ------------------------------------------------

@pytest.mark.parametrize("background", [False, True], ids=["waited-for", "background"])
def test_a_subagent_with_tool_calls_of_its_own(life: Life, background: bool) -> None:
    sb = life.sb
    (sb.project / "notes.txt").write_text("the subagent reads this\n")
    gate = Gate(sb.project)
    agent_call: dict[str, Any] = {"description": "look around",
                                  "prompt": "SUBAGENT-ONE: read the notes",
                                  "subagent_type": "general-purpose"}
    if not background:
        agent_call["run_in_background"] = False
    script = Script(
        turns=[call("Agent", **agent_call), say("main done")],
        agents={"SUBAGENT-ONE": [call("Bash", command=gate.command, description="wait"),
                                 call("Read", file_path=str(sb.project / "notes.txt")),
                                 say("sub done")]})
    with ScriptedAPI(script) as api, ThreadPoolExecutor(1) as pool:
        running = pool.submit(sb.headless, api.url, "delegate it", allowed_tools=TOOLS)
        held = life.wait_for(lambda e: e["event_type"] == "PreToolUse" and
                             e.get("tool_name") == "Bash", "the subagent's Bash call")
        sid, agent_id = held["session_id"], held["agent_id"]
        if background:
            # The main turn is over while its subagent still works.
            held = life.wait_for(lambda e: e["event_type"] == "Stop", "the main turn's Stop")
        # The moment the subagent works: its session lists it, running.
        row = life.row_at(held)
        assert [(a["agent_id"], a["agent_type"], a["stopped_at"]) for a in row["agents"]] == [
            (agent_id, "general-purpose", None)]
        assert row["ended_at"] is None
        gate.open()
        out = running.result(timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.session_id == sid
    events = life.journaled(out, {"SessionEnd": 1})
    assert {e["session_id"] for e in events} == {sid}
    start, stop, end = (the(events, k) for k in ("SubagentStart", "SubagentStop", "SessionEnd"))
    assert start["agent_id"] == stop["agent_id"] == agent_id
    assert start["payload"]["agent_type"] == stop["payload"]["agent_type"] == "general-purpose"
    assert stop["payload"]["last_assistant_message"] == "sub done"
    assert described(start) == ("Subagent started: general-purpose", "metadata", "low")
    assert described(stop) == ("Subagent stopped: general-purpose", "metadata", "low")
    # The subagent's own tool calls carry its agent_id; the Agent call is the session's own.
    tool_events = [e for e in events if e["event_type"] in ("PreToolUse", "PostToolUse")]
    own = [e for e in tool_events if e.get("agent_id") is None]
    its = [e for e in tool_events if e.get("agent_id") is not None]
    assert [(e["event_type"], e["tool_name"]) for e in own] == [
        ("PreToolUse", "Agent"), ("PostToolUse", "Agent")]
    assert [(e["event_type"], e["tool_name"], e["agent_id"]) for e in its] == [
        ("PreToolUse", "Bash", agent_id), ("PostToolUse", "Bash", agent_id),
        ("PreToolUse", "Read", agent_id), ("PostToolUse", "Read", agent_id)]
    assert all(e["payload"]["agent_type"] == "general-purpose" for e in its)
    assert [described(e) for e in own] == [
        ("Delegating to general-purpose: look around", "metadata", "low"),
        ("Delegated to general-purpose: look around", "metadata", "low")]
    assert [described(e) for e in its] == [
        ("Running: cat gate", "execute", "low"), ("Executed: cat gate", "execute", "low"),
        ("Reading notes.txt", "read", "low"), ("Read notes.txt", "read", "low")]
    assert own[0]["seq"] < start["seq"] < its[0]["seq"] < its[-1]["seq"] < stop["seq"]
    # Waited for, the Agent call ends after its subagent; in the background, at once.
    assert (own[1]["seq"] > stop["seq"]) is not background
    if background:
        # Its end comes back to the main conversation as a prompt of its own.
        prompts = [e for e in events if e["event_type"] == "UserPromptSubmit"]
        assert len(prompts) == 2 and "<task-notification>" in prompts[1]["payload"]["prompt"]
        assert prompts[1]["seq"] > stop["seq"]
    # Once the session ended: the agent listed, stopped; the session ended.
    row = life.row_at(end)
    agent, = row["agents"]
    assert (agent["agent_id"], agent["agent_type"]) == (agent_id, "general-purpose")
    assert agent["stopped_at"] == stop["timestamp"]
    assert row["ended_at"] == end["timestamp"] and row["end_reason"] == "other"
    assert row["event_count"] == count_at(row, events)


# ---- /compact -----------------------------------------------------------------------------

def test_compact_fires_pre_and_post_compact(life: Life) -> None:
    sb = life.sb
    script = Script(turns=[call("Bash", command="echo one", description="echo"),
                           say("first done")])
    with ScriptedAPI(script) as api:
        first = sb.headless(api.url, "do it", allowed_tools=TOOLS)
        assert first.returncode == 0, first.stderr
        sid = first.session_id
        before = life.journaled(first, {"SessionEnd": 1})[-1]["seq"]
        out = sb.headless(api.url, "/compact keep the echo", "--resume", sid,
                          allowed_tools=TOOLS)
        model = api.main_requests()[0]["model"]
    assert out.returncode == 0, out.stderr
    assert out.session_id == sid
    events = life.journaled(out, {"PreCompact": 1, "PostCompact": 1, "SessionEnd": 1},
                            after=before)
    assert kinds(events) == ["SessionStart", "PreCompact", "SubagentStop", "SessionStart",
                             "PostCompact", "SessionEnd"]
    resumed, pre, fork, compacted, post, end = events
    assert {e["session_id"] for e in events} == {sid}
    assert resumed["payload"]["source"] == "resume"
    assert (pre["payload"]["trigger"], pre["payload"]["custom_instructions"]) == (
        "manual", "keep the echo")
    assert described(pre) == ("Compacting (manual)", "metadata", "low")
    # The summary is written by a fork of the session: a SubagentStop with no SubagentStart.
    assert fork["agent_id"] and fork["payload"]["agent_type"] == ""
    assert (compacted["payload"]["source"], compacted["payload"]["model"]) == (
        "compact", model)
    assert post["payload"]["trigger"] == "manual"
    assert COMPACT_SUMMARY in post["payload"]["compact_summary"]
    assert described(post) == ("Compacted (manual)", "metadata", "low")
    assert end["payload"]["reason"] == "other"
    # The viewer: one row for the session, with the model compaction named; the fork that
    # wrote the summary is not listed as a subagent.
    row = life.row_at(end)
    assert row["ended_at"] == end["timestamp"] and row["end_reason"] == "other"
    assert row["model"] == model and row["agents"] == []
    assert life.rows() == {sid}


# ---- --resume, --continue, session end ----------------------------------------------------

def test_resume_and_continue_keep_the_session_and_its_row(life: Life) -> None:
    sb = life.sb
    gate = Gate(sb.project)
    script = Script(turns=[call("Bash", command="echo one", description="echo"),
                           say("first done"),
                           call("Bash", command=gate.command, description="wait"),
                           say("second done")])
    with ScriptedAPI(script) as api:
        first = sb.headless(api.url, "first", allowed_tools=TOOLS)
        assert first.returncode == 0, first.stderr
        sid = first.session_id
        events = life.journaled(first, {"SessionEnd": 1})
        end = the(events, "SessionEnd")
        assert end["payload"]["reason"] == "other"
        row = life.row_at(end)
        assert row["ended_at"] == end["timestamp"] and row["end_reason"] == "other"

        # --resume: the same session, live again in the viewer while it runs.
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(sb.headless, api.url, "second", "--resume", sid,
                                  allowed_tools=TOOLS)
            held = life.wait_for(lambda e: e["event_type"] == "PreToolUse" and
                                 e["summary"] == "Running: cat gate", "the gated call",
                                 after=events[-1]["seq"])
            row = life.row_at(held)
            assert row["ended_at"] is None and row["end_reason"] is None
            gate.open()
            resumed = running.result(timeout=90)
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.session_id == sid
        events = life.journaled(resumed, {"SessionEnd": 1}, after=events[-1]["seq"])
        second_end = the(events, "SessionEnd")
        assert in_order(events) == [
            "SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolBatch",
            "Stop", "SessionEnd"]
        assert "MessageDisplay" in kinds(events)
        assert {e["session_id"] for e in events} == {sid}
        assert events[0]["payload"]["source"] == "resume"
        assert described(events[0]) == ("Session started (resume)", "metadata", "low")
        assert described(second_end) == ("Session ended (other)", "metadata", "low")
        row = life.row_at(second_end)
        assert row["ended_at"] == second_end["timestamp"] and row["end_reason"] == "other"
        assert row["started_at"] == life.events(sid)[0]["timestamp"]  # one row, from the start

        # --continue: every hook payload names the session continued; Claude Code's own
        # record of its SessionStart names a new id, which nothing else carries.
        continued = sb.headless(api.url, "third", "--continue", allowed_tools=TOOLS)
    assert continued.returncode == 0, continued.stderr
    events = life.journaled(continued, {"SessionEnd": 1}, after=events[-1]["seq"],
                            aliases={continued.session_id: sid})
    third_end = the(events, "SessionEnd")
    assert {e["session_id"] for e in events} == {sid}
    assert in_order(events) == ["SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"]
    assert "MessageDisplay" in kinds(events)
    assert events[0]["payload"]["source"] == "resume"
    row = life.row_at(third_end)
    assert row["ended_at"] == third_end["timestamp"]
    assert row["event_count"] == count_at(row, life.events(sid))
    assert life.rows() == {sid}


# ---- a model switch -----------------------------------------------------------------------

def test_resuming_a_session_of_another_model_switches_back_to_it(life: Life) -> None:
    sb = life.sb
    with ScriptedAPI(Script(turns=[say("hello")])) as api:
        first = sb.headless(api.url, "hi", "--model", "sonnet")
        assert first.returncode == 0, first.stderr
        sid = first.session_id
        its_model = api.main_requests()[-1]["model"]
        before = life.journaled(first, {"SessionEnd": 1})[-1]["seq"]
        count = len(api.requests)
        out = sb.headless(api.url, "again", "--resume", sid)
        models = {r["model"] for r in api.requests[count:] if r.get("tools")}
    assert out.returncode == 0, out.stderr
    events = life.journaled(out, {"SessionEnd": 1}, after=before)
    assert Counter(kinds(events)) == Counter([
        "SessionStart", "PostModelSwitch", "UserPromptSubmit", "MessageDisplay", "Stop",
        "SessionEnd"])
    assert (in_order(events)[0], in_order(events)[-1]) == ("SessionStart", "SessionEnd")
    switch, = (e for e in events if e["event_type"] == "PostModelSwitch")
    assert (switch["session_id"], switch["status"]) == (sid, "ok")
    p = switch["payload"]
    assert (p["source"], p["to_model"], p["requested_model"]) == ("resume", its_model,
                                                                   its_model)
    assert isinstance(p["from_model"], str) and p["from_model"] != its_model
    assert models == {its_model}  # the switch took: the resumed session asks that model


def test_a_model_switch_typed_in_a_session_then_exit(life: Life) -> None:
    sb = life.sb
    with ScriptedAPI(Script(turns=[say("hello there")])) as api:
        terminal = Terminal(sb, api.url)
        try:
            terminal.wait_for("❯")
            terminal.type("/model sonnet")
            terminal.wait_for("/model sonnet")
            terminal.keys("Enter")
            terminal.wait_for("Set model to")
            terminal.type("say hello")
            terminal.wait_for("say hello")
            terminal.keys("Enter")
            terminal.wait_for("hello there")
            stop = life.wait_for(lambda e: e["event_type"] == "Stop", "the turn's Stop")
            row = life.row_at(stop)  # between turns: live
            assert row["ended_at"] is None
            terminal.type("/exit")
            terminal.wait_for("/exit")
            terminal.keys("Enter")
            end = life.wait_for(lambda e: e["event_type"] == "SessionEnd", "SessionEnd")
        finally:
            terminal.close()
        asked = {r["model"] for r in api.main_requests()}
    events = life.events()
    sid = end["session_id"]
    assert {e["session_id"] for e in events} == {sid}
    assert Counter(kinds(events)) == Counter([
        "SessionStart", "PreModelSwitch", "PostModelSwitch", "UserPromptSubmit",
        "MessageDisplay", "Stop", "SessionEnd"])
    assert (in_order(events)[0], in_order(events)[-1]) == ("SessionStart", "SessionEnd")
    start = events[0]
    pre, = (e for e in events if e["event_type"] == "PreModelSwitch")
    post, = (e for e in events if e["event_type"] == "PostModelSwitch")
    assert pre["seq"] < post["seq"]
    # Interactive, SessionStart names the model (headless, it does not).
    assert start["payload"]["source"] == "startup"
    for switch in (pre, post):
        p = switch["payload"]
        assert switch["status"] == "ok"
        assert (p["source"], p["requested_model"]) == ("command", "sonnet")
        assert p["from_model"] == start["payload"]["model"] != p["to_model"]
    assert post["payload"]["to_model"] == pre["payload"]["to_model"]
    assert asked == {post["payload"]["to_model"]}
    assert end["payload"]["reason"] == "prompt_input_exit"
    assert described(end) == ("Session ended (prompt_input_exit)", "metadata", "low")
    row = life.row_at(end)
    assert row["ended_at"] == end["timestamp"] and row["end_reason"] == "prompt_input_exit"
