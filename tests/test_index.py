"""The search index (mpmd.history.index, mpmd.history.indexer): derived from the journal,
never missing or
repeating an event, rebuilt when missing or damaged, pruned with the journal."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from mpmd.history import index as index_module
from mpmd.history.index import Index, connect_read_only, fetch_lines, open_index, rebuild
from mpmd.model import record
from mpmd.model.events import EventFrame
from mpmd.storage.journal import Journal
from tests.utils import (
    Daemon,
    fixture_payloads,
    journal_lines,
    mpmd_cli,
    send_events,
    status,
    wait_until,
)


def make_lines(n: int, start: int = 1) -> list[bytes]:
    payloads = itertools.cycle(fixture_payloads())
    lines = []
    for seq in range(start, start + n):
        data = next(payloads)
        frame = EventFrame(version=1, id=seq.to_bytes(16, "big"), ts_ns=seq * 10**9,
                           payload=data, original_size=len(data))
        lines.append(record.build(seq, frame, seq * 10**9))
    return lines


def indexed_lines(path: Path) -> list[bytes]:
    conn = connect_read_only(path)
    try:
        seqs = [s for (s,) in conn.execute("SELECT seq FROM events ORDER BY seq")]
        return fetch_lines(conn, seqs)
    finally:
        conn.close()


def fts(path: Path, match: str) -> list[int]:
    conn = connect_read_only(path)
    try:
        return [r for (r,) in conn.execute(
            "SELECT rowid FROM events_fts WHERE events_fts MATCH ? ORDER BY rowid", (match,))]
    finally:
        conn.close()


def test_lines_are_indexed_once_and_kept_whole(tmp_path: Path) -> None:
    import stat

    lines = make_lines(100)
    index = Index(tmp_path / "i.sqlite3")
    for name in ("i.sqlite3", "i.sqlite3-wal", "i.sqlite3-shm"):  # the user's data only
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert index.add(lines[:60]) == 60
    assert index.add(lines[30:]) == 40  # the overlap is skipped by seq
    assert index.add([b"not json", b"{}"]) == 0
    index.close()
    assert indexed_lines(tmp_path / "i.sqlite3") == lines
    reopened = Index(tmp_path / "i.sqlite3")
    assert reopened.last_seq == 100


def test_free_text_finds_prompts_commands_paths_and_errors(tmp_path: Path) -> None:
    lines = make_lines(len(fixture_payloads()))
    by_seq = {msgspec.json.decode(line)["seq"]: msgspec.json.decode(line) for line in lines}
    index = Index(tmp_path / "i.sqlite3")
    index.add(lines)
    index.close()
    path = tmp_path / "i.sqlite3"

    def types(match: str) -> set[str]:
        return {by_seq[s]["event_type"] for s in fts(path, match)}

    assert "UserPromptSubmit" in types('"make them pass"')  # the prompt
    assert types('"rm rf node_modules"') == {"PermissionRequest"}  # a command
    assert "PostToolUseFailure" in types('"exit code 1"')  # an error
    assert "StopFailure" in types("rate_limit")
    assert "Notification" in types('"waiting for your input"')  # a message


def test_pruning_forgets_rows_and_their_text(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite3"
    index = Index(path)
    index.add(make_lines(200))
    before = fts(path, "login")
    assert index.delete_before(101) == 100
    index.close()
    assert [msgspec.json.decode(x)["seq"] for x in indexed_lines(path)] == list(range(101, 201))
    assert fts(path, "login") == [s for s in before if s >= 101]


def test_a_damaged_or_foreign_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    index = open_index(path)
    assert index.last_seq == 0
    index.add(make_lines(3))
    index.close()
    assert (tmp_path / "i.sqlite3.damaged").exists()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    (tmp_path / "i.sqlite3.damaged").unlink()
    assert open_index(path).last_seq == 0  # another schema: rebuilt, not misread
    assert not (tmp_path / "i.sqlite3.damaged").exists()  # and not kept: nothing to learn


def test_rebuild_reports_progress_and_replaces_in_one_step(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite3"
    old = Index(path)
    old.add(make_lines(5))
    old.close()
    seen: list[int] = []
    new = rebuild(path, make_lines(12_000), batch=5000, progress=seen.append)
    assert seen == [5000, 5000, 2000] and new.last_seq == 12_000
    new.close()
    assert not (tmp_path / "i.sqlite3.rebuild").exists()


class WorkerProcess:
    """A real `python -m mpmd.history.index_worker`, spoken to as the daemon does."""

    def __init__(self, journal_dir: Path, index_path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mpmd.history.index_worker", str(journal_dir), str(index_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.reports: list[dict] = []

    def send(self, **command: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(msgspec.json.encode(command) + b"\n")
        self.proc.stdin.flush()

    def until(self, done: Callable[[dict], bool]) -> dict:
        """Reports up to the first that ``done`` accepts (the pipe's own blocking read)."""
        assert self.proc.stdout is not None
        while line := self.proc.stdout.readline():
            report = msgspec.json.decode(line)
            self.reports.append(report)
            if done(report):
                return report
        raise AssertionError(f"the worker ended (status {self.proc.wait()}): {self.reports}")

    def positions(self, n: int) -> list[tuple[int, int]]:
        """The next ``n`` (last_seq, read) reports."""
        return [(r["last_seq"], r["read"])
                for r in (self.until(lambda r: "last_seq" in r) for _ in range(n))]

    def end(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the daemon is gone: the worker must go too
        return self.proc.wait(timeout=60)


def test_the_worker_follows_the_journal_from_its_own_cursor(tmp_path: Path) -> None:
    lines = make_lines(500)
    journal = Journal(tmp_path / "journal", segment_max_bytes=64 * 1024)
    journal.append((i + 1, line) for i, line in enumerate(lines[:300]))
    index = Index(tmp_path / "i.sqlite3")
    index.add(lines[:100])  # indexed before a crash, say
    index.close()
    worker = WorkerProcess(tmp_path / "journal", tmp_path / "i.sqlite3")
    try:
        # Where it starts, the backlog in one batch, and the empty read that ends it.
        assert worker.positions(3) == [(100, 100), (300, 300), (300, 300)]
        worker.send(op="wake")  # nothing new: answered all the same (or no wake would follow)
        assert worker.positions(1) == [(300, 300)]
        journal.append((i + 1, line) for i, line in enumerate(lines) if i >= 300)
        journal.compress_closed()
        worker.send(op="wake")
        assert worker.positions(2) == [(500, 500), (500, 500)]
        assert indexed_lines(tmp_path / "i.sqlite3") == lines
        worker.send(op="delete_before", seq=201)  # commands are taken in order, so the
        worker.send(op="wake")  # answer to this one comes after the pruning
        assert worker.positions(1) == [(500, 500)]
        assert indexed_lines(tmp_path / "i.sqlite3") == lines[200:]
        worker.send(op="rebuild")
        assert worker.until(lambda r: "rebuild_done" in r) == {"rebuild_done": 500}
        assert any("rebuilt" in r for r in worker.reports)
        assert indexed_lines(tmp_path / "i.sqlite3") == lines
        assert not any("error" in r for r in worker.reports)
    finally:
        assert worker.end() == 0
        journal.close()


def test_one_worker_writes_at_a_time(tmp_path: Path) -> None:
    """A worker whose daemon was killed may still be finishing a batch when the next
    daemon starts its own: the new one waits for the old one's lock."""
    journal = Journal(tmp_path / "journal")
    journal.append((i + 1, line) for i, line in enumerate(make_lines(50)))
    first = WorkerProcess(tmp_path / "journal", tmp_path / "i.sqlite3")
    second = None
    try:
        assert first.positions(3) == [(0, 0), (50, 50), (50, 50)]  # it is idle, holding on
        second = WorkerProcess(tmp_path / "journal", tmp_path / "i.sqlite3")
        waiting = second.until(lambda r: "log" in r or "last_seq" in r)
        assert "waiting for the previous index worker" in waiting.get("msg", ""), waiting
        assert first.end() == 0
        assert second.positions(1) == [(50, 50)]  # then starts where the first left off
    finally:
        if second is not None:
            assert second.end() == 0
        journal.close()


def test_kill_9_while_indexing_then_the_index_matches_the_journal(home: Path) -> None:
    payloads = list(itertools.islice(itertools.cycle(fixture_payloads()), 30_000))
    daemon = Daemon(home).start()
    try:
        seqs = send_events(home, payloads)
        assert seqs == list(range(1, len(payloads) + 1))
        daemon.kill9()  # the indexer thread is mid-way (or not): either way
        daemon = Daemon(home).start()
        wait_until(lambda: status(home)["index_last_seq"] == len(payloads),
                   "the index caught up after the restart", timeout=120)
    finally:
        daemon.__exit__()
    assert indexed_lines(home / "index.sqlite3") == journal_lines(home)


def test_a_missing_index_is_rebuilt_at_start(home: Path) -> None:
    with Daemon(home) as daemon:
        send_events(home, fixture_payloads())
        daemon.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{home / 'index.sqlite3'}{suffix}").unlink(missing_ok=True)
    with Daemon(home):
        wait_until(lambda: status(home)["index_last_seq"] == len(fixture_payloads()),
                   "the index was rebuilt from the journal")
    assert indexed_lines(home / "index.sqlite3") == journal_lines(home)


@pytest.mark.parametrize("daemon_running", [True, False])
def test_mpmd_reindex(home: Path, daemon_running: bool) -> None:
    with Daemon(home) as daemon:
        send_events(home, fixture_payloads())
        wait_until(lambda: status(home)["index_last_seq"] == len(fixture_payloads()),
                   "indexed")
        if not daemon_running:
            daemon.stop()
            (home / "index.sqlite3").write_bytes(b"")  # whatever it was, reindex makes it anew
        result = mpmd_cli(home, "reindex")
        assert result.returncode == 0, result.stderr
        assert f"{len(fixture_payloads())} events" in result.stdout
        assert ("by the daemon" in result.stdout) == daemon_running
    assert indexed_lines(home / "index.sqlite3") == journal_lines(home)


def test_a_killed_index_worker_is_started_again(home: Path) -> None:
    with Daemon(home):
        send_events(home, fixture_payloads())
        wait_until(lambda: status(home)["index_last_seq"] == len(fixture_payloads()),
                   "indexed")
        first_pid = status(home)["index_worker_pid"]
        os.kill(first_pid, signal.SIGKILL)
        wait_until(lambda: status(home)["counters"].get("index_worker_restarts") == 1,
                   "the daemon noticed")
        send_events(home, fixture_payloads())  # while it is down, or once it is back
        wait_until(lambda: status(home)["index_last_seq"] == 2 * len(fixture_payloads()),
                   "the new worker caught up")
        assert status(home)["index_worker_pid"] not in (None, first_pid)
        human = mpmd_cli(home, "status").stdout
        assert f"up to date (worker pid {status(home)['index_worker_pid']})" in human
    assert indexed_lines(home / "index.sqlite3") == journal_lines(home)


def summarise(lines: list[bytes]) -> dict[str, dict]:
    """The sessions table worked out the slow way, from the lines themselves."""
    found: dict[str, dict] = {}
    for line in lines:
        ev = msgspec.json.decode(line)
        sid, payload = ev.get("session_id"), ev.get("payload") or {}
        if sid is None:
            continue
        ts = index_module.iso_to_ms(ev["timestamp"])
        s = found.setdefault(sid, {
            "session_id": sid, "first_seq": ev["seq"], "first_ts": ts, "last_ts": ts,
            "events": 0, "tool_calls": 0, "failures": 0, "cwd": None, "model": None,
            "end_reason": None, "first_prompt": None,
            # no ModelUsage here: nothing read of a transcript (tests/test_history_cost.py)
            "responses": 0, "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0,
            "cache_write_tokens": 0, "unpriced_responses": 0, "cost_usd": None,
            "cost_source": None})
        s["last_seq"] = ev["seq"]
        s["first_ts"], s["last_ts"] = min(s["first_ts"], ts), max(s["last_ts"], ts)
        s["events"] += 1
        s["tool_calls"] += ev["event_type"] in ("PostToolUse", "PostToolUseFailure")
        s["failures"] += ev["event_type"] == "PostToolUseFailure"
        s["cwd"] = s["cwd"] or ev.get("cwd")
        if ev["event_type"] == "SessionStart" and payload.get("model"):
            s["model"] = payload["model"]
        if ev["event_type"] == "SessionEnd" and payload.get("reason"):
            s["end_reason"] = payload["reason"]
        if ev["event_type"] == "UserPromptSubmit" and not s["first_prompt"]:
            s["first_prompt"] = payload.get("prompt", "")[:200] or None
    return found


def varied_lines(n: int) -> list[bytes]:
    """Fixture lines spread over three sessions, the third one never ended."""
    lines = []
    for line in make_lines(n):
        ev = msgspec.json.decode(line)
        ev["session_id"] = f"{ev['session_id'][:-1]}{ev['seq'] % 3}"
        if ev["seq"] % 3 == 2 and ev["event_type"] == "SessionEnd":
            ev["event_type"] = "Stop"
        lines.append(msgspec.json.encode(ev))
    return lines


def indexed_sessions(path: Path) -> dict[str, dict]:
    conn = connect_read_only(path)
    try:
        return {s["session_id"]: s for s in index_module.sessions(conn, 0, 2**62, 1000)}
    finally:
        conn.close()


@pytest.mark.parametrize("sizes", [(200,), (1, 7, 16, 33, 143)])
def test_sessions_are_summed_up_across_batches(tmp_path: Path, sizes: tuple[int, ...]) -> None:
    lines = varied_lines(200)
    index = Index(tmp_path / "i.sqlite3")
    start = 0
    for size in sizes:
        index.add(lines[start:start + size])
        start += size
    index.close()
    expected = summarise(lines)
    assert len(expected) == 3 and sum(s["end_reason"] is None for s in expected.values()) == 1
    assert indexed_sessions(tmp_path / "i.sqlite3") == expected


def test_pruning_recounts_sessions_and_drops_unused_blocks(tmp_path: Path) -> None:
    lines = varied_lines(200)
    path = tmp_path / "i.sqlite3"
    index = Index(path)
    index.add(lines)
    cut = 101  # inside a block of 16: the block stays for the events left in it
    assert index.delete_before(cut) == cut - 1
    index.close()
    remaining = [line for line in lines if msgspec.json.decode(line)["seq"] >= cut]
    assert indexed_lines(path) == remaining
    expected = summarise(remaining)
    first_seen = summarise(lines)  # what a session says of itself stays as first seen
    for sid, s in expected.items():
        for key in ("cwd", "model", "end_reason", "first_prompt"):
            s[key] = first_seen[sid][key]
    assert indexed_sessions(path) == expected
    conn = connect_read_only(path)
    unused = conn.execute(
        "SELECT count(*) FROM blocks WHERE first_seq NOT IN (SELECT block FROM events)")
    assert unused.fetchone()[0] == 0
    conn.close()
