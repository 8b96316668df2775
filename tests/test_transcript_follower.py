"""The transcript follower (mpmd.transcripts.follower) on the transcripts the real CLI wrote
(tests/fixtures/transcripts), with a real journal and its real thread: what it reads off
them, once, and what it refuses to read."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from mpmd.model import record
from mpmd.model.events import EventFrame
from mpmd.model.sessions import EventView, Sessions
from mpmd.storage.journal import Journal
from mpmd.transcripts.follower import Follower, event_id
from mpmd.transcripts.prices import PriceTable
from tests.utils import wait_until

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts"
SESSION = "00e5ca8a-84c8-4f59-ab6b-27c11f021403"
AGENT = "abc5a592f7c7fcd63"


def _entries(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line]


def _responses() -> dict[str, dict]:
    """Every API response of both transcripts, by message id (read independently)."""
    found: dict[str, dict] = {}
    for name in ("session.jsonl", "subagent.jsonl"):
        for e in _entries(name):
            message = e.get("message") or {}
            if e.get("type") == "assistant" and message.get("usage"):
                found.setdefault(message["id"], dict(message["usage"], model=message["model"]))
    return found


class Collector:
    """The daemon's side of the follower: stores what it hands over (a dict by id, as the
    store's window would), remembering every hand-over."""

    def __init__(self) -> None:
        self.stored: dict[bytes, dict] = {}
        self.handed: list[bytes] = []
        self.lock = threading.Lock()
        self.refuse = False

    def __call__(self, events: list[tuple[bytes, bytes, int]]) -> bool:
        if self.refuse:
            return False
        with self.lock:
            for eid, payload, _ts_ns in events:
                self.handed.append(eid)
                self.stored.setdefault(eid, json.loads(payload))
        return True

    def of(self, kind: str) -> list[dict]:
        with self.lock:
            return [e for e in self.stored.values() if e["hook_event_name"] == kind]


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """A projects folder with the session's transcript and its subagent's, and a journal."""
    project = tmp_path / "projects" / "-home-dev-project"
    (project / SESSION / "subagents").mkdir(parents=True)
    shutil.copy(FIXTURES / "session.jsonl", project / f"{SESSION}.jsonl")
    shutil.copy(FIXTURES / "subagent.jsonl",
                project / SESSION / "subagents" / f"agent-{AGENT}.jsonl")
    return tmp_path


def _hook(journal: Journal, payload: dict) -> None:
    seq = journal.last_seq + 1
    body = json.dumps(payload).encode()
    frame = EventFrame(version=1, id=os.urandom(16), ts_ns=time.time_ns(), payload=body,
                       original_size=len(body))
    journal.append([(seq, record.build(seq, frame, time.time_ns()))])


def _transcript(place: Path) -> str:
    return str(place / "projects" / "-home-dev-project" / f"{SESSION}.jsonl")


def _run(place: Path, collector: Collector, **kw) -> Follower:
    follower = Follower(place / "journal", place / "transcripts.json", collector,
                        PriceTable(None), [place / "projects"], **kw)
    follower.start()
    return follower


