"""A configured max_frame_bytes below the wire's 8 MiB: the hook and the daemon agree on it
(the daemon publishes it, the hook cuts to it), and where they do not (a stale limit, an old
spool file) the daemon cuts instead of refusing. An event over the limit is stored cut
(status `truncated`, `original_size` set), never refused."""

from __future__ import annotations

import os
import time

import pytest

from mpm_hook import hook, wire
from mpmd import config
from mpmd.ingest.framing import decode_one
from tests.utils import (
    Daemon,
    journal_events,
    run_hook,
    spool_files,
    status,
    wait_until,
)

LIMIT = 1 << 20  # max_frame_bytes = 1048576, as in the issue
KEEP = LIMIT - wire.EVENT_OVERHEAD  # what the hook (and the drainer) keep of a payload


def _prompt(size: int) -> bytes:
    head = b'{"hook_event_name": "UserPromptSubmit", "session_id": "s1", "prompt": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


BIG = _prompt(3_000_000)


def _configure(home, limit: int = LIMIT) -> None:
    (home / "config.toml").write_text(f"max_frame_bytes = {limit}\n")


def _assert_cut(event: dict, original_size: int, source: str) -> None:
    assert event["status"] == "truncated", event["status"]
    assert event["original_size"] == original_size
    assert len(event["raw"]) == KEEP
    assert event["source"] == source


def _spool_frame(home, payload: bytes, original_size: int | None = None,
                 decision: dict | None = None, ts_ns: int | None = None) -> bytes:
    """A spool file as a hook with no limit file (or an older hook) writes it."""
    event_id = os.urandom(16)
    ts = time.time_ns() if ts_ns is None else ts_ns
    frame = wire.encode_event(event_id, ts, payload,
                              len(payload) if original_size is None else original_size,
                              decision)
    hook.spool(str(home / "spool"), frame, event_id, ts)
    return event_id


def _rejected(home) -> list[str]:
    folder = home / "rejected"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_running_daemon_publishes_its_limit_and_the_hook_cuts_to_it(home):
    _configure(home)
    with Daemon(home) as daemon:
        assert run_hook(home, BIG).returncode == 0
        # Acked on the socket: nothing refused, nothing spooled.
        counters = status(home)["counters"]
        assert not [k for k in counters if k.startswith("rejected_")], counters
        assert counters.get("events_hook") == 1, counters
        assert spool_files(home) == []
        assert daemon.stop() == 0
    [event] = journal_events(home)
    _assert_cut(event, len(BIG), "hook")
    assert _rejected(home) == []
    assert (home / wire.FRAME_LIMIT_NAME).read_text() == f"{LIMIT}\n"


def test_a_hook_without_a_daemon_cuts_to_the_last_published_limit(home):
    _configure(home)
    with Daemon(home) as daemon:
        assert daemon.stop() == 0
    assert run_hook(home, BIG).returncode == 0
    [path] = spool_files(home)
    data = path.read_bytes()
    assert len(data) - wire.LENGTH_BYTES <= LIMIT
    frame = decode_one(data, LIMIT)
    assert (len(frame.payload), frame.original_size) == (KEEP, len(BIG))
    with Daemon(home) as daemon:  # drained at start
        assert daemon.stop() == 0
    [event] = journal_events(home)
    _assert_cut(event, len(BIG), "spool")
    assert spool_files(home) == [] and _rejected(home) == []


def test_the_drainer_cuts_spooled_frames_over_a_lower_limit(home):
    # Spooled while no daemon had published a limit (or before max_frame_bytes was lowered):
    # frames up to the wire's 8 MiB. The daemon started with 1 MiB stores each of them cut.
    assert run_hook(home, BIG).returncode == 0  # no limit file: the hook keeps 3 MB
    [hooked] = spool_files(home)
    assert decode_one(hooked.read_bytes()).original_size == len(BIG)
    base = time.time_ns()
    precut = _spool_frame(home, _prompt(2_000_000), original_size=9_000_000, ts_ns=base + 1)
    decision = {"action": "deny", "rule": "no-big", "rule_index": 1, "reason": "too big"}
    decided = _spool_frame(home, _prompt(1_500_000), decision=decision, ts_ns=base + 2)
    small = _spool_frame(home, _prompt(1000), ts_ns=base + 3)
    _configure(home)
    with Daemon(home) as daemon:
        counters = status(home)["counters"]
        assert daemon.stop() == 0
    assert not [k for k in counters if k.startswith("rejected_")], counters
    assert counters.get("spool_cut") == 3, counters
    events = {e["id"]: e for e in journal_events(home)}
    assert len(events) == 4
    [from_hook] = [e for i, e in events.items() if i not in (precut.hex(), decided.hex(),
                                                             small.hex())]
    _assert_cut(from_hook, len(BIG), "spool")
    _assert_cut(events[precut.hex()], 9_000_000, "spool")  # the hook's own cut stands
    _assert_cut(events[decided.hex()], 1_500_000, "spool")
    assert events[decided.hex()]["decision"] == decision  # what the hook decided stays
    assert events[small.hex()]["status"] == "ok"
    assert spool_files(home) == [] and _rejected(home) == []


