"""What a real session cost, read off the transcript the real Claude Code writes
(mpmd.transcripts.follower), over both transports: the tokens mpmd journals are the tokens
the scripted model answered, once per response, subagents' included; Claude Code's own
cost report is journaled as it wrote it, and the live sessions table's total is that
report, not a second sum."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.claude.api import Script, ScriptedAPI, call, calls, say, tool
from tests.claude.client import Gate, Sandbox
from tests.claude.viewer import SessionsFeed
from tests.test_metrics import samples, scrape
from tests.utils import journal_events, status, wait_until

TOOLS = ["Bash", "Agent"]


@pytest.fixture(params=["command", "http"])
def sb(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    sandbox = Sandbox(transport=request.param)
    try:
        yield sandbox
    finally:
        sandbox.cleanup()


def _answered(api: ScriptedAPI) -> dict[str, dict[str, Any]]:
    """The usage of each conversation message the scripted model answered (the requests
    with tools: the session's and its subagent's), by message id."""
    return {whole["id"]: whole["usage"] for request, whole in api.answered
            if request.get("tools")}


def test_tokens_and_cost_of_a_real_session_with_a_subagent(sb: Sandbox) -> None:
    script = Script(
        turns=[calls(tool("Bash", command="echo one", description="one"),
                     tool("Bash", command="echo two", description="two")),
               call("Agent", description="look", prompt="SUBAGENT-ONE: list files",
                    subagent_type="general-purpose", run_in_background=False),
               say("all done")],
        agents={"SUBAGENT-ONE": [call("Bash", command="ls", description="list"),
                                 say("sub done")]})
    with sb.daemon() as daemon, ScriptedAPI(script) as api:
        out = sb.headless(api.url, "do things", allowed_tools=TOOLS)
        assert out.returncode == 0, out.stderr
        answered = _answered(api)
        home = daemon.home

        def usage() -> list[dict[str, Any]]:
            return [e for e in journal_events(home) if e["event_type"] == "ModelUsage"]

        wait_until(lambda: len(usage()) == len(answered), "a ModelUsage per response")
        wait_until(lambda: any(e["event_type"] == "CostReport" for e in journal_events(home)),
                   "Claude Code's cost report")
        events = journal_events(home)
        # (the follower's process tells its counts at most once a second)
        wait_until(lambda: status(home)["transcripts"]["usage"] == len(answered),
                   "the follower's status counted them")
        sessions = status(home)
        metrics = samples(scrape(home)[1])
    got = usage()
    # once per response, each with the tokens the model answered
    assert Counter(e["payload"]["message_id"] for e in got) == Counter(answered.keys())
    for e in got:
        sent = answered[e["payload"]["message_id"]]
        assert e["source"] == "transcript" and e["session_id"] == out.session_id
        assert (e["payload"]["input_tokens"], e["payload"]["output_tokens"]) == (
            sent["input_tokens"], sent["output_tokens"])
    # the subagent's responses are marked with its id
    agent_ids = {e["agent_id"] for e in events if e["event_type"] == "SubagentStart"}
    assert len(agent_ids) == 1
    assert sum(e["payload"].get("agent_id") in agent_ids for e in got) == 2
    # Claude Code's own accounting agrees with what the model answered
    (report,) = [e["payload"] for e in events if e["event_type"] == "CostReport"]
    assert report["total_cost_usd"] == pytest.approx(out.result["total_cost_usd"])
    (model,) = report["model_usage"].values()
    assert model["input_tokens"] == sum(u["input_tokens"] for u in answered.values())
    assert model["output_tokens"] == sum(u["output_tokens"] for u in answered.values())
    # and mpmd's price of each response, summed, is Claude Code's own total
    assert sum(e["payload"]["cost_usd"] for e in got) == pytest.approx(report["total_cost_usd"])
    assert sessions["transcripts"]["usage"] == len(answered)
    assert sessions["transcripts"]["problems"] == {}
    # /metrics counts them by model
    model_name = next(iter(report["model_usage"]))
    label = (("model", model_name),)
    assert metrics[("mpmd_model_responses_total", label)] == len(answered)
    assert metrics[("mpmd_model_tokens_total", (("kind", "input"), *label))] == sum(
        u["input_tokens"] for u in answered.values())
    assert metrics[("mpmd_model_cost_usd_total", label)] == pytest.approx(
        report["total_cost_usd"])


def test_the_viewers_sessions_table_shows_the_sessions_cost(sb: Sandbox) -> None:
    script = Script(turns=[call("Bash", command="echo one", description="one"), say("done")])
    with sb.daemon(), ScriptedAPI(script) as api, \
            SessionsFeed(status(sb.mpmd_home)["ws_url"]) as feed:
        out = sb.headless(api.url, "do one thing", allowed_tools=TOOLS)
        assert out.returncode == 0, out.stderr
        answered = _answered(api)

        def reported() -> bool:
            row = feed.row(out.session_id)
            return row is not None and row.get("cost_source") == "claude-code"

        wait_until(reported, "the session's cost, as Claude Code reported it")
        got = feed.row(out.session_id)
    assert got is not None
    assert got["input_tokens"] == sum(u["input_tokens"] for u in answered.values())
    assert got["output_tokens"] == sum(u["output_tokens"] for u in answered.values())
    assert got["cost_usd"] == pytest.approx(out.result["total_cost_usd"])
    assert got["models"][out.result["modelUsage"].popitem()[0]]["responses"] == len(answered)
    assert "reported" not in json.dumps(got)  # how it is reconciled is not shown


def test_a_daemon_stopped_mid_session_misses_no_tool_call() -> None:
    """Over http, hooks posted while the daemon is down are lost to it (Claude Code does not
    retry them); the transcript is not. Every tool call of the session ends up in the
    journal exactly once, by hook or from the transcript, and the viewer shows them all."""
    sb = Sandbox(transport="http")
    gate = Gate(sb.project)
    script = Script(turns=[call("Bash", command="echo one", description="one"),
                           call("Bash", command=gate.command, description="wait"),
                           call("Bash", command="echo three", description="three"),
                           say("done")])
    try:
        with sb.daemon(MPMD_TRANSCRIPT_BACKFILL_AFTER_S="1") as daemon, \
                ScriptedAPI(script) as api, ThreadPoolExecutor(1) as pool:
            home = daemon.home
            running = pool.submit(sb.headless, api.url, "three calls", allowed_tools=TOOLS)

            def started(command: str) -> bool:
                return any(e["event_type"] == "PreToolUse" and
                           e["payload"]["tool_input"]["command"] == command
                           for e in journal_events(home))

            wait_until(lambda: started(gate.command), "the gated call, its hook delivered")
            assert daemon.stop() == 0
            gate.open()  # the session goes on: its hooks find no daemon
            out = running.result(timeout=120)
            assert out.returncode == 0, out.stderr
            assert not started("echo three")
            daemon.start()
            with SessionsFeed(status(home)["ws_url"]) as feed:
                calls_made = [b["id"] for _request, whole in api.answered
                              for b in whole["content"] if b["type"] == "tool_use"]
                assert len(calls_made) == 3

                def phases() -> Counter[tuple[str, str]]:
                    return Counter((e["event_type"], e["tool_use_id"])
                                   for e in journal_events(home)
                                   if e["event_type"] in ("PreToolUse", "PostToolUse"))

                wait_until(lambda: all(phases()[(kind, c)] for c in calls_made
                                       for kind in ("PreToolUse", "PostToolUse")),
                           "every call, before and after, by hook or transcript")
                wait_until(lambda: (feed.row(out.session_id) or {}).get("tool_count") == 3,
                           "the viewer's session shows all three calls")
                events = journal_events(home)
                final = phases()
                late_hooks = status(home)["transcripts"]["late_hooks"]
    finally:
        sb.cleanup()
    assert len(final) == 6 and all(n == 1 for n in final.values())  # each exactly once
    by = {(e["event_type"], e["tool_use_id"]): e["source"] for e in events
          if e["event_type"] in ("PreToolUse", "PostToolUse")}
    assert by[("PreToolUse", calls_made[0])] == by[("PreToolUse", calls_made[1])] == "http"
    assert by[("PostToolUse", calls_made[1])] == "transcript"  # posted while it was down
    assert by[("PreToolUse", calls_made[2])] == by[("PostToolUse", calls_made[2])] == \
        "transcript"
    backfilled = next(e for e in events if e["source"] == "transcript" and
                      e["event_type"] == "PostToolUse" and e["tool_use_id"] == calls_made[2])
    assert backfilled["tool_name"] == "Bash" and "echo three" in backfilled["summary"]
    assert late_hooks == 0