def test_every_response_once_with_its_tokens_and_the_subagents(place: Path) -> None:
    journal = Journal(place / "journal")
    _hook(journal, {"hook_event_name": "UserPromptSubmit", "session_id": SESSION,
                    "transcript_path": _transcript(place), "prompt": "do things"})
    _hook(journal, {"hook_event_name": "PreToolUse", "session_id": SESSION,
                    "agent_id": AGENT, "transcript_path": _transcript(place),
                    "tool_name": "Bash", "tool_input": {"command": "ls"}})
    collector = Collector()
    follower = _run(place, collector)
    try:
        follower.wake()
        expected = _responses()
        wait_until(lambda: len(collector.of("ModelUsage")) == len(expected), "every response")
        wait_until(lambda: len(collector.of("CostReport")) == 2, "both cost reports")
    finally:
        follower.stop()
    usage = {e["message_id"]: e for e in collector.of("ModelUsage")}
    assert usage.keys() == expected.keys()
    for mid, u in expected.items():
        got = usage[mid]
        assert (got["input_tokens"], got["output_tokens"], got["model"]) == (
            u["input_tokens"], u["output_tokens"], u["model"])
        assert got["session_id"] == SESSION
        assert got["cost_usd"] == pytest.approx(
            (u["input_tokens"] * 4 + u["output_tokens"] * 20) / 1e6)
    # the subagent's responses carry its id; the main session's carry the prompt they answer
    sub_ids = {e["message"]["id"] for e in _entries("subagent.jsonl") if e["type"] == "assistant"}
    assert {m for m, e in usage.items() if e["agent_id"] == AGENT} == sub_ids
    prompts = {e["promptId"] for e in _entries("session.jsonl")
               if e["type"] == "user" and e.get("promptId")}
    assert {e["prompt_id"] for m, e in usage.items() if m not in sub_ids} <= prompts
    # Claude Code's own reports, as it wrote them
    reports = sorted(e["total_cost_usd"] for e in collector.of("CostReport"))
    assert reports == sorted(e["totalCostUSD"] for e in _entries("session.jsonl")
                             if e["type"] == "cost-state")
    assert all(e["as_of"] for e in collector.of("CostReport"))
    status = follower.status()
    assert status["followed"] == 2 and status["problems"] == {}


def test_the_sessions_table_reconciles_cost_with_claude_codes_own(place: Path) -> None:
    journal = Journal(place / "journal")
    _hook(journal, {"hook_event_name": "PreToolUse", "session_id": SESSION,
                    "agent_id": AGENT, "transcript_path": _transcript(place)})
    collector = Collector()
    follower = _run(place, collector)
    try:
        follower.wake()
        wait_until(lambda: len(collector.of("CostReport")) == 2, "both cost reports")
        wait_until(lambda: len(collector.of("ModelUsage")) == len(_responses()), "responses")
    finally:
        follower.stop()
    table = Sessions()
    first_prompt = next(e["promptId"] for e in _entries("session.jsonl")
                        if e["type"] == "user" and e.get("promptId"))
    table.apply(EventView(seq=1, event_type="UserPromptSubmit", session_id=SESSION,
                          timestamp="2026-12-03T17:26:00Z", payload=msgspec.Raw(json.dumps(
                              {"prompt": "do things", "prompt_id": first_prompt}).encode())))
    for n, event in enumerate(collector.stored.values(), 2):
        table.apply(EventView(seq=n, event_type=event["hook_event_name"], session_id=SESSION,
                              agent_id=event.get("agent_id"), timestamp="2026-12-03T17:27:00Z",
                              payload=msgspec.Raw(json.dumps(event).encode())))
    row = table.get(SESSION)
    assert row is not None
    expected = _responses()
    assert row.input_tokens == sum(u["input_tokens"] for u in expected.values())
    assert row.output_tokens == sum(u["output_tokens"] for u in expected.values())
    # split by subagent and by prompt, each adding up to the session's
    sub_ids = {e["message"]["id"] for e in _entries("subagent.jsonl") if e["type"] == "assistant"}
    by_agent = {s.agent_id: s for s in row.usage_by_agent}
    assert set(by_agent) == {None, AGENT}
    assert by_agent[AGENT].responses == len(sub_ids)
    assert by_agent[AGENT].input_tokens == sum(u["input_tokens"] for m, u in expected.items()
                                               if m in sub_ids)
    for splits in (row.usage_by_agent, row.usage_by_prompt):
        assert sum(s.input_tokens for s in splits) == row.input_tokens
        assert sum(s.responses for s in splits) == len(expected)
    (first,) = [s for s in row.usage_by_prompt if s.prompt_id == first_prompt]
    assert first.prompt == "do things" and first.responses > 0
    # the last report is cumulative and covers every response: it is the total, not a sum
    last = max(e["totalCostUSD"] for e in _entries("session.jsonl") if e["type"] == "cost-state")
    assert row.cost_usd == pytest.approx(last) and row.cost_source == "claude-code"
    assert row.event_count == 1  # the prompt's: cost is not activity


