"""`mpmd replay`: timing scaled and capped, marked as a replay for viewers, never live."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from websockets.asyncio.client import connect

from mpmd.serve.replay import schedule
from tests.test_index import make_lines
from tests.utils import (
    Daemon,
    env_for,
    fixture_payloads,
    journal_events,
    mpmd_cli,
    send_events,
    status,
    wait_until,
)


def test_schedule_scales_and_caps_the_gaps() -> None:
    lines = make_lines(4)  # hook times 1 s apart
    lines[3] = lines[3].replace(b'"timestamp":"1970-01-01T00:00:04',
                                b'"timestamp":"1970-01-01T01:00:04')
    waits = [wait for wait, _line in schedule(lines, speed=2.0, max_gap_s=10.0)]
    assert waits == [0.0, 0.5, 0.5, 10.0]  # an hour's pause is cut to 10 s
    assert [line for _w, line in schedule(lines, 1.0)] == lines
    junk = [b"not json", *make_lines(2)]
    assert [w for w, _ in schedule(junk, 1.0)] == [0.0, 0.0, 1.0]


def test_replay_to_viewers_is_marked_and_changes_nothing_live(home: Path) -> None:
    sid = json.loads(fixture_payloads()[0])["session_id"]

    async def watch() -> tuple[list[dict], list[str]]:
        async with connect(status(home)["ws_url"], compression=None, max_size=None) as ws:
            await ws.send(json.dumps({"type": "subscribe"}))
            kinds: list[str] = []
            replayed: list[dict] = []
            while "live" not in kinds:
                kinds.append(json.loads(await ws.recv())["type"])
            replaying = subprocess.Popen(
                [sys.executable, "-m", "mpmd", "replay", sid[:8], "--speed", "1000"],
                env=env_for(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            while "replay_end" not in kinds:
                message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                kinds.append(message["type"])
                if message["type"] == "replay":
                    replayed.append(message["event"])
            _out, err = replaying.communicate(timeout=60)
            assert replaying.returncode == 0, err
            return replayed, kinds

    with Daemon(home):
        send_events(home, fixture_payloads())
        wait_until(lambda: status(home)["index_last_seq"] == len(fixture_payloads()), "indexed")
        before = status(home)["next_seq"]
        replayed, kinds = asyncio.run(watch())
        assert replayed == journal_events(home)  # every event, in order, as stored
        after = kinds[kinds.index("live") + 1:]
        assert after[0] == "approvals"  # part of going live: none are waiting
        after = after[1:]
        assert after[0] == "replay_start" and after[-1] == "replay_end"
        assert "events" not in after and "sessions" not in after  # nothing looked live
        assert status(home)["next_seq"] == before  # nothing was stored again


def test_replay_to_stdout_without_a_daemon(home: Path) -> None:
    with Daemon(home) as daemon:
        send_events(home, fixture_payloads())
        wait_until(lambda: status(home)["index_last_seq"] == len(fixture_payloads()), "indexed")
        daemon.stop()
    result = mpmd_cli(home, "replay", "9f1c", "--stdout", "--speed", "1000")
    assert result.returncode == 0, result.stderr
    assert [json.loads(x) for x in result.stdout.splitlines()] == journal_events(home)
    assert mpmd_cli(home, "replay", "9f1c").returncode == 1  # to viewers needs the daemon
    assert "no session starts with" in mpmd_cli(home, "replay", "0000", "--stdout").stderr
