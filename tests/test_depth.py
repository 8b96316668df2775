"""Nesting depth is bounded before anything decodes a payload (issue 12, defect 1).

A payload nested ~1,000 levels deep used to raise RecursionError past the decoder: the hook's
event was never acked, spooled, and then stopped the spool task and every later start. Now a
payload nested deeper than events.MAX_DEPTH is kept whole as text (status malformed), and
whatever a background task still meets is logged, counted and the task started again.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mpmd.daemon.tasks import Tasks
from mpmd.model import events, record
from mpmd.model.events import EventFrame
from tests.utils import (
    Daemon,
    journal_events,
    mpmd_cli,
    run_hook,
    send_events,
    spool_files,
    status,
)

MAX = events.MAX_DEPTH

# Strings that look like structure: brackets, quotes and backslashes in every order.
_tricky_text = st.text(alphabet='[]{}"\\ab:,\n', max_size=12)
_json_values = st.recursive(
    st.none() | st.integers() | _tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3),
    max_leaves=20,
)


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


def nested(levels: int, kind: str = "[]", inner: str = "") -> str:
    opener, closer = kind
    if opener == "{":
        return '{"a":' * levels + (inner or "0") + "}" * levels
    return opener * levels + inner + closer * levels


def event_with(value_text: str, event_type: str = "Stop") -> bytes:
    return f'{{"hook_event_name":"{event_type}","session_id":"s","x":{value_text}}}'.encode()


def stored(payload: bytes) -> dict:
    frame = EventFrame(version=1, id=bytes(16), ts_ns=1_700_000_000_000_000_000,
                       payload=payload, original_size=len(payload))
    return msgspec.json.decode(record.build(1, frame, 1_700_000_000_000_000_001))


@given(_json_values, st.integers(min_value=0, max_value=8))
def test_deeper_than_agrees_with_the_decoded_depth(value: object, limit: int) -> None:
    text = json.dumps(value).encode()
    assert events.deeper_than(text, limit) == (depth_of(value) > limit)


@given(st.integers(min_value=MAX - 3, max_value=MAX + 3),
       st.sampled_from(["[]", "{}", "mixed"]))
def test_the_bound_is_exact(levels: int, kind: str) -> None:
    if kind == "mixed":
        text = ('[{"a":' * (levels // 2) + ("[0]" if levels % 2 else "0")
                + "}]" * (levels // 2))
    else:
        text = nested(levels, kind)
    payload = event_with(text)  # the envelope object is one level more
    _event, status, error = events.parse_payload(payload)
    if levels + 1 > MAX:
        assert status == events.MALFORMED and f"more than {MAX} levels" in (error or "")
    else:
        assert status == events.OK, error


@pytest.mark.parametrize("text", [
    nested(2000),                       # the reproduction
    nested(100_000, "{}"),
    "[" * 200_000,                      # never closed
    nested(5000, inner='"]]]]"'),       # closers inside a string change nothing
    '[' * 3000 + ']' * 10,              # unbalanced
])
@pytest.mark.parametrize("event_type", ["Stop", "Notification", "PreToolUse", "Brand New"])
def test_a_deep_payload_is_kept_as_text_and_every_reader_can_decode_the_line(
        text: str, event_type: str) -> None:
    payload = event_with(text, event_type)
    line = stored(payload)  # the old code raised RecursionError here
    assert line["status"] == events.MALFORMED
    assert line["raw"].encode() == payload  # kept whole
    assert line["raw_encoding"] == "utf-8"


@given(st.integers(min_value=0, max_value=3000), st.sampled_from(["[]", "{}"]),
       st.sampled_from(["Stop", "Notification", "PostToolUse", "SubagentStop"]))
@example(981, "[]", "Notification")  # stored, then stopped the broadcaster
@example(982, "[]", "Stop")          # never acked, then stopped the spool task
def test_any_depth_becomes_one_line_no_deeper_than_the_bound(
        levels: int, kind: str, event_type: str) -> None:
    line = stored(event_with(nested(levels, kind), event_type))
    assert depth_of(line) <= MAX + 2  # the stored envelope adds one level around a payload


def test_deep_events_from_real_hooks_are_stored_and_the_daemon_goes_on(home):
    deep = event_with(nested(2000))
    notification = event_with(nested(980), "Notification")
    with Daemon(home) as d:
        for payload in (deep, notification):
            result = run_hook(home, payload)
            assert result.returncode == 0 and result.stderr == b""
        assert spool_files(home) == []  # acked, not spooled
        seqs = send_events(home, [event_with("[1]")])  # the daemon still takes events
        info = status(home)
        assert info["events_total"] == 3 and info["task_failures"] == {}
        assert d.stop() == 0
    events_ = journal_events(home)
    assert [e["status"] for e in events_] == ["malformed", "malformed", "ok"]
    assert [e["seq"] for e in events_][-1] == seqs[0]
    assert events_[0]["raw"].encode() == deep
    # ... and it starts again over that journal (the old sessions table failed here).
    with Daemon(home):
        assert status(home)["journal_last_seq"] == 3


def test_a_deep_event_spooled_while_the_daemon_was_down_is_taken_in_at_start(home):
    deep = event_with(nested(5000), "Notification")
    assert run_hook(home, deep).returncode == 0  # no daemon: spooled
    assert len(spool_files(home)) == 1
    result = mpmd_cli(home, "start")  # the old daemon failed to start here, every time
    try:
        assert result.returncode == 0, result.stderr
        assert spool_files(home) == []
        assert status(home)["task_failures"] == {}
    finally:
        assert mpmd_cli(home, "stop").returncode == 0
    (only,) = journal_events(home)
    assert only["status"] == "malformed" and only["source"] == "spool"


def test_a_failing_background_task_is_counted_shown_and_started_again():
    async def scenario() -> Tasks:
        tasks = Tasks(Counter())
        runs: list[int] = []

        async def flaky() -> None:
            runs.append(len(runs))
            if len(runs) < 3:
                raise RecursionError("maximum recursion depth exceeded")

        await asyncio.wait_for(tasks.supervised("broadcast", flaky), 30)
        assert runs == [0, 1, 2]  # failed twice, started again each time, then finished
        return tasks

    tasks = asyncio.run(scenario())
    failed = tasks.failures["broadcast"]
    assert failed.failures == 2
    assert "RecursionError" in failed.last_error
    assert tasks.counters["task_failures"] == 2


def test_doctor_and_status_tell_of_a_failed_task():
    from mpmd.cli import main as cli
    from mpmd.ops import doctor
    from mpmd.status import Status

    running = Status(running=True)
    assert doctor.check_tasks(running).level == doctor.OK
    failed = msgspec.convert({"running": True, "task_failures": {"broadcast": {
        "failures": 2, "last_error": "RecursionError: too deep", "at": "2026-12-03T10:00"}}},
        Status)
    check = doctor.check_tasks(failed)
    assert check.level == doctor.WARN and "broadcast failed 2 times" in check.line()
    assert "RecursionError" in cli._tasks_line(failed) and cli._tasks_line(running) == ""


def test_a_payload_the_line_builder_fails_on_is_stored_as_its_bytes(tmp_path, monkeypatch):
    """Whatever a future bug in record.build raises, Store.put stores the event (its bytes
    redacted, as base64) and counts it: no lost event, no task stopped on a poison frame.
    The failure is injected: no known payload makes build fail any more."""
    import base64
    from collections import Counter

    from mpm_hook import wire
    from mpmd.storage.dedup import RecentIds
    from mpmd.storage.ring import open_ring_file
    from mpmd.storage.store import Store

    async def scenario() -> tuple[tuple[int, int], Counter[str], bytes]:
        ring, mm = open_ring_file(tmp_path / "ring", 1 << 20)
        ring.add_consumer("journal")
        counters: Counter[str] = Counter()
        store = Store(ring, RecentIds(), 1, counters)

        def broken(*_args, **_kwargs):
            raise RecursionError("maximum recursion depth exceeded")

        monkeypatch.setattr(record, "build", broken)
        token = "ghp_" + "A1b2C3d4E5" * 4
        payload = event_with(f'"{token}"')
        frame = EventFrame(version=1, id=b"p" * 16, ts_ns=time_ns(), payload=payload,
                           original_size=len(payload), decision={"action": "allow"})
        answer = store.put(frame, "spool")
        ((_pos, line),) = ring.read("journal", max_records=10)
        ring.close()
        mm.close()
        return answer, counters, line

    from time import time_ns

    (status_, seq), counters, line = asyncio.run(scenario())
    assert (status_, seq) == (wire.STORED, 1)
    assert counters["internal_errors"] == 1 and counters["events_total"] == 1
    stored = msgspec.json.decode(line)
    assert stored["status"] == "malformed" and "RecursionError" in stored["error"]
    kept = base64.b64decode(stored["raw"])
    assert b"Stop" in kept and b"ghp_A1b2" not in kept and stored["redactions"] == 1