def test_a_restart_reads_on_from_the_saved_position_and_sends_nothing_twice(place: Path) -> None:
    journal = Journal(place / "journal")
    path = Path(_transcript(place))
    whole = path.read_bytes()
    cut = whole.index(b'"type":"cost-state"')
    cut = whole.rindex(b"\n", 0, cut) + 1 + 7  # a torn line: the cost-state's first bytes
    path.write_bytes(whole[:cut])
    _hook(journal, {"hook_event_name": "Stop", "session_id": SESSION,
                    "transcript_path": str(path)})
    collector = Collector()
    follower = _run(place, collector)
    try:
        follower.wake()
        wait_until(lambda: follower.status()["usage"] >= 3, "the first responses")
        wait_until(lambda: not follower._dirty, "positions saved")
    finally:
        follower.stop()
    first = list(collector.handed)
    assert not collector.of("CostReport")  # its line is torn: not read yet
    with path.open("ab") as f:
        f.write(whole[cut:])
    again = _run(place, collector)
    try:
        again.wake()
        wait_until(lambda: len(collector.of("CostReport")) == 2, "the rest")
    finally:
        again.stop()
    handed = Counter(collector.handed)
    assert all(handed[eid] == 1 for eid in first), "a response sent again after a restart"


def test_transcripts_outside_the_roots_links_and_fifos_are_not_read(place: Path,
                                                                  tmp_path: Path) -> None:
    journal = Journal(place / "journal")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(FIXTURES / "session.jsonl", elsewhere / "s.jsonl")
    folder = place / "projects" / "-home-dev-project"
    os.symlink(elsewhere / "s.jsonl", folder / "link.jsonl")
    os.mkfifo(folder / "fifo.jsonl")
    for path in (elsewhere / "s.jsonl", folder / "link.jsonl", folder / "fifo.jsonl",
                 folder / "missing.jsonl", folder / "notes.txt"):
        _hook(journal, {"hook_event_name": "Stop", "session_id": "s",
                        "transcript_path": str(path)})
    collector = Collector()
    follower = _run(place, collector)
    try:
        follower.wake()
        wait_until(lambda: len(follower.status()["problems"]) == 5, "each refused")
    finally:
        follower.stop()
    problems = follower.status()["problems"]
    assert "outside" in problems[str(elsewhere / "s.jsonl")]
    assert "outside" in problems[str(folder / "notes.txt")]  # not a .jsonl
    assert problems[str(folder / "missing.jsonl")] == "missing"
    assert problems[str(folder / "fifo.jsonl")] == "not a regular file"
    assert problems[str(folder / "link.jsonl")]
    assert collector.stored == {}


def test_event_ids_are_stable_and_distinct() -> None:
    assert event_id("s", "usage", "msg_1") == event_id("s", "usage", "msg_1")
    assert len({event_id("s", "usage", "msg_1"), event_id("s", "usage", "msg_2"),
                event_id("t", "usage", "msg_1"), event_id("s", "cost", "msg_1")}) == 4


def test_what_the_daemon_did_not_store_is_read_again(place: Path) -> None:
    journal = Journal(place / "journal")
    _hook(journal, {"hook_event_name": "Stop", "session_id": SESSION,
                    "transcript_path": _transcript(place)})
    collector = Collector()
    collector.refuse = True
    refused = threading.Event()
    take = collector.__call__

    def refuse_once(events: list[tuple[bytes, bytes, int]]) -> bool:
        if collector.refuse:
            collector.refuse = False
            refused.set()
            return False  # as when the daemon is stopping: nothing stored
        return take(events)

    follower = Follower(place / "journal", place / "transcripts.json", refuse_once,
                        PriceTable(None), [place / "projects"])
    follower.start()
    try:
        follower.wake()
        wait_until(refused.is_set, "a batch refused")
        main = {m for m, u in _responses().items()
                if m not in {e["message"]["id"] for e in _entries("subagent.jsonl")
                             if e["type"] == "assistant"}}
        wait_until(lambda: {e["message_id"] for e in collector.of("ModelUsage")} == main,
                   "every response of the session, after all")
    finally:
        follower.stop()
    assert len(collector.handed) == len(set(collector.handed))


