"""Backfill (mpmd.transcripts.backfill): a prompt or tool call of a transcript becomes an
event only when no journaled event claimed it in time, and only once; and the follower
does it on the real CLI's transcripts."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from mpmd.model import record
from mpmd.model.events import EventFrame
from mpmd.storage.journal import Journal
from mpmd.transcripts import entries
from mpmd.transcripts.backfill import HOOK, POST, PRE, PROMPT, TRANSCRIPT, Claims, FileBackfill
from mpmd.transcripts.entries import Prompt, ToolResult, ToolUse
from mpmd.transcripts.follower import Follower
from mpmd.transcripts.prices import PriceTable
from tests.test_transcript_follower import FIXTURES, SESSION, Collector
from tests.utils import examples, wait_until

S = "s1"
T0 = "2026-12-03T10:00:00.000Z"


def _use(tid: str, at: str = T0) -> ToolUse:
    return ToolUse(session_id=S, tool_use_id=tid, name="Bash", input={"command": "ls"},
                   timestamp=at, message_id="m", agent_id=None, cwd="/p")


def _result(tid: str, error: bool = False, at: str = T0) -> ToolResult:
    return ToolResult(session_id=S, tool_use_id=tid, is_error=error, content="out",
                      timestamp=at, prompt_id="p1", agent_id=None)


def _prompt(pid: str, agent: str | None = None) -> Prompt:
    return Prompt(session_id=S, prompt_id=pid, uuid="u", text="do it", timestamp=T0,
                  cwd="/p", agent_id=agent)


def test_a_key_a_hook_claimed_is_never_backfilled_the_others_once_their_wait_is_over() -> None:
    claims = Claims()
    claims.saw("UserPromptSubmit", S, None, "p1", HOOK, "2026-12-03T09:00:00.000000Z")
    claims.saw("PreToolUse", S, "t1", "p1", HOOK, T0)
    f = FileBackfill("/p/s1.jsonl", S, wait_s=10)
    for fact in (_prompt("p1"), _use("t1"), _result("t1"), _use("t2"), _result("t2", True)):
        f.take(fact, 100.0, None, "p1")
    assert f.due(105.0, claims) == []  # waiting
    due = {d.key: d for d in f.due(110.0, claims)}
    assert set(due) == {(S, POST, "t1"), (S, PRE, "t2"), (S, POST, "t2")}
    assert due[(S, PRE, "t2")].payload["hook_event_name"] == "PreToolUse"
    assert due[(S, PRE, "t2")].payload["tool_input"] == {"command": "ls"}
    failed = due[(S, POST, "t2")].payload
    assert failed["hook_event_name"] == "PostToolUseFailure" and failed["error"] == "out"
    assert failed["tool_name"] == "Bash"  # from its tool_use, read before it
    assert due[(S, POST, "t1")].payload["hook_event_name"] == "PostToolUse"
    f.done(set(due), claims)
    assert f.due(200.0, claims) == [] and f.waiting == []
    # the same lines read again (after a restart) add nothing: the keys are claimed
    for fact in (_use("t2"), _result("t2", True)):
        f.take(fact, 300.0, None, "p1")
    assert f.due(400.0, claims) == []


def test_a_hook_that_comes_after_the_backfill_is_counted_late() -> None:
    claims = Claims()
    claims.saw("Stop", S, None, None, HOOK, T0)
    f = FileBackfill("/p/s1.jsonl", S, wait_s=0)
    f.take(_use("t1"), 0.0, None, None)
    (due,) = f.due(1.0, claims)
    f.done({due.key}, claims)
    assert claims.keys[(S, PRE, "t1")] == TRANSCRIPT
    claims.saw("PreToolUse", S, "t1", None, HOOK, T0)
    assert claims.late_hooks == 1
    claims.saw("PreToolUse", S, "t1", None, TRANSCRIPT, T0)  # our own, read back
    assert claims.late_hooks == 1


def test_a_denied_pre_tool_use_claims_the_calls_outcome_too() -> None:
    claims = Claims()
    claims.saw("PreToolUse", S, "t1", None, HOOK, T0, denied=True)
    f = FileBackfill("/p/s1.jsonl", S, wait_s=0)
    f.take(_result("t1", error=True), 0.0, None, None)
    assert f.due(1.0, claims) == []


def test_subagent_prompts_and_keys_before_the_journals_horizon_are_not_backfilled() -> None:
    claims = Claims()
    claims.saw("Stop", S, None, None, HOOK, "2026-12-03T11:00:00.000000Z")
    f = FileBackfill("/p/s1.jsonl", S, wait_s=0)
    f.take(_prompt("p2", agent="a1"), 0.0, None, None)  # no UserPromptSubmit exists for it
    f.take(_use("t1", at="2026-12-03T10:59:59.000Z"), 0.0, None, None)  # before the horizon
    f.take(_use("t2", at="2026-12-03T11:00:01.000Z"), 0.0, None, None)
    assert [d.key for d in f.due(1.0, claims)] == [(S, PRE, "t2")]


def test_forgotten_claims_move_the_horizon() -> None:
    claims = Claims(capacity=2)
    for n in range(3):
        claims.saw("PreToolUse", S, f"t{n}", None, HOOK, f"2026-12-03T10:00:0{n}.000000Z")
    assert (S, PRE, "t0") not in claims
    assert claims.since == "2026-12-03T10:00:02.000000Z"


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(st.sampled_from([PROMPT, PRE, POST]), st.integers(0, 5),
                          st.booleans()), max_size=40),
       st.lists(st.integers(0, 5), max_size=6))
def test_each_key_is_backfilled_at_most_once_and_never_when_claimed(
        reads: list[tuple[str, int, bool]], hooked: list[int]) -> None:
    """Any order of facts read (and read again), any claims: a key is due at most once
    over the whole run, and never when claimed."""
    claims = Claims()
    for n in hooked:
        claims.saw("PreToolUse", S, f"t{n}", None, HOOK, T0)
    f = FileBackfill("/p/s1.jsonl", S, wait_s=1)
    sent: Counter[tuple[str, str, str]] = Counter()
    now = 0.0
    for kind, n, tick in reads:
        fact = {PROMPT: _prompt(f"p{n}"), PRE: _use(f"t{n}"), POST: _result(f"t{n}")}[kind]
        f.take(fact, now, None, None)
        if tick:
            now += 1.0
            due = f.due(now, claims)
            sent.update(d.key for d in due)
            f.done({d.key for d in due}, claims)
    due = f.due(now + 10, claims)
    sent.update(d.key for d in due)
    assert all(c == 1 for c in sent.values())
    assert not any(k in sent for k in [(S, PRE, f"t{n}") for n in hooked])


# ---- the follower, on the real CLI's transcripts -------------------------------------------


def _hook(journal: Journal, payload: dict) -> None:
    seq = journal.last_seq + 1
    body = json.dumps(payload).encode()
    frame = EventFrame(version=1, id=os.urandom(16), ts_ns=time.time_ns() - 3600 * 10**9 * 24,
                       payload=body, original_size=len(body))
    journal.append([(seq, record.build(seq, frame, time.time_ns()))])


def test_the_follower_backfills_what_no_hook_delivered_once_across_a_restart(
        tmp_path: Path) -> None:
    project = tmp_path / "projects" / "p"
    project.mkdir(parents=True)
    transcript = project / f"{SESSION}.jsonl"
    shutil.copy(FIXTURES / "session.jsonl", transcript)
    facts = [f for line in transcript.read_bytes().splitlines() for f in entries.parse(line)]
    uses = [f for f in facts if isinstance(f, ToolUse)]
    prompts = [f for f in facts if isinstance(f, Prompt) and f.agent_id is None]
    assert len(uses) == 3 and len(prompts) == 2
    journal = Journal(tmp_path / "journal")
    # the hooks delivered the first prompt and the first call, nothing after
    _hook(journal, {"hook_event_name": "UserPromptSubmit", "session_id": SESSION,
                    "transcript_path": str(transcript), "prompt_id": prompts[0].prompt_id})
    for name in ("PreToolUse", "PostToolUse"):
        _hook(journal, {"hook_event_name": name, "session_id": SESSION,
                        "transcript_path": str(transcript), "tool_name": "Bash",
                        "tool_use_id": uses[0].tool_use_id})
    collector = Collector()

    def run() -> Follower:
        follower = Follower(tmp_path / "journal", tmp_path / "transcripts.json", collector,
                            PriceTable(None), [tmp_path / "projects"], backfill_after_s=0.2)
        follower.start()
        follower.wake()
        return follower

    follower = run()
    try:
        wait_until(lambda: follower.status()["backfilled"] == 5, "what no hook delivered")
    finally:
        follower.stop()
    backfilled = sorted((e["hook_event_name"], e.get("tool_use_id") or e.get("prompt_id"))
                        for e in collector.stored.values()
                        if e["hook_event_name"] not in ("ModelUsage", "CostReport"))
    failed = {f.tool_use_id for f in facts if isinstance(f, ToolResult) and f.is_error}
    assert len(failed) == 1  # the `exit 3`
    assert backfilled == sorted([("UserPromptSubmit", prompts[1].prompt_id)] + [
        (name, u.tool_use_id) for u in uses[1:] for name in (
            "PreToolUse", "PostToolUseFailure" if u.tool_use_id in failed else "PostToolUse")])
    failure = next(e for e in collector.stored.values()
                   if e["hook_event_name"] == "PostToolUseFailure")
    assert failure["tool_input"] == {"command": "exit 3", "description": "fail"}
    assert "3" in failure["error"]
    # what the daemon stored is in the journal (as source "transcript"); a restart reads
    # the journal again and sends none of it twice
    for payload in list(collector.stored.values()):
        seq = journal.last_seq + 1
        body = json.dumps(payload).encode()
        frame = EventFrame(version=1, id=os.urandom(16), ts_ns=time.time_ns(), payload=body,
                           original_size=len(body))
        journal.append([(seq, record.build(seq, frame, time.time_ns(), "transcript"))])
    first = Counter(collector.handed)
    (tmp_path / "transcripts.json").unlink()  # even with its positions lost
    again = run()
    try:
        size = transcript.stat().st_size
        wait_until(lambda: again.followed and all(
            f.file.offset == size and not f.backfill.waiting
            for f in list(again.followed.values())),
            "the transcript read again, and every key decided")
    finally:
        again.stop()
    # the journal read back tells what was sent: nothing is sent again, however old
    assert again.status()["backfilled"] == 0 and again.status()["usage"] == 0
    hook_events = {eid for eid, e in collector.stored.items()
                   if e["hook_event_name"] not in ("ModelUsage", "CostReport")}
    assert all(Counter(collector.handed)[eid] == first[eid] == 1 for eid in hook_events)


def test_a_stand_in_event_fits_the_smallest_frame_limit() -> None:
    from mpmd.transcripts.backfill import MAX_CUT_FIELD, MAX_PAYLOAD, encode

    small = {"hook_event_name": "PostToolUse", "tool_response": "ok", "tool_input": {"a": 1}}
    assert encode(small) == msgspec.json.encode(small)
    big = {"hook_event_name": "PostToolUse", "tool_use_id": "t1",
           "tool_input": {"command": "cat x"}, "tool_response": {"stdout": "y" * 500_000},
           "prompt": "p" * 100}
    data = encode(big)
    assert len(data) <= MAX_PAYLOAD
    got = msgspec.json.decode(data)
    assert got["cut_fields"] == ["tool_response"]  # only what was large
    assert got["tool_response"] == msgspec.json.encode(big["tool_response"]).decode()[
        :MAX_CUT_FIELD]
    assert got["tool_input"] == {"command": "cat x"} and got["tool_use_id"] == "t1"
    assert big["tool_response"] == {"stdout": "y" * 500_000}  # the caller's is left as it was