def test_a_stale_limit_on_the_hooks_side_still_ends_in_the_journal_cut(home):
    # The hook believes 8 MiB (the published limit is stale): the daemon refuses the frame
    # on the socket before buffering it, the hook spools it, and the drainer stores it cut.
    _configure(home)
    with Daemon(home, MPMD_SPOOL_SCAN_INTERVAL_S="0.2") as daemon:
        (home / wire.FRAME_LIMIT_NAME).write_text(f"{wire.MAX_FRAME_BYTES}\n")
        assert run_hook(home, BIG).returncode == 0
        wait_until(lambda: status(home)["counters"].get("spool_drained"),
                   "the drainer takes the spooled event")
        counters = status(home)["counters"]
        assert daemon.stop() == 0
    assert counters.get("rejected_oversized") == 1, counters  # refused on the socket ...
    assert counters.get("spool_cut") == 1, counters  # ... and cut from the spool
    assert "rejected_spool_oversized" not in counters
    [event] = journal_events(home)
    _assert_cut(event, len(BIG), "spool")


def test_a_frame_over_the_wire_ceiling_is_still_refused_from_the_spool(home):
    # No hook writes one (the hook cuts at 8 MiB); the drainer reads no more than that.
    event_id = os.urandom(16)
    payload = b"x" * wire.MAX_FRAME_BYTES
    frame = wire.encode_event(event_id, time.time_ns(), payload, len(payload))
    hook.spool(str(home / "spool"), frame, event_id, time.time_ns())
    with Daemon(home) as daemon:
        counters = status(home)["counters"]
        assert daemon.stop() == 0
    assert counters.get("rejected_spool_oversized") == 1, counters
    assert journal_events(home) == [] and spool_files(home) == []


# ---- the hook's side, in process ---------------------------------------------------------

@pytest.mark.parametrize(("content", "limit"), [
    (None, wire.MAX_FRAME_BYTES),  # no daemon ever published one
    (b"1048576\n", LIMIT),
    (b"garbage", wire.MAX_FRAME_BYTES),
    (b"", wire.MAX_FRAME_BYTES),
    (b"1024\n", wire.MIN_FRAME_BYTES),  # never below the floor config enforces
    (b"99999999999\n", wire.MAX_FRAME_BYTES),  # never above the wire's ceiling
])
def test_the_hook_reads_the_published_limit(home, content, limit):
    if content is not None:
        (home / wire.FRAME_LIMIT_NAME).write_bytes(content)
    assert hook.payload_limit(str(home)) == limit - wire.EVENT_OVERHEAD


def test_short_payloads_never_look_at_the_limit(home, monkeypatch):
    # Under the floor any daemon's limit fits: the common event pays nothing for it.
    payload = _prompt(wire.MIN_FRAME_BYTES - wire.EVENT_OVERHEAD)
    monkeypatch.setattr(hook, "read_stdin", lambda: (payload, len(payload)))
    monkeypatch.setattr(hook, "payload_limit", lambda state_dir: pytest.fail("read"))
    hook.run(str(home), str(home))
    [path] = spool_files(home)
    assert decode_one(path.read_bytes()).payload == payload


def test_a_decided_payload_at_the_cut_fits_the_smallest_limit():
    decision = {"action": "deny", "rule": "r" * 31, "rule_index": 10_000,
                "reason": "é" * 2000, "timeout_s": 60.0, "x" * 31: "y" * 2000}
    payload = b"x" * wire.payload_limit(wire.MIN_FRAME_BYTES)
    frame = wire.encode_event(b"a" * 16, 1, payload, len(payload), decision)
    assert decode_one(frame, wire.MIN_FRAME_BYTES).decision is not None


def test_config_refuses_a_limit_below_the_floor(home, monkeypatch):
    monkeypatch.setenv("MPMD_HOME", str(home))
    monkeypatch.setenv("MPMD_MAX_FRAME_BYTES", str(wire.MIN_FRAME_BYTES - 1))
    with pytest.raises(config.ConfigError, match="max_frame_bytes"):
        config.load()
    monkeypatch.setenv("MPMD_MAX_FRAME_BYTES", str(wire.MIN_FRAME_BYTES))
    settings = config.load()
    settings.publish_frame_limit()
    assert (home / wire.FRAME_LIMIT_NAME).read_text() == f"{wire.MIN_FRAME_BYTES}\n"
    assert hook.payload_limit(str(home)) == wire.payload_limit(wire.MIN_FRAME_BYTES)