def test_doctor_tells_of_transcripts_not_read_and_prices_refused() -> None:
    from mpmd.ops import doctor
    from mpmd.status import Status

    def check(**transcripts: object) -> doctor.Check:
        return doctor.check_transcripts(msgspec.convert(
            {"running": True, "transcripts": transcripts}, Status))

    assert doctor.check_transcripts(Status(running=False)).level == doctor.SKIP
    fine = check(followed=2, usage=7, cost_reports=1)
    assert fine.level == doctor.OK and "7 responses" in fine.line()
    unread = check(problems={"/elsewhere/s.jsonl": "outside the transcript folders",
                             "/p/missing.jsonl": "missing"})
    assert unread.level == doctor.WARN and "2 not read" in unread.line()
    assert "/p/missing.jsonl: missing" in unread.line()
    prices = check(prices_error='prices."x".input: not a number')
    assert prices.level == doctor.WARN and "not a number" in prices.line()


def test_the_daemon_starts_its_transcript_worker_again_and_nothing_is_lost(
        place: Path) -> None:
    """The follower runs in a process of the daemon's (mpmd.transcripts.worker): killed,
    it is started again, goes on from its saved positions, and every response is journaled
    once."""
    import signal

    from tests.utils import Daemon, journal_events, send_events, short_tempdir, status

    home = short_tempdir()
    roots = str(place / "projects")
    with Daemon(home, MPMD_TRANSCRIPT_ROOTS=roots):
        first = status(home)["transcripts"]["worker_pid"]
        assert first
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: status(home)["transcripts"]["worker_pid"] not in (None, first),
                   "a new transcript worker")
        assert status(home)["counters"]["transcript_worker_restarts"] == 1
        send_events(home, [json.dumps({
            "hook_event_name": "PreToolUse", "session_id": SESSION, "agent_id": AGENT,
            "transcript_path": _transcript(place), "tool_name": "Bash"}).encode()])

        def usage() -> list[dict]:
            return [e for e in journal_events(home) if e["event_type"] == "ModelUsage"]

        wait_until(lambda: len(usage()) == len(_responses()), "every response")
        again = status(home)["transcripts"]["worker_pid"]
        os.kill(again, signal.SIGKILL)
        wait_until(lambda: status(home)["transcripts"]["worker_pid"] not in (None, again),
                   "another transcript worker")
        wait_until(lambda: status(home)["transcripts"]["journal_seq"] >= max(
            e["seq"] for e in journal_events(home)), "the new worker caught up")
        got = [e["payload"]["message_id"] for e in usage()]
    assert sorted(got) == sorted(_responses())  # each once, across both restarts


def test_a_worker_batch_is_cut_to_its_bound() -> None:
    from mpmd.transcripts.worker import batches

    events = [(bytes([n]), b"x" * size, n) for n, size in enumerate((3, 4, 9, 2, 2, 2))]
    parts = batches(events, 6)
    assert [[e[0][0] for e in part] for part in parts] == [[0], [1], [2], [3, 4, 5]]
    assert [e for part in parts for e in part] == events  # each once, in order
    assert batches([], 6) == []


def test_a_tool_call_larger_than_the_frame_limit_is_backfilled_cut_as_a_hooks_would_be(
        tmp_path: Path) -> None:
    """A transcript line may hold far more than a hook may send (max_frame_bytes): the
    event that stands in for it has its large fields cut, so that it fits any limit."""
    from tests.utils import Daemon, journal_events, send_events, short_tempdir

    project = tmp_path / "projects" / "p"
    project.mkdir(parents=True)
    transcript = project / "s-big.jsonl"
    big = "x" * 200_000
    transcript.write_text(json.dumps({
        "type": "assistant", "sessionId": "s-big", "uuid": "u1", "isSidechain": False,
        # after the journal's first event (the Stop below): older keys are never backfilled
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.999Z", time.gmtime(time.time() + 1)),
        "cwd": "/p",
        "message": {"id": "m1", "model": "claude-opus-5-5", "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_big", "name": "Write",
                                 "input": {"file_path": "/p/big.txt", "content": big}}],
                    "usage": {"input_tokens": 10, "output_tokens": 5}}}) + "\n")
    home = short_tempdir()
    with Daemon(home, MPMD_TRANSCRIPT_ROOTS=str(tmp_path / "projects"),
                MPMD_MAX_FRAME_BYTES="65536", MPMD_RING_BYTES=str(1 << 20),
                MPMD_TRANSCRIPT_BACKFILL_AFTER_S="0.2"):
        send_events(home, [json.dumps({"hook_event_name": "Stop", "session_id": "s-big",
                                       "transcript_path": str(transcript)}).encode()])

        def backfilled() -> list[dict]:
            return [e for e in journal_events(home)
                    if e["source"] == "transcript" and e["event_type"] == "PreToolUse"]

        wait_until(backfilled, "the call backfilled")
        (event,) = backfilled()
    # whole and typed (its key readable, so it is known as sent), its input cut as text
    assert event["status"] == "ok" and event["tool_use_id"] == "toolu_big"
    assert event["payload"]["cut_fields"] == ["tool_input"]
    assert event["payload"]["tool_input"].startswith('{"file_path":"/p/big.txt"')
    assert len(event["payload"]["tool_input"]) == 8 * 1024


def test_a_sessions_usage_keeps_its_bounds() -> None:
    """Models past MAX_MODELS are summed as "other"; subagents and prompts past MAX_SPLITS
    keep the latest; the totals stay whole."""
    from mpmd.model import sessions

    table = Sessions()
    n = sessions.MAX_SPLITS + 10
    for k in range(n):
        payload = {"hook_event_name": "ModelUsage", "model": f"model-{k}", "prompt_id": f"p{k}",
                   "input_tokens": 1, "output_tokens": 1, "cost_usd": 0.5, "at": f"{k:06d}"}
        table.apply(EventView(seq=k + 1, event_type="ModelUsage", session_id="s",
                              agent_id=f"a{k}", timestamp="2026-12-03T10:00:00Z",
                              payload=msgspec.Raw(json.dumps(payload).encode())))
    row = table.get("s")
    assert row is not None and row.input_tokens == n and row.cost_usd == pytest.approx(n / 2)
    assert len(row.models) == sessions.MAX_MODELS + 1  # and "other"
    assert row.models["other"].responses == n - sessions.MAX_MODELS
    for splits, key in ((row.usage_by_agent, "agent_id"), (row.usage_by_prompt, "prompt_id")):
        assert len(splits) == sessions.MAX_SPLITS
        assert getattr(splits[-1], key).endswith(str(n - 1))  # the latest kept


def test_the_follower_follows_at_most_its_bound(place: Path, monkeypatch) -> None:
    from mpmd.transcripts import follower as follower_module

    monkeypatch.setattr(follower_module, "MAX_FOLLOWED", 3)
    folder = place / "projects" / "-home-dev-project"
    journal = Journal(place / "journal")
    for k in range(5):
        (folder / f"s{k}.jsonl").write_text("")
        _hook(journal, {"hook_event_name": "Stop", "session_id": f"s{k}",
                        "transcript_path": str(folder / f"s{k}.jsonl")})
    follower = _run(place, Collector())
    try:
        follower.wake()
        wait_until(lambda: follower.status()["dropped"] == 2, "the oldest two let go")
    finally:
        follower.stop()
    assert [Path(p).name for p in follower.followed] == ["s2.jsonl", "s3.jsonl", "s4.jsonl"]
